"""Typed writes of the campaign tables for the management API: named SQL from campaigns.sql.

Each function is one statement; the handlers (gateway/api/manage.py,
enrollments.py) compose them inside one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from asyncpg import Connection, Record

from gateway.db.sql import load_queries

CAMPAIGNS: dict[str, str] = load_queries("campaigns")


class TemplateRow(NamedTuple):
    """A template's own columns, in the parameter order of `insert_template`."""

    name: str
    description: str | None
    type: str
    path_type: str
    settings: dict[str, Any]
    is_active: bool
    created_by: str | None


class EmailStepRow(NamedTuple):
    """One email step, in the parameter order of `upsert_email_steps`."""

    step_number: int
    a_b_variant: str | None
    subject: str
    body_template: str
    delay_hours: int
    is_active: bool


class LinkedinStepRow(NamedTuple):
    """One LinkedIn step, in the parameter order of `upsert_linkedin_steps`."""

    step_number: int
    action_type: str
    message_template: str | None
    delay_hours: int
    fallback_channel: str | None


def _columns(rows: list[Any], width: int) -> list[list[Any]]:
    """Rows as one list per column (what `unnest` takes), also when there is no row."""
    return [list(column) for column in zip(*rows, strict=True)] or [[] for _ in range(width)]


async def insert_template(conn: Connection, template: TemplateRow) -> UUID:
    """A new template's id."""
    template_id: UUID = await conn.fetchval(CAMPAIGNS["insert_template"], *template)
    return template_id


async def update_template(conn: Connection, template_id: UUID, template: TemplateRow) -> bool:
    """Replace the template's own columns; False when there is no such template."""
    return await conn.fetchval(CAMPAIGNS["update_template"], template_id, *template) is not None


async def replace_sequences(
    conn: Connection,
    template_id: UUID,
    email: list[EmailStepRow],
    linkedin: list[LinkedinStepRow],
) -> None:
    """Make the template's sequences exactly these steps; kept steps keep their ids."""
    email_columns = _columns(email, len(EmailStepRow._fields))
    linkedin_columns = _columns(linkedin, len(LinkedinStepRow._fields))
    await conn.execute(CAMPAIGNS["delete_other_email_steps"], template_id, *email_columns[:2])
    await conn.execute(CAMPAIGNS["delete_other_linkedin_steps"], template_id, linkedin_columns[0])
    if email:
        await conn.execute(CAMPAIGNS["upsert_email_steps"], template_id, *email_columns)
    if linkedin:
        await conn.execute(CAMPAIGNS["upsert_linkedin_steps"], template_id, *linkedin_columns)


async def lock_template(conn: Connection, template_id: UUID) -> bool:
    """Lock the template for a write; False when there is no such template."""
    return await conn.fetchval(CAMPAIGNS["lock_template"], template_id) is not None


async def lock_template_instances(conn: Connection, template_id: UUID) -> list[Record]:
    """The template's instances (id, name, status), locked in id order."""
    rows: list[Record] = await conn.fetch(CAMPAIGNS["lock_template_instances"], template_id)
    return rows


async def delete_template(conn: Connection, template_id: UUID) -> None:
    """Delete the template and, by cascade, everything made from it."""
    await conn.execute(CAMPAIGNS["delete_template"], template_id)


async def lock_template_key(conn: Connection, template_id: UUID) -> bool:
    """Keep the template from being deleted until commit; False when there is none."""
    return await conn.fetchval(CAMPAIGNS["lock_template_key"], template_id) is not None


async def lock_mappings(conn: Connection) -> None:
    """Serialize campaign-key mapping changes until commit."""
    await conn.execute(CAMPAIGNS["lock_mappings"])


class MappingConflict(NamedTuple):
    """A live instance that maps a campaign key already."""

    id: UUID
    name: str
    provider: str
    key: str


async def mapping_conflict(
    conn: Connection, instance_id: UUID | None, keys: Sequence[tuple[str, str]]
) -> MappingConflict | None:
    """The oldest active or paused instance other than `instance_id` mapping one of the keys."""
    if not keys:
        return None
    providers, values = (list(column) for column in zip(*keys, strict=True))
    row = await conn.fetchrow(CAMPAIGNS["mapping_conflict"], instance_id, providers, values)
    return None if row is None else MappingConflict(*row)


class InstanceRow(NamedTuple):
    """A new instance, in the parameter order of `insert_instance`."""

    template_id: UUID
    name: str
    status: str
    provider_config: dict[str, Any]
    settings: dict[str, Any]


async def insert_instance(conn: Connection, instance: InstanceRow) -> UUID:
    """A new instance's id; its counters start at zero."""
    instance_id: UUID = await conn.fetchval(CAMPAIGNS["insert_instance"], *instance)
    return instance_id


async def lock_instance(conn: Connection, instance_id: UUID) -> Record | None:
    """The instance's status and configuration, locked until commit; None when absent."""
    row: Record | None = await conn.fetchrow(CAMPAIGNS["lock_instance"], instance_id)
    return row


async def update_instance(
    conn: Connection,
    instance_id: UUID,
    name: str | None,
    status: str,
    provider_config: dict[str, Any],
    settings: dict[str, Any],
) -> None:
    """Store the instance's new state (a None name stays); status times move with status."""
    await conn.execute(
        CAMPAIGNS["update_instance"], instance_id, name, status, provider_config, settings
    )


class ContactRow(NamedTuple):
    """One contact to enroll, in the parameter order of `enroll_contacts`."""

    email: str | None
    linkedin_url: str | None
    contact_id: str | None
    metadata: dict[str, Any]


async def instance_status(conn: Connection, instance_id: UUID) -> str | None:
    """The instance's status, kept from deletion until commit; None when absent."""
    status: str | None = await conn.fetchval(CAMPAIGNS["instance_status"], instance_id)
    return status


async def enroll_contacts(
    conn: Connection, instance_id: UUID, contacts: list[ContactRow]
) -> tuple[set[UUID], list[Record]]:
    """Enroll the contacts not enrolled yet, and count them into the instance.

    Returns the ids created now and, per contact in order, its enrollment
    (id, contact_email, linkedin_url), new or found.
    """
    columns = _columns(contacts, len(ContactRow._fields))
    created = await conn.fetch(CAMPAIGNS["enroll_contacts"], instance_id, *columns)
    found: list[Record] = await conn.fetch(CAMPAIGNS["find_contacts"], instance_id, *columns[:2])
    if created:
        await conn.execute(CAMPAIGNS["count_enrolled"], instance_id, len(created))
    return {row["id"] for row in created}, found


class CampaignKeys(NamedTuple):
    """Campaign keys per provider, in the parameter order of `unmatched_deliveries`."""

    lemlist: list[str]
    postmark: list[str]
    phantombuster: list[str]


async def unmatched_deliveries(
    conn: Connection, keys: CampaignKeys, after: tuple[datetime, UUID] | None, limit: int
) -> list[Record]:
    """The next `limit` deliveries owning unmatched events with the keys, oldest first."""
    rows: list[Record] = await conn.fetch(
        CAMPAIGNS["unmatched_deliveries"], *keys, *(after or (None, None)), limit
    )
    return rows


async def count_unmatched(conn: Connection, keys: CampaignKeys) -> int:
    """Events with the keys still without a campaign instance."""
    count: int = await conn.fetchval(CAMPAIGNS["count_unmatched"], *keys)
    return count

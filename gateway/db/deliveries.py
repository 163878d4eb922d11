"""Typed queries over stored deliveries and what they wrote: named SQL from deliveries.sql.

For the operators' tools (gateway/ops): export and reprocess page through
deliveries, a direct replay recognizes a stored one, reprocess reads what a
delivery wrote and stores its new outcome, purge deletes old ones.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from asyncpg import Connection, Record

from gateway.db.sql import load_queries
from gateway.delivery import DELIVERY_STATUSES

DELIVERIES: dict[str, str] = load_queries("deliveries")


class DeliveryFilter(NamedTuple):
    """Which stored deliveries export and reprocess go through."""

    providers: tuple[str, ...]
    statuses: tuple[str, ...] = DELIVERY_STATUSES
    since: datetime | None = None
    """Received at or after; None: from the first."""
    until: datetime | None = None
    """Received before; None: up to the last."""


async def page_deliveries(
    conn: Connection, where: DeliveryFilter, after: tuple[datetime, UUID] | None, limit: int
) -> list[Record]:
    """The next `limit` deliveries after the (received_at, id) cursor, oldest first."""
    rows: list[Record] = await conn.fetch(
        DELIVERIES["page_deliveries"],
        list(where.providers),
        list(where.statuses),
        where.since,
        where.until,
        *(after or (None, None)),
        limit,
    )
    return rows


async def count_deliveries(conn: Connection, where: DeliveryFilter) -> int:
    """How many deliveries the filter selects."""
    total: int = await conn.fetchval(
        DELIVERIES["count_deliveries"],
        list(where.providers),
        list(where.statuses),
        where.since,
        where.until,
    )
    return total


async def stored_bodies(conn: Connection, provider: str, received_at: datetime) -> list[bytes]:
    """Bodies stored for the provider at exactly that receive time."""
    rows = await conn.fetch(DELIVERIES["stored_bodies"], provider, received_at)
    return [bytes(r["body"]) for r in rows]


class StoredEvent(NamedTuple):
    """What reprocess needs of a stored event."""

    enrollment_id: UUID | None
    machine: Any
    """Its `metadata.machine` as stored (None: unflagged)."""


async def stored_events(conn: Connection, provider: str, keys: list[str]) -> dict[str, StoredEvent]:
    """The keys among `keys` stored as events, each with its enrollment and machine flag."""
    rows = await conn.fetch(DELIVERIES["stored_events"], provider, keys)
    return {r["provider_event_id"]: StoredEvent(r["enrollment_id"], r["machine"]) for r in rows}


async def delivery_events(conn: Connection, ids: list[UUID]) -> dict[UUID, tuple[int, int]]:
    """Per delivery with events: (events it wrote itself, how many have no enrollment)."""
    rows = await conn.fetch(DELIVERIES["delivery_events"], ids)
    return {r["delivery_id"]: (r["own"], r["unmatched"]) for r in rows}


class DeliveryOutcome(NamedTuple):
    """A delivery's outcome columns, in the parameter order of `update_delivery_outcome`."""

    status: str
    cause: str | None
    events_written: int
    duplicates: int
    fetched_body: bytes | None
    fetched_from: str | None


async def update_delivery_outcome(
    conn: Connection, delivery_id: UUID, outcome: DeliveryOutcome
) -> None:
    """Store a reprocessed delivery's new outcome."""
    await conn.execute(DELIVERIES["update_delivery_outcome"], delivery_id, *outcome)


async def stale_machine_flags(conn: Connection, enrollments: list[UUID]) -> set[UUID]:
    """The enrollments among these whose machine flags the current rules would change."""
    rows = await conn.fetch(DELIVERIES["stale_machine_flags"], enrollments)
    return {r["enrollment_id"] for r in rows}


async def flag_machine_events(conn: Connection, enrollments: list[UUID]) -> int:
    """Recompute these enrollments' machine flags (their lock held to commit); rows changed."""
    changed: int = await conn.fetchval(DELIVERIES["flag_machine_events"], enrollments)
    return changed


async def machine_flags(conn: Connection, enrollments: list[UUID]) -> dict[UUID, Any]:
    """`metadata.machine` (or None) of each e-mail open and click of these enrollments."""
    rows = await conn.fetch(DELIVERIES["machine_flags"], enrollments)
    return {r["id"]: r["machine"] for r in rows}


class Purgeable(NamedTuple):
    """What a purge with a cutoff would delete: how many, received from when to when."""

    deliveries: int
    oldest: datetime | None
    newest: datetime | None


async def count_purgeable(conn: Connection, cutoff: datetime) -> Purgeable:
    """How many deliveries were received before `cutoff`, and their time span."""
    row = await conn.fetchrow(DELIVERIES["count_purgeable"], cutoff)
    return Purgeable(row["count"], row["oldest"], row["newest"])


async def purge_deliveries(conn: Connection, cutoff: datetime, limit: int) -> list[Record]:
    """Delete the oldest `limit` deliveries received before `cutoff`; the rows deleted.

    Rows come with what an archive line needs (`gateway.ops.export.stored_line`).
    """
    rows: list[Record] = await conn.fetch(DELIVERIES["purge_deliveries"], cutoff, limit)
    return rows

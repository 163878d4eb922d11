"""Named SQL blocks from queries.sql, loaded once at import of this module."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple
from uuid import UUID

from asyncpg import Connection, Record


def load_queries(path: Path) -> dict[str, str]:
    """Split a file into `-- name: x` blocks; a block's leading comments stay with it."""
    text = path.read_text()
    blocks = re.split(r"^-- name: *(\w+) *$", text, flags=re.MULTILINE)
    queries: dict[str, str] = {}
    for name, body in zip(blocks[1::2], blocks[2::2], strict=True):
        sql = body.strip()
        if name in queries:
            raise ValueError(f"query {name!r} defined twice in {path}")
        queries[name] = sql
    return queries


QUERIES: dict[str, str] = load_queries(Path(__file__).with_name("queries.sql"))


def sql(name: str) -> str:
    """The SQL of a named block; KeyError names a query that does not exist."""
    return QUERIES[name]


class Target(NamedTuple):
    """Where one event belongs: its instance and enrollment, each possibly unknown."""

    instance_id: UUID | None
    enrollment_id: UUID | None


class EventRow(NamedTuple):
    """One event ready to insert, in the column order of `insert_events`."""

    enrollment_id: UUID | None
    instance_id: UUID | None
    delivery_id: UUID
    event_type: str
    channel: str
    provider: str
    provider_event_id: str
    step_number: int | None
    timestamp: datetime
    metadata: dict[str, Any]


class Lookup(NamedTuple):
    """What `resolve_targets` needs to know of one event."""

    provider: str
    campaign_key: str | None
    instance_hint: UUID | None
    enrollment_hint: UUID | None
    email: str | None
    urls: str | None
    """LinkedIn URLs joined by newlines."""


async def resolve_targets(conn: Connection, lookups: list[Lookup]) -> list[Target]:
    """Instance and enrollment for each lookup, in order."""
    rows = await conn.fetch(
        sql("resolve_targets"),
        list(range(len(lookups))),
        *(list(column) for column in zip(*lookups, strict=True)),
    )
    targets = [Target(None, None)] * len(lookups)
    for row in rows:
        targets[row["idx"]] = Target(row["instance_id"], row["enrollment_id"])
    return targets


async def lock_instances(conn: Connection, instance_ids: list[UUID]) -> None:
    """Lock the instances a batch will count into, in id order (see queries.sql)."""
    await conn.execute(sql("lock_instances"), sorted(instance_ids))


async def create_enrollments(
    conn: Connection, contacts: list[tuple[UUID, str | None, str | None]]
) -> None:
    """Enroll (instance, email, LinkedIn URL) contacts not enrolled yet."""
    instance_ids, emails, urls = (list(c) for c in zip(*contacts, strict=True))
    await conn.execute(sql("create_enrollments"), instance_ids, emails, urls)


async def insert_events(conn: Connection, rows: list[EventRow]) -> list[Record]:
    """Insert or attach events; returns (provider, provider_event_id, enrollment_id, inserted)."""
    result: list[Record] = await conn.fetch(
        sql("insert_events"), *(list(column) for column in zip(*rows, strict=True))
    )
    return result


class DeliveryRow(NamedTuple):
    """One raw delivery and its outcome, in the column order of `insert_deliveries`."""

    id: UUID
    provider: str
    received_at: datetime
    body: bytes
    body_size: int
    headers: dict[str, str]
    query: dict[str, str]
    status: str
    cause: str | None
    events_written: int
    duplicates: int
    fetched_body: bytes | None
    fetched_from: str | None


async def insert_deliveries(conn: Connection, rows: list[DeliveryRow]) -> None:
    """Store raw deliveries with their outcomes in one statement."""
    await conn.execute(
        sql("insert_deliveries"), *(list(column) for column in zip(*rows, strict=True))
    )


async def insert_delivery(conn: Connection, row: DeliveryRow) -> None:
    """Store one raw delivery with its outcome."""
    await insert_deliveries(conn, [row])


#: Every value of `webhook_deliveries.status` (its CHECK constraint).
DELIVERY_STATUSES: tuple[str, ...] = (
    "processed",
    "duplicate",
    "unmatched",
    "ignored",
    "rejected",
    "pending",
    "failed",
)


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
        sql("page_deliveries"),
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
        sql("count_deliveries"),
        list(where.providers),
        list(where.statuses),
        where.since,
        where.until,
    )
    return total


async def stored_bodies(conn: Connection, provider: str, received_at: datetime) -> list[bytes]:
    """Bodies stored for the provider at exactly that receive time."""
    rows = await conn.fetch(sql("stored_bodies"), provider, received_at)
    return [bytes(r["body"]) for r in rows]


async def stored_events(conn: Connection, provider: str, keys: list[str]) -> dict[str, bool]:
    """The keys among `keys` stored as events, each with whether it has an enrollment."""
    rows = await conn.fetch(sql("stored_events"), provider, keys)
    return {r["provider_event_id"]: r["attached"] for r in rows}


async def delivery_events(conn: Connection, ids: list[UUID]) -> dict[UUID, tuple[int, int]]:
    """Per delivery with events: (events it wrote itself, how many have no enrollment)."""
    rows = await conn.fetch(sql("delivery_events"), ids)
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
    await conn.execute(sql("update_delivery_outcome"), delivery_id, *outcome)

"""Named SQL blocks from queries.sql, loaded once at import of this module."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple
from uuid import UUID

from asyncpg import Connection, Record

from gateway.delivery import DELIVERY_STATUSES


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


class EventArgs(NamedTuple):
    """One event of a batch, in the parameter order of `write_batch`."""

    id: UUID
    """The event's row id, if it is new (time-ordered: see `gateway.ids`)."""
    provider: str
    provider_event_id: str
    campaign_key: str | None
    instance_hint: UUID | None
    enrollment_hint: UUID | None
    email: str | None
    urls: str | None
    """The contact's LinkedIn URLs joined by newlines."""
    delivery_id: UUID
    """The delivery that owns the event (the first of the batch to carry it)."""
    event_type: str
    channel: str
    step_number: int | None
    timestamp: datetime
    metadata: dict[str, Any]


class DeliveryArgs(NamedTuple):
    """One raw delivery of a batch, in the parameter order of `write_batch`."""

    id: UUID
    provider: str
    received_at: datetime
    body: bytes
    body_size: int
    headers: dict[str, str]
    query: dict[str, str]
    status: str | None
    """Given for a delivery without events; None: decided by what its events do."""
    cause: str | None
    events: int
    """Events the delivery carries, repeats included: new + duplicates."""
    fetched_body: bytes | None
    fetched_from: str | None


class BatchOutcome(NamedTuple):
    """What `write_batch` made of one delivery."""

    delivery_id: UUID
    status: str
    written: int
    duplicates: int
    cause: str | None


async def write_batch(
    conn: Connection, events: list[EventArgs], deliveries: list[DeliveryArgs], *, store: bool
) -> list[BatchOutcome]:
    """Write events and deliveries in one statement (its own transaction outside one)."""
    event_columns = [list(c) for c in zip(*events, strict=True)] or [[]] * len(EventArgs._fields)
    delivery_columns = [list(c) for c in zip(*deliveries, strict=True)] or [[]] * len(
        DeliveryArgs._fields
    )
    rows = await conn.fetch(sql("write_batch"), *event_columns, *delivery_columns, store)
    return [BatchOutcome(*row) for row in rows]


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


class StoredEvent(NamedTuple):
    """What reprocess needs of a stored event."""

    enrollment_id: UUID | None
    machine: Any
    """Its `metadata.machine` as stored (None: unflagged)."""


async def stored_events(conn: Connection, provider: str, keys: list[str]) -> dict[str, StoredEvent]:
    """The keys among `keys` stored as events, each with its enrollment and machine flag."""
    rows = await conn.fetch(sql("stored_events"), provider, keys)
    return {r["provider_event_id"]: StoredEvent(r["enrollment_id"], r["machine"]) for r in rows}


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


async def stale_machine_flags(conn: Connection, enrollments: list[UUID]) -> set[UUID]:
    """The enrollments among these whose machine flags the current rules would change."""
    rows = await conn.fetch(sql("stale_machine_flags"), enrollments)
    return {r["enrollment_id"] for r in rows}


async def flag_machine_events(conn: Connection, enrollments: list[UUID]) -> int:
    """Recompute these enrollments' machine flags (their lock held to commit); rows changed."""
    changed: int = await conn.fetchval(sql("flag_machine_events"), enrollments)
    return changed


async def machine_flags(conn: Connection, enrollments: list[UUID]) -> dict[UUID, Any]:
    """`metadata.machine` (or None) of each e-mail open and click of these enrollments."""
    rows = await conn.fetch(sql("machine_flags"), enrollments)
    return {r["id"]: r["machine"] for r in rows}

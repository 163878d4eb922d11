"""The write path's one statement: a whole group commit (`write_batch`, named SQL from ingest.sql).

`gateway.ingest` turns deliveries and their events into these arguments; the
function it calls is in functions.sql, which explains its steps.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from asyncpg import Connection

from gateway.db.sql import load_queries

INGEST: dict[str, str] = load_queries("ingest")


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
    rows = await conn.fetch(INGEST["write_batch"], *event_columns, *delivery_columns, store)
    return [BatchOutcome(*row) for row in rows]

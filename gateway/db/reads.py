"""Typed reads for the dashboards' API: named SQL from reads.sql, connection first.

Every function returns asyncpg records; turning them into response Structs is
the API's job (gateway/api).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import NamedTuple
from uuid import UUID

from asyncpg import Connection, Record

from gateway.db.queries import load_queries

READS: dict[str, str] = load_queries(Path(__file__).with_name("reads.sql"))


class TimeRange(NamedTuple):
    """A half-open range [start, end); None is unbounded on that side."""

    start: datetime | None = None
    end: datetime | None = None


class Key(NamedTuple):
    """A keyset position: the (time, id) of the last row of the previous page."""

    at: datetime
    id: UUID


async def list_templates(
    conn: Connection, type_: str | None, path_type: str | None, is_active: bool | None
) -> list[Record]:
    """Templates with their step counts, oldest first."""
    rows: list[Record] = await conn.fetch(READS["list_templates"], type_, path_type, is_active)
    return rows


async def get_template(conn: Connection, template_id: UUID) -> Record | None:
    """One template with its sequences as JSON arrays, or None."""
    row: Record | None = await conn.fetchrow(READS["get_template"], template_id)
    return row


async def list_instances(
    conn: Connection, status: str | None, template_id: UUID | None
) -> list[Record]:
    """Instances with their counters, newest first."""
    rows: list[Record] = await conn.fetch(READS["list_instances"], status, template_id)
    return rows


async def get_instance(conn: Connection, instance_id: UUID) -> Record | None:
    """One instance with its counters, or None."""
    row: Record | None = await conn.fetchrow(READS["get_instance"], instance_id)
    return row


async def performance_enrolled(
    conn: Connection, instance_id: UUID, period: TimeRange
) -> int | None:
    """Enrollments of the instance enrolled in the period; None when no such instance."""
    row = await conn.fetchrow(READS["performance_enrolled"], instance_id, *period)
    return None if row is None else int(row["enrolled"])


async def performance_funnel(
    conn: Connection, instance_id: UUID, period: TimeRange
) -> list[Record]:
    """Events and distinct enrollments: overall, per channel, per step, per provider."""
    rows: list[Record] = await conn.fetch(READS["performance_funnel"], instance_id, *period)
    return rows


async def performance_totals(
    conn: Connection, instance_id: UUID, period: TimeRange, zone: str
) -> list[Record]:
    """Events per day in `zone`."""
    rows: list[Record] = await conn.fetch(READS["performance_totals"], instance_id, *period, zone)
    return rows


async def instance_timezone(conn: Connection, instance_id: UUID) -> tuple[bool, str | None]:
    """Whether the instance exists, and its `settings.timezone` when that is a string."""
    row = await conn.fetchrow(READS["instance_timezone"], instance_id)
    return (False, None) if row is None else (True, row["timezone"])


async def performance_human(
    conn: Connection, instance_id: UUID, period: TimeRange, zone: str
) -> list[Record]:
    """Human opens and clicks and the e-mail reach: overall, per step, per day, per provider."""
    rows: list[Record] = await conn.fetch(READS["performance_human"], instance_id, *period, zone)
    return rows


class EventFilter(NamedTuple):
    """Which events a page holds; None leaves a column unfiltered."""

    instance_id: UUID | None = None
    enrollment_id: UUID | None = None
    provider: str | None = None
    channel: str | None = None
    event_type: str | None = None
    unmatched: bool | None = None
    """True: only events without an enrollment; False: only attached ones."""
    period: TimeRange = TimeRange()


#: Fixed SQL for each filter, `{}` standing for its parameter number. Only the
#: filters given are added, so that the planner sees plain equalities and walks
#: the index that fits: (instance_id, timestamp, id), (enrollment_id, timestamp),
#: the partial index of unmatched events or (timestamp, id).
_EVENT_CONDITIONS: dict[str, str] = {
    "instance_id": "e.instance_id = ${}",
    "enrollment_id": "e.enrollment_id = ${}",
    "provider": "e.provider = ${}",
    "channel": "e.channel = ${}",
    "event_type": "e.event_type = ${}",
    "start": "e.timestamp >= ${}",
    "end": "e.timestamp < ${}",
}


def events_query(where: EventFilter, after: Key | None, limit: int) -> tuple[str, list[object]]:
    """The SQL and arguments of one page of events: `list_events` plus fixed fragments."""
    values: dict[str, object] = {
        "instance_id": where.instance_id,
        "enrollment_id": where.enrollment_id,
        "provider": where.provider,
        "channel": where.channel,
        "event_type": where.event_type,
        "start": where.period.start,
        "end": where.period.end,
    }
    parts = [READS["list_events"]]
    args: list[object] = []
    for name, value in values.items():
        if value is not None:
            args.append(value)
            parts.append("AND " + _EVENT_CONDITIONS[name].format(len(args)))
    if where.unmatched is not None:
        parts.append(f"AND e.enrollment_id IS {'' if where.unmatched else 'NOT '}NULL")
    if after is not None:
        args.extend(after)
        parts.append(f"AND (e.timestamp, e.id) > (${len(args) - 1}, ${len(args)})")
    args.append(limit)
    parts.append(f"ORDER BY e.timestamp, e.id LIMIT ${len(args)}")
    return "\n".join(parts), args


async def list_events(
    conn: Connection, where: EventFilter, after: Key | None, limit: int
) -> list[Record]:
    """Up to `limit` events after the cursor, in (timestamp, id) order."""
    query, args = events_query(where, after, limit)
    rows: list[Record] = await conn.fetch(query, *args)
    return rows


async def list_deliveries(
    conn: Connection,
    statuses: tuple[str, ...],
    provider: str | None,
    period: TimeRange,
    after: Key | None,
    limit: int,
) -> list[Record]:
    """Up to `limit` deliveries after the cursor, in (received_at, id) order, without bodies."""
    rows: list[Record] = await conn.fetch(
        READS["list_deliveries"],
        list(statuses),
        provider,
        *period,
        *(after or (None, None)),
        limit,
    )
    return rows


async def list_enrollments(
    conn: Connection, instance_id: UUID, status: str | None, after: Key | None, limit: int
) -> list[Record]:
    """Up to `limit` enrollments of the instance after the cursor, in (enrolled_at, id) order."""
    rows: list[Record] = await conn.fetch(
        READS["list_enrollments"], instance_id, status, *(after or (None, None)), limit
    )
    return rows


async def provider_last_delivery(
    conn: Connection, providers: tuple[str, ...]
) -> dict[str, datetime | None]:
    """When each provider's newest non-rejected delivery arrived (None: none stored)."""
    rows = await conn.fetch(READS["provider_last_delivery"], list(providers))
    return {r["provider"]: r["last_at"] for r in rows}


async def delivery_backlog(conn: Connection, statuses: tuple[str, ...]) -> dict[str, int]:
    """Stored deliveries in each of these statuses."""
    rows = await conn.fetch(READS["delivery_backlog"], list(statuses))
    return {r["status"]: r["deliveries"] for r in rows}


async def silent_instances(conn: Connection) -> list[Record]:
    """Active instances' providers silent longer than the instance allows, longest first."""
    rows: list[Record] = await conn.fetch(READS["silent_instances"])
    return rows

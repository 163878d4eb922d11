"""Typed reads for the dashboards' API: named SQL from reads.sql, connection first.

Every function returns asyncpg records; turning them into response Structs is
the API's job (gateway/api).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple
from uuid import UUID

from asyncpg import Connection, Record

from gateway.db.sql import load_queries

READS: dict[str, str] = load_queries("reads")


class TimeRange(NamedTuple):
    """A half-open range [start, end); None is unbounded on that side."""

    start: datetime | None = None
    end: datetime | None = None


class Key(NamedTuple):
    """A keyset position: the (time, id) of the last row of the previous page."""

    at: datetime
    id: UUID


async def list_templates(
    conn: Connection,
    types: tuple[str, ...] | None,
    path_types: tuple[str, ...] | None,
    is_active: bool | None,
) -> list[Record]:
    """Templates with their step counts, oldest first; None leaves a column unfiltered."""
    rows: list[Record] = await conn.fetch(
        READS["list_templates"], _array(types), _array(path_types), is_active
    )
    return rows


async def get_template(conn: Connection, template_id: UUID) -> Record | None:
    """One template with its sequences as JSON arrays, or None."""
    row: Record | None = await conn.fetchrow(READS["get_template"], template_id)
    return row


async def list_instances(
    conn: Connection,
    statuses: tuple[str, ...] | None,
    template_ids: tuple[UUID, ...] | None,
    after: Key | None,
    limit: int,
) -> list[Record]:
    """Up to `limit` instances with their counters, newest first, after the cursor."""
    rows: list[Record] = await conn.fetch(
        READS["list_instances"],
        _array(statuses),
        _array(template_ids),
        *(after or (None, None)),
        limit,
    )
    return rows


def _array(values: tuple[object, ...] | None) -> list[object] | None:
    """A filter's values as an array parameter; None (no filter) stays NULL."""
    return None if values is None else list(values)


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
    """Which events a page holds: any of each filter's values; None leaves it unfiltered."""

    instance_ids: tuple[UUID, ...] | None = None
    enrollment_ids: tuple[UUID, ...] | None = None
    delivery_ids: tuple[UUID, ...] | None = None
    providers: tuple[str, ...] | None = None
    channels: tuple[str, ...] | None = None
    event_types: tuple[str, ...] | None = None
    unmatched: bool | None = None
    """True: only events without an enrollment; False: only attached ones."""
    period: TimeRange = TimeRange()


#: The column each filter compares, and its array type for several values.
_EVENT_COLUMNS: dict[str, tuple[str, str]] = {
    "instance_ids": ("e.instance_id", "uuid"),
    "enrollment_ids": ("e.enrollment_id", "uuid"),
    "delivery_ids": ("e.delivery_id", "uuid"),
    "providers": ("e.provider", "text"),
    "channels": ("e.channel", "text"),
    "event_types": ("e.event_type", "text"),
}


def events_query(where: EventFilter, after: Key | None, limit: int) -> tuple[str, list[object]]:
    """The SQL and arguments of one page of events: `list_events` plus fixed fragments.

    Only the filters given are added. One value is a plain equality, so that
    the planner walks the index that fits in (timestamp, id) order:
    (instance_id, timestamp, id), (enrollment_id, timestamp), (delivery_id),
    the partial index of unmatched events or (timestamp, id). Several values
    are `= ANY(array)`.
    """
    parts = [READS["list_events"]]
    args: list[object] = []
    for name, (column, type_) in _EVENT_COLUMNS.items():
        values: tuple[object, ...] | None = getattr(where, name)
        if values is None:
            continue
        if len(values) == 1:
            args.append(values[0])
            parts.append(f"AND {column} = ${len(args)}")
        else:
            args.append(list(values))
            parts.append(f"AND {column} = ANY(${len(args)}::{type_}[])")
    start, end = where.period
    if start is not None:
        args.append(start)
        parts.append(f"AND e.timestamp >= ${len(args)}")
    if end is not None:
        args.append(end)
        parts.append(f"AND e.timestamp < ${len(args)}")
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


class DeliveryFilter(NamedTuple):
    """Which deliveries a page of the log holds."""

    statuses: tuple[str, ...]
    providers: tuple[str, ...] | None = None
    """Any of these; None: every provider."""
    period: TimeRange = TimeRange()
    search: str | None = None
    """A business key: lead e-mail, provider campaign key or provider event id."""


#: Up to this many deliveries per key, a search pages over their ids; beyond
#: it (a large campaign's key), it walks the log and checks each delivery's
#: own events, which finds a page quickly because such a key is frequent.
SEARCH_SET_MAX = 50_000


async def list_deliveries(
    conn: Connection, where: DeliveryFilter, after: Key | None, limit: int, *, newest: bool = False
) -> list[Record]:
    """Up to `limit` deliveries past the cursor, without bodies.

    In (received_at, id) order, or the reverse with `newest`.
    """
    args: list[object] = [
        list(where.statuses),
        _array(where.providers),
        *where.period,
    ]
    if where.search is not None:
        return await _search_deliveries(conn, where.search, args, after, limit, newest=newest)
    query = READS["list_deliveries_newest" if newest else "list_deliveries"]
    rows: list[Record] = await conn.fetch(query, *args, *(after or (None, None)), limit)
    return rows


async def _search_deliveries(
    conn: Connection,
    search: str,
    filters: list[object],
    after: Key | None,
    limit: int,
    *,
    newest: bool,
) -> list[Record]:
    """A page of the deliveries that wrote an event with this business key."""
    keys = await conn.fetchrow(READS["search_keys"], search, SEARCH_SET_MAX + 1)
    query, args = search_query(keys, search, filters, after, limit, newest=newest)
    rows: list[Record] = await conn.fetch(query, *args)
    return rows


def search_query(
    keys: Record,
    search: str,
    filters: list[object],
    after: Key | None,
    limit: int,
    *,
    newest: bool,
) -> tuple[str, list[object]]:
    """The SQL and arguments of one page of a search: `search_deliveries` plus fragments.

    `keys` is what `search_keys` found, each list cut past SEARCH_SET_MAX.
    When every list is complete, the page is an index probe per listed
    delivery; when one is not, the log is walked in page order and each
    delivery's own events are checked (idx_campaign_events_delivery),
    stopping at `limit`.
    """
    lists = (keys["by_event_id"], keys["by_campaign_key"], keys["by_email"])
    parts = [READS["search_deliveries"]]
    args = list(filters)
    if all(len(found) <= SEARCH_SET_MAX for found in lists):
        args.append(list({delivery for found in lists for delivery in found}))
        parts.append(f"AND w.id = ANY (${len(args)}::uuid[])")
    else:
        args += [search, keys["enrollments"]]
        parts.append(
            "AND EXISTS (SELECT 1 FROM campaign_events e WHERE e.delivery_id = w.id"
            f" AND (e.campaign_key = ${len(args) - 1}::text"
            f" OR e.provider_event_id = ${len(args) - 1}::text"
            f" OR e.enrollment_id = ANY (${len(args)}::uuid[])))"
        )
    if after is not None:
        args.extend(after)
        past = "<" if newest else ">"
        parts.append(f"AND (w.received_at, w.id) {past} (${len(args) - 1}, ${len(args)})")
    args.append(limit)
    direction = " DESC" if newest else ""
    parts.append(f"ORDER BY w.received_at{direction}, w.id{direction} LIMIT ${len(args)}")
    return "\n".join(parts), args


async def get_delivery(conn: Connection, delivery_id: UUID) -> Record | None:
    """One stored delivery with its body and fetched result, or None."""
    row: Record | None = await conn.fetchrow(READS["get_delivery"], delivery_id)
    return row


async def delivery_events(conn: Connection, delivery_id: UUID, limit: int) -> list[Record]:
    """The first `limit` events the delivery wrote, in (timestamp, id) order."""
    query, args = events_query(EventFilter(delivery_ids=(delivery_id,)), None, limit)
    rows: list[Record] = await conn.fetch(query, *args)
    return rows


async def count_delivery_events(conn: Connection, delivery_id: UUID) -> int:
    """How many events the delivery wrote."""
    count: int = await conn.fetchval(READS["count_delivery_events"], delivery_id)
    return count


async def list_unmatched(conn: Connection, providers: tuple[str, ...] | None) -> list[Record]:
    """Per provider and campaign key: the events no instance claims, with first and last time."""
    rows: list[Record] = await conn.fetch(READS["list_unmatched"], _array(providers))
    return rows


async def list_enrollments(
    conn: Connection,
    instance_id: UUID,
    statuses: tuple[str, ...] | None,
    after: Key | None,
    limit: int,
) -> list[Record]:
    """Up to `limit` enrollments of the instance after the cursor, in (enrolled_at, id) order."""
    rows: list[Record] = await conn.fetch(
        READS["list_enrollments"],
        instance_id,
        _array(statuses),
        *(after or (None, None)),
        limit,
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

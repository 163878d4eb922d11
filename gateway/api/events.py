"""`GET /api/events`: normalized events, filtered, in keyset pages; `GET /api/unmatched`."""

from __future__ import annotations

from uuid import UUID

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromQuery

from gateway.api.deps import ReadDb
from gateway.api.params import (
    DEFAULT_LIMIT,
    Cursor,
    From,
    Limit,
    To,
    cut_page,
    decode_cursor,
    distinct,
    either,
    time_range,
)
from gateway.api.schemas import (
    Event,
    EventPage,
    UnmatchedKey,
    UnmatchedList,
    problems,
)
from gateway.db import reads
from providers.vocabulary import Channel, EventType, Provider


@get(
    "/events",
    summary="Events in (timestamp, id) order, filtered, in keyset pages",
    description=(
        "Repeat a filter to select any of its values (`event_type=opened&event_type=clicked`)."
        " `unmatched=true` lists events no campaign instance claims yet. Pages stay exact while"
        " events arrive: each starts strictly after the previous page's last event."
    ),
    responses=problems(400),
)
async def list_events(
    db: NamedDependency[ReadDb],
    instance_id: FromQuery[list[UUID] | None] = None,
    enrollment_id: FromQuery[list[UUID] | None] = None,
    delivery_id: FromQuery[list[UUID] | None] = None,
    provider: FromQuery[list[Provider] | None] = None,
    channel: FromQuery[list[Channel] | None] = None,
    event_type: FromQuery[list[EventType] | None] = None,
    unmatched: FromQuery[list[bool] | None] = None,
    from_: From = None,
    to: To = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> EventPage:
    where = reads.EventFilter(
        instance_ids=distinct(instance_id),
        enrollment_ids=distinct(enrollment_id),
        delivery_ids=distinct(delivery_id),
        providers=distinct(provider),
        channels=distinct(channel),
        event_types=distinct(event_type),
        unmatched=either(unmatched),
        period=time_range(from_, to),
    )
    after = decode_cursor(cursor)
    async with db.connection() as conn:
        rows = await reads.list_events(conn, where, after, limit + 1)
    page, next_cursor = cut_page(rows, limit, "timestamp")
    return EventPage(items=[Event(**row) for row in page], next_cursor=next_cursor)


@get(
    "/unmatched",
    summary="Provider campaign keys whose events no campaign instance claims yet",
    description=(
        "Per provider and campaign key: the events stored without an instance, the deliveries"
        " that wrote them, and when the first and last happened, the most recently active"
        " first. Map a key onto an instance (`PATCH /api/campaigns/instances/{id}` with its"
        " `provider_config`) and its events attach."
    ),
    responses=problems(400),
)
async def list_unmatched(
    db: NamedDependency[ReadDb], provider: FromQuery[list[Provider] | None] = None
) -> UnmatchedList:
    async with db.connection() as conn:
        rows = await reads.list_unmatched(conn, distinct(provider))
    return UnmatchedList(items=[UnmatchedKey(**row) for row in rows])

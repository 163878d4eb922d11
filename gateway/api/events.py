"""`GET /api/events`: normalized events, filtered, in keyset pages."""

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
    time_range,
)
from gateway.api.schemas import Channel, Event, EventPage, EventType, Provider, problems
from gateway.db import reads


@get(
    "/events",
    summary="Events in (timestamp, id) order, filtered, in keyset pages",
    description=(
        "`unmatched=true` lists events no campaign instance claims yet. Pages stay exact while"
        " events arrive: each starts strictly after the previous page's last event."
    ),
    responses=problems(400),
)
async def list_events(
    db: NamedDependency[ReadDb],
    instance_id: FromQuery[UUID | None] = None,
    enrollment_id: FromQuery[UUID | None] = None,
    provider: FromQuery[Provider | None] = None,
    channel: FromQuery[Channel | None] = None,
    event_type: FromQuery[EventType | None] = None,
    unmatched: FromQuery[bool | None] = None,
    from_: From = None,
    to: To = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> EventPage:
    where = reads.EventFilter(
        instance_id=instance_id,
        enrollment_id=enrollment_id,
        provider=provider,
        channel=channel,
        event_type=event_type,
        unmatched=unmatched,
        period=time_range(from_, to),
    )
    after = decode_cursor(cursor)
    async with db.connection() as conn:
        rows = await reads.list_events(conn, where, after, limit + 1)
    page, next_cursor = cut_page(rows, limit, "timestamp")
    return EventPage(items=[Event(**row) for row in page], next_cursor=next_cursor)

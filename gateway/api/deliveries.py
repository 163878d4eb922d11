"""`GET /api/deliveries`: the raw delivery log, what an operator checks first."""

from __future__ import annotations

from typing import get_args

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
from gateway.api.schemas import Delivery, DeliveryPage, DeliveryStatus, Provider, problems
from gateway.db import reads


@get(
    "/deliveries",
    summary="Stored webhook deliveries in (received_at, id) order, in keyset pages",
    description=(
        "Outcome, cause, size, redacted headers and query of each delivery; never its body."
        " Repeat `status` to combine: `?status=rejected&status=unmatched` is what needs"
        " attention."
    ),
    responses=problems(400),
)
async def list_deliveries(
    db: NamedDependency[ReadDb],
    provider: FromQuery[Provider | None] = None,
    status: FromQuery[list[DeliveryStatus] | None] = None,
    from_: From = None,
    to: To = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> DeliveryPage:
    statuses = tuple(dict.fromkeys(status)) if status else get_args(DeliveryStatus)
    period = time_range(from_, to)
    after = decode_cursor(cursor)
    async with db.connection() as conn:
        rows = await reads.list_deliveries(conn, statuses, provider, period, after, limit + 1)
    page, next_cursor = cut_page(rows, limit, "received_at")
    return DeliveryPage(items=[Delivery(**row) for row in page], next_cursor=next_cursor)

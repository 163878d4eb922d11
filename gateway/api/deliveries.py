"""The raw delivery log, what an operator checks first: list, search, one delivery, reprocess."""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from asyncpg import Record
from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter

from gateway.api.auth import API_KEY
from gateway.api.deps import ManageDb, ReadDb
from gateway.api.params import (
    DEFAULT_LIMIT,
    Cursor,
    From,
    Limit,
    To,
    cut_page,
    decode_cursor,
    distinct,
    time_range,
)
from gateway.api.schemas import (
    DELIVERY_EVENTS_SHOWN,
    MAX_JSON_DEPTH,
    Delivery,
    DeliveryDetail,
    DeliveryPage,
    Event,
    Reprocessed,
    json_depth,
    problems,
)
from gateway.db import reads
from gateway.delivery import DELIVERY_STATUSES, DeliveryStatus
from gateway.errors import BadRequest, NotFound
from gateway.secrets import SecretMask
from providers.vocabulary import Provider

#: The longest search text: longer than any key the gateway stores (1024).
MAX_SEARCH_LENGTH = 1024

Search = Annotated[
    str | None,
    QueryParameter(
        description="A business key: the lead's e-mail (any case), a provider campaign key"
        " (lemlist campaignId, Postmark Tag, PhantomBuster agentId) or a provider event id."
        " Finds the deliveries that wrote such an event.",
        max_length=MAX_SEARCH_LENGTH,
    ),
]


Order = Annotated[
    Literal["oldest", "newest"],
    QueryParameter(
        description="`oldest` first, in (received_at, id) order, or `newest` first, the reverse"
        " (what a log view shows); the cursor of a page continues in the same order",
    ),
]


@get(
    "/deliveries",
    summary="Stored webhook deliveries, oldest or newest first, in keyset pages",
    description=(
        "Outcome, cause, size, redacted headers and query of each delivery; never its body."
        " Repeat `status` or `provider` to combine: `?status=rejected&status=unmatched` is"
        " what needs attention. `q` finds the deliveries that wrote an event with that lead"
        " e-mail, campaign key or provider event id."
    ),
    responses=problems(400),
)
async def list_deliveries(
    db: NamedDependency[ReadDb],
    mask: NamedDependency[SecretMask],
    provider: FromQuery[list[Provider] | None] = None,
    status: FromQuery[list[DeliveryStatus] | None] = None,
    q: Search = None,
    from_: From = None,
    to: To = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
    order: Order = "oldest",
) -> DeliveryPage:
    where = reads.DeliveryFilter(
        statuses=distinct(status) or DELIVERY_STATUSES,
        providers=distinct(provider),
        period=time_range(from_, to),
        search=_search(q),
    )
    after = decode_cursor(cursor)
    async with db.connection() as conn:
        rows = await reads.list_deliveries(conn, where, after, limit + 1, newest=order == "newest")
    page, next_cursor = cut_page(rows, limit, "received_at")
    return DeliveryPage(items=[_delivery(row, mask) for row in page], next_cursor=next_cursor)


def _search(q: str | None) -> str | None:
    """The search text, trimmed; empty is no search, a NUL can match nothing stored."""
    if q is None or not q.strip():
        return None
    if "\x00" in q:
        raise BadRequest("`q` must not contain NUL characters", field="q")
    return q.strip()


@get(
    "/deliveries/{delivery_id:uuid}",
    summary="One stored delivery with its body, redacted headers and query, and its events",
    description=(
        "`body` is the body as JSON when it parses, else `body_base64` holds its exact bytes."
        " `events` are the events this delivery wrote (a redelivery that wrote none lists"
        " none; its `status` is `duplicate`)."
    ),
    responses=problems(400, 404),
)
async def get_delivery(
    db: NamedDependency[ReadDb], mask: NamedDependency[SecretMask], delivery_id: FromPath[UUID]
) -> DeliveryDetail:
    async with (
        db.connection() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        row = await reads.get_delivery(conn, delivery_id)
        if row is None:
            raise NotFound(f"no delivery {delivery_id}")
        events = await reads.delivery_events(conn, delivery_id, DELIVERY_EVENTS_SHOWN)
        total = (
            len(events)
            if len(events) < DELIVERY_EVENTS_SHOWN
            else await reads.count_delivery_events(conn, delivery_id)
        )
    stored = bytes(row["body"])
    return DeliveryDetail(
        **_delivery_fields(row, mask),
        **_body(mask.bytes(stored)),
        body_truncated=row["body_size"] > len(stored),
        events=[Event(**event) for event in events],
        events_total=total,
    )


@post(
    "/deliveries/{delivery_id:uuid}/reprocess",
    summary="Normalize one stored delivery again, idempotently",
    description=(
        "Parses the stored body again (with the stored PhantomBuster result, or fetched now for"
        " a `pending` one) and writes what it yields, as `gateway reprocess` does: new events,"
        " unmatched events attached once an instance maps their key, the outcome recomputed."
        " Nothing doubles: a second call changes nothing (`changed: false`)."
    ),
    status_code=200,
    responses=problems(400, 401, 404),
    security=API_KEY,
)
async def reprocess_delivery(
    writer: NamedDependency[ManageDb],
    mask: NamedDependency[SecretMask],
    delivery_id: FromPath[UUID],
) -> Reprocessed:
    done = await writer.reprocess(delivery_id)
    if done is None:
        raise NotFound(f"no delivery {delivery_id}")
    before, report, row = done
    return Reprocessed(
        delivery=_delivery(row, mask),
        before=msgspec.convert(before, DeliveryStatus),
        changed=report.updated > 0,
        new_events=report.new_events,
        events_attached=report.attached,
    )


def _delivery(row: Record, mask: SecretMask) -> Delivery:
    return Delivery(**_delivery_fields(row, mask))


def _delivery_fields(row: Record, mask: SecretMask) -> dict[str, Any]:
    """The log's columns of a delivery row, stored headers and query masked again."""
    fields = {name: row[name] for name in Delivery.__struct_fields__}
    fields["headers"] = mask.mapping(row["headers"])
    fields["query"] = mask.mapping(row["query"])
    if fields["cause"] is not None:
        fields["cause"] = mask.text(fields["cause"])
    return fields


def _body(raw: bytes) -> dict[str, Any]:
    """`body` when the bytes are JSON the answer can carry, else `body_base64`.

    JSON nested deeper than MAX_JSON_DEPTH goes out as base64: encoding it
    again could hit the interpreter's recursion limit.
    """
    try:
        value = msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        pass
    else:
        if json_depth(value) <= MAX_JSON_DEPTH:
            return {"body": value}
    return {"body_base64": base64.b64encode(raw).decode()}

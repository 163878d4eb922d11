"""Query parameters shared by the read endpoints: time ranges, page size, cursors.

A cursor is the keyset of the last row sent, (time, id), msgspec-encoded and
base64url'd: opaque to clients, stable under concurrent inserts (a page
starts strictly after that row, whatever arrived meanwhile), and as cheap on
the millionth page as on the first (an index range, never OFFSET).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Annotated, TypeVar
from uuid import UUID

import msgspec
from asyncpg import Record
from litestar.openapi.spec import Example
from litestar.params import QueryParameter

from gateway.db.reads import Key, TimeRange
from gateway.errors import BadRequest

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

T = TypeVar("T")

From = Annotated[
    str | None,
    QueryParameter(
        name="from",
        description="Inclusive lower bound: ISO 8601 date or date-time (UTC without offset)",
        examples=[Example(value="2025-03-01"), Example(value="2025-03-10T14:00:00Z")],
    ),
]
To = Annotated[
    str | None,
    QueryParameter(
        description="Exclusive upper bound: ISO 8601 date or date-time (UTC without offset)",
        examples=[Example(value="2025-04-01")],
    ),
]
Limit = Annotated[
    int, QueryParameter(ge=1, le=MAX_LIMIT, description=f"Page size, 1 to {MAX_LIMIT}")
]
Cursor = Annotated[
    str | None,
    QueryParameter(description="`next_cursor` of the previous page; absent for the first page"),
]

_decode_key = msgspec.json.Decoder(tuple[datetime, UUID]).decode


def time_range(start: str | None, end: str | None, zone: tzinfo = UTC) -> TimeRange:
    """The [from, to) range in UTC; a time without an offset (or a date) is in `zone`.

    A bad time, or `from` after `to`, is a 400.
    """
    lower, upper = _moment(start, "from", zone), _moment(end, "to", zone)
    if lower is not None and upper is not None and lower > upper:
        raise BadRequest("`from` must not be after `to`", field="from")
    return TimeRange(lower, upper)


def _moment(text: str | None, field: str, zone: tzinfo) -> datetime | None:
    """An ISO 8601 date or date-time as a UTC datetime (in `zone` unless it says otherwise)."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadRequest(
            f"`{field}` must be an ISO 8601 date or date-time, not {text!r}", field=field
        ) from exc
    utc = in_utc(moment if moment.tzinfo is not None else moment.replace(tzinfo=zone))
    if utc is None:
        raise BadRequest(f"`{field}` is out of range once in UTC: {text!r}", field=field)
    return utc


def in_utc(moment: datetime) -> datetime | None:
    """The moment in UTC (naive: taken as UTC); None when UTC has no such moment.

    `0001-01-01T00:00:00+05:00` is before the first moment Python (and the
    database driver) can hold in UTC, `9999-12-31T23:59:59-05:00` after the
    last: such a value is the client's mistake, never a 500.
    """
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return None


def distinct(values: Sequence[T] | None) -> tuple[T, ...] | None:
    """A repeated filter's values, each once, in order; None when the filter was not given."""
    return tuple(dict.fromkeys(values)) if values else None


def either(values: Sequence[bool] | None) -> bool | None:
    """A repeated boolean filter: one value filters, both (or none) leave it open."""
    chosen = set(values or ())
    return chosen.pop() if len(chosen) == 1 else None


def encode_cursor(at: datetime, row_id: UUID) -> str:
    """The opaque cursor that resumes after this row."""
    raw = msgspec.json.encode((at, row_id))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str | None) -> Key | None:
    """The keyset a cursor names; anything that is not one of ours is a 400."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, row_id = _decode_key(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise BadRequest("`cursor` is not a cursor this API returned", field="cursor") from exc
    utc = in_utc(at) if at.tzinfo is not None else None
    if utc is None:
        raise BadRequest("`cursor` is not a cursor this API returned", field="cursor")
    return Key(utc, row_id)


def cut_page(rows: list[Record], limit: int, time_column: str) -> tuple[list[Record], str | None]:
    """The first `limit` rows, and a cursor after them when the query found more.

    Callers ask for limit + 1 rows: a next page is announced only if it holds one.
    """
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor(last[time_column], last["id"])

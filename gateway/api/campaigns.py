"""Campaign templates (with their sequences) and instances (with their counters)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from asyncpg import Record
from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from gateway.api.deps import ReadDb
from gateway.api.params import (
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    cut_page,
    decode_cursor,
    distinct,
    either,
)
from gateway.api.schemas import (
    Counters,
    Instance,
    InstanceList,
    InstanceStatus,
    PathType,
    Template,
    TemplateDetail,
    TemplateList,
    TemplateType,
    problems,
)
from gateway.db import reads
from gateway.errors import NotFound


@get(
    "/campaigns/templates",
    summary="List campaign templates",
    description="Repeat `type` or `path_type` to select any of their values.",
    responses=problems(400),
)
async def list_templates(
    db: NamedDependency[ReadDb],
    type: FromQuery[list[TemplateType] | None] = None,  # named as the query parameter
    path_type: FromQuery[list[PathType] | None] = None,
    is_active: FromQuery[list[bool] | None] = None,
) -> TemplateList:
    async with db.connection() as conn:
        rows = await reads.list_templates(
            conn, distinct(type), distinct(path_type), either(is_active)
        )
    return TemplateList(items=[Template(**row) for row in rows])


@get(
    "/campaigns/templates/{template_id:uuid}",
    summary="One template with its email and LinkedIn sequences in step order",
    responses=problems(400, 404),
)
async def get_template(db: NamedDependency[ReadDb], template_id: FromPath[UUID]) -> TemplateDetail:
    async with db.connection() as conn:
        row = await reads.get_template(conn, template_id)
    if row is None:
        raise NotFound(f"no campaign template {template_id}")
    # The sequences arrive as JSON arrays (ids as strings): convert validates them.
    return msgspec.convert(dict(row), TemplateDetail)


@get(
    "/campaigns/instances",
    summary="Campaign instances with their counters, newest first, in keyset pages",
    description="Repeat `status` or `template_id` to select any of their values.",
    responses=problems(400),
)
async def list_instances(
    db: NamedDependency[ReadDb],
    status: FromQuery[list[InstanceStatus] | None] = None,
    template_id: FromQuery[list[UUID] | None] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> InstanceList:
    after = decode_cursor(cursor)
    async with db.connection() as conn:
        rows = await reads.list_instances(
            conn, distinct(status), distinct(template_id), after, limit + 1
        )
    page, next_cursor = cut_page(rows, limit, "created_at")
    return InstanceList(items=[instance_from_row(row) for row in page], next_cursor=next_cursor)


@get(
    "/campaigns/instances/{instance_id:uuid}",
    summary="One campaign instance with its counters",
    responses=problems(400, 404),
)
async def get_instance(db: NamedDependency[ReadDb], instance_id: FromPath[UUID]) -> Instance:
    async with db.connection() as conn:
        row = await reads.get_instance(conn, instance_id)
    if row is None:
        raise NotFound(f"no campaign instance {instance_id}")
    return instance_from_row(row)


_COUNTER_COLUMNS = {
    "total_enrolled": "enrolled",
    "total_sent": "sent",
    "total_opened": "opened",
    "total_clicked": "clicked",
    "total_replied": "replied",
}


def instance_from_row(row: Record) -> Instance:
    """An instance row of reads.sql as the API answers it, counters grouped."""
    fields: dict[str, Any] = {k: v for k, v in row.items() if k not in _COUNTER_COLUMNS}
    counters = Counters(**{name: row[column] for column, name in _COUNTER_COLUMNS.items()})
    return Instance(**fields, counters=counters)

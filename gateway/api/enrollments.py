"""Contacts of an instance: enrolled in bulk (idempotent on the contact), listed in pages.

A contact is the same contact when its email matches (any case) or its
LinkedIn profile does (compared through `linkedin_key()`, as webhooks are), so
posting a list twice, or a list that overlaps contacts that webhooks enrolled
already, enrolls each person once. Each new enrollment copies the instance's
`provider_config`: a later provider switch applies to new enrollments only.
"""

from __future__ import annotations

from uuid import UUID

from asyncpg import Record
from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from gateway.api.auth import API_KEY
from gateway.api.deps import ManageDb, ReadDb
from gateway.api.params import DEFAULT_LIMIT, Cursor, Limit, cut_page, decode_cursor, distinct
from gateway.api.schemas import (
    Enrolled,
    EnrollIn,
    Enrollment,
    EnrollmentPage,
    EnrollmentStatus,
    EnrollResult,
    problems,
)
from gateway.db import campaigns, reads
from gateway.db.pool import Connection
from gateway.errors import BadRequest, Conflict, NotFound

#: Instances that take no new contact.
CLOSED = frozenset({"completed", "failed"})


@post(
    "/campaigns/instances/{instance_id:uuid}/enrollments",
    status_code=200,
    summary="Enroll contacts (at most 1000), each once however often it is posted",
    description="Each contact needs an `email` or a `linkedin_url` (or both). The answer lists,"
    " in the request's order, each contact's enrollment and whether it was created now."
    " A completed or failed instance takes no contact (409).",
    responses=problems(400, 401, 404, 409),
    security=API_KEY,
)
async def enroll_contacts(
    writer: NamedDependency[ManageDb], instance_id: FromPath[UUID], data: JSONBody[EnrollIn]
) -> EnrollResult:
    contacts: list[campaigns.ContactRow] = []
    for i, contact in enumerate(data.contacts):
        if contact.email is None and contact.linkedin_url is None:
            raise BadRequest("a contact needs an email or a linkedin_url", field=f"contacts[{i}]")
        contacts.append(
            campaigns.ContactRow(
                contact.email, contact.linkedin_url, contact.contact_id, contact.metadata
            )
        )

    async def work(conn: Connection) -> tuple[set[UUID], list[Record]]:
        status = await campaigns.instance_status(conn, instance_id)
        if status is None:
            raise NotFound(f"no campaign instance {instance_id}")
        if status in CLOSED:
            raise Conflict(f"the instance is {status} and takes no new contact")
        return await campaigns.enroll_contacts(conn, instance_id, contacts)

    created, found = await writer.write(work)
    items: list[Enrolled] = []
    reported: set[UUID] = set()
    for row in found:
        new = row["id"] in created and row["id"] not in reported  # a repeat in the list is not
        reported.add(row["id"])
        items.append(Enrolled(created=new, **row))
    return EnrollResult(created=len(created), existing=len(items) - len(created), items=items)


@get(
    "/campaigns/instances/{instance_id:uuid}/enrollments",
    summary="An instance's enrollments with their status and current step, in keyset pages",
    responses=problems(400, 404),
)
async def list_enrollments(
    db: NamedDependency[ReadDb],
    instance_id: FromPath[UUID],
    status: FromQuery[list[EnrollmentStatus] | None] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> EnrollmentPage:
    after = decode_cursor(cursor)
    async with db.connection() as conn:
        rows = await reads.list_enrollments(conn, instance_id, distinct(status), after, limit + 1)
        if not rows and await reads.get_instance(conn, instance_id) is None:
            raise NotFound(f"no campaign instance {instance_id}")
    page, next_cursor = cut_page(rows, limit, "enrolled_at")
    return EnrollmentPage(items=[Enrollment(**row) for row in page], next_cursor=next_cursor)

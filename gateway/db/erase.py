"""Typed queries of `gateway erase`: named SQL from erase.sql, connection first.

Which rows are the person's is decided in `gateway.ops.erase` (candidates are
confirmed there by reading their JSON); everything erasure deletes is deleted
by `delete_person`, in one statement.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple
from uuid import UUID

from asyncpg import Connection, Record

from gateway.db.sql import load_queries

ERASE: dict[str, str] = load_queries("erase")


async def person_enrollments(
    conn: Connection, emails: list[str], linkedin_keys: list[str]
) -> list[Record]:
    """Enrollments holding one of the e-mails (lower case) or profile keys, merged ones too.

    Each with its instance's name, its identifiers and how many events it has.
    """
    rows: list[Record] = await conn.fetch(ERASE["erase_enrollments"], emails, linkedin_keys)
    return rows


async def candidate_deliveries(
    conn: Connection,
    needles: list[str],
    after: tuple[datetime | None, UUID | None],
    limit: int,
) -> list[Record]:
    """The next `limit` deliveries after the (received_at, id) cursor whose stored bytes
    contain one of the texts (any case); candidates only."""
    rows: list[Record] = await conn.fetch(
        ERASE["erase_candidate_deliveries"], needles, *after, limit
    )
    return rows


async def unmatched_events(
    conn: Connection, identifiers: list[str], deliveries: list[UUID]
) -> list[Record]:
    """Events without an enrollment keyed on one of the identifiers or written from one of
    the deliveries; candidates only."""
    rows: list[Record] = await conn.fetch(ERASE["erase_unmatched_events"], identifiers, deliveries)
    return rows


class Erased(NamedTuple):
    """What `delete_person` deleted."""

    enrollments: int
    unmatched_events: int
    deliveries: int


async def delete_person(
    conn: Connection, enrollments: list[UUID], unmatched: list[UUID], deliveries: list[UUID]
) -> Erased:
    """Delete the enrollments (their events go with them, the counters follow), the
    unmatched events and the raw deliveries, in one statement."""
    row = await conn.fetchrow(ERASE["erase_delete"], enrollments, unmatched, deliveries)
    return Erased(row["enrollments"], row["unmatched_events"], row["deliveries"])

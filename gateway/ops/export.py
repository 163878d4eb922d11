"""`gateway export`: stored deliveries written out as a capture (contract §6).

Keyset-paged over (received_at, id) and written page by page, so a large
table streams through in constant memory; a capture taken from production
this way replays into a test database with `gateway replay`. Every known
secret is masked again on the way out: rows stored by an older gateway may
hold one in their body.
"""

from __future__ import annotations

from typing import BinaryIO

from asyncpg import Record

from gateway.db import deliveries
from gateway.db.pool import Connection
from gateway.delivery import Fetched
from gateway.ops.capture import encode_line
from gateway.secrets import Redactor


def stored_line(row: Record, redactor: Redactor) -> bytes:
    """A stored delivery row as one capture line (export and purge archives), secrets masked."""
    fetched = (
        Fetched(
            body=redactor.body(bytes(row["fetched_body"])),
            source=redactor.text(row["fetched_from"] or ""),
        )
        if row["fetched_body"] is not None
        else None
    )
    return encode_line(
        provider=row["provider"],
        received_at=row["received_at"],
        headers={redactor.text(k): redactor.text(v) for k, v in row["headers"].items()},
        query={redactor.text(k): redactor.text(v) for k, v in row["query"].items()},
        body=redactor.body(bytes(row["body"])),
        fetched=fetched,
    )


async def export_deliveries(
    conn: Connection,
    where: deliveries.DeliveryFilter,
    out: BinaryIO,
    *,
    redactor: Redactor,
    page_size: int = 500,
) -> int:
    """Write every delivery the filter selects, oldest first; returns how many."""
    written = 0
    after = None
    while True:
        rows = await deliveries.page_deliveries(conn, where, after, page_size)
        for row in rows:
            out.write(stored_line(row, redactor))
        written += len(rows)
        if len(rows) < page_size:
            return written
        after = (rows[-1]["received_at"], rows[-1]["id"])

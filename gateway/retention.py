"""Retention: raw deliveries older than an age are deleted (optionally archived).

Raw deliveries are the bulk of the database and are needed only until their
events are trusted; events are never touched (they keep their delivery_id).
Each batch is its own short transaction, so purging runs beside ingestion
without holding it up. With an archive, a batch's capture lines are flushed
to disk before its DELETE commits: a purged delivery is never lost.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta
from typing import BinaryIO

from gateway.db import queries
from gateway.db.pool import Pool, connection, transaction
from gateway.export import stored_line
from gateway.secrets import known_redactor
from gateway.settings import Settings

_AGE = re.compile(r"(?P<n>\d+)\s*(?P<unit>[smhdw]?)")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks", "": "days"}


def parse_age(text: str) -> timedelta:
    """`90d`, `12h`, `2w`, `30m`, `45s`, or a plain number of days."""
    match = _AGE.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"not an age such as 90d, 12h or 2w: {text!r}")
    return timedelta(**{_UNITS[match["unit"]]: int(match["n"])})


async def count_purgeable(pool: Pool, settings: Settings, cutoff: datetime) -> int:
    """How many deliveries a purge with this cutoff would delete."""
    async with connection(pool, settings) as conn:
        total: int = await conn.fetchval(queries.sql("count_purgeable"), cutoff)
        return total


async def purge_deliveries(
    pool: Pool,
    settings: Settings,
    cutoff: datetime,
    *,
    batch_size: int = 1000,
    archive: BinaryIO | None = None,
) -> int:
    """Delete deliveries received before `cutoff`, batch by batch; returns how many."""
    deleted = 0
    redactor = known_redactor(settings)
    while True:
        async with transaction(pool, settings) as conn:
            rows = await conn.fetch(queries.sql("purge_deliveries"), cutoff, batch_size)
            if archive is not None and rows:
                for row in rows:
                    archive.write(stored_line(row, redactor))
                _sync(archive)
        deleted += len(rows)
        if len(rows) < batch_size:
            return deleted


def _sync(archive: BinaryIO) -> None:
    """Flush, and fsync when it is a real file: on disk before the DELETE commits."""
    archive.flush()
    try:
        fd = archive.fileno()
    except (OSError, ValueError):  # in-memory or pipe-like: nothing to fsync
        return
    if not os.isatty(fd):
        os.fsync(fd)

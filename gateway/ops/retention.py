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

from gateway.db import deliveries
from gateway.db.deliveries import Purgeable
from gateway.db.pool import Pool, connection, transaction
from gateway.ops.export import stored_line
from gateway.ops.progress import Progress
from gateway.secrets import known_redactor
from gateway.settings import Settings

_AGE = re.compile(r"(?P<n>\d+)\s*(?P<unit>[a-z]*)")
_UNITS = {
    "s": "seconds",
    "sec": "seconds",
    "second": "seconds",
    "seconds": "seconds",
    "min": "minutes",
    "minute": "minutes",
    "minutes": "minutes",
    "h": "hours",
    "hour": "hours",
    "hours": "hours",
    "d": "days",
    "day": "days",
    "days": "days",
    "": "days",
    "w": "weeks",
    "week": "weeks",
    "weeks": "weeks",
}
#: Units a purge refuses: `m` reads as minutes to some and months to others,
#: and months and years have no fixed length.
_REFUSED_UNITS = {
    "m": "is ambiguous (minutes or months?): write {n}min, or {days}d for {n} months of 30 days",
    "mo": "has no fixed length: write {days}d for {n} months of 30 days",
    "month": "has no fixed length: write {days}d for {n} months of 30 days",
    "months": "has no fixed length: write {days}d for {n} months of 30 days",
    "y": "has no fixed length: write {years}d for {n} years of 365 days",
    "year": "has no fixed length: write {years}d for {n} years of 365 days",
    "years": "has no fixed length: write {years}d for {n} years of 365 days",
}
#: What `gateway purge --help` and errors list.
AGE_UNITS = "s (seconds), min (minutes), h (hours), d (days), w (weeks); a plain number is days"


def parse_age(text: str) -> timedelta:
    """`90d`, `12h`, `2w`, `30min`, `45s`, `3 days`, or a plain number of days.

    `6m` is refused: it deleted everything older than six minutes for a user
    who meant six months.
    """
    match = _AGE.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"not an age such as 90d, 12h or 2w: {text!r}; units: {AGE_UNITS}")
    n, unit = int(match["n"]), match["unit"]
    if unit in _REFUSED_UNITS:
        reason = _REFUSED_UNITS[unit].format(n=n, days=30 * n, years=365 * n)
        raise ValueError(f"{text.strip()!r}: {unit!r} {reason}")
    if unit not in _UNITS:
        raise ValueError(f"not an age such as 90d, 12h or 2w: {text!r}; units: {AGE_UNITS}")
    return timedelta(**{_UNITS[unit]: n})


async def count_purgeable(pool: Pool, settings: Settings, cutoff: datetime) -> Purgeable:
    """How many deliveries a purge with this cutoff would delete, and their time span."""
    async with connection(pool, settings) as conn:
        return await deliveries.count_purgeable(conn, cutoff)


async def purge_deliveries(
    pool: Pool,
    settings: Settings,
    cutoff: datetime,
    *,
    batch_size: int = 1000,
    archive: BinaryIO | None = None,
    progress: Progress | None = None,
) -> int:
    """Delete deliveries received before `cutoff`, batch by batch; returns how many."""
    deleted = 0
    redactor = known_redactor(settings)
    try:
        while True:
            async with transaction(pool, settings) as conn:
                rows = await deliveries.purge_deliveries(conn, cutoff, batch_size)
                if archive is not None and rows:
                    for row in rows:
                        archive.write(stored_line(row, redactor))
                    _sync(archive)
            deleted += len(rows)
            if progress is not None:
                progress.advance(len(rows))
            if len(rows) < batch_size:
                return deleted
    finally:
        if progress is not None:
            progress.close()


def _sync(archive: BinaryIO) -> None:
    """Flush, and fsync when it is a real file: on disk before the DELETE commits."""
    archive.flush()
    try:
        fd = archive.fileno()
    except (OSError, ValueError):  # in-memory or pipe-like: nothing to fsync
        return
    if not os.isatty(fd):
        os.fsync(fd)

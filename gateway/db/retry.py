"""One rule for a transaction the database rolled back: run it again, a few times.

Ingestion's group commit, reprocess (one delivery at a time) and the
management API's writes all lock rows that concurrent transactions lock too.
PostgreSQL then rolls one of them back (a deadlock, a serialization failure,
or a unique violation when a concurrent batch enrolled the same person): the
rolled-back side committed nothing, and running it again is safe and usually
succeeds (RETRYABLE). A value the database refuses (REFUSED) is the input's
fault: running it again cannot help, so `retried` lets it through and each
caller says what it means there (a rejected delivery, a 400).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import asyncpg
import structlog

from gateway.errors import Unavailable

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: Attempts at one transaction before the caller gets Unavailable (503).
RETRIES: Final = 6
#: The longest pause before the n-th attempt is n times this.
JITTER_S: Final = 0.002
#: Errors that mean "try the same transaction again": nothing was committed.
RETRYABLE: Final = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.UniqueViolationError,  # a concurrent batch enrolled the same person: resolve again
)
#: Errors caused by a value the database refuses: the input's fault.
REFUSED: Final = (asyncpg.DataError, asyncpg.CheckViolationError)


async def retried(transaction: Callable[[], Awaitable[T]], *, what: str) -> T:
    """`transaction()` (one whole transaction), run again while it fails with a RETRYABLE error.

    After RETRIES attempts the last error becomes Unavailable: the caller's
    client retries later. Each pause is random and grows with the attempt, so
    that two transactions that collided do not collide again. `what` names
    the work in the log line of each retry.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return await transaction()
        except RETRYABLE as exc:
            log.info("db.retry", what=what, attempt=attempt, error=type(exc).__name__)
            if attempt == RETRIES:
                raise Unavailable("database contention; retry later") from exc
            await asyncio.sleep(random.uniform(0, JITTER_S * attempt))  # noqa: S311

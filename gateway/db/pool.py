"""The asyncpg pool, its connection setup, and the database error boundary.

Driver errors that mean "the database cannot serve us now" become
`errors.Unavailable` here, once, so that callers answer 503 and providers
retry; every other driver error passes through unchanged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import msgspec
import structlog
from asyncpg import Connection, Pool

from gateway.errors import Unavailable
from gateway.settings import Settings

log = structlog.get_logger(__name__)

__all__ = [
    "Connection",
    "Pool",
    "connection",
    "create_pool",
    "open_pool",
    "transaction",
    "waiting",
]

UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.ConnectionFailureError,
    asyncpg.TooManyConnectionsError,
    asyncpg.OperatorInterventionError,  # admin shutdown, crash shutdown, cannot connect now
    asyncpg.InsufficientResourcesError,
    asyncpg.InternalClientError,
)


def _encode_jsonb(value: Any) -> bytes:
    return b"\x01" + msgspec.json.encode(value)


def _decode_jsonb(data: bytes) -> Any:
    return msgspec.json.decode(data[1:])


async def init_connection(conn: Connection) -> None:
    """JSON codecs once per connection: msgspec in both directions, binary format.

    Pooled connections also log slow statements (see `create_pool`).
    """
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=_encode_jsonb, decoder=_decode_jsonb, format="binary"
    )
    await conn.set_type_codec(
        "json",
        schema="pg_catalog",
        encoder=lambda v: msgspec.json.encode(v).decode(),
        decoder=msgspec.json.decode,
        format="text",
    )


def _slow_query_logger(threshold_ms: float) -> Callable[[Any], None]:
    """A query logger that reports statements slower than the threshold, at debug level."""

    def log_if_slow(record: Any) -> None:
        elapsed_ms = record.elapsed * 1000
        if elapsed_ms >= threshold_ms:
            log.debug("db.slow_query", ms=round(elapsed_ms, 1), query=record.query[:200])

    return log_if_slow


async def _keep_session(conn: Connection) -> None:
    """Skip asyncpg's RESET ALL / UNLISTEN / CLOSE ALL round trip on every release.

    The gateway sets no session state, listens to nothing and keeps no cursor
    or session advisory lock; asyncpg still rolls back a transaction left open
    before calling this. One round trip less per group commit.
    """


async def create_pool(settings: Settings, database_url: str) -> Pool:
    """A pool with the original design's settings; connects lazily.

    min_size=0 lets the gateway start, and answer 503, while the database is
    down, and recover by itself when it returns.
    """
    slow_query_logger = _slow_query_logger(settings.slow_query_ms)

    async def init(conn: Connection) -> None:
        await init_connection(conn)
        if logging.getLogger(__name__).isEnabledFor(logging.DEBUG):
            conn.add_query_logger(slow_query_logger)

    pool: Pool | None = await asyncpg.create_pool(
        database_url,
        min_size=0,
        max_size=settings.pool_max_size,
        max_inactive_connection_lifetime=settings.pool_idle_s,
        timeout=settings.connect_timeout_s,
        command_timeout=settings.command_timeout_s,
        init=init,
        reset=_keep_session,
    )
    if pool is None:  # only when created without awaiting, which we never do
        raise RuntimeError("asyncpg returned no pool")
    return pool


@asynccontextmanager
async def open_pool(settings: Settings, database_url: str) -> AsyncIterator[Pool]:
    """A pool for the length of a block (the app's lifespan, a command, a replay).

    Closed however the block ends: running queries may finish, the rest are terminated.
    """
    pool = await create_pool(settings, database_url)
    try:
        yield pool
    finally:
        await close_pool(pool)


@asynccontextmanager
async def unavailable_on_failure() -> AsyncIterator[None]:
    """Turn "database cannot serve us" driver errors into `Unavailable`."""
    try:
        yield
    except UNAVAILABLE_ERRORS as exc:
        raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc
    except asyncpg.InterfaceError as exc:
        # Connection closed under us or the pool is closing.
        raise Unavailable(f"database unavailable: {exc}") from exc


#: Acquisitions in progress per pool (by id), for the pool-waiters gauge:
#: asyncpg does not count them, and its Pool (slotted) cannot carry the count.
_acquiring: dict[int, int] = {}


def waiting(pool: Pool) -> int:
    """How many callers are waiting for a connection of `pool` right now."""
    return _acquiring.get(id(pool), 0)


@asynccontextmanager
async def connection(pool: Pool, settings: Settings) -> AsyncIterator[Connection]:
    """Acquire within `acquire_timeout_s`, as `Unavailable` when the pool is exhausted."""
    async with unavailable_on_failure():
        key = id(pool)
        _acquiring[key] = _acquiring.get(key, 0) + 1
        try:
            conn = await pool.acquire(timeout=settings.acquire_timeout_s)
        except TimeoutError as exc:
            raise Unavailable("database pool exhausted; retry later") from exc
        finally:
            if _acquiring[key] == 1:
                del _acquiring[key]
            else:
                _acquiring[key] -= 1
        try:
            yield conn
        finally:
            await pool.release(conn)


@asynccontextmanager
async def transaction(pool: Pool, settings: Settings) -> AsyncIterator[Connection]:
    """One connection, one transaction: committed when the block exits cleanly."""
    async with connection(pool, settings) as conn, conn.transaction():
        yield conn


async def close_pool(pool: Pool, timeout_s: float = 10.0) -> None:
    """Let running queries finish, then close; terminate what is left."""
    try:
        await asyncio.wait_for(pool.close(), timeout_s)
    except TimeoutError:
        pool.terminate()

"""What every read handler receives: a way to get a pooled connection."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from gateway.db.pool import Connection, Pool, connection
from gateway.settings import Settings


class ReadDb:
    """Connections for reads, from the app's pool.

    Going through `gateway.db.pool.connection` means an exhausted pool or a
    database that is down answers 503, like everywhere else.
    """

    def __init__(self, pool: Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings

    def connection(self) -> AbstractAsyncContextManager[Connection]:
        """A pooled connection, as `Unavailable` (503) when none can be had in time."""
        return connection(self._pool, self._settings)

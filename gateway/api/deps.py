"""What the API handlers receive: pooled connections, and for writes transactions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Final, TypeVar
from uuid import UUID

from asyncpg import Record

from gateway.api.schemas import Attach
from gateway.db import campaigns, reads
from gateway.db.pool import Connection, Pool, connection, transaction
from gateway.db.retry import REFUSED, retried
from gateway.errors import BadRequest, Unavailable
from gateway.fetch import ResultFetcher
from gateway.ops.reprocess import Cursor, Report, Reprocessor
from gateway.settings import Settings

T = TypeVar("T")

#: Deliveries reprocessed within one request after a mapping change; the rest
#: wait for `POST /api/campaigns/instances/{id}/attach` or `gateway reprocess`.
ATTACH_MAX_DELIVERIES: Final = 1000


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


class ManageDb(ReadDb):
    """Transactions for the management API, and the reprocessor that attaches events."""

    def __init__(self, pool: Pool, settings: Settings, fetcher: ResultFetcher) -> None:
        super().__init__(pool, settings)
        self._fetcher = fetcher

    async def write(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """`work` in one transaction, run again when it lost a deadlock.

        Writes lock rows in the order ingestion does, but a cascade or a
        concurrent webhook batch can still deadlock with them: PostgreSQL then
        rolls one side back, and repeating it is safe (`gateway.db.retry`).
        A value that validation let through but the schema refuses (a NUL
        character in a text, say) is the request's fault: a 400.
        """

        async def write() -> T:
            async with transaction(self._pool, self._settings) as conn:
                return await work(conn)

        try:
            return await retried(write, what="api")
        except REFUSED as exc:
            raise BadRequest(f"the database refused a value: {exc}") from exc

    async def attach(self, keys: campaigns.CampaignKeys) -> Attach:
        """Reprocess the deliveries holding unmatched events with these campaign keys.

        Their events then attach (with enrollments created as at ingestion) and
        the counters move, exactly once, through the pipeline's own writer.
        At most ATTACH_MAX_DELIVERIES per call, so that a request stays short;
        `remaining` tells the caller to call again.
        """

        async def page(conn: Connection, after: Cursor | None, limit: int) -> list[Record]:
            return await campaigns.unmatched_deliveries(conn, keys, after, limit)

        reprocessor = Reprocessor(self._pool, self._settings, self._fetcher)
        report = await reprocessor.run_pages(page, max_deliveries=ATTACH_MAX_DELIVERIES)
        async with self.connection() as conn:
            remaining = await campaigns.count_unmatched(conn, keys)
        return Attach(
            deliveries=report.examined,
            events_attached=report.attached,
            remaining=remaining,
            error=report.error,
        )

    async def reprocess(self, delivery_id: UUID) -> tuple[str, Report, Record] | None:
        """Normalize one stored delivery again with the reprocessor of `gateway reprocess`.

        Returns its status before, what reprocessing did, and its row after;
        None when no such delivery exists. Idempotent: the reprocessor writes
        only what is missing and updates the row only when its outcome differs.
        """
        before: list[str] = []

        async def page(conn: Connection, after: Cursor | None, limit: int) -> list[Record]:
            row = None if after is not None else await reads.get_delivery(conn, delivery_id)
            if row is None:
                return []
            before.append(row["status"])
            return [row]

        report = await Reprocessor(self._pool, self._settings, self._fetcher).run_pages(page)
        if report.error is not None:
            raise Unavailable(report.error)
        if not before:
            return None
        async with self.connection() as conn:
            row = await reads.get_delivery(conn, delivery_id)
        if row is None:  # purged meanwhile
            return None
        return before[0], report, row

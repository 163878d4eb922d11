"""The ingestion pipeline: raw delivery in, events and outcome committed.

No HTTP types here: the webhook edge, replay and reprocess all call
`Ingestor.ingest`. Parsing (and a PhantomBuster result fetch) happens in the
caller's task; committing is group commit: writer tasks take every delivery
waiting in a bounded queue, write them all with multi-row statements (raw
deliveries, events deduplicated on `(provider, provider_event_id)`, the
enrollments they create and, through the schema's triggers, the instance
counters) in ONE transaction, and only after its COMMIT answer each caller
with its own outcome. A delivery the database refuses is retried alone, so it
never fails the others of its batch.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Final, NamedTuple
from uuid import UUID

import msgspec
import structlog

from gateway.db.ingest import BatchOutcome, DeliveryArgs, EventArgs, write_batch
from gateway.db.pool import Connection, Pool, connection
from gateway.db.retry import REFUSED, retried
from gateway.delivery import Delivery, Fetched
from gateway.engagement import StaticRules, static_rules_for
from gateway.errors import Unavailable
from gateway.fetch import FetchError, ResultFetcher
from gateway.ids import uuid7
from gateway.readiness import WriteHealth
from gateway.settings import Settings
from providers import lemlist, phantombuster, postmark
from providers.base import NormalizedEvent, Parsed, ProviderError

log = structlog.get_logger(__name__)

PARSERS: Final[Mapping[str, Callable[[bytes, Mapping[str, str]], Parsed]]] = {
    "lemlist": lemlist.parse,
    "postmark": postmark.parse,
    "phantombuster": phantombuster.parse,
}

#: How often a result may point elsewhere (an API answer naming a result file).
FETCH_HOPS: Final = 2


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """What became of one delivery, as the webhook answer reports it."""

    delivery_id: UUID
    status: str
    events: int = 0
    duplicates: int = 0
    cause: str | None = None
    field: str | None = None


class EventsWritten(NamedTuple):
    """What writing one delivery's events did."""

    written: int
    duplicates: int
    unmatched: bool
    """Some newly written event has no enrollment (no instance matched)."""


def parse_delivery(
    provider: str, body: bytes, headers: Mapping[str, str], fetched: bytes | None
) -> Parsed:
    """Run the provider's pure parser; PhantomBuster also takes a fetched result."""
    if provider == "phantombuster":
        return phantombuster.parse(body, headers, fetched)
    return PARSERS[provider](body, headers)


class Normalized(NamedTuple):
    """What a delivery's body says, before anything is written."""

    status: str | None
    """rejected, pending or ignored; None when `events` decide it."""
    cause: str | None
    events: list[NormalizedEvent]
    fetched: Fetched | None
    """A result object fetched just now, to be stored with the delivery."""
    field: str | None = None
    """The JSON path at fault, for a rejected body."""


async def normalize(
    provider: str,
    body: bytes,
    headers: Mapping[str, str],
    fetcher: ResultFetcher,
    stored: bytes | None = None,
    *,
    rules: StaticRules,
) -> Normalized:
    """Parse, and fetch what a PhantomBuster webhook left out (ingestion and reprocess).

    `stored` is a result object fetched earlier, used before fetching again.
    A result may point elsewhere once (an API answer holding a result file's
    jsonUrl, as legacy scripts save it): at most FETCH_HOPS fetches are made,
    all within the fetcher's total deadline. Opens and clicks get their static
    machine flag (`rules`) here, so that it is written with the event.
    """
    try:
        parsed = parse_delivery(provider, body, headers, None)
    except ProviderError as exc:
        return Normalized("rejected", str(exc), [], None, exc.field)
    fetched: Fetched | None = None
    try:
        if parsed.fetch is not None and stored is not None:
            parsed = parse_delivery(provider, body, headers, stored)
        if parsed.fetch is not None:
            async with asyncio.timeout(fetcher.deadline_s):
                for _hop in range(FETCH_HOPS):
                    if parsed.fetch is None:
                        break
                    fetched = await fetcher.fetch(parsed.fetch)
                    parsed = parse_delivery(provider, body, headers, fetched.body)
    except TimeoutError:
        cause = f"result fetch exceeded PHANTOMBUSTER_FETCH_DEADLINE_S={fetcher.deadline_s:g}"
        return Normalized("pending", cause, [], fetched)
    except FetchError as exc:
        return Normalized("pending", str(exc), [], fetched)
    except ProviderError as exc:
        return Normalized("pending", f"fetched result unusable: {exc}", [], fetched)
    if parsed.fetch is not None:
        return Normalized("pending", "fetched result points elsewhere again", [], fetched)
    if not parsed.events:
        return Normalized("ignored", parsed.ignored, [], fetched)
    return Normalized(None, None, rules.apply(parsed.events), fetched)


@dataclasses.dataclass(eq=False)
class _Job:
    """A delivery waiting for the writer, with the future its caller awaits."""

    delivery: Delivery
    events: list[NormalizedEvent]
    status: str | None
    """Fixed outcome of a delivery without events; None: decided by writing its events."""
    cause: str | None
    field: str | None
    fetched: Fetched | None
    future: asyncio.Future[Outcome] = dataclasses.field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Ingestor:
    """Normalizes deliveries and commits them in groups, exactly once per provider event."""

    def __init__(
        self,
        pool: Pool,
        settings: Settings,
        fetcher: ResultFetcher,
        *,
        writers: int | None = None,
        batch_max: int | None = None,
        queue_max: int | None = None,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._fetcher = fetcher
        self._rules = static_rules_for(settings.data_dir)
        self._writers = settings.ingest_writers if writers is None else writers
        self._batch_max = batch_max or settings.ingest_batch_max
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(queue_max or settings.ingest_queue_max)
        self._tasks: list[asyncio.Task[None]] = []
        self._accepting = False
        self.health = WriteHealth()
        """The latest commit's outcome, for readiness."""

    async def start(self) -> None:
        """Start the writer tasks; deliveries are refused until then."""
        self._accepting = True
        self._tasks = [
            asyncio.create_task(self._writer(), name=f"ingest-writer-{n}")
            for n in range(self._writers)
        ]

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Refuse new deliveries, finish what is queued, then stop the writers.

        Whatever is still queued after `timeout_s` is refused with 503 (the
        provider retries it); nothing queued is silently dropped.
        """
        self._accepting = False
        try:
            await asyncio.wait_for(self._queue.join(), timeout_s)
        except TimeoutError:
            log.warning("ingest.stop_timeout", queued=self._queue.qsize())
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        while not self._queue.empty():
            job = self._queue.get_nowait()
            _fail(job, Unavailable("gateway shutting down; retry later"))
            self._queue.task_done()

    @property
    def queued(self) -> int:
        """Deliveries waiting for a writer (for metrics)."""
        return self._queue.qsize()

    async def ingest(self, delivery: Delivery) -> Outcome:
        """Parse, fetch what PhantomBuster left out, and commit; never loses the raw body."""
        n = await normalize(
            delivery.provider, delivery.body, delivery.headers, self._fetcher, rules=self._rules
        )
        if n.status is not None:
            return await self.record(
                delivery, n.status, cause=n.cause, field=n.field, fetched=n.fetched
            )
        return await self._submit(_Job(delivery, n.events, None, None, None, n.fetched))

    async def record(
        self,
        delivery: Delivery,
        status: str,
        *,
        cause: str | None = None,
        field: str | None = None,
        fetched: Fetched | None = None,
    ) -> Outcome:
        """Store a delivery that writes no event (rejected, ignored, pending)."""
        return await self._submit(_Job(delivery, [], status, cause, field, fetched))

    async def _submit(self, job: _Job) -> Outcome:
        if not self._accepting:
            raise Unavailable("gateway not accepting deliveries now; retry later")
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise Unavailable("ingestion queue full; retry later") from None
        return await job.future

    async def _writer(self) -> None:
        """Take everything queued (up to batch_max) and commit it as one transaction.

        When fewer deliveries are waiting than recent batches held, the writer
        lingers once (linger_ms) for the rest to arrive: under load a batch
        then carries what arrives during one commit, and the database pays its
        per-statement and per-commit costs once for all of them.
        """
        linger = self._settings.ingest_linger_ms / 1000
        recent = 1.0
        while True:
            batch = [await self._queue.get()]
            self._drain(batch)
            if linger and len(batch) < min(recent, self._batch_max):
                await asyncio.sleep(linger)
                self._drain(batch)
            recent = 0.8 * recent + 0.2 * len(batch)
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _drain(self, batch: list[_Job]) -> None:
        """Add what is queued to the batch, up to batch_max."""
        while len(batch) < self._batch_max:
            try:
                batch.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                return

    async def _write(self, batch: list[_Job]) -> None:
        """Commit a batch; on a refused value or a bug, isolate its deliveries one by one."""
        try:
            outcomes = await self._commit(batch)
        except Unavailable as exc:
            self.health.failed(str(exc))
            for job in batch:
                _fail(job, exc)
        except REFUSED as exc:
            if len(batch) > 1:
                for job in batch:
                    await self._write([job])
                return
            job = batch[0]
            outcome = await self._write_alone(job, "rejected", f"database refused a value: {exc}")
            if outcome is not None and not job.future.done():
                job.future.set_result(outcome)
        except Exception as exc:  # a gateway bug: keep the raw body, let the provider retry
            if len(batch) > 1:
                for job in batch:
                    await self._write([job])
                return
            log.exception("ingest.write_failed", delivery_id=str(batch[0].delivery.id))
            await self._write_alone(batch[0], "failed", f"gateway error: {type(exc).__name__}")
            _fail(batch[0], Unavailable("the gateway failed on this delivery; retry later"))
        else:
            self.health.committed()
            for job, outcome in zip(batch, outcomes, strict=True):
                if not job.future.done():
                    job.future.set_result(outcome)

    async def _write_alone(self, job: _Job, status: str, cause: str) -> Outcome | None:
        """Store the raw delivery alone with a status of its own (rejected or failed).

        None, and the caller answered 503, when even that cannot be stored.
        """
        alone = _Job(job.delivery, [], status, cause, job.field or "$", job.fetched, job.future)
        try:
            outcome = (await self._commit([alone]))[0]
        except Exception as exc:  # the database is gone too: the provider retries
            log.exception("ingest.record_failed", delivery_id=str(job.delivery.id))
            cause = f"could not store the delivery: {type(exc).__name__}"
            self.health.failed(cause)
            _fail(job, Unavailable(cause))
            return None
        self.health.committed()
        return outcome

    async def _commit(self, batch: Sequence[_Job]) -> list[Outcome]:
        """The whole batch in one statement and one transaction, retried on conflicts."""
        events = _event_args([(j.delivery.id, j.delivery.received_at, j.events) for j in batch])
        deliveries = [_delivery_args(job) for job in batch]

        async def write() -> list[BatchOutcome]:
            async with connection(self._pool, self._settings) as conn:
                return await write_batch(conn, events, deliveries, store=True)

        by_id = {r.delivery_id: r for r in await retried(write, what="ingest")}
        return [_outcome(job, by_id[job.delivery.id]) for job in batch]


def _fail(job: _Job, exc: Exception) -> None:
    if not job.future.done():
        job.future.set_exception(exc)


def _outcome(job: _Job, result: BatchOutcome) -> Outcome:
    return Outcome(
        delivery_id=job.delivery.id,
        status=result.status,
        events=result.written,
        duplicates=result.duplicates,
        cause=result.cause,
        field=job.field,
    )


async def write_events(
    conn: Connection, delivery_id: UUID, received_at: datetime, events: list[NormalizedEvent]
) -> EventsWritten:
    """Attach and insert one stored delivery's events (reprocess), without storing it again."""
    delivery = DeliveryArgs(
        id=delivery_id,
        provider=events[0].provider if events else "",
        received_at=received_at,
        body=b"",
        body_size=0,
        headers={},
        query={},
        status=None,
        cause=None,
        events=len(events),
        fetched_body=None,
        fetched_from=None,
    )
    [result] = await write_batch(
        conn, _event_args([(delivery_id, received_at, events)]), [delivery], store=False
    )
    return EventsWritten(result.written, result.duplicates, result.status == "unmatched")


def _event_args(
    deliveries: Sequence[tuple[UUID, datetime, list[NormalizedEvent]]],
) -> list[EventArgs]:
    """The batch's distinct events, each owned by the first delivery carrying it.

    Sorted by key, so that concurrent batches take their unique-index locks
    in one order.
    """
    owned: dict[tuple[str, str], tuple[UUID, datetime, NormalizedEvent]] = {}
    for delivery_id, received_at, events in deliveries:
        for event in events:
            owned.setdefault(
                (event.provider, event.provider_event_id), (delivery_id, received_at, event)
            )
    args = []
    for key in sorted(owned):
        delivery_id, received_at, event = owned[key]
        urls = [u.replace("\n", "").replace("\r", "") for u in event.linkedin_urls]
        args.append(
            EventArgs(
                id=uuid7(),
                provider=event.provider,
                provider_event_id=event.provider_event_id,
                campaign_key=event.campaign_key,
                instance_hint=_uuid(event.instance_hint),
                enrollment_hint=_uuid(event.enrollment_hint),
                email=(event.contact_email or "").strip() or None,
                urls="\n".join(u for u in urls if u) or None,
                delivery_id=delivery_id,
                event_type=event.event_type,
                channel=event.channel,
                step_number=event.step_number,
                timestamp=event.occurred_at or received_at,
                metadata=event.metadata,
            )
        )
    return args


def _delivery_args(job: _Job) -> DeliveryArgs:
    delivery = job.delivery
    return DeliveryArgs(
        id=delivery.id,
        provider=delivery.provider,
        received_at=delivery.received_at,
        body=delivery.body,
        body_size=delivery.recorded_size,
        headers=delivery.headers,
        query=delivery.query,
        status=job.status,
        cause=job.cause.replace("\x00", "")[:2000] if job.cause else None,
        events=len(job.events),
        fetched_body=job.fetched.body if job.fetched else None,
        fetched_from=job.fetched.source if job.fetched else None,
    )


def _uuid(value: str | None) -> UUID | None:
    if not value:
        return None
    try:
        return UUID(value)
    except ValueError:
        return None


def elapsed_ms(started: float) -> float:
    """Milliseconds since a `time.perf_counter()` reading, for the canonical log line."""
    return round((time.perf_counter() - started) * 1000, 2)

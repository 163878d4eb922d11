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
from uuid import UUID, uuid4

import asyncpg
import msgspec
import structlog

from gateway.db import queries
from gateway.db.pool import Connection, Pool, transaction
from gateway.errors import Unavailable
from gateway.fetch import Fetched, FetchError, ResultFetcher
from gateway.settings import Settings
from providers import lemlist, phantombuster, postmark
from providers.base import NormalizedEvent, Parsed, ProviderError

log = structlog.get_logger(__name__)

PARSERS: Final[Mapping[str, Callable[[bytes, Mapping[str, str]], Parsed]]] = {
    "lemlist": lemlist.parse,
    "postmark": postmark.parse,
    "phantombuster": phantombuster.parse,
}

#: Outcomes a caller may see; `rejected` answers 400, the others 200.
STATUSES: Final = ("processed", "duplicate", "unmatched", "ignored", "pending", "rejected")

_RETRIES: Final = 3
_FETCH_HOPS: Final = 2
#: Errors that mean "try the same transaction again": nothing was committed.
_RETRYABLE: Final = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.ForeignKeyViolationError,  # an enrollment deleted under us: resolve again
)
#: Errors caused by a value the database refuses: the input's fault.
_REFUSED: Final = (asyncpg.DataError, asyncpg.CheckViolationError)


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """One webhook request as received, secrets already removed."""

    provider: str
    received_at: datetime
    body: bytes
    headers: dict[str, str]
    query: dict[str, str]
    body_size: int = -1
    """Size of the whole body; differs from len(body) only for an oversized one."""
    id: UUID = msgspec.field(default_factory=uuid4)


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
        self._writers = settings.writers if writers is None else writers
        self._batch_max = batch_max or settings.batch_max
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(queue_max or settings.queue_max)
        self._tasks: list[asyncio.Task[None]] = []
        self._accepting = False

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
        try:
            parsed = parse_delivery(delivery.provider, delivery.body, delivery.headers, None)
        except ProviderError as exc:
            return await self.record(delivery, "rejected", cause=str(exc), field=exc.field)
        fetched: Fetched | None = None
        # A result may point elsewhere once (an API answer holding a result
        # file's jsonUrl, as legacy scripts save it): follow at most one hop.
        for _hop in range(_FETCH_HOPS):
            if parsed.fetch is None:
                break
            try:
                fetched = await self._fetcher.fetch(parsed.fetch)
                parsed = parse_delivery(
                    delivery.provider, delivery.body, delivery.headers, fetched.body
                )
            except FetchError as exc:
                return await self.record(delivery, "pending", cause=str(exc), fetched=fetched)
            except ProviderError as exc:
                return await self.record(
                    delivery, "pending", cause=f"fetched result unusable: {exc}", fetched=fetched
                )
        if parsed.fetch is not None:
            return await self.record(
                delivery, "pending", cause="fetched result points elsewhere again", fetched=fetched
            )
        if not parsed.events:
            return await self.record(delivery, "ignored", cause=parsed.ignored, fetched=fetched)
        return await self._submit(_Job(delivery, parsed.events, None, None, None, fetched))

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
        """Take everything queued (up to batch_max) and commit it as one transaction."""
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_max:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[_Job]) -> None:
        """Commit a batch; on a refused value or a bug, isolate its deliveries one by one."""
        try:
            outcomes = await self._commit(batch)
        except Unavailable as exc:
            for job in batch:
                _fail(job, exc)
        except _REFUSED as exc:
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
            for job, outcome in zip(batch, outcomes, strict=True):
                if not job.future.done():
                    job.future.set_result(outcome)

    async def _write_alone(self, job: _Job, status: str, cause: str) -> Outcome | None:
        """Store the raw delivery alone with a status of its own (rejected or failed).

        None, and the caller answered 503, when even that cannot be stored.
        """
        alone = _Job(job.delivery, [], status, cause, job.field or "$", job.fetched, job.future)
        try:
            return (await self._commit([alone]))[0]
        except Exception as exc:  # the database is gone too: the provider retries
            log.exception("ingest.record_failed", delivery_id=str(job.delivery.id))
            _fail(job, Unavailable(f"could not store the delivery: {type(exc).__name__}"))
            return None

    async def _commit(self, batch: Sequence[_Job]) -> list[Outcome]:
        """One transaction for the whole batch, retried on transient conflicts."""
        attempt = 0
        while True:
            attempt += 1
            try:
                async with transaction(self._pool, self._settings) as conn:
                    with_events = [j for j in batch if j.events]
                    results = await write_batch_events(
                        conn,
                        [(j.delivery.id, j.delivery.received_at, j.events) for j in with_events],
                    )
                    written = dict(zip((id(j) for j in with_events), results, strict=True))
                    outcomes = [_outcome(job, written.get(id(job))) for job in batch]
                    await queries.insert_deliveries(
                        conn,
                        [
                            _delivery_row(job, outcome)
                            for job, outcome in zip(batch, outcomes, strict=True)
                        ],
                    )
                return outcomes
            except _RETRYABLE as exc:
                log.info("ingest.retry", attempt=attempt, error=type(exc).__name__)
                if attempt == _RETRIES:
                    raise Unavailable("database contention; retry later") from exc


def _fail(job: _Job, exc: Exception) -> None:
    if not job.future.done():
        job.future.set_exception(exc)


def _outcome(job: _Job, result: EventsWritten | None) -> Outcome:
    delivery_id = job.delivery.id
    if result is None:
        return Outcome(
            delivery_id=delivery_id,
            status=job.status or "ignored",
            cause=job.cause,
            field=job.field,
        )
    if result.written == 0:
        status, cause = "duplicate", None
    elif result.unmatched:
        status, cause = "unmatched", "no campaign instance matches"
    else:
        status, cause = "processed", None
    return Outcome(
        delivery_id=delivery_id,
        status=status,
        events=result.written,
        duplicates=result.duplicates,
        cause=cause,
    )


async def write_events(
    conn: Connection, delivery_id: UUID, received_at: datetime, events: list[NormalizedEvent]
) -> EventsWritten:
    """Attach and insert one delivery's events (reprocess uses this too)."""
    return (await write_batch_events(conn, [(delivery_id, received_at, events)]))[0]


async def write_batch_events(
    conn: Connection, deliveries: Sequence[tuple[UUID, datetime, list[NormalizedEvent]]]
) -> list[EventsWritten]:
    """Attach and insert the events of many deliveries with a handful of statements.

    An event repeated within the batch belongs to its first delivery; the
    others count it as a duplicate. Events are sorted by key so that
    concurrent transactions take their unique-index locks in one order.
    """
    owner: dict[tuple[str, str], int] = {}
    first: dict[tuple[str, str], NormalizedEvent] = {}
    for index, (_, _, events) in enumerate(deliveries):
        for event in events:
            key = (event.provider, event.provider_event_id)
            if key not in owner:
                owner[key] = index
                first[key] = event
    keys = sorted(first)
    ordered = [first[k] for k in keys]
    if not ordered:
        return [EventsWritten(0, len(events), False) for _, _, events in deliveries]
    lookups = [_lookup(e) for e in ordered]
    targets = await queries.resolve_targets(conn, lookups)
    await queries.lock_instances(conn, list({t.instance_id for t in targets if t.instance_id}))
    # Events whose instance is known but whose contact is not enrolled yet.
    to_enroll: list[int] = []
    contacts: list[tuple[UUID, str | None, str | None]] = []
    for i, (target, lookup) in enumerate(zip(targets, lookups, strict=True)):
        instance_id = target.instance_id
        if instance_id and target.enrollment_id is None and (lookup.email or lookup.urls):
            to_enroll.append(i)
            contacts.append((instance_id, lookup.email, _first_url(lookup.urls)))
    if contacts:
        await queries.create_enrollments(conn, contacts)
        again = await queries.resolve_targets(conn, [lookups[i] for i in to_enroll])
        for i, target in zip(to_enroll, again, strict=True):
            targets[i] = target
    rows = [
        queries.EventRow(
            enrollment_id=t.enrollment_id,
            instance_id=t.instance_id,
            delivery_id=deliveries[owner[k]][0],
            event_type=e.event_type,
            channel=e.channel,
            provider=e.provider,
            provider_event_id=e.provider_event_id,
            step_number=e.step_number,
            timestamp=e.occurred_at or deliveries[owner[k]][1],
            metadata=e.metadata,
        )
        for k, e, t in zip(keys, ordered, targets, strict=True)
    ]
    written = [0] * len(deliveries)
    unmatched = [False] * len(deliveries)
    for row in await queries.insert_events(conn, rows):
        if row["inserted"]:
            index = owner[(row["provider"], row["provider_event_id"])]
            written[index] += 1
            unmatched[index] |= row["enrollment_id"] is None
    return [
        EventsWritten(written[i], len(events) - written[i], unmatched[i])
        for i, (_, _, events) in enumerate(deliveries)
    ]


def _lookup(event: NormalizedEvent) -> queries.Lookup:
    urls = [u.replace("\n", "").replace("\r", "") for u in event.linkedin_urls]
    return queries.Lookup(
        provider=event.provider,
        campaign_key=event.campaign_key,
        instance_hint=_uuid(event.instance_hint),
        enrollment_hint=_uuid(event.enrollment_hint),
        email=(event.contact_email or "").strip() or None,
        urls="\n".join(u for u in urls if u) or None,
    )


def _first_url(urls: str | None) -> str | None:
    return urls.split("\n", 1)[0] if urls else None


def _uuid(value: str | None) -> UUID | None:
    if not value:
        return None
    try:
        return UUID(value)
    except ValueError:
        return None


def _delivery_row(job: _Job, outcome: Outcome) -> queries.DeliveryRow:
    delivery = job.delivery
    cause = outcome.cause
    return queries.DeliveryRow(
        id=delivery.id,
        provider=delivery.provider,
        received_at=delivery.received_at,
        body=delivery.body,
        body_size=delivery.body_size if delivery.body_size >= 0 else len(delivery.body),
        headers=delivery.headers,
        query=delivery.query,
        status=outcome.status,
        cause=cause.replace("\x00", "")[:2000] if cause else None,
        events_written=outcome.events,
        duplicates=outcome.duplicates,
        fetched_body=job.fetched.body if job.fetched else None,
        fetched_from=job.fetched.source if job.fetched else None,
    )


def elapsed_ms(started: float) -> float:
    """Milliseconds since a `time.perf_counter()` reading, for the canonical log line."""
    return round((time.perf_counter() - started) * 1000, 2)

"""The ingestion pipeline: raw delivery in, events and outcome committed.

No HTTP types here: the webhook edge, replay and reprocess all call
`Ingestor.ingest`. One delivery is one transaction that writes its raw row,
its events (deduplicated on `(provider, provider_event_id)`), the enrollments
it creates and, through the schema's triggers, the instance counters; the
caller acknowledges only after that transaction has committed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Final
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


def parse_delivery(
    provider: str, body: bytes, headers: Mapping[str, str], fetched: bytes | None
) -> Parsed:
    """Run the provider's pure parser; PhantomBuster also takes a fetched result."""
    if provider == "phantombuster":
        return phantombuster.parse(body, headers, fetched)
    return PARSERS[provider](body, headers)


class Ingestor:
    """Normalizes deliveries and commits them, exactly once per provider event."""

    def __init__(self, pool: Pool, settings: Settings, fetcher: ResultFetcher) -> None:
        self._pool = pool
        self._settings = settings
        self._fetcher = fetcher

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
        return await self._commit(delivery, parsed.events, fetched)

    async def record(
        self,
        delivery: Delivery,
        status: str,
        *,
        cause: str | None = None,
        field: str | None = None,
        fetched: Fetched | None = None,
    ) -> Outcome:
        """Store a delivery that writes no event (rejected, ignored, pending, failed)."""
        async with transaction(self._pool, self._settings) as conn:
            await queries.insert_delivery(
                conn, _delivery_row(delivery, status, cause, 0, 0, fetched)
            )
        return Outcome(delivery_id=delivery.id, status=status, cause=cause, field=field)

    async def _commit(
        self, delivery: Delivery, events: list[NormalizedEvent], fetched: Fetched | None
    ) -> Outcome:
        attempt = 0
        while True:
            attempt += 1
            try:
                async with transaction(self._pool, self._settings) as conn:
                    written, duplicates, unmatched = await write_events(
                        conn, delivery.id, delivery.received_at, events
                    )
                    status = _status(written, unmatched)
                    cause = "no campaign instance matches" if status == "unmatched" else None
                    await queries.insert_delivery(
                        conn, _delivery_row(delivery, status, cause, written, duplicates, fetched)
                    )
                return Outcome(
                    delivery_id=delivery.id,
                    status=status,
                    events=written,
                    duplicates=duplicates,
                    cause=cause,
                )
            except (
                asyncpg.DeadlockDetectedError,
                asyncpg.SerializationError,
                asyncpg.ForeignKeyViolationError,  # an enrollment deleted under us: resolve again
            ) as exc:
                log.info("ingest.retry", attempt=attempt, error=type(exc).__name__)
                if attempt == _RETRIES:
                    raise Unavailable("database contention; retry later") from exc
            except (asyncpg.DataError, asyncpg.CheckViolationError) as exc:
                # A value the database refuses (out of range, unsupported text):
                # the input's fault, so the raw body is kept as rejected.
                return await self.record(
                    delivery, "rejected", cause=f"database refused a value: {exc}", field="$"
                )


async def write_events(
    conn: Connection, delivery_id: UUID, received_at: datetime, events: list[NormalizedEvent]
) -> tuple[int, int, bool]:
    """Attach and insert events; returns (written, duplicates, any written unmatched).

    Events are sorted by key so that concurrent transactions take their
    unique-index locks in one order and do not deadlock.
    """
    unique: dict[str, NormalizedEvent] = {}
    for event in events:
        unique.setdefault(event.provider_event_id, event)
    ordered = [unique[key] for key in sorted(unique)]
    lookups = [_lookup(e) for e in ordered]
    targets = await queries.resolve_targets(conn, lookups)
    to_enroll = [
        i
        for i, (t, lk) in enumerate(zip(targets, lookups, strict=True))
        if t.instance_id is not None and t.enrollment_id is None and (lk.email or lk.urls)
    ]
    if to_enroll:
        await queries.create_enrollments(
            conn,
            [
                (targets[i].instance_id, lookups[i].email, _first_url(lookups[i].urls))  # type: ignore[misc]
                for i in to_enroll
            ],
        )
        again = await queries.resolve_targets(conn, [lookups[i] for i in to_enroll])
        for i, target in zip(to_enroll, again, strict=True):
            targets[i] = target
    rows = [
        queries.EventRow(
            enrollment_id=t.enrollment_id,
            instance_id=t.instance_id,
            delivery_id=delivery_id,
            event_type=e.event_type,
            channel=e.channel,
            provider=e.provider,
            provider_event_id=e.provider_event_id,
            step_number=e.step_number,
            timestamp=e.occurred_at or received_at,
            metadata=e.metadata,
        )
        for e, t in zip(ordered, targets, strict=True)
    ]
    result = await queries.insert_events(conn, rows)
    written = [r for r in result if r["inserted"]]
    unmatched = any(r["enrollment_id"] is None for r in written)
    return len(written), len(events) - len(written), unmatched


def _status(written: int, unmatched: bool) -> str:
    if written == 0:
        return "duplicate"
    return "unmatched" if unmatched else "processed"


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


def _delivery_row(
    delivery: Delivery,
    status: str,
    cause: str | None,
    written: int,
    duplicates: int,
    fetched: Fetched | None,
) -> queries.DeliveryRow:
    return queries.DeliveryRow(
        id=delivery.id,
        provider=delivery.provider,
        received_at=delivery.received_at,
        body=delivery.body,
        body_size=delivery.body_size if delivery.body_size >= 0 else len(delivery.body),
        headers=delivery.headers,
        query=delivery.query,
        status=status,
        cause=cause.replace("\x00", "")[:2000] if cause else None,
        events_written=written,
        duplicates=duplicates,
        fetched_body=fetched.body if fetched else None,
        fetched_from=fetched.source if fetched else None,
    )


def elapsed_ms(started: float) -> float:
    """Milliseconds since a `time.perf_counter()` reading, for the canonical log line."""
    return round((time.perf_counter() - started) * 1000, 2)

"""`gateway reprocess`: normalization re-run over stored raw deliveries.

Providers change their payloads and mappings get fixed after the fact; the raw
body of every delivery is kept so that its events can be derived again. Each
delivery is parsed again (with its stored PhantomBuster result, or fetched now
when a `pending` one has none) and its events written with the ingestion
pipeline's own `write_events`, one transaction per delivery:

- an event the improved parser now finds is inserted; one stored already is
  not (`ON CONFLICT (provider, provider_event_id)`), so nothing doubles;
- an unmatched event is attached by that same statement once its campaign
  instance resolves, and the schema's triggers move the counters exactly;
- machine flags follow the rules in force: a stored open or click takes the
  static flag it is normalized with now, and the dynamic flags of the
  enrollments its events belong to are recomputed, so a rule whose version
  changed is re-applied (docs/providers.md, "Human engagement");
- the delivery row is updated only when its outcome differs, so a second run
  changes nothing. Nothing is ever deleted.

`--dry-run` does the same work inside transactions that are rolled back after
each batch and reports what would change.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import msgspec
from asyncpg import Record

from gateway.db import deliveries
from gateway.db.pool import Connection, Pool, connection
from gateway.db.retry import REFUSED, retried
from gateway.engagement import static_flag, static_rules_for
from gateway.errors import Unavailable
from gateway.fetch import ResultFetcher
from gateway.ingest import Normalized, normalize, write_events
from gateway.ops.progress import Progress
from gateway.settings import Settings
from providers.base import NormalizedEvent

_UNMATCHED_CAUSE: Final = "no campaign instance matches"

Cursor = tuple[datetime, UUID]
"""The (received_at, id) of the last delivery of the previous page."""
Pager = Callable[[Connection, Cursor | None, int], Awaitable[list[Record]]]
"""The next deliveries after a cursor, at most a limit, oldest first, with their bodies."""


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """What reprocessing one delivery did (or, in a dry run, would do)."""

    delivery_id: UUID
    before: str
    after: str
    new_events: int = 0
    attached: int = 0
    flags: int = 0
    """Opens and clicks (of the enrollments its events belong to) whose machine flag changed."""
    updated: bool = False


class Report:
    """Totals of one reprocess run, printed at its end."""

    def __init__(self) -> None:
        self.examined = 0
        self.updated = 0
        self.new_events = 0
        self.attached = 0
        self.flags = 0
        self.transitions: Counter[tuple[str, str]] = Counter()
        self.error: str | None = None

    def add(self, change: Change) -> None:
        self.examined += 1
        self.updated += change.updated
        self.new_events += change.new_events
        self.attached += change.attached
        self.flags += change.flags
        if change.before != change.after:
            self.transitions[(change.before, change.after)] += 1

    @property
    def exit_code(self) -> int:
        return 1 if self.error else 0

    def render(self, *, dry_run: bool, seconds: float) -> str:
        """The summary table; a dry run says what would have changed."""
        head = (
            f"dry run: {self.examined} deliveries examined in {seconds:.1f}s,"
            " nothing changed; a real run would make:"
            if dry_run
            else f"reprocessed {self.examined} deliveries in {seconds:.1f}s"
        )
        lines = [
            head,
            f"  {'new events':<20} {self.new_events:>7}",
            f"  {'attached events':<20} {self.attached:>7}",
            f"  {'machine flags':<20} {self.flags:>7}",
            f"  {'deliveries updated':<20} {self.updated:>7}",
            f"  {'unchanged':<20} {self.examined - self.updated:>7}",
            f"  {'status changes':<20} {sum(self.transitions.values()):>7}",
        ]
        lines += [
            f"    {f'{before} -> {after}':<26} {n:>5}"
            for (before, after), n in sorted(self.transitions.items())
        ]
        if self.error:
            lines.append(f"stopped early: {self.error}")
        return "\n".join(lines)


class Reprocessor:
    """Pages through stored deliveries and normalizes each again, idempotently."""

    def __init__(
        self,
        pool: Pool,
        settings: Settings,
        fetcher: ResultFetcher,
        *,
        batch_size: int = 200,
        dry_run: bool = False,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._fetcher = fetcher
        self._rules = static_rules_for(settings.data_dir)
        self._batch_size = batch_size
        self._dry_run = dry_run

    async def count(self, where: deliveries.DeliveryFilter) -> int:
        """How many deliveries a run over `where` goes through."""
        async with connection(self._pool, self._settings) as conn:
            return await deliveries.count_deliveries(conn, where)

    async def run(self, where: deliveries.DeliveryFilter, progress: Progress) -> Report:
        """Every delivery the filter selects, oldest first, in batches of `batch_size`."""

        async def page(conn: Connection, after: Cursor | None, limit: int) -> list[Record]:
            return await deliveries.page_deliveries(conn, where, after, limit)

        return await self.run_pages(page, progress)

    async def run_pages(
        self, page: Pager, progress: Progress | None = None, *, max_deliveries: int | None = None
    ) -> Report:
        """Every delivery `page` yields (at most `max_deliveries`), in batches of `batch_size`.

        `page` selects deliveries by any criterion (the management API picks
        those holding one campaign's unmatched events). A database that
        becomes unavailable stops the run; what was committed stays, and
        running again picks up the rest (nothing doubles).
        """
        report = Report()
        after: Cursor | None = None
        left = max_deliveries
        try:
            while left is None or left > 0:
                size = self._batch_size if left is None else min(self._batch_size, left)
                async with connection(self._pool, self._settings) as conn:
                    rows = await page(conn, after, size)
                    await self._batch(conn, rows, report, progress)
                if len(rows) < size:
                    break
                left = None if left is None else left - len(rows)
                after = (rows[-1]["received_at"], rows[-1]["id"])
        except Unavailable as exc:
            report.error = str(exc)
        if progress is not None:
            progress.close()
        return report

    async def _batch(
        self, conn: Connection, rows: list[Record], report: Report, progress: Progress | None
    ) -> None:
        """Each delivery that would change in its own (sub)transaction; a dry run rolls back.

        Whether a delivery would change is read for the whole batch first, so
        that a run over deliveries already up to date costs a few queries per
        batch rather than several per delivery.
        """
        dry = conn.transaction() if self._dry_run else None
        if dry is not None:
            await dry.start()
        try:
            work = [(row, await self._normalize(row)) for row in rows]
            settled = await self._settled(conn, work)
            for row, normalized in work:
                if normalized is None or row["id"] in settled:
                    change = Change(
                        delivery_id=row["id"], before=row["status"], after=row["status"]
                    )
                else:
                    change = await self._one(conn, row, normalized)
                report.add(change)
                if progress is not None:
                    progress.advance()
        finally:
            if dry is not None:
                await dry.rollback()

    async def _settled(
        self, conn: Connection, work: list[tuple[Record, Normalized | None]]
    ) -> set[UUID]:
        """The deliveries whose events are all stored, attached and flagged as the rules say
        now, and whose row is current.

        Flagged as the rules say: each stored open and click holds the static
        flag it is normalized with now, and the enrollments of the delivery's
        e-mail events hold the dynamic flags the current rule versions give
        (one recomputation, read only, for the whole batch).
        """
        keys: dict[str, set[str]] = {}
        for row, normalized in work:
            if normalized is not None:
                keys.setdefault(row["provider"], set()).update(_keys(normalized))
        stored = {
            provider: await deliveries.stored_events(conn, provider, sorted(wanted))
            for provider, wanted in keys.items()
            if wanted
        }
        with_events = [row["id"] for row, n in work if n is not None and n.status is None]
        owned = await deliveries.delivery_events(conn, with_events) if with_events else {}
        candidates: list[tuple[UUID, set[UUID]]] = []
        for row, normalized in work:
            if normalized is None:
                continue
            known = stored.get(row["provider"], {})
            if not all(
                key in known and known[key].enrollment_id is not None for key in _keys(normalized)
            ):
                continue  # something to insert or attach
            if any(_restates(e, known[e.provider_event_id].machine) for e in normalized.events):
                continue  # a static flag to write
            if _outcome(row, normalized, 0, owned.get(row["id"], (0, 0))) == _current(row):
                candidates.append((row["id"], _flagged(normalized.events, known)))
        enrollments = sorted(set().union(*(ids for _, ids in candidates)))
        stale = await deliveries.stale_machine_flags(conn, enrollments) if enrollments else set()
        return {delivery for delivery, ids in candidates if stale.isdisjoint(ids)}

    async def _one(self, conn: Connection, row: Record, normalized: Normalized) -> Change:
        """One delivery in a (sub)transaction of its own, retried as ingestion retries."""

        async def apply(normalized: Normalized) -> Change:
            async with conn.transaction():
                return await self._apply(conn, row, normalized)

        try:
            return await retried(lambda: apply(normalized), what="reprocess")
        except REFUSED as exc:
            # A value the database refuses: the input's fault, as at ingestion.
            rejected = Normalized(
                "rejected", f"database refused a value: {exc}", [], normalized.fetched
            )
            return await retried(lambda: apply(rejected), what="reprocess")

    async def _normalize(self, row: Record) -> Normalized | None:
        """Parse again, with the stored result object; None for an oversized body.

        Only a prefix of an oversized body is kept: there is nothing to parse.
        """
        if row["body_size"] > len(row["body"]):
            return None
        stored = row["fetched_body"]
        return await normalize(
            row["provider"],
            bytes(row["body"]),
            row["headers"],
            self._fetcher,
            bytes(stored) if stored is not None else None,
            rules=self._rules,
        )

    async def _apply(self, conn: Connection, row: Record, normalized: Normalized) -> Change:
        """Write the events, re-apply the machine rules, recompute the outcome, update the
        row when it differs."""
        delivery_id: UUID = row["id"]
        written = attached = flags = 0
        owned = (0, 0)
        if normalized.status is None:
            provider, keys = row["provider"], sorted(_keys(normalized))
            events = normalized.events
            stored = await deliveries.stored_events(conn, provider, keys)
            waiting = [key for key, event in stored.items() if event.enrollment_id is None]
            missing = len(stored) < len(keys)
            enrollments = _flagged(events, stored)
            before = await deliveries.machine_flags(conn, sorted(enrollments))
            # All stored, attached and flagged alike: writing could change
            # nothing, so do not (it would only lock the rows, or enroll
            # contacts for nothing).
            if waiting or missing or any(_restates(e, _machine(stored, e)) for e in events):
                written = (await write_events(conn, delivery_id, row["received_at"], events))[0]
            if waiting or missing:
                now = await deliveries.stored_events(conn, provider, keys)
                attached = sum(now[key].enrollment_id is not None for key in waiting)
                enrollments |= _flagged(events, now)
            if enrollments:
                # A newer version of a dynamic rule changes no event: recompute here.
                await deliveries.flag_machine_events(conn, sorted(enrollments))
                after = await deliveries.machine_flags(conn, sorted(enrollments))
                flags = sum(1 for event_id, m in before.items() if after.get(event_id, m) != m)
            owned = (await deliveries.delivery_events(conn, [delivery_id])).get(delivery_id, owned)
        current, outcome = _current(row), _outcome(row, normalized, written, owned)
        if outcome != current:
            await deliveries.update_delivery_outcome(conn, delivery_id, outcome)
        return Change(
            delivery_id=delivery_id,
            before=current.status,
            after=outcome.status,
            new_events=written,
            attached=attached,
            flags=flags,
            updated=outcome != current,
        )


def _keys(normalized: Normalized) -> set[str]:
    return {event.provider_event_id for event in normalized.events}


#: The e-mail events whose enrollment's machine flags they can change.
_FLAG_INPUTS: Final = frozenset(("sent", "delivered", "opened", "clicked"))


def _flagged(events: list[NormalizedEvent], stored: dict[str, deliveries.StoredEvent]) -> set[UUID]:
    """The enrollments of the stored e-mail events among `events` that machine rules read."""
    enrollments = set()
    for event in events:
        if event.channel != "email" or event.event_type not in _FLAG_INPUTS:
            continue
        found = stored.get(event.provider_event_id)
        if found is not None and found.enrollment_id is not None:
            enrollments.add(found.enrollment_id)
    return enrollments


def _machine(stored: dict[str, deliveries.StoredEvent], event: NormalizedEvent) -> Any:
    found = stored.get(event.provider_event_id)
    return None if found is None else found.machine


def _restates(event: NormalizedEvent, stored_machine: Any) -> bool:
    """Whether writing the event again changes its stored static flag.

    The twin of `machine_restated` in gateway/db/functions.sql (write_batch's
    ON CONFLICT): an open or click normalized with a static flag takes it when
    it differs; one normalized without loses a stored static flag.
    """
    if event.event_type not in ("opened", "clicked"):
        return False
    if "machine" in event.metadata:
        return bool(event.metadata["machine"] != stored_machine)
    return static_flag({"machine": stored_machine}) is not None


def _current(row: Record) -> deliveries.DeliveryOutcome:
    """The outcome a delivery row holds now."""
    fetched_body = row["fetched_body"]
    return deliveries.DeliveryOutcome(
        status=row["status"],
        cause=row["cause"],
        events_written=row["events_written"],
        duplicates=row["duplicates"],
        fetched_body=bytes(fetched_body) if fetched_body is not None else None,
        fetched_from=row["fetched_from"],
    )


def _outcome(
    row: Record, normalized: Normalized, written: int, owned: tuple[int, int]
) -> deliveries.DeliveryOutcome:
    """The outcome a delivery should hold, given what writing its events did.

    `owned` is (events the delivery wrote itself, how many of them have no
    enrollment): none is a duplicate, an unattached one keeps it unmatched,
    as at ingestion.
    """
    current = _current(row)
    fetched = normalized.fetched
    if fetched is not None:
        current = current._replace(fetched_body=fetched.body, fetched_from=fetched.source)
    if normalized.status is not None:
        return current._replace(status=normalized.status, cause=_cause(normalized.cause))
    own, unmatched = owned
    status = "duplicate" if own == 0 else "unmatched" if unmatched else "processed"
    return current._replace(
        status=status,
        cause=_UNMATCHED_CAUSE if status == "unmatched" else None,
        events_written=current.events_written + written,
        duplicates=max(0, len(normalized.events) - own),
    )


def _cause(text: str | None) -> str | None:
    """A cause fit for the text column, as ingestion stores it."""
    return text.replace("\x00", "")[:2000] if text else None

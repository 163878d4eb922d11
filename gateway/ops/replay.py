"""`gateway replay`: captured deliveries through the full pipeline again.

Two targets, one outcome vocabulary. `DirectTarget` hands each delivery to
the same `Ingestor` the webhook edge uses, straight into the database;
`HttpTarget` posts it to a running gateway with the provider's configured
secret, retrying what a provider would retry (503, 408, 429, connection
errors). Either way deduplication happens where it always does, on
`(provider, provider_event_id)`, so replaying a capture twice adds no event.

A direct replay also skips a line whose delivery is stored already (same
provider, receive time and body), so that it adds no delivery row either; over
HTTP the gateway stamps its own receive time and records every request, as it
would a provider's retry.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Final, NamedTuple, Protocol, TextIO

import httpx
import msgspec

from gateway.db import deliveries
from gateway.db.pool import Pool, connection, open_pool
from gateway.delivery import OUTCOME_STATUSES, Delivery, Fetched, redact_query, too_large
from gateway.errors import Unavailable
from gateway.fetch import ResultFetcher
from gateway.ingest import Ingestor, parse_delivery
from gateway.ops.capture import BadLine, Captured
from gateway.ops.progress import Progress
from gateway.secrets import REDACTED, Redactor, WebhookSecrets
from gateway.settings import Settings
from providers.base import ProviderError, ResultFetch

#: The outcomes a delivery can have, in the summary's order.
OUTCOMES: Final = OUTCOME_STATUSES
#: Headers a replay never forwards: the client sets them, or they carry credentials.
NOT_FORWARDED: Final = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "accept-encoding",
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-api-key",
    }
)
#: Statuses on which a provider retries, and so does the replay.
RETRIED_STATUSES: Final = frozenset({408, 429, 503})
#: Problems printed one by one; the summary counts the rest.
SHOWN_PROBLEMS: Final = 50


class ReplayError(Exception):
    """A delivery the replay could not get through; counted as an error."""


class Sent(NamedTuple):
    """A delivery's outcome, and why when it was rejected."""

    status: str
    cause: str | None = None


class Tally:
    """Outcome counts of one run; problems are reported on `stream` as they happen."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self.errors = 0
        self.invalid = 0
        self._stream = stream or sys.stderr
        self._shown = 0

    def add(self, source: str, sent: Sent) -> None:
        self.counts[sent.status] = self.counts.get(sent.status, 0) + 1
        if sent.status == "rejected":
            self._report(f"{source}: rejected: {sent.cause}")

    def error(self, source: str, message: str) -> None:
        self.errors += 1
        self._report(f"{source}: error: {message}")

    def bad(self, line: BadLine) -> None:
        self.invalid += 1
        self._report(f"{line.source}: invalid: {line.error}")

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + self.errors + self.invalid

    @property
    def exit_code(self) -> int:
        """1 when anything was rejected, failed or unreadable: the operator must look."""
        return 1 if self.counts["rejected"] or self.errors or self.invalid else 0

    def render(self, how: str, seconds: float) -> str:
        """The summary table printed at the end of every run."""
        lines = [f"replayed {self.total} deliveries {how} in {seconds:.1f}s"]
        rows = [*self.counts.items(), ("errors", self.errors), ("invalid", self.invalid)]
        lines += [f"  {name:<10} {n:>7}" for name, n in rows]
        return "\n".join(lines)

    def _report(self, message: str) -> None:
        self._shown += 1
        if self._shown <= SHOWN_PROBLEMS:
            # On a terminal, over the progress line, which redraws below.
            clear = "\r\x1b[K" if self._stream.isatty() else ""
            print(f"{clear}{message}", file=self._stream)
        if self._shown == SHOWN_PROBLEMS:
            print("(further problems are only counted)", file=self._stream)


class Target(Protocol):
    """Where a replay sends deliveries; answers with the delivery's outcome."""

    async def send(self, captured: Captured) -> Sent: ...


async def run(
    items: Iterable[Captured | BadLine],
    target: Target,
    *,
    concurrency: int,
    progress: Progress,
    tally: Tally,
) -> Tally:
    """Send every item with at most `concurrency` in flight; count each outcome."""
    pending = iter(items)

    async def worker() -> None:
        # The iterator is shared: each next() runs to completion between awaits.
        for item in pending:
            if isinstance(item, BadLine):
                tally.bad(item)
            else:
                try:
                    tally.add(item.source, await target.send(item))
                except ReplayError as exc:
                    tally.error(item.source, str(exc))
            progress.advance()

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    progress.close()
    return tally


class CapturedResults(ResultFetcher):
    """Serves the PhantomBuster results a capture carries; fetches the others as usual."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        super().__init__(settings, client)
        self._known: dict[ResultFetch, Fetched] = {}

    def remember(self, request: ResultFetch, fetched: Fetched) -> None:
        self._known[request] = fetched

    async def fetch(self, request: ResultFetch) -> Fetched:
        known = self._known.get(request)
        return known if known is not None else await super().fetch(request)


class DirectTarget:
    """Ingests into the database as the webhook edge would, minus HTTP."""

    attempts = 5

    def __init__(
        self,
        ingestor: Ingestor,
        pool: Pool,
        settings: Settings,
        secrets: WebhookSecrets,
        results: CapturedResults,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        backoff_s: float = 0.5,
    ) -> None:
        self._ingestor = ingestor
        self._pool = pool
        self._settings = settings
        self._redactor = Redactor(secrets.all_values())
        self._results = results
        self._clock = clock
        self._backoff_s = backoff_s

    async def send(self, captured: Captured) -> Sent:
        size, limit = len(captured.body), self._settings.body_limit(captured.provider)
        # A capture written by hand may hold a secret: never store it.
        delivery = Delivery.received(
            captured.provider,
            captured.received_at or self._clock(),
            captured.body,
            size=size,
            limit=limit,
            headers=captured.headers,
            query=captured.query,
            redactor=self._redactor,
        )
        if captured.fetched is not None:
            self._remember_result(delivery, captured.fetched)
        last = "no attempt made"
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(self._backoff_s * 2**attempt)
            try:
                if captured.received_at is not None and await self._stored_already(delivery):
                    return Sent("duplicate")
                if size > limit:
                    cause = too_large(captured.provider, limit, f"body of {size} bytes")
                    outcome = await self._ingestor.record(delivery, "rejected", cause=cause)
                else:
                    outcome = await self._ingestor.ingest(delivery)
                return Sent(outcome.status, outcome.cause)
            except Unavailable as exc:
                last = str(exc)
        raise ReplayError(f"database unavailable after {self.attempts} attempts: {last}")

    async def _stored_already(self, delivery: Delivery) -> bool:
        """True when this exact delivery (provider, receive time, body) is stored."""
        async with connection(self._pool, self._settings) as conn:
            stored = await deliveries.stored_bodies(conn, delivery.provider, delivery.received_at)
        return any(_same_body(delivery.body, s) for s in stored)

    def _remember_result(self, delivery: Delivery, fetched: Fetched) -> None:
        try:
            parsed = parse_delivery(delivery.provider, delivery.body, delivery.headers, None)
        except ProviderError:
            return  # rejected before any fetch: the result is not needed
        if parsed.fetch is not None:
            self._results.remember(parsed.fetch, fetched)


def _same_body(a: bytes, b: bytes) -> bool:
    """Equal bytes, or equal JSON values (an export re-encodes pretty-printed bodies)."""
    if a == b:
        return True
    try:
        return bool(msgspec.json.decode(a) == msgspec.json.decode(b))
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return False


class HttpTarget:
    """Posts to a running gateway with the provider's first configured secret."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        secrets: WebhookSecrets,
        *,
        attempts: int = 5,
        backoff_s: float = 0.5,
        max_wait_s: float = 30.0,
    ) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self._secrets = secrets.by_provider
        self._redactor = Redactor(secrets.all_values())
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._max_wait_s = max_wait_s

    async def send(self, captured: Captured) -> Sent:
        url = f"{self._base}/webhooks/{captured.provider}"
        params = {
            **redact_query(captured.query, self._redactor),
            "token": self._secrets[captured.provider][0],
        }
        headers = {
            name: value
            for name, value in captured.headers.items()
            if name.lower() not in NOT_FORWARDED and REDACTED not in value
        }
        if not any(name.lower() == "content-type" for name in headers):
            headers["content-type"] = "application/json"
        last = "no attempt made"
        for attempt in range(self._attempts):
            wait = self._backoff_s * 2**attempt
            try:
                response = await self._client.post(
                    url, params=params, headers=headers, content=captured.body
                )
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code not in RETRIED_STATUSES:
                    return _outcome(response)
                last = f"HTTP {response.status_code}"
                wait = max(wait, _retry_after(response))
            if attempt + 1 < self._attempts:
                await asyncio.sleep(min(wait, self._max_wait_s))
        raise ReplayError(f"gave up after {self._attempts} attempts: {last}")


def _outcome(response: httpx.Response) -> Sent:
    """The gateway's answer as an outcome; anything unexpected is an error."""
    code = response.status_code
    if code == 200:
        try:
            status = response.json()["status"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ReplayError(f"HTTP 200 without a status: {response.text[:200]}") from exc
        if status not in OUTCOMES:
            raise ReplayError(f"unknown status {status!r}")
        return Sent(str(status))
    if code in (400, 413):
        try:
            detail = str(response.json()["detail"])
        except (ValueError, KeyError, TypeError):
            detail = response.text[:200]
        return Sent("rejected", f"HTTP {code}: {detail}")
    if code == 401:
        raise ReplayError(
            "secret refused: set GATEWAY_SECRET_<PROVIDER> or --data-dir to the gateway's"
        )
    raise ReplayError(f"HTTP {code}: {response.text[:200]}")


def _retry_after(response: httpx.Response) -> float:
    try:
        return float(response.headers.get("retry-after", "0"))
    except ValueError:
        return 0.0


async def replay_direct(
    items: Iterable[Captured | BadLine],
    settings: Settings,
    database_url: str,
    secrets: WebhookSecrets,
    *,
    concurrency: int = 8,
    progress: Progress,
    tally: Tally | None = None,
) -> Tally:
    """Replay into the database through the ingestion pipeline, without HTTP."""
    async with open_pool(settings, database_url) as pool:
        results = CapturedResults(settings)
        ingestor = Ingestor(pool, settings, results)
        await ingestor.start()
        try:
            target = DirectTarget(ingestor, pool, settings, secrets, results)
            return await run(
                items, target, concurrency=concurrency, progress=progress, tally=tally or Tally()
            )
        finally:
            await ingestor.stop()
            await results.aclose()


async def replay_http(
    items: Iterable[Captured | BadLine],
    base_url: str,
    secrets: WebhookSecrets,
    *,
    concurrency: int = 8,
    progress: Progress,
    tally: Tally | None = None,
    client: httpx.AsyncClient | None = None,
    backoff_s: float = 0.5,
) -> Tally:
    """Replay into a running gateway; `client` lets tests post to an app in process."""
    own = client is None
    http = client or httpx.AsyncClient(
        timeout=httpx.Timeout(60.0), limits=httpx.Limits(max_connections=concurrency)
    )
    try:
        target = HttpTarget(http, base_url, secrets, backoff_s=backoff_s)
        return await run(
            items, target, concurrency=concurrency, progress=progress, tally=tally or Tally()
        )
    finally:
        if own:
            await http.aclose()

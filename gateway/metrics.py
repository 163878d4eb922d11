"""Prometheus metrics of the server: `GET /metrics` in the text exposition format.

Whole-server figures, whichever worker answers the scrape:

- counters, histograms and per-process gauges (pool, queue depth) are kept in
  prometheus_client's multiprocess files when `gateway serve` set
  PROMETHEUS_MULTIPROC_DIR (`Settings.metrics_dir`) for its workers, and every
  scrape merges all workers' files; gauges of workers that died are dropped;
- freshness and backlog (last delivery per provider, deliveries pending,
  rejected or unmatched) are read from the database at scrape time, so every
  worker answers the same value.

Without a metrics directory (tests, an app built in process) each app owns its
`CollectorRegistry`, never the process-global one, so tests can build many
apps in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.enums import ScopeType
from litestar.handlers import HTTPRouteHandler
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from gateway.db import reads
from gateway.db.pool import Pool, connection, waiting
from gateway.delivery import DELIVERY_STATUSES
from gateway.errors import Unavailable
from gateway.ingest import Ingestor
from gateway.settings import Settings
from providers.vocabulary import PROVIDERS

#: How long the scrape waits for the database before reporting it down.
DATABASE_CHECK_TIMEOUT_S = 1.0
#: Request latency buckets: webhooks answer in milliseconds, reads in tens of them.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: The stored-delivery statuses that need attention, reported as `gateway_deliveries`.
BACKLOG_STATUSES: Final = ("pending", "rejected", "unmatched")
#: How often each worker writes its pool and queue gauges for the other workers' scrapes.
GAUGE_TICK_S: Final = 1.0


def multiprocess_ready(settings: Settings) -> bool:
    """Whether metric values go to the shared files of `settings.metrics_dir`.

    prometheus_client picks its value store when it is first imported, from
    PROMETHEUS_MULTIPROC_DIR: a directory configured after that would silently
    count per process, so it is refused.
    """
    if settings.metrics_dir is None:
        return False
    if values.ValueClass is values.MutexValue:
        raise ValueError(
            "PROMETHEUS_MULTIPROC_DIR must be set before prometheus_client is imported"
        )
    return True


class Metrics:
    """The app's metrics; the pool and the pipeline they read are passed in by their caller."""

    def __init__(self, settings: Settings) -> None:
        self.registry = CollectorRegistry()
        self._children: dict[tuple[object, ...], Any] = {}
        self.shared_dir = settings.metrics_dir if multiprocess_ready(settings) else None
        self.deliveries = Counter(
            "gateway_webhook_deliveries",
            "Webhook deliveries stored, by provider and outcome",
            ["provider", "status"],
            registry=self.registry,
        )
        self.events_written = Counter(
            "gateway_events_written",
            "Normalized events written (new rows of campaign_events)",
            ["provider"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "gateway_event_duplicates",
            "Events already stored, not written again",
            ["provider"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gateway_http_request_duration_seconds",
            "Time from request to the end of the response, by route",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.database_up = Gauge(
            "gateway_database_up",
            "1 when the database answered SELECT 1 at the last scrape; embedded=true when it"
            " is the embedded PostgreSQL under GATEWAY_DATA_DIR",
            ["embedded"],
            registry=self.registry,
            multiprocess_mode="livemostrecent",
        )
        self.queue_depth = Gauge(
            "gateway_ingest_queue_depth",
            "Deliveries waiting for a group-commit writer, all workers together",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.pool_gauges = {
            name: Gauge(name, documentation, registry=self.registry, multiprocess_mode="livesum")
            for name, documentation in (
                ("gateway_db_pool_size", "Open connections in the pools, all workers together"),
                ("gateway_db_pool_idle", "Open connections not in use"),
                ("gateway_db_pool_max", "Most connections the pools open"),
                ("gateway_db_pool_waiters", "Requests waiting for a pooled connection"),
            )
        }
        self.freshness = _Freshness()
        self.embedded = "true" if is_embedded(settings) else "false"
        for provider in PROVIDERS:  # every series exists from the start, at 0
            for status in DELIVERY_STATUSES:
                self.deliveries.labels(provider, status)
            self.events_written.labels(provider)
            self.duplicates.labels(provider)
        self.registry.register(self.freshness)

    def update_gauges(self, pool: Pool, queued: int) -> None:
        """Write this worker's pool and queue figures (at each scrape and every GAUGE_TICK_S)."""
        readings: dict[str, Callable[[Pool], int]] = {
            "gateway_db_pool_size": Pool.get_size,
            "gateway_db_pool_idle": Pool.get_idle_size,
            "gateway_db_pool_max": Pool.get_max_size,
            "gateway_db_pool_waiters": waiting,
        }
        for name, read in readings.items():
            self.pool_gauges[name].set(read(pool))
        self.queue_depth.set(queued)

    async def tick(self, pool: Pool, queued: Callable[[], int]) -> None:
        """Keep this worker's gauges fresh for scrapes another worker answers."""
        while True:
            self.update_gauges(pool, queued())
            await asyncio.sleep(GAUGE_TICK_S)

    def exposition_registry(self) -> CollectorRegistry:
        """What a scrape encodes: this app's registry, or every worker's files merged."""
        if self.shared_dir is None:
            return self.registry
        _forget_dead_workers(self.shared_dir)
        merged = CollectorRegistry()
        # prometheus_client's multiprocess module carries no annotations.
        multiprocess.MultiProcessCollector(merged, str(self.shared_dir))  # type: ignore[no-untyped-call]
        merged.register(self.freshness)
        return merged

    def close(self) -> None:
        """This worker stops: its live gauges leave the merged figures."""
        if self.shared_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), str(self.shared_dir))  # type: ignore[no-untyped-call]

    def observe_delivery(self, provider: str, status: str, events: int, duplicates: int) -> None:
        """Count one webhook's outcome (called from the webhook's canonical log line)."""
        self._child(self.deliveries, provider, status).inc()
        if events:
            self._child(self.events_written, provider).inc(events)
        if duplicates:
            self._child(self.duplicates, provider).inc(duplicates)

    def _child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, looked up once: labels() validates and locks on every call."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """ASGI middleware timing each HTTP request, labelled by route template and status."""

        async def timed(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = 500  # when the app fails before answering

            async def send_and_watch(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, send_and_watch)
            finally:
                route = scope.get("path_template") or "unrouted"
                self._child(self.latency, scope["method"], route, str(status)).observe(
                    time.perf_counter() - started
                )

        return timed

    async def check_database(self, pool: Pool, settings: Settings) -> None:
        """Set `gateway_database_up` from a SELECT 1 that may take at most a second."""
        try:
            async with asyncio.timeout(DATABASE_CHECK_TIMEOUT_S):
                async with connection(pool, settings) as conn:
                    up = int(await conn.fetchval("SELECT 1") == 1)
        except (Unavailable, TimeoutError):
            up = 0
        self.database_up.labels(self.embedded).set(up)


class _Freshness(Collector):
    """What the database says at scrape time: the same on every worker.

    `gateway_provider_last_event_timestamp_seconds{provider}`: when the newest
    delivery (not rejected) of the provider was received; absent for a
    provider that never sent one. `gateway_deliveries{status}`: stored
    deliveries pending, rejected or unmatched. Both are absent when the
    database did not answer within DATABASE_CHECK_TIMEOUT_S.
    """

    def __init__(self) -> None:
        self.last: dict[str, datetime | None] | None = None
        self.backlog: dict[str, int] | None = None

    async def refresh(self, pool: Pool, settings: Settings) -> None:
        self.last = self.backlog = None
        with contextlib.suppress(Unavailable, TimeoutError):
            async with asyncio.timeout(DATABASE_CHECK_TIMEOUT_S):
                async with connection(pool, settings) as conn:
                    last = await reads.provider_last_delivery(conn, PROVIDERS)
                    backlog = await reads.delivery_backlog(conn, BACKLOG_STATUSES)
            self.last, self.backlog = last, backlog

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.last is None or self.backlog is None:
            return
        last = GaugeMetricFamily(
            "gateway_provider_last_event_timestamp_seconds",
            "When the newest delivery of each provider (not rejected) was received, Unix time",
            labels=["provider"],
        )
        for provider, at in self.last.items():
            if at is not None:
                last.add_metric([provider], at.timestamp())
        yield last
        backlog = GaugeMetricFamily(
            "gateway_deliveries",
            "Stored deliveries that need attention, by status",
            labels=["status"],
        )
        for status in BACKLOG_STATUSES:
            backlog.add_metric([status], self.backlog.get(status, 0))
        yield backlog


def _forget_dead_workers(directory: Path) -> None:
    """Drop the live gauges of workers that are gone (killed, or restarted by uvicorn)."""
    for path in directory.glob("gauge_live*_*.db"):
        pid_text = path.stem.rsplit("_", 1)[-1]
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
        except PermissionError:  # alive, under another user
            continue


def is_embedded(settings: Settings) -> bool:
    """Whether the database is the embedded one: a Unix socket under GATEWAY_DATA_DIR."""
    if settings.database_url is None:
        return False
    url = urlsplit(settings.database_url)
    hosts = parse_qs(url.query).get("host", []) + ([url.hostname] if url.hostname else [])
    data_dir = settings.data_dir.resolve()
    return any(
        host.startswith("/") and Path(host).resolve().is_relative_to(data_dir) for host in hosts
    )


def metrics_handler(metrics: Metrics, settings: Settings) -> HTTPRouteHandler:
    """`GET /metrics`, wired to the app's metrics; the pool and pipeline are injected."""

    @get("/metrics", summary="Prometheus metrics (text format, or OpenMetrics when asked)")
    async def scrape(
        request: Request[Any, Any, Any],
        pool: NamedDependency[Pool],
        ingestor: NamedDependency[Ingestor],
    ) -> Response[bytes]:
        await metrics.check_database(pool, settings)
        await metrics.freshness.refresh(pool, settings)
        metrics.update_gauges(pool, ingestor.queued)
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        # Litestar appends the charset to text/* itself.
        media_type = content_type.split("; charset=")[0]
        return Response(encode(metrics.exposition_registry()), media_type=media_type)

    return scrape

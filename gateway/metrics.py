"""Prometheus metrics of one app: `GET /metrics` in the text exposition format.

Each app owns its `CollectorRegistry` (never the process-global one), so
tests can build many apps in one process and each uvicorn worker reports its
own figures; see the README for what that means for scraping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, get_args
from urllib.parse import parse_qs, urlsplit

from litestar import Request, Response, get
from litestar.enums import ScopeType
from litestar.handlers import HTTPRouteHandler
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from gateway.api.schemas import DeliveryStatus
from gateway.db.pool import Pool, connection, waiting
from gateway.errors import Unavailable
from gateway.settings import PROVIDERS, Settings

#: How long the scrape waits for the database before reporting it down.
DATABASE_CHECK_TIMEOUT_S = 1.0
#: Request latency buckets: webhooks answer in milliseconds, reads in tens of them.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The app's metrics; the pool is attached once the lifespan has opened it."""

    def __init__(self, settings: Settings) -> None:
        self.registry = CollectorRegistry()
        self.pool: Pool | None = None
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
        )
        self.embedded = "true" if is_embedded(settings) else "false"
        for provider in PROVIDERS:  # every series exists from the start, at 0
            for status in get_args(DeliveryStatus):
                self.deliveries.labels(provider, status)
            self.events_written.labels(provider)
            self.duplicates.labels(provider)
        self.registry.register(_PoolCollector(lambda: self.pool))

    def observe_delivery(self, provider: str, status: str, events: int, duplicates: int) -> None:
        """Count one webhook's outcome (called from the webhook's canonical log line)."""
        self.deliveries.labels(provider, status).inc()
        if events:
            self.events_written.labels(provider).inc(events)
        if duplicates:
            self.duplicates.labels(provider).inc(duplicates)

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
                self.latency.labels(scope["method"], route, str(status)).observe(
                    time.perf_counter() - started
                )

        return timed

    async def check_database(self, settings: Settings) -> None:
        """Set `gateway_database_up` from a SELECT 1 that may take at most a second."""
        up = 0
        if self.pool is not None:
            try:
                async with asyncio.timeout(DATABASE_CHECK_TIMEOUT_S):
                    async with connection(self.pool, settings) as conn:
                        up = int(await conn.fetchval("SELECT 1") == 1)
            except (Unavailable, TimeoutError):
                up = 0
        self.database_up.labels(self.embedded).set(up)


class _PoolCollector(Collector):
    """The connection pool read at scrape time: size, idle, max and waiting acquirers."""

    def __init__(self, get_pool: Callable[[], Pool | None]) -> None:
        self._get_pool = get_pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool = self._get_pool()
        figures = (
            ("gateway_db_pool_size", "Open connections in the pool", Pool.get_size),
            ("gateway_db_pool_idle", "Open connections not in use", Pool.get_idle_size),
            ("gateway_db_pool_max", "Most connections the pool opens", Pool.get_max_size),
            ("gateway_db_pool_waiters", "Requests waiting for a pooled connection", waiting),
        )
        for name, documentation, read in figures:
            yield GaugeMetricFamily(name, documentation, value=0 if pool is None else read(pool))


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
    """`GET /metrics`, wired to the app's metrics."""

    @get("/metrics", summary="Prometheus metrics (text format, or OpenMetrics when asked)")
    async def scrape(request: Request[Any, Any, Any]) -> Response[bytes]:
        await metrics.check_database(settings)
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        # Litestar appends the charset to text/* itself.
        media_type = content_type.split("; charset=")[0]
        return Response(encode(metrics.registry), media_type=media_type)

    return scrape

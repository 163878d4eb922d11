"""GET /metrics: Prometheus text with the webhook outcomes, latency, pool and database."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from gateway.db.pool import (
    Pool,
    close_pool,
    connection,
    create_pool,
    init_connection,
    waiting,
)
from gateway.metrics import Metrics, is_embedded
from gateway.settings import Settings
from tests.conftest import fixture_body
from tests.database import make_instance, post_webhook

Client = AsyncTestClient[Litestar]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text)[(name, frozenset(labels.items()))]


async def test_metrics_count_webhook_outcomes_and_requests(
    client: Client, clean_db: Pool, settings: Settings
) -> None:
    await make_instance(clean_db, {"lemlist_campaign_id": "cam_R7vK2mXq9PdL4sWtA"})
    for name in ("emailsSent.json", "emailsOpened.json", "emailsSent.json"):
        await post_webhook(client, "lemlist", fixture_body("lemlist", name))
    unmatched = json.loads(fixture_body("lemlist", "emailsClicked.json")) | {"campaignId": "nope"}
    await post_webhook(client, "lemlist", json.dumps(unmatched).encode())
    assert (await post_webhook(client, "lemlist", b"[1, 2")).status_code == 400
    await client.get("/api/events")

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    deliveries = "gateway_webhook_deliveries_total"
    assert value(text, deliveries, provider="lemlist", status="processed") == 2
    assert value(text, deliveries, provider="lemlist", status="duplicate") == 1
    assert value(text, deliveries, provider="lemlist", status="unmatched") == 1
    assert value(text, deliveries, provider="lemlist", status="rejected") == 1
    assert value(text, deliveries, provider="postmark", status="processed") == 0
    assert value(text, "gateway_events_written_total", provider="lemlist") == 3
    assert value(text, "gateway_event_duplicates_total", provider="lemlist") == 1

    latency = "gateway_http_request_duration_seconds_count"
    webhook = {"method": "POST", "route": "/webhooks/{provider}"}
    assert value(text, latency, **webhook, status="200") == 4
    assert value(text, latency, **webhook, status="400") == 1
    assert value(text, latency, method="GET", route="/api/events", status="200") == 1

    assert value(text, "gateway_db_pool_size") >= 1
    assert value(text, "gateway_db_pool_max") == settings.pool_max_size
    assert value(text, "gateway_db_pool_waiters") == 0
    assert value(text, "gateway_database_up", embedded="false") == 1


async def test_each_app_has_its_own_registry(settings: Settings) -> None:
    first, second = Metrics(settings), Metrics(settings)
    first.observe_delivery("postmark", "processed", 2, 0)
    assert second.deliveries.labels("postmark", "processed")._value.get() == 0
    unreachable = await create_pool(settings, "postgresql://nobody@127.0.0.1:9/none")
    try:
        await first.check_database(unreachable, settings)  # the database counts as down
    finally:
        await close_pool(unreachable)
    assert first.database_up.labels("false")._value.get() == 0


async def test_waiting_counts_callers_blocked_on_the_pool(
    database_url: str, settings: Settings
) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1, init=init_connection)
    assert pool is not None
    try:
        async with connection(pool, settings):
            blocked = asyncio.create_task(_acquire_once(pool, settings))
            async with asyncio.timeout(5):
                while waiting(pool) == 0:  # noqa: ASYNC110  # polling a plain counter
                    await asyncio.sleep(0.01)
            assert waiting(pool) == 1
        await blocked
        assert waiting(pool) == 0
    finally:
        await pool.close()


async def _acquire_once(pool: Pool, settings: Settings) -> None:
    async with connection(pool, settings) as conn:
        await conn.fetchval("SELECT 1")


def test_embedded_is_a_socket_under_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    socket_url = f"postgresql://postgres:@/postgres?host={data}/pgdata"
    assert is_embedded(Settings(database_url=socket_url, data_dir=data))
    assert not is_embedded(Settings(database_url=socket_url, data_dir=tmp_path / "elsewhere"))
    tcp = "postgresql://user:pw@db.example.com:5432/outreach"
    assert not is_embedded(Settings(database_url=tcp, data_dir=data))


async def test_freshness_and_backlog_come_from_the_database(client: Client, clean_db: Pool) -> None:
    text = (await client.get("/metrics")).text
    assert (
        "gateway_provider_last_event_timestamp_seconds",
        frozenset({("provider", "lemlist")}),
    ) not in samples(text)
    assert value(text, "gateway_deliveries", status="unmatched") == 0
    assert value(text, "gateway_ingest_queue_depth") == 0

    unmatched = json.loads(fixture_body("lemlist", "emailsClicked.json")) | {"campaignId": "nope"}
    await post_webhook(client, "lemlist", json.dumps(unmatched).encode())
    await post_webhook(client, "lemlist", b"[1, 2")  # rejected: no fresher than the last good one
    await post_webhook(client, "postmark", fixture_body("postmark", "Delivery.json"))
    newest = await clean_db.fetch(
        "SELECT provider, max(received_at) AS at FROM webhook_deliveries"
        " WHERE status <> 'rejected' GROUP BY provider"
    )
    # Deliveries another process stored count as well: the figures are the database's.
    await clean_db.execute(
        "INSERT INTO webhook_deliveries (provider, received_at, body, body_size, status)"
        " VALUES ('phantombuster', '2025-03-10T15:00:00Z', '\\x7b7d', 2, 'pending')"
    )

    text = (await client.get("/metrics")).text
    last = "gateway_provider_last_event_timestamp_seconds"
    for row in newest:
        assert value(text, last, provider=row["provider"]) == row["at"].timestamp()
    assert value(text, last, provider="phantombuster") == 1741618800.0
    assert value(text, "gateway_deliveries", status="unmatched") == 2  # no instance maps either
    assert value(text, "gateway_deliveries", status="rejected") == 1
    assert value(text, "gateway_deliveries", status="pending") == 1

"""/metrics of `gateway serve --workers 2`: one server's figures, whichever worker answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import fixture_body
from tests.e2e.helpers import gateway_env, map_lemlist_campaign, serving

pytestmark = pytest.mark.slow


def _figures(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def _newest_lemlist_delivery(url: str) -> float:
    conn = await asyncpg.connect(url)
    try:
        at = await conn.fetchval(
            "SELECT max(received_at) FROM webhook_deliveries WHERE provider = 'lemlist'"
        )
        return float(at.timestamp())
    finally:
        await conn.close()


def test_two_workers_answer_the_same_last_event_time_and_totals(
    create_migrated_database: Callable[[], str], tmp_path: Path
) -> None:
    url = create_migrated_database()
    env = gateway_env(
        DATABASE_URL=url, GATEWAY_DATA_DIR=str(tmp_path), GATEWAY_SECRET_LEMLIST="s3cret"
    )
    template = json.loads(fixture_body("lemlist", "emailsOpened.json"))
    asyncio.run(map_lemlist_campaign(url, template["campaignId"]))
    posted = 30
    with serving(env, tmp_path, "--workers", "2") as (base, _):
        for n in range(posted):  # one connection each: the kernel spreads them over the workers
            body = json.dumps(template | {"_id": f"act_m{n}", "leadEmail": f"m{n}@x.example"})
            response = httpx.post(f"{base}/webhooks/lemlist?token=s3cret", content=body)
            assert response.status_code == 200
        scrapes = [_figures(httpx.get(f"{base}/metrics").text) for _ in range(12)]
        shared = sorted((tmp_path / "metrics").iterdir())
        assert len(shared) == 1 and len(list(shared[0].glob("counter_*.db"))) == 2, shared
    newest = asyncio.run(_newest_lemlist_delivery(url))
    last = ("gateway_provider_last_event_timestamp_seconds", (("provider", "lemlist"),))
    processed = (
        "gateway_webhook_deliveries_total",
        (("provider", "lemlist"), ("status", "processed")),
    )
    assert {scrape[last] for scrape in scrapes} == {newest}
    # Both workers' counts, merged on every scrape.
    assert {scrape[processed] for scrape in scrapes} == {posted}
    assert {scrape[("gateway_ingest_queue_depth", ())] for scrape in scrapes} == {0}
    # Stopping the server removes its metrics directory.
    assert not list((tmp_path / "metrics").iterdir())

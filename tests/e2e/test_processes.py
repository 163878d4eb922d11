"""Several gateway processes on one database still write each event once."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import fixture_body
from tests.e2e.helpers import gateway_env, map_lemlist_campaign, serving

pytestmark = pytest.mark.slow


async def _fire(bases: list[str], bodies: list[bytes], copies: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30) as client:
        requests = [
            client.post(f"{bases[(i + c) % len(bases)]}/webhooks/lemlist?token=s3cret", content=b)
            for i, b in enumerate(bodies)
            for c in range(copies)
        ]
        return await asyncio.gather(*requests)


async def _count(url: str, sql: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        value: int = await conn.fetchval(sql)
        return value
    finally:
        await conn.close()


def test_two_processes_concurrent_redeliveries(
    create_migrated_database: Callable[[], str], tmp_path: Path
) -> None:
    url = create_migrated_database()
    env = gateway_env(
        DATABASE_URL=url, GATEWAY_DATA_DIR=str(tmp_path), GATEWAY_SECRET_LEMLIST="s3cret"
    )
    template = json.loads(fixture_body("lemlist", "emailsOpened.json"))
    bodies = [
        json.dumps(template | {"_id": f"act_{n}", "leadEmail": f"lead{n % 7}@example.com"}).encode()
        for n in range(40)
    ]
    asyncio.run(map_lemlist_campaign(url, template["campaignId"]))
    with serving(env, tmp_path) as (first, _), serving(env, tmp_path) as (second, _):
        responses = asyncio.run(_fire([first, second], bodies, copies=6))
    assert {r.status_code for r in responses} == {200}
    statuses = Counter(r.json()["status"] for r in responses)
    assert statuses == {"processed": 40, "duplicate": 40 * 5}
    assert asyncio.run(_count(url, "SELECT count(*) FROM campaign_events")) == 40
    assert asyncio.run(_count(url, "SELECT count(*) FROM webhook_deliveries")) == 240
    # Seven leads, enrolled once each although their first events raced.
    assert asyncio.run(_count(url, "SELECT count(*) FROM campaign_enrollments")) == 7
    assert asyncio.run(_count(url, "SELECT total_enrolled FROM campaign_instances")) == 7
    assert asyncio.run(_count(url, "SELECT total_opened FROM campaign_instances")) == 7

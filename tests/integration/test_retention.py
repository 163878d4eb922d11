"""Retention: old raw deliveries go (archived if asked), events stay, ingestion goes on."""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.db.pool import Pool
from gateway.delivery import Delivery
from gateway.fetch import ResultFetcher
from gateway.ingest import Ingestor
from gateway.ops.capture import parse_line
from gateway.ops.progress import Progress
from gateway.ops.retention import count_purgeable, parse_age, purge_deliveries
from gateway.settings import Settings
from tests.conftest import fixture_body
from tests.e2e.helpers import gateway_env, run_gateway

NOW = datetime.now(UTC)


def delivery(n: int, age: timedelta) -> Delivery:
    body = json.loads(fixture_body("lemlist", "emailsSent.json")) | {"_id": f"act_{n}"}
    return Delivery(
        provider="lemlist",
        received_at=NOW - age,
        body=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        query={},
    )


@pytest.fixture
async def ingestor(settings: Settings, clean_db: Pool) -> AsyncIterator[Ingestor]:
    fetcher = ResultFetcher(settings)
    ingestor = Ingestor(clean_db, settings, fetcher)
    await ingestor.start()
    yield ingestor
    await ingestor.stop()
    await fetcher.aclose()


async def test_purge_deletes_old_deliveries_only_and_keeps_events(
    ingestor: Ingestor, clean_db: Pool, settings: Settings
) -> None:
    old = [delivery(n, timedelta(days=100 + n)) for n in range(25)]
    recent = [delivery(100 + n, timedelta(days=1)) for n in range(5)]
    await asyncio.gather(*(ingestor.ingest(d) for d in old + recent))
    cutoff = NOW - timedelta(days=90)
    found = await count_purgeable(clean_db, settings, cutoff)
    assert found.deliveries == 25
    assert (found.oldest, found.newest) == (NOW - timedelta(days=124), NOW - timedelta(days=100))

    archive = io.BytesIO()
    shown = io.StringIO()
    progress = Progress("purge", found.deliveries, stream=shown, interval_s=0)
    deleted = await purge_deliveries(
        clean_db, settings, cutoff, batch_size=10, archive=archive, progress=progress
    )
    assert deleted == 25
    assert shown.getvalue().splitlines()[-1].startswith("purge 25/25 (100%)")
    kept = {r["id"] for r in await clean_db.fetch("SELECT id FROM webhook_deliveries")}
    assert kept == {d.id for d in recent}
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_events") == 30
    lines = archive.getvalue().splitlines()
    assert len(lines) == 25
    restored = [parse_line(line, f"archive:{i}") for i, line in enumerate(lines, 1)]
    assert sorted(r.body for r in restored) == sorted(d.body for d in old)  # type: ignore[union-attr]
    assert await purge_deliveries(clean_db, settings, cutoff) == 0


async def test_purge_runs_beside_ingestion(
    ingestor: Ingestor, clean_db: Pool, settings: Settings
) -> None:
    await asyncio.gather(*(ingestor.ingest(delivery(n, timedelta(days=200))) for n in range(300)))
    fresh = [delivery(1000 + n, timedelta(0)) for n in range(300)]
    purged, outcomes = await asyncio.gather(
        purge_deliveries(clean_db, settings, NOW - timedelta(days=90), batch_size=7),
        asyncio.gather(*(ingestor.ingest(d) for d in fresh)),
    )
    assert purged == 300
    assert {o.status for o in outcomes} == {"unmatched"}
    assert await clean_db.fetchval("SELECT count(*) FROM webhook_deliveries") == 300
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_events") == 600


@pytest.mark.parametrize(
    ("text", "age"),
    [
        ("90d", timedelta(days=90)),
        ("12h", timedelta(hours=12)),
        ("2w", timedelta(weeks=2)),
        ("7", timedelta(days=7)),
        ("30min", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
        ("3 days", timedelta(days=3)),
        ("1 week", timedelta(weeks=1)),
        ("36 hours", timedelta(hours=36)),
    ],
)
def test_parse_age(text: str, age: timedelta) -> None:
    assert parse_age(text) == age


@pytest.mark.parametrize("text", ["", "d", "-3d", "3 fortnights", "1.5d"])
def test_parse_age_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not an age"):
        parse_age(text)


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("6m", "ambiguous (minutes or months?): write 6min, or 180d"),
        ("6mo", "write 180d"),
        ("2 months", "write 60d"),
        ("1y", "write 365d"),
    ],
)
def test_parse_age_refuses_units_without_one_meaning(text: str, hint: str) -> None:
    """`6m` once deleted everything older than six minutes for a user who meant months."""
    with pytest.raises(ValueError, match=re.escape(hint)):
        parse_age(text)


def test_purge_command(database_url: str, tmp_path: Path) -> None:
    env = gateway_env(DATABASE_URL=database_url, GATEWAY_DATA_DIR=str(tmp_path))
    dry = run_gateway("purge", "--older-than", "3650d", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("would delete 0 deliveries")
    bad = run_gateway("purge", "--older-than", "soon", env=env)
    assert bad.returncode == 2
    assert "not an age" in bad.stderr

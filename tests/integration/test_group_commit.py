"""Group commit: many deliveries per transaction, each with its own correct outcome."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime

import msgspec
import pytest

import gateway.ingest
from gateway.db.pool import Pool, connection, create_pool
from gateway.delivery import Delivery
from gateway.errors import Unavailable
from gateway.fetch import ResultFetcher
from gateway.ingest import Ingestor, Outcome
from gateway.settings import Settings
from providers.base import NormalizedEvent, Parsed
from tests.conftest import fixture_body
from tests.database import make_instance

CAMPAIGN = "cam_R7vK2mXq9PdL4sWtA"


def lemlist_delivery(activity_id: str, email: str = "dana@example.com") -> Delivery:
    body = json.loads(fixture_body("lemlist", "emailsOpened.json"))
    body |= {"_id": activity_id, "leadEmail": email}
    return Delivery(
        provider="lemlist",
        received_at=datetime.now(UTC),
        body=json.dumps(body).encode(),
        headers={},
        query={},
    )


@pytest.fixture
async def ingestor(settings: Settings, clean_db: Pool) -> AsyncIterator[Ingestor]:
    """One writer, so that concurrent deliveries really share transactions."""
    fetcher = ResultFetcher(settings)
    ingestor = Ingestor(clean_db, settings, fetcher, writers=1, batch_max=64)
    await ingestor.start()
    yield ingestor
    await ingestor.stop()
    await fetcher.aclose()


async def test_a_burst_is_committed_in_few_transactions_with_exact_outcomes(
    ingestor: Ingestor, clean_db: Pool
) -> None:
    instance = await make_instance(clean_db, {"lemlist_campaign_id": CAMPAIGN})
    deliveries = [lemlist_delivery(f"act_{n}", f"lead{n % 10}@example.com") for n in range(200)]
    # The same activity twice in one burst: the first delivery owns the event.
    deliveries.append(lemlist_delivery("act_0", "lead0@example.com"))
    xid_before = await clean_db.fetchval("SELECT txid_current()")
    outcomes = await asyncio.gather(*(ingestor.ingest(d) for d in deliveries))
    transactions = await clean_db.fetchval("SELECT txid_current()") - xid_before - 1
    assert transactions < 50, "deliveries were not grouped"
    assert [o.status for o in outcomes[:200]] == ["processed"] * 200
    assert (outcomes[200].status, outcomes[200].events, outcomes[200].duplicates) == (
        "duplicate",
        0,
        1,
    )
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_events") == 200
    assert await clean_db.fetchval("SELECT count(*) FROM webhook_deliveries") == 201
    counters = await clean_db.fetchrow(
        "SELECT total_enrolled, total_opened FROM campaign_instances WHERE id = $1", instance
    )
    assert dict(counters) == {"total_enrolled": 10, "total_opened": 10}
    stored = {
        r["id"]: (r["status"], r["events_written"], r["duplicates"])
        for r in await clean_db.fetch("SELECT * FROM webhook_deliveries")
    }
    assert all(stored[o.delivery_id] == (o.status, o.events, o.duplicates) for o in outcomes)


async def test_a_refused_delivery_does_not_fail_its_batch(
    ingestor: Ingestor, clean_db: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_parse = gateway.ingest.parse_delivery

    def parse(
        provider: str, body: bytes, headers: Mapping[str, str], fetched: bytes | None
    ) -> Parsed:
        if body == b"BAD":  # an event the schema's CHECK constraint refuses
            bad = NormalizedEvent(
                provider="lemlist",
                provider_event_id="act_bad",
                channel="email",
                event_type="teleported",
                occurred_at=None,
                metadata={},
            )
            return Parsed(events=[bad])
        return real_parse(provider, body, headers, fetched)

    monkeypatch.setattr(gateway.ingest, "parse_delivery", parse)
    good = [lemlist_delivery(f"act_{n}") for n in range(30)]
    bad = Delivery(
        provider="lemlist", received_at=datetime.now(UTC), body=b"BAD", headers={}, query={}
    )
    outcomes: list[Outcome] = await asyncio.gather(
        *(ingestor.ingest(d) for d in [*good[:15], bad, *good[15:]])
    )
    statuses = [o.status for o in outcomes]
    assert statuses.count("unmatched") == 30
    assert outcomes[15].status == "rejected"
    assert "refused" in (outcomes[15].cause or "")
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_events") == 30
    rejected = await clean_db.fetchrow(
        "SELECT body, status FROM webhook_deliveries WHERE body = 'BAD'"
    )
    assert rejected["status"] == "rejected"


async def test_full_queue_answers_unavailable_and_shutdown_refuses_what_is_left(
    settings: Settings, clean_db: Pool
) -> None:
    fetcher = ResultFetcher(settings)
    stalled = Ingestor(clean_db, settings, fetcher, writers=0, queue_max=2)
    await stalled.start()
    waiting = [asyncio.create_task(stalled.ingest(lemlist_delivery(f"act_{n}"))) for n in range(2)]
    await asyncio.sleep(0.05)
    with pytest.raises(Unavailable, match="queue full"):
        await stalled.ingest(lemlist_delivery("act_overflow"))
    await stalled.stop(timeout_s=0.1)
    for task in waiting:
        with pytest.raises(Unavailable, match="shutting down"):
            await task
    with pytest.raises(Unavailable):
        await stalled.ingest(lemlist_delivery("act_after_stop"))
    await fetcher.aclose()
    assert await clean_db.fetchval("SELECT count(*) FROM webhook_deliveries") == 0


async def test_shutdown_finishes_what_is_queued(settings: Settings, clean_db: Pool) -> None:
    fetcher = ResultFetcher(settings)
    ingestor = Ingestor(clean_db, settings, fetcher, writers=1, batch_max=8)
    await ingestor.start()
    tasks = [asyncio.create_task(ingestor.ingest(lemlist_delivery(f"act_{n}"))) for n in range(40)]
    await asyncio.sleep(0)  # all queued
    await ingestor.stop()
    outcomes = await asyncio.gather(*tasks)
    assert {o.status for o in outcomes} == {"unmatched"}
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_events") == 40
    await fetcher.aclose()


async def test_pool_exhaustion_is_a_fast_503(settings: Settings, database_url: str) -> None:
    """Every connection busy: callers get Unavailable after acquire_timeout_s, not a hang."""
    tight = msgspec.structs.replace(settings, pool_max_size=1, acquire_timeout_s=0.2)
    pool = await create_pool(tight, database_url)
    try:
        async with connection(pool, tight):
            started = time.monotonic()
            with pytest.raises(Unavailable, match="pool exhausted"):
                async with connection(pool, tight):
                    pass
            assert time.monotonic() - started < 1.0
        async with connection(pool, tight) as conn:  # free again: served
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await pool.close()

"""Reprocess: stored raw deliveries normalized again, idempotently, on real PostgreSQL.

The PhantomBuster API is faked with respx; everything else is real: the
captures are replayed into the database, mappings are added afterwards, and
counters are held against a recount from scratch.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx

from gateway.db.deliveries import DeliveryFilter
from gateway.db.pool import Pool
from gateway.fetch import ResultFetcher
from gateway.ops import capture
from gateway.ops.progress import Progress
from gateway.ops.replay import replay_direct
from gateway.ops.reprocess import Report, Reprocessor
from gateway.secrets import WebhookSecrets
from gateway.settings import Settings
from providers.vocabulary import PROVIDERS
from tests.conftest import FIXTURES, PB_API, SECRETS, fixture_body
from tests.database import make_instance
from tests.replaying import (
    CAPTURE_FILES,
    MAPPINGS,
    add_instance,
    everything,
    quiet,
    recounted,
    stored_counters,
)

ALL = DeliveryFilter(providers=PROVIDERS)
MESSAGE_SENDER = "1287734409916652"


@pytest.fixture
async def fetcher(settings: Settings) -> AsyncIterator[ResultFetcher]:
    result_fetcher = ResultFetcher(settings)
    yield result_fetcher
    await result_fetcher.aclose()


async def replay_captures(settings: Settings) -> None:
    assert settings.database_url is not None
    progress, tally, _ = quiet()
    await replay_direct(
        capture.read(CAPTURE_FILES),
        settings,
        settings.database_url,
        WebhookSecrets(SECRETS),
        progress=progress,
        tally=tally,
    )
    assert tally.total == 34 and tally.errors == 0


async def reprocess(
    pool: Pool,
    settings: Settings,
    fetcher: ResultFetcher,
    where: DeliveryFilter = ALL,
    *,
    dry_run: bool = False,
    batch_size: int = 5,
) -> Report:
    reprocessor = Reprocessor(pool, settings, fetcher, batch_size=batch_size, dry_run=dry_run)
    return await reprocessor.run(where, Progress("t", None, stream=io.StringIO()))


async def statuses(pool: Pool) -> dict[str, int]:
    rows = await pool.fetch("SELECT status, count(*) FROM webhook_deliveries GROUP BY 1")
    return {r["status"]: r["count"] for r in rows}


async def unattached(pool: Pool) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM campaign_events WHERE enrollment_id IS NULL"
    )
    return count


async def test_reprocess_attaches_unmatched_events_once_their_mapping_exists(
    clean_db: Pool, settings: Settings, fetcher: ResultFetcher
) -> None:
    await add_instance(clean_db, "lemlist Q1", MAPPINGS["lemlist Q1"])
    await replay_captures(settings)
    assert await unattached(clean_db) == 20  # 9 Postmark events, 11 PhantomBuster rows
    before = await statuses(clean_db)
    events = await clean_db.fetchval("SELECT count(*) FROM campaign_events")

    # The mappings fixed after the fact: Postmark step 2 and the message sender.
    await add_instance(clean_db, "postmark step 2", MAPPINGS["postmark step 2"])
    await add_instance(clean_db, "message sender", {"phantombuster_agent_ids": [MESSAGE_SENDER]})
    report = await reprocess(clean_db, settings, fetcher)

    assert report.error is None and report.examined == 34
    # Delivery, Open, Click and SubscriptionChange of step 2; three sender rows.
    assert report.attached == 7 and report.new_events == 0
    assert report.transitions == {("unmatched", "processed"): 5}
    assert report.updated == 5
    assert await unattached(clean_db) == 13
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_events") == events
    after = await statuses(clean_db)
    assert after == before | {
        "unmatched": before["unmatched"] - 5,
        "processed": before["processed"] + 5,
    }
    # The redelivered Postmark open stays a duplicate: it wrote nothing itself.
    assert after["duplicate"] == 2
    counters = await stored_counters(clean_db)
    assert counters == await recounted(clean_db)
    assert ("postmark step 2", 2, 0, 1, 1, 0) in counters
    assert ("message sender", 3, 0, 0, 0, 0) in counters

    # A second run finds nothing to do and touches no row.
    state = await everything(clean_db)
    again = await reprocess(clean_db, settings, fetcher, batch_size=100)
    assert (again.examined, again.updated, again.attached, again.new_events) == (34, 0, 0, 0)
    assert await everything(clean_db) == state


async def test_dry_run_reports_the_real_run_and_changes_nothing(
    clean_db: Pool, settings: Settings, fetcher: ResultFetcher
) -> None:
    await replay_captures(settings)
    for name, config in MAPPINGS.items():
        await add_instance(clean_db, name, config)
    state = await everything(clean_db)

    dry = await reprocess(clean_db, settings, fetcher, dry_run=True, batch_size=100)
    assert await everything(clean_db) == state
    assert dry.attached > 0 and dry.transitions

    real = await reprocess(clean_db, settings, fetcher, batch_size=100)
    assert (real.attached, real.new_events, real.updated, real.transitions) == (
        dry.attached,
        dry.new_events,
        dry.updated,
        dry.transitions,
    )
    assert await stored_counters(clean_db) == await recounted(clean_db)
    rendered = dry.render(dry_run=True, seconds=0.1)
    assert rendered.startswith("dry run: 34 deliveries examined") and "nothing changed" in rendered
    assert f"attached events      {dry.attached:>7}" in rendered
    assert "unmatched -> processed" in rendered


async def insert_delivery(pool: Pool, provider: str, body: bytes, status: str, **extra: Any) -> Any:
    columns = {
        "provider": provider,
        "received_at": datetime(2025, 3, 11, 10, 8, tzinfo=UTC),
        "body": body,
        "body_size": len(body),
        "status": status,
        **extra,
    }
    names = ", ".join(columns)
    values = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
    return await pool.fetchval(
        f"INSERT INTO webhook_deliveries ({names}) VALUES ({values}) RETURNING id",
        *columns.values(),
    )


async def test_a_pending_phantombuster_delivery_is_fetched_and_normalized(
    clean_db: Pool, settings: Settings, fetcher: ResultFetcher
) -> None:
    await add_instance(clean_db, "auto connect", MAPPINGS["auto connect"])
    delivery = await insert_delivery(
        clean_db,
        "phantombuster",
        fixture_body("phantombuster", "result_missing.json"),
        "pending",
        cause="fetching from api.phantombuster.test failed after 3 attempts: HTTP 503",
    )
    api_answer = (FIXTURES / "phantombuster-api" / "fetch_result_object_response.json").read_bytes()
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get(f"{PB_API}/containers/fetch-result-object").mock(
            return_value=httpx.Response(200, content=api_answer)
        )
        report = await reprocess(clean_db, settings, fetcher)
    assert route.calls.last.request.url.params["id"] == "5590318264520019"
    assert report.transitions == {("pending", "processed"): 1} and report.new_events == 3
    row = await clean_db.fetchrow("SELECT * FROM webhook_deliveries WHERE id = $1", delivery)
    assert (row["status"], row["cause"], row["events_written"]) == ("processed", None, 3)
    assert bytes(row["fetched_body"]) == api_answer
    assert row["fetched_from"] == f"{PB_API}/containers/fetch-result-object"
    assert (
        await clean_db.fetchval(
            "SELECT count(*) FROM campaign_events"
            " WHERE delivery_id = $1 AND enrollment_id IS NOT NULL",
            delivery,
        )
        == 3
    )

    # Stored now: a second run uses the stored result and calls nobody.
    with respx.mock(assert_all_called=False) as mock:
        again = await reprocess(clean_db, settings, fetcher)
        assert not mock.calls
    assert again.updated == 0


async def test_a_pending_delivery_whose_fetch_fails_again_stays_pending(
    clean_db: Pool, settings: Settings, fetcher: ResultFetcher
) -> None:
    body = fixture_body("phantombuster", "result_missing.json")
    await insert_delivery(clean_db, "phantombuster", body, "pending", cause="old cause")
    with respx.mock(assert_all_called=True) as mock:
        mock.get(f"{PB_API}/containers/fetch-result-object").mock(return_value=httpx.Response(404))
        report = await reprocess(clean_db, settings, fetcher)
    assert report.updated == 1 and not report.transitions
    row = await clean_db.fetchrow("SELECT status, cause FROM webhook_deliveries")
    assert row["status"] == "pending" and "HTTP 404" in row["cause"]
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_events") == 0


async def test_a_delivery_the_gateway_failed_on_is_normalized(
    clean_db: Pool, settings: Settings, fetcher: ResultFetcher
) -> None:
    instance = await add_instance(clean_db, "lemlist Q1", MAPPINGS["lemlist Q1"])
    delivery = await insert_delivery(
        clean_db,
        "lemlist",
        fixture_body("lemlist", "emailsOpened.json"),
        "failed",
        cause="gateway error: KeyError",
    )
    report = await reprocess(clean_db, settings, fetcher)
    assert report.transitions == {("failed", "processed"): 1} and report.new_events == 1
    row = await clean_db.fetchrow("SELECT * FROM webhook_deliveries WHERE id = $1", delivery)
    assert (row["status"], row["cause"], row["events_written"], row["duplicates"]) == (
        "processed",
        None,
        1,
        0,
    )
    event = await clean_db.fetchrow("SELECT * FROM campaign_events")
    assert event["delivery_id"] == delivery and event["instance_id"] == instance
    assert event["event_type"] == "opened" and event["enrollment_id"] is not None
    total_opened = await clean_db.fetchval(
        "SELECT total_opened FROM campaign_instances WHERE id = $1", instance
    )
    assert total_opened == 1
    assert await stored_counters(clean_db) == await recounted(clean_db)


async def test_an_improved_parser_adds_the_events_it_now_finds(
    clean_db: Pool, settings: Settings, fetcher: ResultFetcher
) -> None:
    await add_instance(clean_db, "auto connect", MAPPINGS["auto connect"])
    await replay_captures(settings)
    run = await clean_db.fetchval(
        "SELECT id FROM webhook_deliveries WHERE provider = 'phantombuster' AND events_written = 3"
        " AND status = 'processed'"
    )
    # As an older parser left it: one of the run's three profile rows.
    await clean_db.execute(
        "DELETE FROM campaign_events"
        " WHERE delivery_id = $1 AND provider_event_id NOT LIKE '%error%'",
        run,
    )
    await clean_db.execute("UPDATE webhook_deliveries SET events_written = 1 WHERE id = $1", run)

    report = await reprocess(
        clean_db, settings, fetcher, DeliveryFilter(providers=("phantombuster",))
    )
    assert report.new_events == 2 and report.updated == 1 and not report.transitions
    row = await clean_db.fetchrow(
        "SELECT status, events_written, duplicates FROM webhook_deliveries WHERE id = $1", run
    )
    assert tuple(row) == ("processed", 3, 0)
    assert (
        await clean_db.fetchval("SELECT count(*) FROM campaign_events WHERE delivery_id = $1", run)
        == 3
    )
    assert await stored_counters(clean_db) == await recounted(clean_db)


async def test_filters_select_what_is_reprocessed(
    clean_db: Pool, settings: Settings, fetcher: ResultFetcher
) -> None:
    await replay_captures(settings)
    for name, config in MAPPINGS.items():
        await add_instance(clean_db, name, config)
    postmark_only = await reprocess(
        clean_db, settings, fetcher, DeliveryFilter(providers=("postmark",))
    )
    assert postmark_only.examined == 13 and postmark_only.attached == 4
    assert (
        await clean_db.fetchval(
            "SELECT count(*) FROM webhook_deliveries"
            " WHERE provider = 'lemlist' AND status = 'unmatched'"
        )
        == 11
    )

    # Only the unmatched deliveries received on 10 March: six lemlist ones, and
    # three Postmark ones of step 1, which no instance maps and stay unmatched.
    march_10 = DeliveryFilter(
        providers=PROVIDERS,
        statuses=("unmatched",),
        since=datetime(2025, 3, 10, tzinfo=UTC),
        until=datetime(2025, 3, 11, tzinfo=UTC),
    )
    counted = await Reprocessor(clean_db, settings, fetcher).count(march_10)
    report = await reprocess(clean_db, settings, fetcher, march_10)
    assert report.examined == counted == 9
    assert report.transitions == {("unmatched", "processed"): 6}
    left = await clean_db.fetch(
        "SELECT provider, count(*) FILTER (WHERE received_at < '2025-03-11') AS early,"
        " count(*) AS total FROM webhook_deliveries WHERE status = 'unmatched' GROUP BY 1"
    )
    # Later lemlist deliveries and PhantomBuster runs are left for another run.
    assert sorted(tuple(r) for r in left) == [
        ("lemlist", 0, 5),
        ("phantombuster", 0, 4),
        ("postmark", 3, 5),
    ]


async def test_a_truncated_oversized_body_is_left_alone(
    clean_db: Pool, settings: Settings, fetcher: ResultFetcher
) -> None:
    prefix = fixture_body("lemlist", "emailsOpened.json")
    delivery = await insert_delivery(
        clean_db,
        "lemlist",
        prefix,
        "rejected",
        body_size=2 * 1024 * 1024,
        cause="body of 2097152+ bytes exceeds GATEWAY_MAX_BODY_BYTES=1048576",
    )
    state = await everything(clean_db)
    report = await reprocess(clean_db, settings, fetcher)
    assert report.examined == 1 and report.updated == 0
    assert await everything(clean_db) == state
    assert (
        await clean_db.fetchval("SELECT status FROM webhook_deliveries WHERE id = $1", delivery)
        == "rejected"
    )


async def test_a_delivery_stored_with_a_masked_secret_reprocesses(
    client: Any, clean_db: Pool, settings: Settings, fetcher: ResultFetcher
) -> None:
    """lemlist echoes its hook secret in the body: the stored, masked body is shorter
    than what came, and must still be re-parsed (not taken for an oversized prefix)."""
    secret = SECRETS["lemlist"][0]
    body = fixture_body("lemlist", "emailsSent.json").replace(
        b'"campaignId"', f'"secret": "{secret}", "campaignId"'.encode(), 1
    )
    answer = await client.post("/webhooks/lemlist", params={"token": secret}, content=body)
    assert answer.json()["status"] == "unmatched"
    stored = await clean_db.fetchrow("SELECT body, body_size FROM webhook_deliveries")
    assert secret.encode() not in bytes(stored["body"])
    assert stored["body_size"] == len(stored["body"]) < len(body)
    await make_instance(clean_db, {"lemlist_campaign_id": "cam_R7vK2mXq9PdL4sWtA"})
    report = await reprocess(clean_db, settings, fetcher)
    assert (report.examined, report.attached, report.new_events) == (1, 1, 0)
    assert await statuses(clean_db) == {"processed": 1}

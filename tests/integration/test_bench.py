"""The benchmark's own checks (bench/): they must catch what they claim to catch.

`bench/run` reports a run as verified only when these checks pass, so each is
tested here against rows the gateway really wrote, then against the same rows
broken on purpose. The no-database reference app is checked to do its share
of the work (token, decode, answer).
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
from litestar.testing import TestClient

from gateway.db.pool import Pool
from tests.conftest import fixture_body
from tests.database import make_instance, post_webhook

BENCH = Path(__file__).resolve().parents[2] / "bench"


def bench_module(name: str) -> ModuleType:
    """A module of bench/ (scripts, not a package), loaded by path."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


verify = bench_module("verify")
nodb_app = bench_module("nodb_app")

DANA = "dana.whitfield@northwind-example.com"


async def ingest_two_leads(client: Any, pool: Pool) -> str:
    """Dana (sent, opened) and Okafor (bounced) in one lemlist campaign, through the gateway."""
    instance = await make_instance(pool, {"lemlist_campaign_id": "cam_R7vK2mXq9PdL4sWtA"})
    for name in ("emailsSent.json", "emailsOpened.json", "emailsBounced.json"):
        response = await post_webhook(client, "lemlist", fixture_body("lemlist", name))
        assert response.status_code == 200, response.text
    return str(instance)


async def test_identity_check_passes_on_ingested_rows_and_catches_a_split_person(
    client: Any, clean_db: Pool, database_url: str
) -> None:
    since = datetime.now(UTC) - timedelta(minutes=1)
    instance = await ingest_two_leads(client, clean_db)

    ok = verify.verify_identity(database_url, instance, since)
    assert ok.problems == []
    assert ok.facts["distinct leads"] == 2

    # Dana's open moves to a second enrollment of someone else: one person, two enrollments.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "WITH other AS (INSERT INTO campaign_enrollments (instance_id, contact_email)"
            "  VALUES (%s, 'someone.else@example.com') RETURNING id)"
            " UPDATE campaign_events SET enrollment_id = (SELECT id FROM other)"
            " WHERE event_type = 'opened'",
            (instance,),
        )
    broken = verify.verify_identity(database_url, instance, since)
    assert broken.problems == [
        "3 enrollments for 2 distinct leads",
        "1 leads with events on more than one enrollment",
        "1 events attached to another person's enrollment",
    ]


async def test_counter_check_passes_on_ingested_rows_and_catches_a_wrong_counter(
    client: Any, clean_db: Pool, database_url: str
) -> None:
    instance = await ingest_two_leads(client, clean_db)
    with psycopg.connect(database_url) as conn:
        assert verify.counter_mismatches(conn, [instance]) == {}
        assert verify.derived_counters(conn, [instance]) == {instance: [2, 1, 1, 0, 0]}
        conn.execute(
            "UPDATE campaign_instances SET total_opened = total_opened + 1 WHERE id = %s",
            (instance,),
        )
        assert verify.counter_mismatches(conn, [instance]) == {instance: "opened 2 (want 1)"}


async def test_phantombuster_state_counts_the_agents_events_and_enrollments(
    client: Any, clean_db: Pool, database_url: str
) -> None:
    instance = await make_instance(clean_db, {"phantombuster_agent_id": "7318204659127734"})
    body = fixture_body("phantombuster", "linkedin_auto_connect_finished.json")
    before = verify.pb_state(database_url, str(instance), "7318204659127734")
    response = await post_webhook(client, "phantombuster", body)
    after = verify.pb_state(database_url, str(instance), "7318204659127734")
    rows = response.json()["events"]
    assert rows > 0
    assert before == verify.PbState(0, 0, 0, 0)
    assert after == verify.PbState(rows, rows, rows, rows)
    assert verify.verify_pb_run(before, after, rows, 200, response.json()).problems == []
    # The same run again: all duplicates, and the state is unchanged.
    again = await post_webhook(client, "phantombuster", body)
    check = verify.verify_pb_run(after, after, rows, 200, again.json())
    assert check.problems == []
    assert check.facts["new events"] == 0


def test_phantombuster_verdicts_on_wrong_answers() -> None:
    state = verify.PbState
    empty, full = state(0, 0, 0, 0), state(100, 100, 100, 100)
    answer = {"status": "processed", "events": 100, "duplicates": 0}
    assert verify.verify_pb_run(empty, full, 100, 200, answer).problems == []
    # An answer that claims duplicates the database did not hold.
    lying = {"status": "processed", "events": 90, "duplicates": 10}
    assert verify.verify_pb_run(empty, full, 100, 200, lying).problems
    # A row lost: 99 events for 100 rows.
    assert verify.verify_pb_run(empty, state(99, 99, 99, 99), 100, 200, answer).problems
    # 503 is allowed when nothing of the run was stored, never when part of it was.
    refused = {"status": 503}
    assert verify.verify_pb_run(empty, empty, 100, 503, refused).problems == []
    assert verify.verify_pb_run(empty, state(5, 5, 5, 5), 100, 503, refused).problems
    assert verify.verify_pb_run(empty, empty, 100, 500, refused).problems


def test_nodb_reference_checks_the_token_decodes_and_answers(monkeypatch: Any) -> None:
    monkeypatch.setenv("BENCH_SECRET_LEMLIST", "bench-secret")
    body = fixture_body("lemlist", "emailsOpened.json")
    with TestClient(app=nodb_app.create_app()) as client:
        wrong = client.post("/webhooks/lemlist", params={"token": "nope"}, content=body)
        bad = client.post("/webhooks/lemlist", params={"token": "bench-secret"}, content=b"{")
        good = client.post("/webhooks/lemlist", params={"token": "bench-secret"}, content=body)
        unknown = client.post("/webhooks/other", params={"token": "bench-secret"}, content=body)
    assert (wrong.status_code, bad.status_code, unknown.status_code) == (401, 400, 404)
    assert good.status_code == 200
    assert good.json() | {"delivery_id": "-"} == {
        "delivery_id": "-",
        "status": "processed",
        "events": 1,
        "duplicates": 0,
    }

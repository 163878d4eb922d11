"""PhantomBuster runs: rows become events, fetched results, cumulative results, failures.

Outbound calls to the PhantomBuster API and result hosts are faked with respx;
the database is real.
"""

from __future__ import annotations

import json

import httpx
import msgspec
import respx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.db.pool import Pool
from gateway.fetch import ResultFetcher
from gateway.settings import Settings
from tests.conftest import PB_API, fixture_body, make_enrollment, make_instance, post_webhook

Client = AsyncTestClient[Litestar]
AGENT = "7318204659127734"


def run_body(**changes: object) -> bytes:
    body = json.loads(fixture_body("phantombuster", "linkedin_auto_connect_finished.json"))
    body.update(changes)
    return json.dumps(body).encode()


def rows() -> list[dict[str, object]]:
    parsed: list[dict[str, object]] = json.loads(
        fixture_body("phantombuster-api", "linkedin_auto_connect_result_object.parsed.json")
    )
    return parsed


async def test_run_rows_become_events_and_enrollments(client: Client, clean_db: Pool) -> None:
    instance = await make_instance(clean_db, {"phantombuster_agent_ids": ["1", int(AGENT)]})
    # Dana is enrolled already, with her URL written differently.
    await make_enrollment(
        clean_db, instance, linkedin_url="http://LinkedIn.com/in/dana-whitfield-example?trk=abc"
    )
    response = await post_webhook(client, "phantombuster", run_body())
    assert response.status_code == 200, response.text
    assert response.json() | {"delivery_id": None} == {
        "delivery_id": None,
        "status": "processed",
        "events": 3,
        "duplicates": 0,
    }
    events = await clean_db.fetch(
        "SELECT e.event_type, e.metadata, n.linkedin_key FROM campaign_events e"
        " JOIN campaign_enrollments n ON n.id = e.enrollment_id ORDER BY n.linkedin_key"
    )
    assert [(e["linkedin_key"], e["event_type"]) for e in events] == [
        ("linkedin.com/in/dana-whitfield-example", "connection_requested"),
        ("linkedin.com/in/marcus-okafor-example", "connection_requested"),
        ("linkedin.com/in/priya-natarajan-example", "failed"),
    ]
    assert events[2]["metadata"]["error"] == "Invitation already sent"
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_enrollments") == 3
    total = await clean_db.fetchval("SELECT total_enrolled FROM campaign_instances")
    assert total == 3


async def test_cumulative_result_in_a_later_run_adds_only_new_rows(
    client: Client, clean_db: Pool
) -> None:
    await make_instance(clean_db, {"phantombuster_agent_id": AGENT})
    await post_webhook(client, "phantombuster", run_body())
    later = [
        *rows(),
        {
            "baseUrl": "https://www.linkedin.com/in/new-person-example/",
            "profileUrl": "https://www.linkedin.com/in/new-person-example/",
            "timestamp": "2025-03-12T10:00:00.000Z",
        },
    ]
    response = await post_webhook(
        client,
        "phantombuster",
        run_body(containerId="5590318264499999", resultObject=json.dumps(later)),
    )
    assert response.json()["events"] == 1
    assert response.json()["duplicates"] == 3
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_events") == 4


async def test_missing_result_object_is_fetched_from_the_api(
    client: Client, clean_db: Pool
) -> None:
    await make_instance(clean_db, {"phantombuster_agent_id": AGENT})
    api_response = fixture_body("phantombuster-api", "fetch_result_object_response.json")
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get(f"{PB_API}/containers/fetch-result-object").mock(
            side_effect=[httpx.Response(502), httpx.Response(200, content=api_response)]
        )
        response = await post_webhook(client, "phantombuster", run_body(resultObject=None))
    assert response.json()["status"] == "processed", response.text
    assert response.json()["events"] == 3
    request = route.calls.last.request
    assert request.url.params["id"] == "5590318264471029"
    assert request.headers["x-phantombuster-key"] == "pb-api-key"
    stored = await clean_db.fetchrow("SELECT fetched_body, fetched_from FROM webhook_deliveries")
    assert bytes(stored["fetched_body"]) == api_response
    assert "pb-api-key" not in stored["fetched_from"]


async def test_failed_fetch_keeps_the_delivery_pending(client: Client, clean_db: Pool) -> None:
    with respx.mock(assert_all_called=True) as mock:
        mock.get(f"{PB_API}/containers/fetch-result-object").mock(return_value=httpx.Response(503))
        response = await post_webhook(client, "phantombuster", run_body(resultObject=None))
    assert response.status_code == 200
    assert response.json()["status"] == "pending"
    stored = await clean_db.fetchrow("SELECT status, cause FROM webhook_deliveries")
    assert stored["status"] == "pending" and "503" in stored["cause"]
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_events") == 0


async def test_result_file_is_downloaded_only_from_allowed_hosts(
    client: Client, clean_db: Pool
) -> None:
    allowed = "https://phantombuster.s3.amazonaws.com/org/agent/result.json"
    with respx.mock(assert_all_called=True) as mock:
        mock.get(allowed).mock(return_value=httpx.Response(200, json=rows()))
        response = await post_webhook(
            client,
            "phantombuster",
            run_body(resultObject=json.dumps({"jsonUrl": allowed, "csvUrl": "x"})),
        )
    assert response.json()["events"] == 3

    with respx.mock(assert_all_called=False) as mock:
        evil = mock.get(url__regex=r"http://169\.254\.169\.254/.*")
        api = mock.get(f"{PB_API}/containers/fetch-result-object").mock(
            return_value=httpx.Response(200, json={"resultObject": None})
        )
        response = await post_webhook(
            client,
            "phantombuster",
            run_body(
                containerId="1",
                resultObject=json.dumps({"jsonUrl": "http://169.254.169.254/latest/meta-data"}),
            ),
        )
    assert response.status_code == 200
    assert not evil.called
    assert api.called  # falls back to the API, never to the payload's URL


async def test_failed_run_is_recorded_without_events(client: Client, clean_db: Pool) -> None:
    response = await post_webhook(
        client, "phantombuster", fixture_body("phantombuster", "run_failed.json")
    )
    assert response.json()["status"] == "ignored"
    stored = await clean_db.fetchrow("SELECT status, cause FROM webhook_deliveries")
    assert stored["status"] == "ignored" and "exitCode" in stored["cause"]
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_events") == 0


async def test_api_answer_pointing_to_a_result_file_is_followed_once(
    client: Client, clean_db: Pool
) -> None:
    result_file = "https://phantombuster.s3.amazonaws.com/org/agent/result.json"
    with respx.mock(assert_all_called=True) as mock:
        mock.get(f"{PB_API}/containers/fetch-result-object").mock(
            return_value=httpx.Response(
                200, json={"resultObject": json.dumps({"jsonUrl": result_file, "csvUrl": "x"})}
            )
        )
        mock.get(result_file).mock(return_value=httpx.Response(200, json=rows()))
        response = await post_webhook(client, "phantombuster", run_body(resultObject=None))
    assert response.json()["events"] == 3
    stored = await clean_db.fetchrow("SELECT fetched_from FROM webhook_deliveries")
    assert stored["fetched_from"] == result_file


async def test_oversized_or_slow_results_leave_the_delivery_pending(
    settings: Settings, clean_db: Pool
) -> None:
    small = msgspec.structs.replace(settings, phantombuster_max_result_bytes=1000)
    async with AsyncTestClient(app=create_app(small, configure_logs=False)) as client:
        with respx.mock(assert_all_called=True) as mock:
            route = mock.get(f"{PB_API}/containers/fetch-result-object")
            route.mock(return_value=httpx.Response(200, content=b"[" + b" " * 5000 + b"]"))
            too_big = await post_webhook(client, "phantombuster", run_body(resultObject=None))
            route.mock(side_effect=httpx.ReadTimeout("slow"))
            too_slow = await post_webhook(
                client, "phantombuster", run_body(resultObject=None, containerId="2")
            )
            assert route.call_count == 1 + ResultFetcher.attempts  # bounded retries
    assert (too_big.status_code, too_big.json()["status"]) == (200, "pending")
    assert (too_slow.status_code, too_slow.json()["status"]) == (200, "pending")
    causes = sorted(
        r["cause"] for r in await clean_db.fetch("SELECT cause FROM webhook_deliveries")
    )
    assert "larger than 1000 bytes" in causes[1] or "larger than 1000 bytes" in causes[0]
    assert any("ReadTimeout" in c for c in causes)

"""PhantomBuster runs: rows become events, fetched results, cumulative results, failures.

Outbound calls to the PhantomBuster API and result hosts are faked with respx;
the database is real.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socketserver
import threading
import time

import httpx
import msgspec
import pytest
import respx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.db.pool import Pool
from gateway.fetch import ResultFetcher
from gateway.settings import Settings, SettingsError
from tests.conftest import PB_API, fixture_body
from tests.database import make_enrollment, make_instance, post_webhook

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


@pytest.mark.parametrize(
    "bad",
    ["\t", "\r\n", "\n", "\x01", " ", "\x7f", "é", "\u2028"],
    ids=["tab", "crlf", "lf", "x01", "space", "del", "non-ascii", "line-separator"],
)
async def test_result_url_with_unsafe_characters_stays_pending(
    client: Client, clean_db: Pool, bad: str
) -> None:
    """Issue 13: httpx refused such a URL on an allowed host with an error nobody caught:
    a 500, and the raw body lost."""
    url = f"https://phantombuster.s3.amazonaws.com/org/{bad}agent/result.json"
    # The autouse guard refuses any request: none may be made for this URL.
    alone = run_body(resultObject=json.dumps({"jsonUrl": url}), containerId=None)
    response = await post_webhook(client, "phantombuster", alone)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "pending"
    stored = await clean_db.fetchrow("SELECT status, cause, body FROM webhook_deliveries")
    assert stored["status"] == "pending"
    assert "white space, control or non-ASCII" in stored["cause"]
    assert bytes(stored["body"]) == alone

    # With a container id, the API is asked instead, as for a host that is not allowed.
    with respx.mock(assert_all_called=True) as mock:
        mock.get(f"{PB_API}/containers/fetch-result-object").respond(
            200, content=fixture_body("phantombuster-api", "fetch_result_object_response.json")
        )
        fallback = await post_webhook(
            client, "phantombuster", run_body(resultObject=json.dumps({"jsonUrl": url}))
        )
    assert fallback.json()["events"] == 3, fallback.text


@pytest.mark.parametrize(
    "url",
    [
        "https://[phantombuster.s3.amazonaws.com/x.json",
        "https://phantombuster.s3.amazonaws.com:99999/x",
    ],
)
async def test_malformed_result_url_stays_pending(client: Client, clean_db: Pool, url: str) -> None:
    body = run_body(resultObject=json.dumps({"jsonUrl": url}), containerId=None)
    response = await post_webhook(client, "phantombuster", body)
    assert (response.status_code, response.json()["status"]) == (200, "pending")
    assert await clean_db.fetchval("SELECT status FROM webhook_deliveries") == "pending"


async def test_a_dripping_result_host_is_cut_off_at_the_total_deadline(
    settings: Settings, clean_db: Pool
) -> None:
    """Issue 13: a host sending one byte every 2 s held a webhook for 40 s.

    A real local server drips one byte every 0.2 s: never slow enough for a
    per-phase (read) timeout, so only a total deadline ends the fetch.
    """
    dripped: list[int] = []

    class Drip(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            while self.rfile.readline() not in (b"\r\n", b""):
                pass
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
            self.wfile.write(b"Content-Length: 100000\r\n\r\n")
            with contextlib.suppress(OSError):
                for _ in range(100):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    dripped.append(1)
                    time.sleep(0.2)

    # Its own thread: the test client runs the app in a thread of its own too.
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Drip)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    quick = msgspec.structs.replace(
        settings, phantombuster_result_hosts=("127.0.0.1",), phantombuster_fetch_deadline_s=1.5
    )
    url = f"http://127.0.0.1:{port}/result.json"
    try:
        async with AsyncTestClient(app=create_app(quick, configure_logs=False)) as client:
            started = time.monotonic()
            response = await asyncio.wait_for(
                post_webhook(client, "phantombuster", run_body(resultObject={"jsonUrl": url})),
                timeout=15,
            )
            elapsed = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "pending"
    assert 1.4 < elapsed < 4, f"answered after {elapsed:.1f}s"
    assert len(dripped) >= 5  # the host did answer, slowly
    cause = await clean_db.fetchval("SELECT cause FROM webhook_deliveries")
    assert cause == "result fetch exceeded PHANTOMBUSTER_FETCH_DEADLINE_S=1.5"


def test_fetch_deadline_setting() -> None:
    assert Settings.from_env({}).phantombuster_fetch_deadline_s == 30
    env = {"PHANTOMBUSTER_FETCH_DEADLINE_S": "2.5"}
    assert Settings.from_env(env).phantombuster_fetch_deadline_s == 2.5
    for bad in ("0", "-1", "soon", "nan", "inf"):
        with pytest.raises(SettingsError, match="PHANTOMBUSTER_FETCH_DEADLINE_S"):
            Settings.from_env({"PHANTOMBUSTER_FETCH_DEADLINE_S": bad})

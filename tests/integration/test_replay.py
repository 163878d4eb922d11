"""Replay and export: captures through the pipeline both ways, into real PostgreSQL.

The captures under tests/fixtures/captures are the suite's fixtures in the
format production exports; the gateway's answer to every line is asserted, and
the database state after an HTTP replay must equal the one after a direct one.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import respx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.db.deliveries import DeliveryFilter
from gateway.db.pool import Pool
from gateway.ops import capture
from gateway.ops.capture import BadLine, Captured
from gateway.ops.export import export_deliveries
from gateway.ops.progress import Progress
from gateway.ops.replay import Tally, replay_direct, replay_http
from gateway.secrets import Redactor, WebhookSecrets
from gateway.settings import Settings
from providers.vocabulary import PROVIDERS
from tests.conftest import FIXTURES, PB_API, SECRETS, fixture_body
from tests.database import app_settings, post_webhook
from tests.replaying import (
    CAPTURE_FILES,
    add_mappings,
    connect,
    quiet,
    recounted,
    snapshot,
    stored_counters,
)

SECRET_STORE = WebhookSecrets(SECRETS)
#: Exports of what this module stores: no secret to mask in them.
NONE = Redactor(())

#: What the gateway answers to the captures' 34 lines, whichever way they travel.
EXPECTED_COUNTS = {
    "processed": 17,
    "duplicate": 2,
    "unmatched": 7,
    "ignored": 7,
    "pending": 0,
    "rejected": 1,
}


async def direct(url: str, tmp_path: Path, items: object, *, concurrency: int = 8) -> Tally:
    progress, tally, _ = quiet()
    return await replay_direct(
        items,  # type: ignore[arg-type]
        app_settings(url, tmp_path / "data"),
        url,
        SECRET_STORE,
        concurrency=concurrency,
        progress=progress,
        tally=tally,
    )


async def over_http(url: str, tmp_path: Path, items: object) -> Tally:
    progress, tally, _ = quiet()
    app = create_app(app_settings(url, tmp_path / "data"), configure_logs=False)
    async with AsyncTestClient(app=app) as client:
        return await replay_http(
            items,  # type: ignore[arg-type]
            str(client.base_url),
            SECRET_STORE,
            progress=progress,
            tally=tally,
            client=client,
        )


def by_time(lines: bytes) -> list[dict[str, object]]:
    return sorted(
        (json.loads(line) for line in lines.splitlines()), key=lambda d: str(d["received_at"])
    )


async def test_captures_replay_identically_over_http_and_direct(
    create_migrated_database: Callable[[], str], tmp_path: Path
) -> None:
    via_http, via_direct = create_migrated_database(), create_migrated_database()
    states = []
    for url in (via_http, via_direct):
        conn = await connect(url)
        await add_mappings(conn)
        await conn.close()
    http_tally = await over_http(via_http, tmp_path, capture.read(CAPTURE_FILES))
    direct_tally = await direct(via_direct, tmp_path, capture.read(CAPTURE_FILES))
    assert http_tally.counts == direct_tally.counts == EXPECTED_COUNTS
    assert http_tally.errors == direct_tally.errors == 0
    for url in (via_http, via_direct):
        conn = await connect(url)
        states.append(await snapshot(conn))
        assert await stored_counters(conn) == await recounted(conn)
        await conn.close()
    assert states[0] == states[1]
    events = states[0]["events"]
    assert len(events) == 31
    assert sum(1 for e in events if e[-2] is None) == 11  # unmatched: no instance
    # (instance, enrolled, sent, opened, clicked, replied)
    assert states[0]["counters"] == [
        ("auto connect", 3, 0, 0, 0, 0),
        ("lemlist Q1", 3, 1, 1, 1, 1),
        ("postmark step 2", 2, 0, 1, 1, 0),
    ]


async def test_replaying_twice_adds_nothing(
    create_migrated_database: Callable[[], str], tmp_path: Path
) -> None:
    url = create_migrated_database()
    conn = await connect(url)
    await add_mappings(conn)
    first = await direct(url, tmp_path, capture.read(CAPTURE_FILES))
    before = await snapshot(conn)
    rows = await conn.fetchval("SELECT count(*) FROM webhook_deliveries")

    again = await direct(url, tmp_path, capture.read(CAPTURE_FILES))
    assert again.counts == dict.fromkeys(EXPECTED_COUNTS, 0) | {"duplicate": 34}
    assert again.exit_code == 0 and first.exit_code == 1
    assert await snapshot(conn) == before
    assert await conn.fetchval("SELECT count(*) FROM webhook_deliveries") == rows == 34

    # Over HTTP the gateway records each request, as it would a provider's retry,
    # but no event, enrollment or counter moves.
    over = await over_http(url, tmp_path, capture.read(CAPTURE_FILES))
    assert over.counts["processed"] == over.counts["unmatched"] == 0
    assert over.counts["duplicate"] == 26 and over.counts["rejected"] == 1
    after = await snapshot(conn)
    assert {k: after[k] for k in ("events", "enrollments", "counters")} == {
        k: before[k] for k in ("events", "enrollments", "counters")
    }
    await conn.close()


async def test_export_then_replay_into_a_fresh_database_gives_the_same_state(
    create_migrated_database: Callable[[], str], tmp_path: Path
) -> None:
    source, target = create_migrated_database(), create_migrated_database()
    conns = [await connect(source), await connect(target)]
    for conn in conns:
        await add_mappings(conn)
    await direct(source, tmp_path, capture.read(CAPTURE_FILES))
    everything = DeliveryFilter(providers=PROVIDERS)
    exported = io.BytesIO()
    assert await export_deliveries(conns[0], everything, exported, redactor=NONE, page_size=7) == 34
    # The fixtures are exports themselves: the same deliveries come back out.
    assert by_time(exported.getvalue()) == by_time(b"".join(p.read_bytes() for p in CAPTURE_FILES))

    export_file = tmp_path / "export.jsonl"
    export_file.write_bytes(exported.getvalue())
    replayed = await direct(target, tmp_path, capture.read([export_file]))
    assert replayed.counts == EXPECTED_COUNTS
    assert await snapshot(conns[1]) == await snapshot(conns[0])
    again = io.BytesIO()
    await export_deliveries(conns[1], everything, again, redactor=NONE)
    assert again.getvalue() == exported.getvalue()
    for conn in conns:
        await conn.close()


async def test_export_filters_by_provider_status_and_time(
    create_migrated_database: Callable[[], str], tmp_path: Path
) -> None:
    url = create_migrated_database()
    conn = await connect(url)
    await direct(url, tmp_path, capture.read(CAPTURE_FILES))

    async def exported(where: DeliveryFilter) -> list[dict[str, object]]:
        out = io.BytesIO()
        await export_deliveries(conn, where, out, redactor=NONE, page_size=2)
        return [json.loads(line) for line in out.getvalue().splitlines()]

    only_rejected = await exported(DeliveryFilter(providers=PROVIDERS, statuses=("rejected",)))
    assert len(only_rejected) == 1
    assert set(only_rejected[0]["body"]) == {"base64"}  # type: ignore[arg-type]
    postmark = await exported(DeliveryFilter(providers=("postmark",)))
    assert len(postmark) == 13 and {line["provider"] for line in postmark} == {"postmark"}
    march_11 = await exported(
        DeliveryFilter(
            providers=PROVIDERS,
            since=datetime(2025, 3, 11, tzinfo=UTC),
            until=datetime(2025, 3, 12, tzinfo=UTC),
        )
    )
    times = [str(line["received_at"]) for line in march_11]
    assert times == sorted(times) and len(times) == 10
    assert all(t.startswith("2025-03-11T") for t in times)
    await conn.close()


async def test_a_fetched_phantombuster_result_travels_with_the_export(
    create_migrated_database: Callable[[], str], tmp_path: Path
) -> None:
    source, target = create_migrated_database(), create_migrated_database()
    body = fixture_body("phantombuster", "result_missing.json")
    api_answer = (FIXTURES / "phantombuster-api" / "fetch_result_object_response.json").read_bytes()
    line = capture.encode_line(
        provider="phantombuster",
        received_at=datetime(2025, 3, 11, 10, 8, tzinfo=UTC),
        headers={"content-type": "application/json"},
        query={},
        body=body,
    )
    with respx.mock(assert_all_called=True) as mock:
        mock.get(f"{PB_API}/containers/fetch-result-object").mock(
            return_value=httpx.Response(200, content=api_answer)
        )
        fetched_once = await direct(source, tmp_path, [capture.parse_line(line, "t:1")])
    assert fetched_once.counts["unmatched"] == 1
    conn = await connect(source)
    exported = io.BytesIO()
    await export_deliveries(conn, DeliveryFilter(providers=PROVIDERS), exported, redactor=NONE)
    await conn.close()
    assert b'"fetched":{"from":"https://api.phantombuster.test/' in exported.getvalue()

    export_file = tmp_path / "pb.jsonl"
    export_file.write_bytes(exported.getvalue())
    with respx.mock(assert_all_called=False) as mock:  # any call to the API would fail
        replayed = await direct(target, tmp_path, capture.read([export_file]))
        assert not mock.calls
    assert replayed.counts["unmatched"] == 1
    conns = [await connect(source), await connect(target)]
    assert await snapshot(conns[1]) == await snapshot(conns[0])
    assert await conns[1].fetchval("SELECT count(*) FROM campaign_events") == 3
    for conn in conns:
        await conn.close()


async def test_a_secret_in_a_capture_is_never_stored(
    create_migrated_database: Callable[[], str], tmp_path: Path
) -> None:
    url = create_migrated_database()
    line = json.dumps(
        {
            "provider": "postmark",
            "received_at": "2025-03-10T14:22:32Z",
            "headers": {
                "Authorization": "Basic cG9zdG1hcms6cG9zdG1hcmstc2VjcmV0",
                "X-Forwarded-Uri": "/webhooks/postmark?token=postmark-previous",
            },
            "query": {"token": "postmark-secret", "source": "capture"},
            "body": json.loads(fixture_body("postmark", "Delivery.json")),
        }
    ).encode()
    tally = await direct(url, tmp_path, [capture.parse_line(line, "t:1")])
    assert tally.counts["unmatched"] == 1
    conn = await connect(url)
    row = await conn.fetchrow("SELECT headers::text, query::text FROM webhook_deliveries")
    await conn.close()
    stored = row["headers"] + row["query"]
    assert "secret" not in stored and "postmark-previous" not in stored
    assert "capture" in stored and "[redacted]" in stored


async def test_body_directories_take_the_provider_from_their_name(
    create_migrated_database: Callable[[], str], tmp_path: Path
) -> None:
    url = create_migrated_database()
    tally = await direct(url, tmp_path, capture.read([FIXTURES / "lemlist"]))
    assert tally.errors == tally.invalid == 0
    assert tally.total == len(list((FIXTURES / "lemlist").glob("*.json")))
    assert tally.counts["unmatched"] > 0 and tally.counts["ignored"] > 0
    conn = await connect(url)
    received = await conn.fetchval("SELECT min(received_at) FROM webhook_deliveries")
    await conn.close()
    assert (datetime.now(UTC) - received).total_seconds() < 120  # stamped by the replay


async def test_an_oversized_body_is_rejected_as_the_edge_would(
    create_migrated_database: Callable[[], str], tmp_path: Path
) -> None:
    url = create_migrated_database()
    huge = json.dumps({"type": "emailsSent", "padding": "x" * 2_000_000}).encode()
    item = Captured(
        source="t:1", provider="lemlist", received_at=None, headers={}, query={}, body=huge
    )
    tally = await direct(url, tmp_path, [item])
    assert tally.counts["rejected"] == 1 and tally.exit_code == 1
    conn = await connect(url)
    row = await conn.fetchrow(
        "SELECT status, cause, body_size, length(body) AS kept FROM webhook_deliveries"
    )
    await conn.close()
    assert row["status"] == "rejected" and "GATEWAY_MAX_BODY_BYTES" in row["cause"]
    assert row["body_size"] == len(huge) and row["kept"] < len(huge)


def test_reading_reports_bad_lines_with_their_place(tmp_path: Path) -> None:
    good = capture.encode_line(
        provider="lemlist",
        received_at=datetime(2025, 3, 10, tzinfo=UTC),
        headers={},
        query={},
        body=b"\x00\xff not json",
    )
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        good
        + b"\n"
        + b"{not json\n"
        + b'{"provider": "mailchimp", "body": {}}\n'
        + b'{"provider": "lemlist", "body": {"base64": "%%%"}}\n'
        + b'{"provider": "lemlist"}\n'
        + b'{"provider": "postmark", "received_at": "2025-03-10T15:00:00", "body": [1]}\n'
    )
    bodies = tmp_path / "not-a-provider"
    bodies.mkdir()
    (bodies / "one.json").write_text("{}")
    items = list(capture.read([path, bodies, tmp_path / "missing.jsonl"]))
    assert [type(i).__name__ for i in items] == [
        "Captured",
        "BadLine",
        "BadLine",
        "BadLine",
        "BadLine",
        "Captured",
        "BadLine",
        "BadLine",
    ]
    first, last_good = items[0], items[5]
    assert isinstance(first, Captured) and first.body == b"\x00\xff not json"
    assert isinstance(last_good, Captured) and last_good.body == b"[1]"
    assert last_good.received_at == datetime(2025, 3, 10, 15, tzinfo=UTC)  # naive is UTC
    bad = [i for i in items if isinstance(i, BadLine)]
    assert [b.source for b in bad[:4]] == [f"{path}:{n}" for n in (3, 4, 5, 6)]
    assert "unknown provider 'mailchimp'" in bad[1].error
    assert "base64" in bad[2].error
    assert "--provider" in bad[4].error
    assert "cannot read" in bad[5].error
    assert capture.count([path]) == 6
    # The same directory with the provider named reads fine.
    named = list(capture.read([bodies], provider="lemlist"))
    assert isinstance(named[0], Captured) and named[0].provider == "lemlist"


async def test_http_replay_retries_what_a_provider_would_and_maps_answers() -> None:
    gateway = "http://gateway.test"
    body = fixture_body("lemlist", "emailsSent.json")

    def item(n: int, provider: str = "lemlist") -> Captured:
        return Captured(
            source=f"c:{n}",
            provider=provider,
            received_at=None,
            headers={"Content-Length": "9", "authorization": "[redacted]", "x-trace": "t"},
            query={"token": "old", "page": "2"},
            body=body,
        )

    with respx.mock(assert_all_called=True) as mock:
        lemlist = mock.post(f"{gateway}/webhooks/lemlist").mock(
            side_effect=[
                httpx.Response(503, headers={"retry-after": "0"}),
                httpx.ConnectError("refused"),
                httpx.Response(200, json={"status": "processed", "events": 1}),
                httpx.Response(400, json={"detail": "$.type: missing"}),
            ]
        )
        mock.post(f"{gateway}/webhooks/postmark").mock(return_value=httpx.Response(401))
        mock.post(f"{gateway}/webhooks/phantombuster").mock(return_value=httpx.Response(429))
        out = io.StringIO()
        tally = await replay_http(
            [item(1), item(2), item(3, "postmark"), item(4, "phantombuster")],
            gateway,
            SECRET_STORE,
            concurrency=1,
            progress=Progress("t", 4, stream=out),
            tally=Tally(out),
            backoff_s=0.001,
        )
    assert tally.counts["processed"] == 1 and tally.counts["rejected"] == 1
    assert tally.errors == 2 and tally.exit_code == 1
    request = lemlist.calls[0].request
    assert request.url.params["token"] == "lemlist-secret" and request.url.params["page"] == "2"
    assert request.headers["x-trace"] == "t" and "authorization" not in request.headers
    assert request.headers["content-length"] == str(len(body))
    assert request.headers["content-type"] == "application/json"
    report = out.getvalue()
    assert "c:2: rejected: HTTP 400: $.type: missing" in report
    assert "c:3: error: secret refused" in report
    assert "c:4: error: gave up after 5 attempts: HTTP 429" in report


def test_progress_redraws_one_line_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    now = [0.0]
    screen = Terminal()
    progress = Progress("replay", 4, stream=screen, clock=lambda: now[0])
    for _ in range(4):
        now[0] += 1.0
        progress.advance()
    progress.close()
    drawn = screen.getvalue()
    assert drawn.count("\r") == 5 and drawn.endswith("\n")
    assert "replay 4/4 (100%) 1/s" in drawn

    log = io.StringIO()
    quiet_run = Progress("replay", 4, stream=log, clock=lambda: now[0])
    quiet_run.advance()
    quiet_run.close()
    assert log.getvalue() == ""  # a short run off a terminal prints nothing


async def test_an_export_replayed_into_its_own_database_adds_nothing(
    client: AsyncTestClient[Litestar], clean_db: Pool, settings: Settings, tmp_path: Path
) -> None:
    # Received over HTTP pretty-printed; exported compact: the same delivery still.
    pretty = fixture_body("postmark", "Delivery.json")
    assert b"\n" in pretty
    assert (await post_webhook(client, "postmark", pretty)).status_code == 200
    exported = io.BytesIO()
    async with clean_db.acquire() as conn:
        await export_deliveries(conn, DeliveryFilter(providers=PROVIDERS), exported, redactor=NONE)
    assert b"\n" not in exported.getvalue().rstrip(b"\n")
    export_file = tmp_path / "own.jsonl"
    export_file.write_bytes(exported.getvalue())
    assert settings.database_url is not None
    progress, tally, _ = quiet()
    await replay_direct(
        capture.read([export_file]),
        settings,
        settings.database_url,
        SECRET_STORE,
        progress=progress,
        tally=tally,
    )
    assert tally.counts["duplicate"] == 1 and tally.total == 1
    assert await clean_db.fetchval("SELECT count(*) FROM webhook_deliveries") == 1

"""Hostile and broken input at the HTTP edge: never a 5xx, nothing authenticated lost."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import respx
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.db.pool import Pool
from gateway.logs import configure_logging
from gateway.settings import Settings
from tests.conftest import PB_API, SECRET_SETTINGS, SECRETS, fixture_body
from tests.database import post_webhook

Client = AsyncTestClient[Litestar]
PROVIDERS = sorted(SECRETS)


def deep(n: int) -> bytes:
    return b'{"a":' * n + b"1" + b"}" * n


HOSTILE: list[tuple[str, bytes]] = [
    ("invalid utf-8", b'{"_id": "\xff\xfe", "type": "emailsSent"}'),
    ("truncated", fixture_body("lemlist", "emailsSent.json")[:-40]),
    ("array", b'[{"type": "emailsSent"}]'),
    ("scalar", b"42"),
    ("null", b"null"),
    ("empty", b""),
    ("all nulls", json.dumps(dict.fromkeys(["_id", "type", "RecordType", "agentId"])).encode()),
    ("wrong types", b'{"_id": 1, "type": ["emailsSent"], "MessageID": {}, "agentId": true}'),
    (
        "huge numbers",
        b'{"_id": "x", "type": "emailsSent", "sequenceStep": 1e400, "ID": 10' + b"0" * 400 + b"}",
    ),
    ("deeply nested", deep(100_000)),
    ("duplicate keys", b'{"_id": "a", "_id": "b", "type": "emailsSent", "type": "emailsOpened"}'),
    ("long string", json.dumps({"_id": "x" * 900_000, "type": "emailsSent"}).encode()),
    (
        "nul characters",
        json.dumps(
            {
                "_id": "a\u0000b",
                "type": "emailsSent\u0000",
                "leadEmail": "\u0000@x",
                "RecordType": "Open\u0000",
            }
        ).encode(),
    ),
    (
        "sql and script",
        json.dumps(
            {
                "_id": "'; DROP TABLE campaign_events; --",
                "type": "emailsSent",
                "leadEmail": "<script>alert(1)</script>@x.io",
                "campaignId": "' OR 1=1 --",
                "RecordType": "Delivery",
                "MessageID": "'); DELETE FROM webhook_deliveries; --",
                "Recipient": "robert'); DROP TABLE students;--@x.io",
                "agentId": "1; SELECT pg_sleep(5)",
            }
        ).encode(),
    ),
    (
        "unicode",
        json.dumps(
            {
                "_id": "act_ünïcødé_✓",
                "type": "emailsSent",
                "leadEmail": "zoë.ñandú@exämple.com",
                "leadFirstName": "Zoë 🚀",
                "RecordType": "Delivery",
                "MessageID": "m-✓",
                "Recipient": "δοκιμή@παράδειγμα.δοκιμή",
                "agentId": "ä",
                "script": "Auto Connect 🚀",
            }
        ).encode(),
    ),
    (
        "timestamps out of range",
        json.dumps(
            {
                "_id": "t",
                "type": "emailsSent",
                "createdAt": "99999-01-01T00:00:00Z",
                "RecordType": "Delivery",
                "MessageID": "m",
                "Recipient": "a@b",
                "DeliveredAt": "0000-00-00",
            }
        ).encode(),
    ),
]


async def assert_stored_once(pool: Pool, body: bytes) -> Any:
    rows = await pool.fetch("SELECT status, cause, body FROM webhook_deliveries")
    assert len(rows) == 1
    assert bytes(rows[0]["body"]) == body
    if rows[0]["status"] == "rejected":
        assert rows[0]["cause"]
    return rows[0]


def basic(password: bytes, user: bytes = b"pm") -> bytes:
    return b"Basic " + base64.b64encode(user + b":" + password)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("auth", ["token", "basic"])
@pytest.mark.parametrize(("case", "body"), HOSTILE, ids=[case for case, _ in HOSTILE])
async def test_hostile_bodies_get_the_contracts_status(
    client: Client, clean_db: Pool, provider: str, auth: str, case: str, body: bytes
) -> None:
    secret = SECRETS[provider][0]
    response = await client.post(
        f"/webhooks/{provider}",
        params={"token": secret} if auth == "token" else None,
        headers={"authorization": basic(secret.encode())} if auth == "basic" else None,
        content=body,
    )
    assert response.status_code in (200, 400), (case, response.status_code, response.text)
    if response.status_code == 400:
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["field"]
    row = await assert_stored_once(clean_db, body)
    assert row["status"] == (
        "rejected" if response.status_code == 400 else response.json()["status"]
    )
    # Exactly the events the answer reports, in tables that are all still there.
    written = response.json()["events"] if response.status_code == 200 else 0
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_events") == written
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_instances") == 0


#: Credentials that are all wrong, in every encoding a client can send.
BAD_CREDENTIALS: list[tuple[str, dict[str, str], dict[str, bytes]]] = [
    ("nothing", {}, {}),
    ("empty token", {"token": ""}, {}),
    ("wrong token", {"token": "wrong"}, {}),
    ("secret prefix", {"token": "lemlist-secre"}, {}),
    ("secret with space", {"token": " lemlist-secret"}, {}),
    ("non-ASCII token", {"token": "sécret✓"}, {}),
    ("NUL in token", {"token": "lemlist-secret\x00"}, {}),
    ("Basic latin-1 byte", {}, {"authorization": b"Basic \xe9"}),
    ("Basic UTF-8 é", {}, {"authorization": "Basic é".encode()}),
    ("Basic 0xff bytes", {}, {"authorization": b"Basic \xff\xfe\xfd"}),
    ("Basic non-UTF-8 password", {}, {"authorization": basic(b"\xff\xfe")}),
    ("Basic non-UTF-8 user", {}, {"authorization": basic(b"x", user=b"\xe9")}),
    ("Basic without colon", {}, {"authorization": b"Basic " + base64.b64encode(b"nocolon")}),
    ("Basic empty password", {}, {"authorization": basic(b"")}),
    ("Basic not base64", {}, {"authorization": b"Basic !!!"}),
    ("Basic bad padding", {}, {"authorization": b"Basic YQ="}),
    ("Basic empty", {}, {"authorization": b"Basic"}),
    ("Basic spaces", {}, {"authorization": b"Basic     "}),
    ("Basic huge", {}, {"authorization": b"Basic " + b"QUFB" * 20_000}),
    ("Bearer", {}, {"authorization": b"Bearer lemlist-secret"}),
    ("scheme only", {}, {"authorization": b"lemlist-secret"}),
    ("unicode scheme", {}, {"authorization": "Bäsic x".encode()}),
    ("control bytes", {}, {"authorization": b"Basic \x01\x02\x7f"}),
    ("X-API-Key", {}, {"x-api-key": b"lemlist-secret"}),
]


@pytest.fixture(scope="module")
async def shared_client(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Client]:
    """One app for the many requests that must never reach the database."""
    app_settings = Settings(
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("data"),
        **SECRET_SETTINGS,
        api_keys=("test-api-key",),
        log_format="json",
    )
    async with AsyncTestClient(app=create_app(app_settings, configure_logs=False)) as client:
        yield client


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("case", "query", "headers"), BAD_CREDENTIALS, ids=[c for c, _, _ in BAD_CREDENTIALS]
)
async def test_bad_credentials_of_any_encoding_are_a_401(
    shared_client: Client,
    pool: Pool,
    provider: str,
    case: str,
    query: dict[str, str],
    headers: dict[str, bytes],
) -> None:
    stored = "SELECT count(*) FROM webhook_deliveries"
    before = await pool.fetchval(stored)
    response = await shared_client.post(
        f"/webhooks/{provider}",
        params=query,
        headers=headers,
        content=fixture_body("lemlist", "emailsSent.json"),
    )
    assert response.status_code == 401, (case, response.text)
    assert response.headers["www-authenticate"].startswith("Basic")
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await pool.fetchval(stored) == before


async def test_a_non_ascii_credential_logs_no_error(
    settings: Settings, clean_db: Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 13: `Basic \\xe9` answered 500 and logged a traceback per request."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("json")
    try:
        async with AsyncTestClient(app=create_app(settings, configure_logs=False)) as client:
            for value in (b"Basic \xe9", "Basic é".encode()):
                response = await client.post(
                    "/webhooks/postmark", headers={"authorization": value}, content=b"{}"
                )
                assert response.status_code == 401
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        structlog.reset_defaults()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    assert [line["event"] for line in lines if line["event"].startswith("webhook")] == [
        "webhook.unauthorized"
    ] * 2
    assert not [line for line in lines if line["level"] in ("error", "critical")]
    assert "Traceback" not in json.dumps(lines)


@pytest.mark.parametrize("announced", [2**31, 2**31 - 1, 2**63, 10**40, 1024 * 1024 + 1])
async def test_any_announced_size_over_the_limit_is_a_413_recorded_when_authenticated(
    client: Client, clean_db: Pool, announced: int
) -> None:
    """Issue 13: Content-Length 2147483648 overflowed body_size (int4): 503, nothing kept."""
    headers = {"content-length": str(announced), "content-type": "application/json"}
    refused = await client.post("/webhooks/lemlist", headers=headers, content=b"{}")
    assert refused.status_code == 413, refused.text  # unauthenticated: answered, not stored
    assert await clean_db.fetchval("SELECT count(*) FROM webhook_deliveries") == 0

    response = await client.post(
        "/webhooks/lemlist",
        params={"token": SECRETS["lemlist"][0]},
        headers=headers,
        content=b"{}",
    )
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    row = await clean_db.fetchrow("SELECT id, status, cause, body_size FROM webhook_deliveries")
    assert str(row["id"]) == response.json()["delivery_id"]
    assert row["status"] == "rejected"
    assert row["body_size"] == min(announced, 2**31 - 1)
    assert f"announced body of {announced} bytes" in row["cause"]
    assert "GATEWAY_MAX_BODY_BYTES_LEMLIST=1048576" in row["cause"]


@pytest.mark.parametrize(
    "content_type",
    [
        b"text/plain",
        b"application/x-www-form-urlencoded",
        b"multipart/form-data; boundary=x",
        b"",
        b"\xfc",
    ],
)
async def test_content_type_does_not_matter(
    client: Client, clean_db: Pool, content_type: bytes
) -> None:
    body = fixture_body("lemlist", "emailsSent.json")
    response = await client.post(
        "/webhooks/lemlist",
        params={"token": SECRETS["lemlist"][0]},
        content=body,
        headers={"content-type": content_type},
    )
    assert response.status_code == 200
    assert response.json()["events"] == 1


async def test_form_encoded_body_is_rejected_not_crashed(client: Client, clean_db: Pool) -> None:
    response = await client.post(
        "/webhooks/postmark",
        params={"token": SECRETS["postmark"][0]},
        data={"RecordType": "Delivery"},
    )
    assert response.status_code == 400
    await assert_stored_once(clean_db, b"RecordType=Delivery")


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    provider=st.sampled_from(PROVIDERS),
    body=st.binary(max_size=2048),
    content_type=st.binary(max_size=40).filter(lambda t: b"\n" not in t and b"\r" not in t),
    extra_query=st.dictionaries(
        st.text(min_size=1, max_size=10).filter(lambda k: k != "token"),
        st.text(max_size=20),
        max_size=3,
    ),
)
async def test_any_bytes_never_get_a_server_error(
    client: Client, provider: str, body: bytes, content_type: bytes, extra_query: dict[str, str]
) -> None:
    response = await client.post(
        f"/webhooks/{provider}",
        params={**extra_query, "token": SECRETS[provider][0]},
        content=body,
        headers={"content-type": content_type},
    )
    assert response.status_code in (200, 400), response.text


ALL_SECRETS = [secret for values in SECRETS.values() for secret in values]


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    provider=st.sampled_from(PROVIDERS),
    authorization=st.one_of(
        st.binary(max_size=80).filter(lambda v: b"\r" not in v and b"\n" not in v),
        st.builds(lambda raw: b"Basic " + base64.b64encode(raw), st.binary(max_size=40)),
        st.builds(
            lambda user, secret: basic(secret.encode(), user=user),
            st.binary(max_size=8),
            st.sampled_from(ALL_SECRETS),
        ),
    ),
    token=st.none() | st.text(max_size=30) | st.sampled_from(ALL_SECRETS),
)
async def test_any_credential_never_gets_a_server_error(
    client: Client, provider: str, authorization: bytes, token: str | None
) -> None:
    response = await client.post(
        f"/webhooks/{provider}",
        params={} if token is None else {"token": token},
        headers={"authorization": authorization},
        content=fixture_body("lemlist", "emailsSent.json"),
    )
    assert response.status_code in (200, 400, 401), response.text


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    case=st.sampled_from(
        [
            ("postmark", "Delivery.json"),
            ("postmark", "Bounce.json"),
            ("postmark", "Open.json"),
            ("lemlist", "emailsClicked.json"),
            ("lemlist", "linkedinInviteDone.json"),
            ("phantombuster", "linkedin_auto_connect_finished.json"),
        ]
    ),
    data=st.data(),
)
async def test_real_shapes_with_wrong_values_never_get_a_server_error(
    client: Client,
    case: tuple[str, str],
    data: st.DataObject,
    no_outside_requests: respx.Router,
) -> None:
    # A run without its result object makes the gateway ask PhantomBuster's API.
    no_outside_requests.route(host=urlsplit(PB_API).hostname).respond(404)
    provider, name = case
    body = json.loads(fixture_body(provider, name))
    for key in data.draw(st.lists(st.sampled_from(sorted(body)), max_size=3, unique=True)):
        body[key] = data.draw(JSON)
    response = await post_webhook(client, provider, json.dumps(body).encode())
    assert response.status_code in (200, 400), response.text

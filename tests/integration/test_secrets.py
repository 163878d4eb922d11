"""Secrets never leak: not in logs, stored deliveries or answers; no write without one."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.db.deliveries import DeliveryFilter
from gateway.db.pool import Pool
from gateway.delivery import redact_headers
from gateway.logs import configure_logging
from gateway.ops.export import export_deliveries
from gateway.secrets import (
    API_KEY_FILE,
    ApiKeys,
    Redactor,
    WebhookSecrets,
    api_key_from_request,
    credentials_from_request,
    known_redactor,
    load_api_keys,
    load_secrets,
)
from gateway.settings import Settings, SettingsError
from tests.conftest import API_KEY, AUTH, SECRETS, fixture_body

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture
async def logged_client(
    settings: Settings, clean_db: Pool, capsys: pytest.CaptureFixture[str]
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """An app whose structured log goes to the captured stderr, as in production."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("json")
    async with AsyncTestClient(app=create_app(settings, configure_logs=False)) as client:
        yield client
    root.handlers[:], _ = saved
    root.setLevel(saved[1])
    structlog.reset_defaults()


async def test_secrets_appear_in_no_log_row_or_answer(
    logged_client: AsyncTestClient[Litestar], clean_db: Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    everything = [s for values in SECRETS.values() for s in values]
    basic = base64.b64encode(f"pm:{SECRETS['postmark'][1]}".encode()).decode()
    answers = [
        await logged_client.post(
            "/webhooks/lemlist",
            params={"token": SECRETS["lemlist"][0]},
            content=fixture_body("lemlist", "emailsSent.json"),
        ),
        await logged_client.post(
            "/webhooks/postmark",
            content=fixture_body("postmark", "Open.json"),
            headers={"authorization": f"Basic {basic}", "x-copy": SECRETS["postmark"][1]},
        ),
        await logged_client.post(  # rejected body, secret in the query
            "/webhooks/phantombuster",
            params={"token": SECRETS["phantombuster"][0], "secret": "provider-side"},
            content=b"{broken",
        ),
        await logged_client.post(  # another provider's secret: refused and logged
            "/webhooks/postmark", params={"token": SECRETS["lemlist"][0]}, content=b"{}"
        ),
    ]
    assert [a.status_code for a in answers] == [200, 200, 400, 401]
    logs = capsys.readouterr().err
    assert "webhook.ingested" in logs  # the log was captured at all
    rows = await clean_db.fetch("SELECT headers, query, cause FROM webhook_deliveries")
    stored = json.dumps([dict(r) for r in rows], default=str)
    for secret in everything:
        assert secret not in logs
        assert secret not in stored
        assert all(secret not in a.text for a in answers)
    assert "provider-side" not in stored  # a `secret` query parameter is not kept either


async def test_no_write_route_is_reachable_without_a_secret(
    client: AsyncTestClient[Litestar], clean_db: Pool
) -> None:
    app = client.app
    checked = 0
    for route in app.routes:
        methods = set(getattr(route, "methods", ())) & WRITE_METHODS
        for method in methods:
            path = route.path.replace("{provider:str}", "postmark")
            path = re.sub(r"\{\w+:uuid\}", "00000000-0000-0000-0000-000000000001", path)
            assert "{" not in path, f"substitute the parameters of {route.path}"
            response = await client.request(method, path, content=b"{}")
            assert response.status_code in (401, 403), (method, path, response.status_code)
            checked += 1
    assert checked >= 8  # the webhook and the seven management writes
    assert await clean_db.fetchval("SELECT count(*) FROM webhook_deliveries") == 0


async def test_the_api_key_appears_in_no_log_or_answer(
    logged_client: AsyncTestClient[Litestar], clean_db: Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    template = {"name": "T", "type": "email"}
    answers = [
        await logged_client.post("/api/campaigns/templates", json=template, headers=AUTH),
        await logged_client.post(  # the right key in the wrong place
            "/api/campaigns/templates", params={"token": API_KEY}, json=template
        ),
        await logged_client.post(
            "/api/campaigns/templates", json=template, headers={"x-api-key": API_KEY[:-1]}
        ),
        await logged_client.post(
            "/webhooks/lemlist",
            params={"token": SECRETS["lemlist"][0]},
            content=fixture_body("lemlist", "emailsSent.json"),
            headers={"x-api-key": API_KEY},
        ),
    ]
    assert [a.status_code for a in answers] == [201, 401, 401, 200]
    logs = capsys.readouterr().err
    assert "api.unauthorized" in logs
    stored = json.dumps(
        [dict(r) for r in await clean_db.fetch("SELECT headers, query FROM webhook_deliveries")]
    )
    for text in [logs, stored, *(a.text for a in answers)]:
        assert API_KEY not in text
        assert API_KEY[:-1] not in text


def test_api_key_is_generated_once_owner_only(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    keys, generated = load_api_keys(settings)
    assert generated and len(keys.values) == 1 and len(keys.values[0]) >= 40
    path = tmp_path / "data" / API_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, generated_again = load_api_keys(settings)
    assert again.values == keys.values and not generated_again
    configured, generated = load_api_keys(
        Settings(data_dir=tmp_path / "other", api_keys=("a", "b"))
    )
    assert configured.values == ("a", "b") and not generated
    assert not (tmp_path / "other").exists()  # a configured key generates nothing


def test_api_key_settings_from_the_environment() -> None:
    settings = Settings.from_env({"GATEWAY_API_KEY": " new , old ,", "GATEWAY_API_READS_OPEN": "0"})
    assert settings.api_keys == ("new", "old")
    assert settings.api_reads_open is False
    defaults = Settings.from_env({})
    assert defaults.api_keys == () and defaults.api_reads_open is True
    assert Settings.from_env({"GATEWAY_API_READS_OPEN": "TRUE"}).api_reads_open is True
    with pytest.raises(SettingsError, match="GATEWAY_API_READS_OPEN"):
        Settings.from_env({"GATEWAY_API_READS_OPEN": "sometimes"})


@pytest.mark.parametrize(
    ("headers", "offered"),
    [
        ({"authorization": "Bearer k1"}, ["k1"]),
        ({"authorization": "bearer   k1 "}, ["k1"]),
        ({"x-api-key": " k2 "}, ["k2"]),
        ({"authorization": "Bearer k1", "x-api-key": "k2"}, ["k1", "k2"]),
        ({"authorization": "Bearer "}, []),
        ({"authorization": "Basic azE="}, []),
        ({"authorization": "k1"}, []),
        ({}, []),
    ],
)
def test_api_key_from_request(headers: dict[str, str], offered: list[str]) -> None:
    assert api_key_from_request(headers) == offered


def test_api_keys_rotate() -> None:
    keys = ApiKeys(("new", "old"))
    assert keys.verify(["new"]) and keys.verify(["wrong", "old"])
    assert not keys.verify(["ne"]) and not keys.verify([]) and not keys.verify(["new "])


def test_rotation_and_providers_are_separate() -> None:
    secrets = WebhookSecrets({"postmark": ("new", "old"), "lemlist": ("other",)})
    assert secrets.verify("postmark", ["new"])
    assert secrets.verify("postmark", ["wrong", "old"])
    assert not secrets.verify("postmark", ["other"])
    assert not secrets.verify("postmark", [])
    assert not secrets.verify("phantombuster", ["new"])
    assert not secrets.verify("postmark", ["ne", "new "])


@pytest.mark.parametrize(
    ("query", "authorization", "offered"),
    [
        ({"token": "t"}, None, ["t"]),
        ({}, "Basic " + base64.b64encode(b"user:p:w").decode(), ["p:w"]),
        ({}, "Basic " + base64.b64encode(b":pw").decode(), ["pw"]),
        ({}, "Basic !!!notbase64", []),
        ({}, "Bearer abc", []),
        ({}, "Basic " + base64.b64encode(b"\xff\xfe:x").decode(), []),
        ({"token": ""}, "Basic " + base64.b64encode(b"nopassword").decode(), []),
    ],
)
def test_credentials_from_request(
    query: dict[str, str], authorization: str | None, offered: list[str]
) -> None:
    assert credentials_from_request(query, authorization) == offered


async def test_a_secret_anywhere_in_a_request_is_never_stored_served_logged_or_exported(
    logged_client: AsyncTestClient[Litestar],
    clean_db: Pool,
    capsys: pytest.CaptureFixture[str],
    settings: Settings,
) -> None:
    """Issue 13: a secret under another query name, or echoed in lemlist's body
    (`secret`), was stored, served by /api/deliveries and written by `gateway export`."""
    lemlist = SECRETS["lemlist"][0]
    postmark = SECRETS["postmark"][1]
    escaped = "".join(f"\\u{ord(c):04x}" for c in lemlist)  # the same secret, JSON-escaped
    activity = json.loads(fixture_body("lemlist", "emailsSent.json"))
    echoed = json.dumps(
        activity
        | {
            "_id": f"act_{lemlist}",
            "secret": lemlist,
            "leadFirstName": f"Dana {postmark}",
            "companyName": f"Acme {API_KEY}",
        }
    ).encode()
    escaped_body = (
        json.dumps(activity | {"_id": "act_escaped"})[:-1] + f', "leadLastName": "{escaped}"}}'
    ).encode()
    answers = [
        await logged_client.post(  # echoed in the body, and under other query names
            "/webhooks/lemlist",
            params={"token": lemlist, "callback": lemlist, lemlist: "1", "next": f"x{lemlist}y"},
            content=echoed,
            headers={f"x-{lemlist}": "named", "x-echo": f"Bearer {postmark}"},
        ),
        await logged_client.post(
            "/webhooks/lemlist", params={"token": lemlist}, content=escaped_body
        ),
        await logged_client.post(  # a rejected body whose cause would quote the secret
            "/webhooks/lemlist",
            params={"token": lemlist},
            content=json.dumps(activity | {"createdAt": lemlist}).encode(),
        ),
        await logged_client.post(
            "/webhooks/lemlist", params={"token": lemlist}, content=f"{{{lemlist}".encode()
        ),
    ]
    assert [a.status_code for a in answers] == [200, 200, 400, 400], [a.text for a in answers]
    served = [
        await logged_client.get("/api/deliveries"),
        await logged_client.get("/api/events"),
        *[
            await logged_client.get(f"/api/events?delivery_id={a.json()['delivery_id']}")
            for a in answers[:2]
        ],
    ]
    assert all(s.status_code == 200 for s in served), [s.text for s in served]
    assert len(served[0].json()["items"]) == 4 and len(served[1].json()["items"]) == 2
    exported = io.BytesIO()
    async with clean_db.acquire() as conn:
        await export_deliveries(
            conn,
            DeliveryFilter(providers=("lemlist",)),
            exported,
            redactor=known_redactor(settings),
        )
    stored = await clean_db.fetch(
        "SELECT d.body, d.headers, d.query, d.cause, e.provider_event_id, e.metadata"
        " FROM webhook_deliveries d LEFT JOIN campaign_events e ON e.delivery_id = d.id"
    )
    rows = json.dumps(
        [{k: bytes(v).decode() if k == "body" else v for k, v in dict(r).items()} for r in stored],
        default=str,
    )
    texts = {
        "log": capsys.readouterr().err,
        "stored rows": rows,
        "export": exported.getvalue().decode(),
        **{f"answer {n}": a.text for n, a in enumerate(answers)},
        **{f"served {n}": s.text for n, s in enumerate(served)},
    }
    assert "webhook.ingested" in texts["log"]
    for where, text in texts.items():
        for secret in (lemlist, postmark, API_KEY, escaped):
            assert secret not in text, f"{secret!r} found in the {where}"
    query = next(r["query"] for r in stored if r["query"])
    assert query == {"callback": "[redacted]", "[redacted]": "1", "next": "x[redacted]y"}
    assert '"secret":"[redacted]"' in texts["export"].replace(" ", "")


async def test_stored_rows_of_an_older_gateway_are_masked_on_export(
    clean_db: Pool, settings: Settings
) -> None:
    """A body stored before bodies were masked still leaves `gateway export` masked."""
    secret = SECRETS["lemlist"][0]
    body = json.dumps({"type": "emailsSent", "secret": secret}).encode()
    await clean_db.execute(
        "INSERT INTO webhook_deliveries (provider, body, body_size, headers, query, status)"
        " VALUES ('lemlist', $1, $2, $3, $4, 'ignored')",
        body,
        len(body),
        {"x-echo": secret},
        {"callback": secret},
    )
    exported = io.BytesIO()
    async with clean_db.acquire() as conn:
        count = await export_deliveries(
            conn,
            DeliveryFilter(providers=("lemlist",)),
            exported,
            redactor=known_redactor(settings),
        )
    assert count == 1
    line = json.loads(exported.getvalue())
    assert line["body"] == {"type": "emailsSent", "secret": "[redacted]"}
    assert line["headers"] == {"x-echo": "[redacted]"}
    assert line["query"] == {"callback": "[redacted]"}


def test_known_redactor_reads_generated_secrets_without_generating(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", api_keys=("configured-key",))
    assert known_redactor(settings).text("configured-key") == "[redacted]"
    assert not (tmp_path / "data").exists()  # nothing generated
    secrets, _ = load_secrets(settings)
    generated = secrets.by_provider["postmark"][0]
    assert known_redactor(settings).text(f"a{generated}b") == "a[redacted]b"


@pytest.mark.parametrize(
    ("body", "masked"),
    [
        (b'{"secret": "s3cr\\"t!"}', b'{"secret": "[redacted]"}'),
        (b'{"a": "x s3cr\\\\"t!"}', b'{"a": "x s3cr\\\\"t!"}'),  # not the secret: kept as is
        (b'{"a": "\\u00e9l\\u00e8ve"}', b'{"a": "[redacted]"}'),  # as json.dumps escapes
        (b'{"a": "\\u00E9l\\u00e8ve", "b": 1}', b'{"a":"[redacted]","b":1}'),  # re-encoded
        ('{"a": "élève"}'.encode(), b'{"a": "[redacted]"}'),
        (b'{"a": "\\/path"}', b'{"a": "\\/path"}'),  # escapes but no secret: byte for byte
        (b"not json \\u0073", b"not json \\u0073"),
    ],
)
def test_redactor_masks_json_escaped_secrets(body: bytes, masked: bytes) -> None:
    redactor = Redactor(['s3cr"t!', "élève"])
    assert redactor.body(body) == masked


def test_a_secret_in_a_header_name_is_masked_whatever_its_case() -> None:
    """HTTP servers lower-case header names: `X-AbC…` arrives as `x-abc…`."""
    redactor = Redactor(["AbC-123-xYz"])
    stored = redact_headers({"x-abc-123-xyz": "1", "X-Echo": "AbC-123-xYz"}, redactor)
    assert stored == {"x-[redacted]": "1", "x-echo": "[redacted]"}

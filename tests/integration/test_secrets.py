"""Secrets never leak: not in logs, stored deliveries or answers; no write without one."""

from __future__ import annotations

import base64
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
from gateway.db.pool import Pool
from gateway.logs import configure_logging
from gateway.secrets import (
    API_KEY_FILE,
    ApiKeys,
    WebhookSecrets,
    api_key_from_request,
    credentials_from_request,
    load_api_keys,
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

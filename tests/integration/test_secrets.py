"""Secrets never leak: not in logs, stored deliveries or answers; no write without one."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator

import pytest
import structlog
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.db.pool import Pool
from gateway.logs import configure_logging
from gateway.secrets import WebhookSecrets, credentials_from_request
from gateway.settings import Settings
from tests.conftest import SECRETS, fixture_body

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
            for name, kind in (("{id:uuid}", "00000000-0000-0000-0000-000000000001"),):
                path = path.replace(name, kind)
            response = await client.request(method, path, content=b"{}")
            assert response.status_code in (401, 403), (method, path, response.status_code)
            checked += 1
    assert checked >= 1
    assert await clean_db.fetchval("SELECT count(*) FROM webhook_deliveries") == 0


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

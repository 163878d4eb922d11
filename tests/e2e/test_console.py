"""The operator console in a real browser: Debian's Chromium driven by playwright.

A gateway app serves the test database over real HTTP (uvicorn in a thread);
each test opens pages in a fresh browser context, and fails on any JavaScript
error, any console error and any request to another host. Actions are checked
on the rows they leave in PostgreSQL.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, BrowserContext, Page, Request, async_playwright

from gateway.app import create_app
from gateway.db.pool import Pool
from gateway.settings import Settings
from tests.conftest import API_KEY, SECRETS, make_instance
from tests.e2e.helpers import free_port

CHROMIUM = "/usr/bin/chromium"
#: Headless, and nothing of Chromium's own calling home (updates, sync, QUIC probes).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason="needs Debian's chromium (.ci/run installs it)"
)


class LiveServer:
    """A gateway app on a free port, served by uvicorn in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        app = create_app(settings, configure_logs=False)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_config=None, access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError("the console's server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def live_settings(database_url: str, data_dir: Path, *, reads_open: bool = True) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        secrets=SECRETS,
        api_keys=(API_KEY,),
        api_reads_open=reads_open,
        log_format="json",
    )


@pytest.fixture(scope="module")
def live(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = live_settings(database_url, tmp_path_factory.mktemp("console"))
    with LiveServer(settings) as server:
        yield server


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


class Watched:
    """A browser context whose errors and foreign requests are collected."""

    def __init__(self, context: BrowserContext, origin: str) -> None:
        self.context = context
        self.origin = origin
        self.errors: list[str] = []
        self.foreign: list[str] = []

    async def page(self) -> Page:
        page = await self.context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on(
            "console",
            lambda msg: self.errors.append(f"console {msg.type}: {msg.text}")
            if msg.type in ("error", "warning")
            else None,
        )
        return page

    def check(self) -> None:
        assert self.foreign == [], f"requests to other hosts: {self.foreign}"
        assert self.errors == [], "\n".join(self.errors)


@pytest.fixture
async def watched(browser: Browser, live: LiveServer, clean_db: Pool) -> AsyncIterator[Watched]:
    async for context in _watched(browser, live):
        yield context


async def _watched(browser: Browser, live: LiveServer) -> AsyncIterator[Watched]:
    context = await browser.new_context(locale="en-US", timezone_id="UTC")
    watched = Watched(context, live.base)

    async def gate(route: Any, request: Request) -> None:
        parts = urlsplit(request.url)
        if f"{parts.scheme}://{parts.netloc}" == live.base or parts.scheme in ("data", "blob"):
            await route.continue_()
        else:
            watched.foreign.append(request.url)
            await route.abort()

    await context.route("**/*", gate)
    yield watched
    await context.close()
    watched.check()


def post_webhook(base: str, provider: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{base}/webhooks/{provider}",
        params={"token": SECRETS[provider][0]},
        content=json.dumps(body),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def lemlist(activity: str, kind: str, email: str, campaign: str, at: str, step: int = 1) -> dict[str, Any]:
    return {
        "_id": activity,
        "type": kind,
        "createdAt": at,
        "leadEmail": email,
        "leadFirstName": email.split("@")[0].title(),
        "campaignId": campaign,
        "sequenceStep": step,
    }


async def enter_key(page: Page, key: str = API_KEY) -> None:
    await page.wait_for_selector("#key-dialog[open]")
    await page.fill("#key-input", key)
    await page.click("#key-form button[type=submit]")


# ------------------------------------------------------------------ tests


async def test_console_pages_load_without_errors_or_foreign_requests(
    watched: Watched, live: LiveServer, clean_db: Pool
) -> None:
    instance = await make_instance(clean_db, {"lemlist_campaign_id": "cam_pages"}, name="Pages")
    sent = post_webhook(
        live.base,
        "lemlist",
        lemlist("act_pages_1", "emailsSent", "ana@pages.example", "cam_pages", "2025-03-10T09:00:00Z"),
    )
    post_webhook(
        live.base,
        "lemlist",
        lemlist("act_pages_2", "emailsSent", "bo@other.example", "cam_nobody", "2025-03-10T09:00:00Z"),
    )
    page = await watched.page()
    for path, landmark in [
        ("/console", "Deliveries"),
        ("/console/deliveries", "Deliveries"),
        (f"/console/deliveries/{sent['delivery_id']}", "Delivery "),
        ("/console/campaigns", "Campaigns"),
        (f"/console/campaigns/{instance}", "Pages"),
        ("/console/unmatched", "Unmatched campaign keys"),
    ]:
        response = await page.goto(live.base + path)
        assert response is not None and response.status == 200, path
        await page.wait_for_selector(f"h1:has-text('{landmark}')")
        await page.wait_for_load_state("networkidle")
        assert await page.locator(".notice-error").count() == 0, path

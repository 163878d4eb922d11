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
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import httpx
import pytest
import uvicorn
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Route,
    async_playwright,
    expect,
)

from gateway.app import create_app
from gateway.db.pool import Pool
from gateway.settings import Settings
from tests.conftest import API_KEY, SECRET_SETTINGS, SECRETS
from tests.database import make_instance
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

pytestmark = [
    pytest.mark.slow,  # a browser
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None, reason="needs Debian's chromium (.ci/run installs it)"
    ),
]


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
        **SECRET_SETTINGS,
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
    """A browser context whose JavaScript errors, console errors and foreign requests are kept.

    `expected` lists console messages a test provokes on purpose (Chromium
    logs every 4xx answer to fetch() as a console error).
    """

    def __init__(self, context: BrowserContext, origin: str) -> None:
        self.context = context
        self.origin = origin
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.expected: list[str] = []

    async def page(self) -> Page:
        page = await self.context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on("console", self._console)
        return page

    def _console(self, message: ConsoleMessage) -> None:
        if message.type not in ("error", "warning"):
            return
        if any(expected in message.text for expected in self.expected):
            return
        self.errors.append(f"console {message.type}: {message.text}")

    def check(self) -> None:
        assert self.foreign == [], f"requests to other hosts: {self.foreign}"
        assert self.errors == [], "\n".join(self.errors)


@asynccontextmanager
async def watching(browser: Browser, origin: str) -> AsyncIterator[Watched]:
    """A fresh context (its own sessionStorage) that may reach `origin` only."""
    context = await browser.new_context(
        locale="en-US", timezone_id="UTC", viewport={"width": 1360, "height": 900}
    )
    context.set_default_timeout(10_000)
    watched = Watched(context, origin)

    async def gate(route: Route, request: Request) -> None:
        parts = urlsplit(request.url)
        if f"{parts.scheme}://{parts.netloc}" == origin:
            await route.continue_()
        else:
            watched.foreign.append(request.url)
            await route.abort()

    await context.route("**/*", gate)
    try:
        yield watched
    finally:
        await context.close()
    watched.check()


@pytest.fixture
async def watched(browser: Browser, live: LiveServer, clean_db: Pool) -> AsyncIterator[Watched]:
    async with watching(browser, live.base) as context:
        yield context


async def post_webhook(base: str, provider: str, body: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.post(
            f"/webhooks/{provider}",
            params={"token": SECRETS[provider][0]},
            content=json.dumps(body),
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def lemlist(
    activity: str, kind: str, email: str, campaign: str, at: str, step: int = 1, **extra: Any
) -> dict[str, Any]:
    """A lemlist activity webhook body."""
    return {
        "_id": activity,
        "type": kind,
        "createdAt": at,
        "leadEmail": email,
        "leadFirstName": email.split("@")[0].title(),
        "campaignId": campaign,
        "sequenceStep": step,
        **extra,
    }


def postmark(record: str, message: str, email: str, tag: str, at: str, step: int) -> dict[str, Any]:
    """A Postmark Delivery or Open webhook body."""
    time_field = "DeliveredAt" if record == "Delivery" else "ReceivedAt"
    return {
        "RecordType": record,
        "MessageID": message,
        "Recipient": email,
        "Tag": tag,
        "Metadata": {"step": str(step)},
        time_field: at,
    }


async def enter_key(page: Page, key: str = API_KEY) -> None:
    await page.wait_for_selector("#key-dialog[open]")
    await page.fill("#key-input", key)
    await page.click("#key-form button[type=submit]")


async def delivery_of(pool: Pool, provider_event_id: str) -> UUID:
    delivery: UUID = await pool.fetchval(
        "SELECT delivery_id FROM campaign_events WHERE provider_event_id = $1", provider_event_id
    )
    return delivery


async def table_rows(page: Page, selector: str) -> list[list[str]]:
    """The cells' text of a table's body rows."""
    rows: list[list[str]] = await page.eval_on_selector_all(
        f"{selector} tbody tr",
        "rows => rows.map(r => [...r.cells].map(c => c.textContent.trim()))",
    )
    return rows


def number(value: int) -> str:
    return f"{value:,}"


# ------------------------------------------------------------------ tests


async def test_every_page_loads_without_errors_or_requests_elsewhere(
    watched: Watched, live: LiveServer, clean_db: Pool
) -> None:
    instance = await make_instance(clean_db, {"lemlist_campaign_id": "cam_pages"}, name="Pages")
    hostile = "<img src=x onerror=alert(1)>"
    sent = await post_webhook(
        live.base,
        "lemlist",
        lemlist(
            "act_pages_1",
            "emailsSent",
            "ana@pages.example",
            "cam_pages",
            "2025-03-10T09:00:00Z",
            leadFirstName=hostile,
            secret=SECRETS["lemlist"][0],  # lemlist echoes its hook's secret
        ),
    )
    await post_webhook(
        live.base,
        "lemlist",
        lemlist(
            "act_pages_2", "emailsSent", "bo@other.example", "cam_nobody", "2025-03-10T09:00:00Z"
        ),
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
        assert await page.locator(".loading").count() == 0, path
        assert SECRETS["lemlist"][0] not in await page.content(), path
    # Data is text, never markup: the hostile name shows as typed.
    await page.goto(f"{live.base}/console/deliveries/{sent['delivery_id']}")
    await expect(page.locator("pre.json")).to_contain_text(hostile)
    assert await page.locator("main img").count() == 0


async def test_search_open_and_reprocess_a_delivery(
    watched: Watched, live: LiveServer, clean_db: Pool
) -> None:
    known = await make_instance(clean_db, {"lemlist_campaign_id": "cam_known"}, name="Known")
    for activity, email, campaign, at in [
        ("act_s0", "ana@ledgerly.example", "cam_known", "2025-03-10T09:00:00Z"),
        ("act_s1", "ben@finch.example", "cam_later", "2025-03-11T09:00:00Z"),
        ("act_s2", "cy@gusto.example", "cam_later", "2025-03-12T09:00:00Z"),
    ]:
        await post_webhook(
            live.base, "lemlist", lemlist(activity, "emailsOpened", email, campaign, at)
        )
    ana, ben, newest = [await delivery_of(clean_db, f"act_s{n}") for n in range(3)]
    page = await watched.page()
    await page.goto(f"{live.base}/console/deliveries")
    # The log starts with what arrived last, a moment ago.
    rows = page.locator("main table tbody tr")
    await expect(rows).to_have_count(3)
    await expect(rows.first).to_contain_text(str(newest)[:8])

    # A lead's e-mail finds the delivery of its event; it opens with body and events.
    await page.fill("input[name=q]", "ana@ledgerly.example")
    await page.click("button:has-text('Search')")
    await expect(rows).to_have_count(1)
    await rows.first.click()
    await page.wait_for_url(f"**/console/deliveries/{ana}")
    await expect(page.locator("pre.json")).to_contain_text('"leadEmail": "ana@ledgerly.example"')
    events = page.locator("section:has(h2:has-text('Events')) table tbody tr")
    await expect(events).to_have_count(1)
    await expect(events.first).to_contain_text("Opened")
    await expect(events.first.locator(f"a[href='/console/campaigns/{known}']")).to_have_count(1)
    before = await snapshot(clean_db)
    await page.click("button:has-text('Reprocess')")
    await enter_key(page)
    outcome = page.locator(".outcome .notice")
    await expect(outcome).to_contain_text("nothing changed")
    assert await snapshot(clean_db) == before

    # A campaign key finds the deliveries of an unmapped campaign.
    await page.goto(f"{live.base}/console/deliveries?q=cam_later")
    await expect(rows).to_have_count(2)
    await page.click(f"a[href='/console/deliveries/{ben}']")
    await expect(events.first).to_contain_text("unmatched")
    # The campaign gets mapped afterwards, straight in the database (nothing attaches
    # by itself): reprocessing the delivery from the console attaches its event.
    later = await make_instance(clean_db, {"lemlist_campaign_id": "cam_later"}, name="Later")
    await page.click("button:has-text('Reprocess')")
    await expect(outcome).to_contain_text("1 event attached")
    await expect(outcome.locator(".badge")).to_have_text(["unmatched", "processed"])
    await expect(events.first).not_to_contain_text("unmatched")
    event = await clean_db.fetchrow(
        "SELECT instance_id, enrollment_id FROM campaign_events WHERE provider_event_id = 'act_s1'"
    )
    assert event["instance_id"] == later and event["enrollment_id"] is not None
    status = await clean_db.fetchval("SELECT status FROM webhook_deliveries WHERE id = $1", ben)
    assert status == "processed"
    after = await snapshot(clean_db)
    assert (after["events"], after["unmatched"], after["enrollments"]) == (3, 1, 2)

    # Again, with the key kept for this tab: nothing changes.
    await page.click("button:has-text('Reprocess')")
    await expect(outcome).to_contain_text("nothing changed")
    assert await page.locator("#key-dialog[open]").count() == 0
    assert await snapshot(clean_db) == after


async def snapshot(pool: Pool) -> dict[str, Any]:
    """What reprocessing or mapping could change: counts, counters, statuses."""
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM campaign_events) AS events,"
        " (SELECT count(*) FROM campaign_events WHERE enrollment_id IS NULL) AS unmatched,"
        " (SELECT count(*) FROM campaign_enrollments) AS enrollments,"
        " (SELECT array_agg(status ORDER BY id) FROM webhook_deliveries) AS statuses,"
        " (SELECT array_agg((total_enrolled, total_sent, total_opened) ORDER BY id)::text"
        "  FROM campaign_instances) AS counters"
    )
    return dict(row)


async def test_map_an_unmatched_key_and_its_events_attach(
    watched: Watched, live: LiveServer, clean_db: Pool
) -> None:
    for activity, kind, email in [
        ("act_w1", "emailsSent", "ana@ledgerly.example"),
        ("act_w2", "emailsOpened", "ana@ledgerly.example"),
        ("act_w3", "emailsSent", "ben@finch.example"),
    ]:
        await post_webhook(
            live.base,
            "lemlist",
            lemlist(activity, kind, email, "cam_webinar", "2025-03-10T09:00:00Z"),
        )
    await post_webhook(
        live.base,
        "postmark",
        postmark(
            "Delivery",
            "6a1c2b9e-0000-4a6b-9c1e-2a7d5e0b6f41",
            "cy@gusto.example",
            "newsletter",
            "2025-03-10T09:00:00Z",
            1,
        ),
    )
    instance = await make_instance(clean_db, {"postmark_tag": "ops"}, name="Webinar follow-up")
    page = await watched.page()
    await page.goto(f"{live.base}/console/unmatched")
    row = page.locator("table tbody tr", has_text="cam_webinar")
    await expect(row).to_contain_text("3")
    await expect(page.locator("table tbody tr", has_text="newsletter")).to_contain_text("1")

    await row.locator("select").select_option(label="Webinar follow-up (active)")
    await row.locator("button").click()
    await expect(row.locator("button")).to_contain_text("Attach 3 events")
    await row.locator("button").click()
    await enter_key(page)
    await expect(page.locator(".outcome .notice")).to_contain_text("3 events attached")

    attached = await clean_db.fetch(
        "SELECT instance_id, enrollment_id FROM campaign_events WHERE provider = 'lemlist'"
    )
    assert len(attached) == 3
    assert all(e["instance_id"] == instance and e["enrollment_id"] for e in attached)
    mapped = await clean_db.fetchrow(
        "SELECT provider_config, total_enrolled, total_sent, total_opened"
        " FROM campaign_instances WHERE id = $1",
        instance,
    )
    assert mapped["provider_config"] == {
        "postmark_tag": "ops",
        "lemlist_campaign_id": "cam_webinar",
    }
    assert (mapped["total_enrolled"], mapped["total_sent"], mapped["total_opened"]) == (2, 2, 1)
    # Only the other key is left.
    await expect(page.locator("table tbody tr")).to_have_count(1)
    await expect(page.locator("table tbody tr")).to_contain_text("newsletter")


async def test_performance_page_agrees_with_the_api(
    watched: Watched, live: LiveServer, clean_db: Pool
) -> None:
    instance = await make_instance(
        clean_db, {"lemlist_campaign_id": "cam_perf", "postmark_tag": "perf"}, name="Perf"
    )
    for activity, kind, email, at, step in [
        ("p1", "emailsSent", "ana@a.example", "2025-03-10T09:00:00Z", 1),
        ("p2", "emailsSent", "ben@b.example", "2025-03-10T09:05:00Z", 1),
        ("p3", "emailsSent", "cy@c.example", "2025-03-10T09:10:00Z", 1),
        ("p4", "emailsOpened", "ana@a.example", "2025-03-11T10:00:00Z", 1),
        ("p5", "emailsOpened", "ben@b.example", "2025-03-11T23:30:00Z", 1),
        ("p6", "emailsClicked", "ana@a.example", "2025-03-11T10:02:00Z", 1),
        ("p7", "emailsSent", "ben@b.example", "2025-03-13T09:00:00Z", 2),
        ("p8", "emailsReplied", "ben@b.example", "2025-03-14T08:00:00Z", 2),
        ("p9", "emailsBounced", "cy@c.example", "2025-03-10T09:11:00Z", 1),
        ("p10", "linkedinInviteDone", "ana@a.example", "2025-03-10T12:00:00Z", 1),
        ("p11", "linkedinInviteAccepted", "ana@a.example", "2025-03-12T12:00:00Z", 1),
    ]:
        await post_webhook(
            live.base, "lemlist", lemlist(activity, kind, email, "cam_perf", at, step)
        )
    await post_webhook(
        live.base,
        "postmark",
        postmark(
            "Delivery",
            "7b1c2b9e-0000-4a6b-9c1e-2a7d5e0b6f41",
            "dee@d.example",
            "perf",
            "2025-03-10T09:00:00Z",
            1,
        ),
    )
    page = await watched.page()
    await page.goto(f"{live.base}/console/campaigns/{instance}")
    await page.wait_for_selector("#chart-daily")
    await agrees_with_api(page, live.base)

    # A range, chosen in the form: the page asks for it, and still agrees.
    await page.fill("input[name=from]", "2025-03-11")
    await page.fill("input[name=to]", "2025-03-12")
    await page.click("button:has-text('Apply')")
    await page.wait_for_url("**from=2025-03-11&to=2025-03-12**")
    await page.wait_for_selector("#chart-daily")
    href = await page.get_attribute("a:has-text('JSON')", "href")
    assert href is not None and "from=2025-03-11T00%3A00%3A00Z" in href
    assert "to=2025-03-13T00%3A00%3A00Z" in href
    performance = await agrees_with_api(page, live.base)
    assert [d["day"] for d in performance["daily"]] == ["2025-03-11", "2025-03-12"]


async def agrees_with_api(page: Page, base: str) -> dict[str, Any]:
    """Every number the performance page shows equals the API's answer behind it."""
    href = await page.get_attribute("a:has-text('JSON')", "href")
    assert href is not None
    async with httpx.AsyncClient() as client:
        perf: dict[str, Any] = (await client.get(base + href)).json()

    enrolled = page.locator("[data-metric=enrolled] .tile-value")
    await expect(enrolled).to_have_text(number(perf["enrolled"]))
    for name, rate in perf["rates"].items():
        if name.startswith("human_"):
            continue
        shown = await page.get_attribute(f"[data-metric={name}] .rate-raw", "data-value")
        assert shown is not None, name
        assert (float(shown) if shown else None) == rate, (name, shown, rate)

    for channel in perf["by_channel"]:
        if not any(channel["totals"].values()):
            assert await page.locator(f"table.channel-{channel['channel']}").count() == 0
            continue
        rows = await table_rows(page, f"table.channel-{channel['channel']}")
        assert [row[1:3] for row in rows] == [
            [number(channel["totals"][t]), number(channel["unique"][t])] for t in channel["totals"]
        ]

    charts = await page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('canvas')].map(c => {
              const chart = Chart.getChart(c);
              return [c.id, {labels: chart.data.labels,
                             sets: chart.data.datasets.map(d => [d.eventType, d.data])}];
           }))"""
    )
    daily = charts["chart-daily"]
    assert daily["labels"] == [d["day"] for d in perf["daily"]]
    shown_types = [t for t, _ in daily["sets"]]
    assert shown_types == [t for t in perf["totals"] if any(d["totals"][t] for d in perf["daily"])]
    for event_type, series in daily["sets"]:
        assert series == [d["totals"][event_type] for d in perf["daily"]], event_type
    assert await table_rows(page, "table.daily") == [
        [d["day"], *(number(d["totals"][t]) for t in shown_types)] for d in perf["daily"]
    ]

    for channel in ("email", "linkedin"):
        steps = [s for s in perf["by_step"] if s["channel"] == channel]
        chart = charts.get(f"chart-steps-{channel}")
        if not any(any(s["totals"].values()) for s in steps):
            continue
        assert chart is not None, channel
        assert len(chart["labels"]) == len(steps)
        for event_type, series in chart["sets"]:
            assert series == [s["unique"][event_type] for s in steps], (channel, event_type)
        rows = await table_rows(page, f"table.steps-{channel}")
        assert len(rows) == len(steps)

    providers = await table_rows(page, "table.by-provider")
    active = [p for p in perf["by_provider"] if any(p["totals"].values())]
    assert [row[-1] for row in providers] == [number(sum(p["totals"].values())) for p in active]
    return perf


async def test_with_reads_closed_the_console_asks_for_the_key_once_per_tab(
    browser: Browser, database_url: str, tmp_path: Path, clean_db: Pool
) -> None:
    await make_instance(clean_db, {"lemlist_campaign_id": "cam_closed"}, name="Closed")
    with LiveServer(live_settings(database_url, tmp_path, reads_open=False)) as closed:
        async with watching(browser, closed.base) as watched:
            watched.expected.append("status of 401")
            page = await watched.page()
            await page.goto(f"{closed.base}/console/campaigns")
            await expect(page.locator("#key-reason")).to_contain_text("needs its API key to read")
            await enter_key(page, "not-the-key")
            await expect(page.locator("#key-reason")).to_contain_text("refused this key")
            await enter_key(page)
            await expect(page.locator("table tbody tr")).to_contain_text("Closed")
            assert await page.evaluate("sessionStorage.length") == 1
            await expect(page.locator("#key-status")).to_contain_text("set")

            # Another page of the same tab reads with the kept key, no question asked.
            await page.goto(f"{closed.base}/console/deliveries")
            await expect(page.locator("main")).to_contain_text("No webhook has arrived yet")
            assert await page.locator("#key-dialog[open]").count() == 0

            # Another tab has its own session: asked again.
            other = await watched.page()
            await other.goto(f"{closed.base}/console/campaigns")
            await expect(other.locator("#key-dialog[open]")).to_have_count(1)


async def test_performance_shows_definitions_time_zone_and_human_beside_raw(
    watched: Watched, live: LiveServer, clean_db: Pool
) -> None:
    instance = await make_instance(clean_db, {"lemlist_campaign_id": "cam_h"}, name="Human")
    for activity, kind, email, at in [
        ("h1", "emailsSent", "ana@a.example", "2025-03-10T09:00:00Z"),
        ("h2", "emailsSent", "ben@b.example", "2025-03-10T09:00:00Z"),
        ("h3", "emailsOpened", "ana@a.example", "2025-03-10T23:30:00Z"),
    ]:
        await post_webhook(live.base, "lemlist", lemlist(activity, kind, email, "cam_h", at))
    asked: list[dict[str, list[str]]] = []
    page = await watched.page()
    page.on(
        "request",
        lambda request: (
            asked.append(parse_qs(urlsplit(request.url).query))
            if "/performance" in request.url
            else None
        ),
    )
    await page.goto(f"{live.base}/console/campaigns/{instance}")
    await page.wait_for_selector("#chart-daily")
    perf = await agrees_with_api(page, live.base)
    tile = page.locator("[data-metric=open_rate]")
    await expect(tile.locator(".rate-raw")).to_have_text("50.0%")
    await expect(tile.locator(".rate-human")).to_have_text("human 50.0%")
    definition = perf["rate_definitions"]["open_rate"]["description"]
    await expect(tile).to_have_attribute("title", definition)
    await expect(page.locator(".definitions dd[data-rate=open_rate]")).to_have_text(definition)
    assert await page.locator("[data-metric=human_open_rate]").count() == 0
    reach = page.locator("[data-metric=email_reach] .tile-value")
    await expect(reach).to_have_text(number(perf["human"]["email_reach"]))
    opened = page.locator("table.channel-email tbody tr", has_text="Opened")
    human_opened = number(perf["human"]["unique"]["opened"])
    await expect(opened.locator("td")).to_have_text(["Opened", "1", "1", human_opened])

    # Days of Paris (UTC+1 in March): the open at 23:30 UTC is on the 11th there.
    await page.fill("input[name=from]", "2025-03-10")
    await page.fill("input[name=to]", "2025-03-11")
    await page.select_option("select[name=tz]", "Europe/Paris")
    await page.click("button:has-text('Apply')")
    await expect(page.locator(".range-note")).to_contain_text("days in Europe/Paris")
    assert asked[-1] == {
        "from": ["2025-03-09T23:00:00Z"],
        "to": ["2025-03-11T23:00:00Z"],
        "tz": ["Europe/Paris"],
    }
    perf = await agrees_with_api(page, live.base)
    assert perf["tz"] == "Europe/Paris"
    opens = {d["day"]: d["totals"]["opened"] for d in perf["daily"]}
    assert opens == {"2025-03-10": 0, "2025-03-11": 1}


async def test_mapping_a_second_key_keeps_the_first_and_uses_the_list_form(
    watched: Watched, live: LiveServer, clean_db: Pool
) -> None:
    instance = await make_instance(clean_db, {"phantombuster_agent_id": "111"}, name="Connect")
    rows = [
        {"profileUrl": f"https://www.linkedin.com/in/{name}/", "timestamp": "2025-03-10T10:00:00Z"}
        for name in ("ana-a", "ben-b")
    ]
    await post_webhook(
        live.base,
        "phantombuster",
        {
            "agentId": "222",
            "containerId": "9001",
            "script": "LinkedIn Auto Connect.js",
            "exitCode": 0,
            "exitMessage": "finished",
            "resultObject": json.dumps(rows),
        },
    )
    page = await watched.page()
    await page.goto(f"{live.base}/console/unmatched")
    row = page.locator("table tbody tr", has_text="222")
    await row.locator("select").select_option(label="Connect (active)")
    await row.locator("button").click()
    await row.locator("button").click()
    await enter_key(page)
    await expect(page.locator(".outcome .notice-ok")).to_contain_text("2 events attached")
    config = await clean_db.fetchval(
        "SELECT provider_config FROM campaign_instances WHERE id = $1", instance
    )
    assert config == {"phantombuster_agent_id": "111", "phantombuster_agent_ids": ["222"]}
    attached = await clean_db.fetchval(
        "SELECT count(*) FROM campaign_events WHERE instance_id = $1 AND enrollment_id IS NOT NULL",
        instance,
    )
    assert attached == 2
    await expect(page.locator("main")).to_contain_text("Nothing unmatched")


async def test_campaigns_page_lists_silent_providers(
    watched: Watched, live: LiveServer, clean_db: Pool
) -> None:
    quiet = await make_instance(clean_db, {"lemlist_campaign_id": "cam_quiet"}, name="Quiet one")
    await clean_db.execute(
        "UPDATE campaign_instances SET started_at = now() - interval '3 days',"
        " settings = '{\"silence_after_hours\": 12}' WHERE id = $1",
        quiet,
    )
    lively = await make_instance(clean_db, {"lemlist_campaign_id": "cam_lively"}, name="Lively")
    await clean_db.execute(
        "UPDATE campaign_instances SET started_at = now() - interval '3 days' WHERE id = $1",
        lively,
    )
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    await post_webhook(
        live.base, "lemlist", lemlist("act_lively", "emailsSent", "li@x.example", "cam_lively", now)
    )
    page = await watched.page()
    await page.goto(f"{live.base}/console/campaigns")
    await page.wait_for_selector("h1:has-text('Campaigns')")
    silent = page.locator(".notice-warn ul.alerts li")
    await expect(silent).to_have_count(1)
    await expect(silent).to_contain_text("Quiet one")
    await expect(silent).to_contain_text("no lemlist event since it started")
    await expect(silent).to_contain_text("allowed: 12 h")

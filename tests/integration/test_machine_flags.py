"""Machine flags in the write path, on real PostgreSQL: the SQL held against `classify()`.

The dynamic rules run in `flag_machine_events` (gateway/db/functions.sql)
when events are written; `classify()` in gateway/engagement.py is their
oracle. Events go in through the Ingestor or the HTTP edge, in any order and
batching, and the stored `metadata.machine` of every open and click must be
what `classify()` says of the enrollment's stored e-mail events.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway import engagement
from gateway.db.deliveries import DeliveryFilter
from gateway.db.migrate import FUNCTIONS, apply_functions
from gateway.db.pool import Pool
from gateway.delivery import Delivery
from gateway.engagement import RULES, EmailEvent, Rule, classify, human
from gateway.fetch import ResultFetcher
from gateway.ids import uuid7
from gateway.ingest import Ingestor, write_events
from gateway.ops.progress import Progress
from gateway.ops.reprocess import Report, Reprocessor
from gateway.settings import Settings
from providers import lemlist
from tests.conftest import fixture_body
from tests.database import make_instance, post_webhook, running_ingestors

Client = AsyncTestClient[Litestar]
T0 = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
CAMPAIGN = "cam-flags"
TAG = "tag-flags"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/122.0.0.0 Safari/537.36"
)
APPLE_PROXY = "Mozilla/5.0"
SCANNER = "python-requests/2.32"
LEMLIST_TYPES = {
    "sent": "emailsSent",
    "opened": "emailsOpened",
    "clicked": "emailsClicked",
    "replied": "emailsReplied",
}
POSTMARK_TYPES = {"delivered": "Delivery", "opened": "Open", "clicked": "Click"}
keys = itertools.count()


def stamp(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def lemlist_body(
    event_type: str,
    contact: str,
    seconds: float,
    *,
    message: str | None = "m1",
    step: int | None = 1,
    url: str | None = None,
) -> bytes:
    """A lemlist e-mail activity; no `emailId` or `sequenceStep` when None."""
    body = json.loads(fixture_body("lemlist", f"{LEMLIST_TYPES[event_type]}.json"))
    body |= {
        "_id": f"act_flags_{next(keys)}",
        "campaignId": CAMPAIGN,
        "leadEmail": contact,
        "createdAt": stamp(seconds),
        "emailId": message,
        "sequenceStep": step,
        "linkUrl": url,
    }
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


def postmark_body(
    event_type: str,
    contact: str,
    seconds: float,
    *,
    message: str = "m1",
    step: int | None = 1,
    url: str = "https://a.example",
    user_agent: str = CHROME,
) -> bytes:
    """A Postmark Delivery, Open or Click of one message."""
    body = json.loads(fixture_body("postmark", f"{POSTMARK_TYPES[event_type]}.json"))
    time_field = "DeliveredAt" if event_type == "delivered" else "ReceivedAt"
    body |= {
        "MessageID": message,
        "Recipient": contact,
        "Tag": TAG,
        "Metadata": {} if step is None else {"step": str(step)},
        time_field: stamp(seconds),
    }
    if event_type != "delivered":
        body |= {"UserAgent": user_agent}
    if event_type == "clicked":
        body |= {"OriginalLink": url}
    return json.dumps(body).encode()


def delivery(provider: str, body: bytes) -> Delivery:
    return Delivery(
        provider=provider, received_at=datetime.now(UTC), body=body, headers={}, query={}
    )


async def flags_and_oracle(db: Pool, contact: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Stored flags of the contact's opens and clicks, and what `classify()` says of them."""
    rows = await db.fetch(
        "SELECT e.provider_event_id, e.event_type, e.timestamp, e.step_number, e.metadata"
        " FROM campaign_events e JOIN campaign_enrollments en ON en.id = e.enrollment_id"
        " WHERE en.contact_email = $1 AND e.channel = 'email'",
        contact,
    )
    events = [
        EmailEvent(
            r["provider_event_id"], r["event_type"], r["timestamp"], r["step_number"], r["metadata"]
        )
        for r in rows
    ]
    expected = {key: None if m is None else m.as_json() for key, m in classify(events).items()}
    stored = {
        r["provider_event_id"]: r["metadata"].get("machine")
        for r in rows
        if r["event_type"] in ("opened", "clicked")
    }
    return stored, expected


async def event_rows(db: Pool) -> list[tuple[Any, ...]]:
    rows = await db.fetch(
        "SELECT id, enrollment_id, instance_id, metadata FROM campaign_events ORDER BY id"
    )
    return [tuple(r) for r in rows]


async def enrollment_state(db: Pool) -> list[tuple[Any, ...]]:
    rows = await db.fetch(
        "SELECT id, event_mask, status, current_step FROM campaign_enrollments ORDER BY id"
    )
    counters = await db.fetch(
        "SELECT total_enrolled, total_sent, total_opened, total_clicked, total_replied"
        " FROM campaign_instances ORDER BY id"
    )
    return [tuple(r) for r in rows] + [tuple(r) for r in counters]


@pytest.fixture
async def instance(clean_db: Pool) -> Any:
    return await make_instance(clean_db, {"lemlist_campaign_id": CAMPAIGN, "postmark_tag": TAG})


@pytest.fixture
async def ingestors(settings: Settings, clean_db: Pool) -> AsyncIterator[list[Ingestor]]:
    """Two ingestors on two pools, two writers each: batches that really run at once."""
    async with running_ingestors(settings, batch_max=8) as made:
        yield made


async def ingest_all(ingestors: list[Ingestor], deliveries: list[Delivery], chunk: int) -> None:
    """In order, `chunk` at a time, each chunk spread over both ingestors at once."""
    for start in range(0, len(deliveries), chunk):
        part = deliveries[start : start + chunk]
        outcomes = await asyncio.gather(*(ingestors[n % 2].ingest(d) for n, d in enumerate(part)))
        assert all(o.status in ("processed", "duplicate") for o in outcomes), outcomes


# --- the rules' one source ---------------------------------------------------------------


async def test_sql_rules_are_the_python_rules(clean_db: Pool) -> None:
    rows = await clean_db.fetch("SELECT rule, version, static FROM machine_rules()")
    assert {r["rule"]: Rule(r["rule"], r["version"], r["static"]) for r in rows} == RULES
    windows = {
        name: await clean_db.fetchval("SELECT machine_window($1)", name)
        for name in ("send", "machine_open", "links", "burst")
    }
    assert windows == {
        "send": engagement.SEND_WINDOW,
        "machine_open": engagement.MACHINE_OPEN_WINDOW,
        "links": engagement.LINKS_WINDOW,
        "burst": engagement.BURST_WINDOW,
    }
    assert await clean_db.fetchval("SELECT machine_burst_links()") == engagement.BURST_LINKS


# --- any events, any order, any batching ---------------------------------------------------

_event = st.tuples(
    st.sampled_from(
        [("lemlist", t) for t in LEMLIST_TYPES] + [("postmark", t) for t in POSTMARK_TYPES]
    ),
    # Quarter seconds: over 10 s windows collide; over 40 s some events lie just
    # beyond the 14 s a write recomputes around.
    st.one_of(st.integers(0, 40), st.integers(0, 160)).map(lambda n: n / 4),
    st.sampled_from([None, "m1", "m2"]),
    st.sampled_from([None, 1, 2]),
    st.sampled_from([None, "https://a.example", "https://b.example", "https://c.example"]),
    st.sampled_from([CHROME, APPLE_PROXY, SCANNER]),
)
runs = itertools.count()


def postmark_key(row: tuple[Any, ...]) -> tuple[Any, ...] | None:
    (provider, event_type), seconds, message, _step, url, _ua = row
    if provider != "postmark":
        return None
    message = message or "m1"
    return {
        "delivered": (event_type, message),
        "opened": (event_type, message, seconds),
        "clicked": (event_type, message, url or "https://a.example"),
    }[event_type]


def body_of(row: tuple[Any, ...], contact: str) -> Delivery:
    (provider, event_type), seconds, message, step, url, user_agent = row
    if provider == "lemlist":
        return delivery(
            provider,
            lemlist_body(event_type, contact, seconds, message=message, step=step, url=url),
        )
    return delivery(
        provider,
        postmark_body(
            event_type,
            contact,
            seconds,
            message=message or "m1",
            step=step,
            url=url or "https://a.example",
            user_agent=user_agent,
        ),
    )


@pytest.mark.slow
@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(_event, min_size=1, max_size=10),
    rnd=st.randoms(use_true_random=False),
    chunk=st.integers(1, 4),
)
async def test_stored_flags_are_classify_in_any_order_and_batching(
    clean_db: Pool,
    instance: Any,
    ingestors: list[Ingestor],
    rows: list[tuple[Any, ...]],
    rnd: random.Random,
    chunk: int,
) -> None:
    contact = f"any{next(runs)}@x.example"
    # One body per provider event: Postmark keys an open by message and time, a
    # click by message and link (a body repeating a key is a redelivery, and may
    # restate the static flag: another test).
    distinct = {postmark_key(row) or n: row for n, row in reversed(list(enumerate(rows)))}
    deliveries = [body_of(row, contact) for row in distinct.values()]
    rnd.shuffle(deliveries)
    await ingest_all(ingestors, deliveries, chunk)
    stored, expected = await flags_and_oracle(clean_db, contact)
    assert stored == expected

    # Everything again, at once: nothing changes.
    before = await event_rows(clean_db), await enrollment_state(clean_db)
    outcomes = await asyncio.gather(
        *(ingestors[n % 2].ingest(delivery(d.provider, d.body)) for n, d in enumerate(deliveries))
    )
    assert {o.status for o in outcomes} == {"duplicate"}
    assert (await event_rows(clean_db), await enrollment_state(clean_db)) == before


# --- what a person sees --------------------------------------------------------------------


def rules_of(stored: dict[str, Any]) -> list[str]:
    return sorted((m or {}).get("rule") or "-" for m in stored.values())


async def post(client: Client, provider: str, body: bytes) -> None:
    response = await post_webhook(client, provider, body)
    assert response.status_code == 200, response.text


async def test_lemlist_opens_two_seconds_after_the_send_are_machine_end_to_end(
    client: Client, clean_db: Pool, instance: Any
) -> None:
    script: dict[str, list[tuple[str, float, str | None]]] = {
        "proxy@x.example": [("sent", 0, None), ("opened", 2, None)],
        # The open arrives first; it is flagged when the send arrives.
        "late@x.example": [("opened", 2, None), ("sent", 0, None)],
        "person@x.example": [("sent", 0, None), ("opened", 2, None), ("opened", 3600, None)],
        "clicker@x.example": [
            ("sent", 0, None),
            ("opened", 2, None),
            ("clicked", 600, "https://a"),
        ],
        "scanned@x.example": [("sent", 0, None), ("clicked", 1, "https://a")],
        "replier@x.example": [("sent", 0, None), ("opened", 2, None), ("replied", 7200, None)],
    }
    for contact, events in script.items():
        for event_type, seconds, url in events:
            await post(client, "lemlist", lemlist_body(event_type, contact, seconds, url=url))

    flagged: dict[str, list[str | None]] = {}
    human_opened = human_clicked = 0
    for contact in script:
        stored, expected = await flags_and_oracle(clean_db, contact)
        assert stored == expected, contact
        flagged[contact] = rules_of(stored)
        rows = await clean_db.fetch(
            "SELECT e.provider_event_id, e.event_type, e.timestamp, e.step_number, e.metadata"
            " FROM campaign_events e JOIN campaign_enrollments en ON en.id = e.enrollment_id"
            " WHERE en.contact_email = $1",
            contact,
        )
        events = [EmailEvent(*r) for r in rows]
        person = human(events, classify(events))
        human_opened += person.opened
        human_clicked += person.clicked
    assert flagged == {
        "proxy@x.example": ["soon_after_send"],
        "late@x.example": ["soon_after_send"],
        "person@x.example": ["-", "soon_after_send"],
        "clicker@x.example": ["-", "soon_after_send"],
        "scanned@x.example": ["soon_after_send"],
        "replier@x.example": ["soon_after_send"],
    }
    # person (a later open), clicker (a person's click) and replier (a reply).
    assert (human_opened, human_clicked) == (3, 1)

    answer = (await client.get(f"/api/campaigns/instances/{instance}/performance")).json()
    assert answer["unique"]["opened"] == 5 and answer["unique"]["clicked"] == 2
    reach = len(script)
    assert answer["human"] == {
        "unique": {"opened": human_opened, "clicked": human_clicked},
        "email_reach": reach,
        "human_open_rate": human_opened / reach,
        "human_click_rate": human_clicked / reach,
    }
    [step] = answer["by_step"]
    assert step["human"] == answer["human"]


async def test_postmark_opens_and_clicks_within_seconds_of_delivery(
    client: Client, clean_db: Pool, instance: Any
) -> None:
    a, b, c, d = (f"{n}@x.example" for n in "abcd")
    await post(client, "postmark", postmark_body("delivered", a, 0, message="ma"))
    await post(client, "postmark", postmark_body("opened", a, 3, message="ma"))
    await post(client, "postmark", postmark_body("clicked", a, 4, message="ma", url="https://a"))
    await post(client, "postmark", postmark_body("clicked", a, 60, message="ma", url="https://b"))
    # Open first, delivery after.
    await post(client, "postmark", postmark_body("opened", b, 3, message="mb"))
    await post(client, "postmark", postmark_body("delivered", b, 0, message="mb"))
    # A person, an hour later.
    await post(client, "postmark", postmark_body("delivered", c, 0, message="mc"))
    await post(client, "postmark", postmark_body("opened", c, 3600, message="mc"))
    await post(client, "postmark", postmark_body("clicked", c, 3605, message="mc"))
    # Apple's proxy opens (static rule), a scanner follows the link 5 s later.
    await post(client, "postmark", postmark_body("delivered", d, 0, message="md"))
    await post(
        client, "postmark", postmark_body("opened", d, 600, message="md", user_agent=APPLE_PROXY)
    )
    await post(client, "postmark", postmark_body("clicked", d, 605, message="md"))

    flagged = {}
    for contact in (a, b, c, d):
        stored, expected = await flags_and_oracle(clean_db, contact)
        assert stored == expected, contact
        flagged[contact] = rules_of(stored)
    assert flagged == {
        a: ["-", "soon_after_send", "soon_after_send"],
        b: ["soon_after_send"],
        c: ["-", "-"],
        d: ["apple_mpp_user_agent", "click_after_machine_open"],
    }
    kinds = await clean_db.fetch(
        "SELECT event_type, metadata -> 'machine' ->> 'kind' AS kind FROM campaign_events"
        " WHERE metadata -> 'machine' ->> 'rule' = 'soon_after_send'"
    )
    assert {(r["event_type"], r["kind"]) for r in kinds} == {
        ("opened", "privacy_proxy"),
        ("clicked", "scanner"),
    }


async def test_a_redelivery_restates_its_static_flag_and_the_dynamic_ones_follow(
    client: Client, clean_db: Pool, instance: Any
) -> None:
    contact = "restated@x.example"
    await post(client, "postmark", postmark_body("delivered", contact, 0))
    await post(client, "postmark", postmark_body("opened", contact, 600))
    await post(client, "postmark", postmark_body("clicked", contact, 605))
    assert rules_of((await flags_and_oracle(clean_db, contact))[0]) == ["-", "-"]
    counted = await enrollment_state(clean_db)

    # The same open again, now with the proxy's user agent (a replay after a fix).
    response = await post_webhook(
        client, "postmark", postmark_body("opened", contact, 600, user_agent=APPLE_PROXY)
    )
    assert response.json()["status"] == "duplicate"
    stored, expected = await flags_and_oracle(clean_db, contact)
    assert stored == expected
    assert rules_of(stored) == ["apple_mpp_user_agent", "click_after_machine_open"]
    assert await enrollment_state(clean_db) == counted
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_events") == 3

    # And back: the static flag goes, the click is a person's again.
    await post(client, "postmark", postmark_body("opened", contact, 600))
    stored, _ = await flags_and_oracle(clean_db, contact)
    assert rules_of(stored) == ["-", "-"]
    assert await enrollment_state(clean_db) == counted


async def test_a_scanners_clicks_in_separate_webhooks_at_once_are_a_burst(
    clean_db: Pool, instance: Any, ingestors: list[Ingestor]
) -> None:
    contacts = [f"burst{n}@x.example" for n in range(16)]
    await ingest_all(
        ingestors, [delivery("lemlist", lemlist_body("sent", c, 0)) for c in contacts], 16
    )
    clicks = [
        delivery(
            "lemlist",
            lemlist_body("clicked", c, 100 + offset, message=f"m{step}", step=step, url=url),
        )
        for step, (offset, url) in enumerate(
            [(0, "https://a"), (0.5, "https://b"), (1.2, "https://c")]
        )
        for c in contacts
    ]
    # Every click in a batch of its own, all batches at once over four writers.
    await asyncio.gather(*(ingestors[n % 2].ingest(d) for n, d in enumerate(clicks)))
    for contact in contacts:
        stored, expected = await flags_and_oracle(clean_db, contact)
        assert stored == expected, contact
        assert rules_of(stored) == ["click_burst"] * 3, contact


# --- reprocess -----------------------------------------------------------------------------


async def reprocess(pool: Pool, settings: Settings, *, dry_run: bool = False) -> Report:
    fetcher = ResultFetcher(settings)
    try:
        reprocessor = Reprocessor(pool, settings, fetcher, batch_size=3, dry_run=dry_run)
        where = DeliveryFilter(providers=("lemlist", "postmark", "phantombuster"))
        return await reprocessor.run(where, Progress("t", None, stream=io.StringIO()))
    finally:
        await fetcher.aclose()


def bumped_functions(rule: str) -> str:
    """functions.sql with one rule's version raised by one, as a release would ship it.

    The whole file, as `gateway migrate` applies it: replacing the functions
    that fold the versions into their plans is what makes every connection
    plan them again.
    """
    version = RULES[rule].version
    entry = f"('{rule}', {version}, {str(RULES[rule].static).lower()})"
    text = FUNCTIONS.read_text()
    assert text.count(entry) == 1
    return text.replace(entry, entry.replace(f", {version},", f", {version + 1},"))


async def versions(db: Pool) -> list[tuple[str, int]]:
    rows = await db.fetch(
        "SELECT metadata -> 'machine' ->> 'rule' AS rule,"
        " (metadata -> 'machine' ->> 'rule_version')::int AS v"
        " FROM campaign_events WHERE metadata ? 'machine' ORDER BY 1"
    )
    return [(r["rule"], r["v"]) for r in rows]


async def test_reprocess_twice_changes_nothing_and_re_applies_a_newer_rule_version(
    client: Client,
    clean_db: Pool,
    instance: Any,
    settings: Settings,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await post(client, "lemlist", lemlist_body("sent", "l@x.example", 0))
    await post(client, "lemlist", lemlist_body("opened", "l@x.example", 2))
    await post(client, "postmark", postmark_body("delivered", "p@x.example", 0))
    await post(
        client, "postmark", postmark_body("opened", "p@x.example", 600, user_agent=APPLE_PROXY)
    )
    await post(client, "postmark", postmark_body("clicked", "p@x.example", 605))
    assert await versions(clean_db) == [
        ("apple_mpp_user_agent", 1),
        ("click_after_machine_open", 1),
        ("soon_after_send", 1),
    ]
    rows = await event_rows(clean_db)
    for _ in range(2):
        report = await reprocess(clean_db, settings)
        assert (report.examined, report.updated, report.flags) == (5, 0, 0)
        assert await event_rows(clean_db) == rows

    # A static rule's new version: its flags are rewritten, once.
    monkeypatch.setattr(
        engagement, "APPLE_USER_AGENT", Rule("apple_mpp_user_agent", 2, static=True)
    )
    assert (await reprocess(clean_db, settings)).flags == 1
    assert (await reprocess(clean_db, settings)).flags == 0
    assert ("apple_mpp_user_agent", 2) in await versions(clean_db)

    # A dynamic rule's new version (the SQL of a new release): the same.
    try:
        with psycopg.connect(database_url) as conn:
            conn.execute(bumped_functions("soon_after_send").encode())
        rows = await event_rows(clean_db)
        dry = await reprocess(clean_db, settings, dry_run=True)
        assert dry.flags == 1
        assert await event_rows(clean_db) == rows
        report = await reprocess(clean_db, settings)
        assert (report.flags, report.updated, report.new_events) == (1, 0, 0)
        assert "  machine flags              1" in report.render(dry_run=False, seconds=0)
        assert await versions(clean_db) == [
            ("apple_mpp_user_agent", 2),
            ("click_after_machine_open", 1),
            ("soon_after_send", 2),
        ]
        assert (await reprocess(clean_db, settings)).flags == 0
    finally:
        apply_functions(database_url)


# --- locks ---------------------------------------------------------------------------------


async def flag_locks(db: Pool, contacts: list[str]) -> list[tuple[int, int, str]]:
    """The machine-flag locks a batch of these contacts' sends and opens holds until commit."""
    events = [
        event
        for contact in contacts
        for event_type, seconds in (("sent", 0), ("opened", 2))
        for event in lemlist.parse(lemlist_body(event_type, contact, seconds), {}).events
    ]
    async with db.acquire() as conn, conn.transaction():
        await write_events(conn, uuid7(), datetime.now(UTC), events)
        rows = await conn.fetch(
            "SELECT classid, objid, mode FROM pg_locks WHERE locktype = 'advisory'"
            " AND objsubid = 2 AND pid = pg_backend_pid() ORDER BY 1, 2"
        )
    return [(r["classid"], r["objid"], r["mode"]) for r in rows]


async def test_flags_lock_each_enrollment_and_past_the_cap_one_lock_for_all(
    clean_db: Pool, instance: Any
) -> None:
    few = [f"lock{n}@x.example" for n in range(10)]
    locks = await flag_locks(clean_db, few)
    assert locks[0] == (15, 0, "ShareLock")
    assert [mode for _, _, mode in locks[1:]] == ["ExclusiveLock"] * len(few)
    assert {classid for classid, _, _ in locks[1:]} == {16}

    many = [f"many{n}@x.example" for n in range(300)]
    assert await flag_locks(clean_db, many) == [(15, 0, "ExclusiveLock")]
    for contact in (*few, *many[:5]):
        stored, expected = await flags_and_oracle(clean_db, contact)
        assert stored == expected
        assert rules_of(stored) == ["soon_after_send"]

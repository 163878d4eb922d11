"""The dashboards' read API against real PostgreSQL, fed only through the webhook endpoint.

A seeded random mix of lemlist, Postmark and PhantomBuster webhooks (several
instances, both channels, steps, days, redeliveries, unmatched events and
events attached late) is posted; the test keeps its own record of every
distinct event it sent and computes the expected figures from that record,
never from the database.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.db.pool import Pool
from gateway.db.reads import EventFilter, Key, TimeRange, events_query
from providers.vocabulary import EVENT_TYPES, PROVIDERS
from tests.conftest import fixture_body
from tests.database import make_enrollment, make_instance, post_webhook

Client = AsyncTestClient[Litestar]

EMAIL_TYPES = sorted(EVENT_TYPES["email"])
LINKEDIN_TYPES = sorted(EVENT_TYPES["linkedin"])
ALL_TYPES = sorted(EVENT_TYPES["email"] | EVENT_TYPES["linkedin"])
CHANNEL_TYPES = {"email": EMAIL_TYPES, "linkedin": LINKEDIN_TYPES}

LEMLIST_TYPES = {
    "emailsSent": ("email", "sent"),
    "emailsOpened": ("email", "opened"),
    "emailsClicked": ("email", "clicked"),
    "emailsReplied": ("email", "replied"),
    "emailsBounced": ("email", "bounced"),
    "emailsUnsubscribed": ("email", "unsubscribed"),
    "linkedinVisitDone": ("linkedin", "profile_visited"),
    "linkedinInviteDone": ("linkedin", "connection_requested"),
    "linkedinInviteAccepted": ("linkedin", "connection_accepted"),
    "linkedinSent": ("linkedin", "message_sent"),
    "linkedinReplied": ("linkedin", "replied"),
}
POSTMARK_TYPES = {
    "Delivery": "delivered",
    "Open": "opened",
    "Click": "clicked",
    "Bounce": "bounced",
}
DAY0 = datetime(2025, 3, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Sent:
    """One distinct event, as the test posted it."""

    instance: str | None
    """The test's name of the instance it belongs to; None while unmatched."""
    contact: str
    channel: str
    event_type: str
    provider: str
    step: int | None
    at: datetime
    machine: bool = False
    """Posted with a proxy's or a scanner's user agent: the static rules flag it."""


#: User agents the static machine rules recognize, per Postmark record type.
MACHINE_USER_AGENTS = {"Open": "Mozilla/5.0", "Click": "python-requests/2.32.3"}


@dataclass
class Traffic:
    """Builds webhook bodies, posts them, and remembers what each distinct event is."""

    client: Client
    rng: random.Random
    keys: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per test instance name: its provider keys (lemlist, postmark, phantombuster)."""
    events: dict[tuple[str, ...], Sent] = field(default_factory=dict)
    posted: list[tuple[str, bytes]] = field(default_factory=list)
    rejected: int = 0

    def instance_of(self, provider: str, key: str) -> str | None:
        return next((n for n, k in self.keys.items() if k.get(provider) == key), None)

    async def post(self, provider: str, body: bytes) -> dict[str, Any]:
        response = await post_webhook(self.client, provider, body)
        assert response.status_code == 200, response.text
        self.posted.append((provider, body))
        answer: dict[str, Any] = response.json()
        return answer

    async def lemlist(
        self, kind: str, campaign: str, contact: str, at: datetime, step: int
    ) -> dict[str, Any]:
        channel, event_type = LEMLIST_TYPES[kind]
        template = "emailsSent.json" if channel == "email" else "linkedinInviteDone.json"
        body = json.loads(fixture_body("lemlist", template))
        activity = f"act_{uuid.UUID(int=self.rng.getrandbits(128)).hex}"
        body |= {
            "_id": activity,
            "type": kind,
            "createdAt": _iso(at),
            "campaignId": campaign,
            "leadEmail": contact,
            "leadId": f"lea_{contact}",
            "linkedinUrl": _profile(contact),
            "sequenceStep": step,
        }
        self.events[("lemlist", activity)] = Sent(
            self.instance_of("lemlist", campaign), contact, channel, event_type, "lemlist", step, at
        )
        return await self.post("lemlist", json.dumps(body).encode())

    async def postmark(
        self, record: str, tag: str, contact: str, at: datetime, step: int
    ) -> dict[str, Any]:
        body = json.loads(fixture_body("postmark", f"{record}.json"))
        message = str(uuid.UUID(int=self.rng.getrandbits(128)))
        body |= {"MessageID": message, "Tag": tag, "Metadata": {"step": str(step)}}
        if record == "Bounce":
            body |= {"ID": self.rng.getrandbits(40), "Email": contact, "BouncedAt": _iso(at)}
        else:
            body |= {"Recipient": contact, "DeliveredAt": _iso(at), "ReceivedAt": _iso(at)}
        machine = record in MACHINE_USER_AGENTS and self.rng.random() < 0.5
        if machine:
            body["UserAgent"] = MACHINE_USER_AGENTS[record]
        self.events[("postmark", message)] = Sent(
            self.instance_of("postmark", tag),
            contact,
            "email",
            POSTMARK_TYPES[record],
            "postmark",
            step,
            at,
            machine,
        )
        return await self.post("postmark", json.dumps(body).encode())

    async def phantombuster(self, agent: str, rows: list[tuple[str, datetime]]) -> dict[str, Any]:
        """A LinkedIn Auto Connect run: one connection request per (contact, time) row."""
        body = json.loads(fixture_body("phantombuster", "linkedin_auto_connect_finished.json"))
        body |= {
            "agentId": agent,
            "containerId": str(self.rng.getrandbits(50)),
            "resultObject": json.dumps(
                [{"profileUrl": _profile(contact), "timestamp": _iso(at)} for contact, at in rows]
            ),
        }
        for contact, at in rows:
            self.events[("phantombuster", agent, contact, _iso(at))] = Sent(
                self.instance_of("phantombuster", agent),
                contact,
                "linkedin",
                "connection_requested",
                "phantombuster",
                None,
                at,
            )
        return await self.post("phantombuster", json.dumps(body).encode())

    def of(self, instance: str | None) -> list[Sent]:
        return [e for e in self.events.values() if e.instance == instance]


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _profile(contact: str) -> str:
    return f"https://www.linkedin.com/in/{contact.split('@')[0]}"


async def _enroll(pool: Pool, instance_id: uuid.UUID, contact: str, at: datetime) -> None:
    """Enrolled before any event (as the API enrolls: counted into the instance)."""
    enrollment_id = await make_enrollment(pool, instance_id, contact, _profile(contact))
    await pool.execute(
        "UPDATE campaign_enrollments SET enrolled_at = $2 WHERE id = $1", enrollment_id, at
    )


@dataclass
class World:
    """What the mix left behind: the traffic record, instance ids, enrollment times."""

    traffic: Traffic
    ids: dict[str, uuid.UUID]
    enrolled_at: dict[str, dict[str, datetime]]
    """Per instance, the contacts enrolled before any event, and when."""


def _random_time(rng: random.Random) -> datetime:
    return DAY0 + timedelta(seconds=rng.randrange(10 * 86400), milliseconds=rng.randrange(1000))


async def build_world(client: Client, pool: Pool, seed: int = 4) -> World:
    """Post the mix; every webhook goes through POST /webhooks/{provider}."""
    rng = random.Random(seed)
    traffic = Traffic(client, rng)
    traffic.keys = {
        "A": {"lemlist": "cam-A", "postmark": "tag-A", "phantombuster": "agent-A"},
        "B": {"lemlist": "cam-B", "postmark": "tag-B"},
        "C": {"lemlist": "cam-C", "phantombuster": "agent-C"},
    }
    ids = {
        "A": await make_instance(
            pool,
            {"lemlist_campaign_id": "cam-A", "postmark_tag": "tag-A"}
            | {"phantombuster_agent_id": "agent-A"},
            name="A",
        ),
        "B": await make_instance(
            pool, {"lemlist_campaign_id": "cam-B", "postmark_tag": "tag-B"}, name="B"
        ),
        "C": await make_instance(
            pool,
            {"lemlist_campaign_id": "cam-C", "phantombuster_agent_ids": ["agent-x", "agent-C"]},
            status="paused",
            name="C",
        ),
    }
    enrolled_at: dict[str, dict[str, datetime]] = {name: {} for name in ids}
    # Contacts: the first half of each instance's enrolled beforehand (with a
    # LinkedIn URL, so PhantomBuster rows find them), the rest created by ingestion.
    contacts = {name: [f"{name.lower()}{n}@example.com" for n in range(12)] for name in ids}
    for name, people in contacts.items():
        for contact in people[:6]:
            at = DAY0 + timedelta(days=rng.randrange(-3, 8), hours=rng.randrange(24))
            await _enroll(pool, ids[name], contact, at)
            enrolled_at[name][contact] = at

    jobs = []
    for name, people in contacts.items():
        keys = traffic.keys[name]
        for contact in people:
            for _ in range(rng.randrange(3, 8)):
                at = _random_time(rng)
                step = rng.randrange(1, 4)
                if "postmark" in keys and rng.random() < 0.3:
                    record = rng.choice(list(POSTMARK_TYPES))
                    jobs.append(traffic.postmark(record, keys["postmark"], contact, at, step))
                else:
                    kind = rng.choice(list(LEMLIST_TYPES))
                    jobs.append(traffic.lemlist(kind, keys["lemlist"], contact, at, step))
    # Unmatched: campaign keys no instance maps.
    for n in range(6):
        contact = f"stranger{n}@example.com"
        jobs.append(traffic.lemlist("emailsSent", "cam-unknown", contact, DAY0, 1))
        jobs.append(traffic.postmark("Open", "tag-unknown", contact, DAY0, 2))
    await _run(jobs, rng)

    # PhantomBuster runs for pre-enrolled contacts; the second run is cumulative
    # (repeats the first run's rows), and one run is for an agent nobody maps.
    first_rows = [(c, _random_time(rng)) for c in contacts["A"][:3]]
    await traffic.phantombuster("agent-A", first_rows)
    later_rows = [(c, _random_time(rng)) for c in contacts["A"][3:6]]
    answer = await traffic.phantombuster("agent-A", first_rows + later_rows)
    assert answer["duplicates"] == len(first_rows)
    await traffic.phantombuster("agent-C", [(c, _random_time(rng)) for c in contacts["C"][:4]])
    await traffic.phantombuster("agent-nobody", [("ghost@example.com", DAY0)])

    # Redeliveries of a quarter of everything: nothing may count twice.
    await _run(
        [traffic.post(p, b) for p, b in rng.sample(traffic.posted, len(traffic.posted) // 4)], rng
    )

    # Events of a campaign mapped only later: redelivered after the mapping
    # exists, they attach (and enroll their contacts); the others stay unmatched.
    late = [f"late{n}@example.com" for n in range(5)]
    for contact in late:
        for kind in ("emailsSent", "emailsOpened"):
            await traffic.lemlist(kind, "cam-L", contact, _random_time(rng), 1)
    unmatched_bodies = [b for p, b in traffic.posted if b"cam-L" in b]
    ids["L"] = await make_instance(pool, {"lemlist_campaign_id": "cam-L"}, name="L")
    traffic.keys["L"] = {"lemlist": "cam-L"}
    enrolled_at["L"] = {}
    for body in unmatched_bodies[:6]:
        await traffic.post("lemlist", body)
        key = ("lemlist", json.loads(body)["_id"])
        traffic.events[key] = replace(traffic.events[key], instance="L")

    # A body that is not JSON is stored as rejected.
    for _ in range(2):
        response = await post_webhook(client, "lemlist", b"{not json")
        assert response.status_code == 400
        traffic.rejected += 1
    return World(traffic, ids, enrolled_at)


async def _run(jobs: list[Any], rng: random.Random) -> None:
    """Post concurrently, a few at a time, in a shuffled order."""
    rng.shuffle(jobs)
    for start in range(0, len(jobs), 16):
        await asyncio.gather(*jobs[start : start + 16])


def expected_performance(
    world: World, name: str, start: datetime | None = None, end: datetime | None = None
) -> dict[str, Any]:
    """The performance answer, computed from what was posted."""
    events = [
        e
        for e in world.traffic.of(name)
        if (start is None or e.at >= start) and (end is None or e.at < end)
    ]
    created = {e.contact for e in world.traffic.of(name)} - set(world.enrolled_at[name])
    # Enrollments made by ingestion were enrolled while the test ran, after any 2025 bound.
    enrolled = sum(
        1
        for at in world.enrolled_at[name].values()
        if (start is None or at >= start) and (end is None or at < end)
    ) + (len(created) if end is None else 0)

    def totals(subset: Iterable[Sent], types: list[str]) -> dict[str, int]:
        counts = Counter(e.event_type for e in subset)
        return {t: counts[t] for t in types}

    def unique(subset: Iterable[Sent], types: list[str]) -> dict[str, int]:
        contacts: dict[str, set[str]] = {t: set() for t in types}
        for e in subset:
            contacts[e.event_type].add(e.contact)
        return {t: len(c) for t, c in contacts.items()}

    overall = unique(events, ALL_TYPES)
    # Each channel's reach: the denominators, counted from the events again.
    email_reach_types = {"sent", "delivered", "bounced"}

    def reach(subset: list[Sent]) -> int:
        return len(
            {
                e.contact
                for e in subset
                if e.channel == "email" and e.event_type in email_reach_types
            }
        )

    # Human engagement: an open is a person's when unflagged, or when the contact
    # clicked unflagged or replied by e-mail anywhere in the range.
    email = [e for e in events if e.channel == "email"]
    vouched = {
        e.contact
        for e in email
        if e.event_type == "replied" or (e.event_type == "clicked" and not e.machine)
    }

    def human(subset: Iterable[Sent]) -> dict[str, Any]:
        chosen = [e for e in subset if e.channel == "email"]
        reach = {e.contact for e in chosen if e.event_type in ("sent", "delivered", "bounced")}
        opened = {
            e.contact
            for e in chosen
            if e.event_type == "opened" and (not e.machine or e.contact in vouched)
        }
        clicked = {e.contact for e in chosen if e.event_type == "clicked" and not e.machine}
        return {
            "unique": {"opened": len(opened), "clicked": len(clicked)},
            "email_reach": len(reach),
            "human_open_rate": len(opened) / len(reach) if reach else None,
            "human_click_rate": len(clicked) / len(reach) if reach else None,
        }

    def rates(
        subset: list[Sent], channels: tuple[str, ...] = ("email", "linkedin")
    ) -> dict[str, float | None]:
        email = unique([e for e in subset if e.channel == "email"], ALL_TYPES)
        linkedin = unique([e for e in subset if e.channel == "linkedin"], ALL_TYPES)
        whole = reach(subset)

        def over_reach(part: str) -> float | None:
            return email[part] / whole if whole and "email" in channels else None

        requested = linkedin["connection_requested"]
        return {
            "delivery_rate": over_reach("delivered"),
            "open_rate": over_reach("opened"),
            "click_rate": over_reach("clicked"),
            "reply_rate": over_reach("replied"),
            "bounce_rate": over_reach("bounced"),
            "unsubscribe_rate": over_reach("unsubscribed"),
            "connection_accept_rate": linkedin["connection_accepted"] / requested
            if requested and "linkedin" in channels
            else None,
            "human_open_rate": human(subset)["human_open_rate"] if "email" in channels else None,
            "human_click_rate": human(subset)["human_click_rate"] if "email" in channels else None,
        }

    people = human(events)
    steps = sorted(
        {(e.channel, e.step) for e in events}, key=lambda k: (k[0], k[1] is None, k[1] or 0)
    )
    days = sorted({e.at.date() for e in events})
    first = start.date() if start else (days[0] if days else None)
    last = (end - timedelta(microseconds=1)).date() if end else (days[-1] if days else None)
    span = [] if first is None or last is None else _days_between(first, last)
    return {
        "enrolled": enrolled,
        "totals": totals(events, ALL_TYPES),
        "unique": overall,
        "reach": {
            "email": reach(events),
            "linkedin": unique([e for e in events if e.channel == "linkedin"], ALL_TYPES)[
                "connection_requested"
            ],
        },
        "rates": rates(events),
        "rate_definitions": RATE_DEFINITIONS,
        "human": people,
        "tz": "UTC",
        "by_channel": [
            {
                "channel": channel,
                "totals": totals((e for e in events if e.channel == channel), types),
                "unique": unique((e for e in events if e.channel == channel), types),
                "rates": rates([e for e in events if e.channel == channel], (channel,)),
            }
            for channel, types in CHANNEL_TYPES.items()
        ],
        "by_provider": [
            {
                "provider": provider,
                "totals": totals((e for e in events if e.provider == provider), ALL_TYPES),
                "unique": unique([e for e in events if e.provider == provider], ALL_TYPES),
                "rates": rates([e for e in events if e.provider == provider]),
            }
            for provider in PROVIDERS
        ],
        "by_step": [
            {
                "channel": channel,
                "step_number": step,
                "totals": totals(
                    (e for e in events if (e.channel, e.step) == (channel, step)),
                    CHANNEL_TYPES[channel],
                ),
                "unique": unique(
                    (e for e in events if (e.channel, e.step) == (channel, step)),
                    CHANNEL_TYPES[channel],
                ),
                # An e-mail step's rates are over the step's own reach.
                "rates": rates(
                    [e for e in events if (e.channel, e.step) == (channel, step)], (channel,)
                ),
                "human": human(e for e in events if e.step == step) if channel == "email" else None,
            }
            for channel, step in steps
        ],
        "daily": [
            {
                "day": day.isoformat(),
                "totals": totals((e for e in events if e.at.date() == day), ALL_TYPES),
                "human": human(e for e in events if e.at.date() == day),
            }
            for day in span
        ],
    }


def _rate_definition(
    channel: str, counted: str, meaning: str, *, human: bool = False
) -> dict[str, Any]:
    reach = ["sent", "delivered", "bounced"] if channel == "email" else ["connection_requested"]
    over = (
        "with an e-mail sent, delivered or bounced"
        if channel == "email"
        else "with a connection requested"
    )
    who = (
        f"where a person {meaning} an e-mail (no privacy proxy or scanner)"
        if human
        else (f"that {meaning}")
    )
    return {
        "numerator": {"channel": channel, "event_types": [counted], "human": human},
        "denominator": {"channel": channel, "event_types": reach, "human": False},
        "description": f"enrollments {who}, over the enrollments {over}",
    }


RATE_DEFINITIONS = {
    "delivery_rate": _rate_definition("email", "delivered", "delivered e-mails"),
    "open_rate": _rate_definition("email", "opened", "opened e-mails"),
    "click_rate": _rate_definition("email", "clicked", "clicked e-mail links"),
    "reply_rate": _rate_definition("email", "replied", "replied to an e-mail"),
    "bounce_rate": _rate_definition("email", "bounced", "bounced e-mails"),
    "unsubscribe_rate": _rate_definition("email", "unsubscribed", "unsubscribed"),
    "connection_accept_rate": _rate_definition(
        "linkedin", "connection_accepted", "accepted a connection"
    ),
    "human_open_rate": _rate_definition("email", "opened", "opened", human=True),
    "human_click_rate": _rate_definition("email", "clicked", "clicked", human=True),
}
"""What the answer must say each rate divides (contract §5)."""


def _days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


@pytest.fixture
async def world(client: Client, clean_db: Pool) -> World:
    return await build_world(client, clean_db)


async def test_performance_equals_what_was_posted(client: Client, world: World) -> None:
    assert world.traffic.of(None), "the mix must hold unmatched events"
    flagged = [e for e in world.traffic.events.values() if e.machine and e.instance]
    assert {e.event_type for e in flagged} == {"opened", "clicked"}, "and machine events"
    for name, instance_id in world.ids.items():
        response = await client.get(f"/api/campaigns/instances/{instance_id}/performance")
        assert response.status_code == 200, response.text
        answer = response.json()
        expected = expected_performance(world, name)
        assert answer == expected | {"instance_id": str(instance_id), "from": None, "to": None}


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime(2025, 3, 3, tzinfo=UTC), datetime(2025, 3, 7, 12, tzinfo=UTC)),
        (datetime(2025, 3, 5, 6, 30, tzinfo=UTC), None),
        (None, datetime(2025, 3, 4, tzinfo=UTC)),
        (datetime(2025, 2, 20, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC)),
    ],
)
async def test_performance_over_a_range(
    client: Client, world: World, start: datetime | None, end: datetime | None
) -> None:
    params = {k: v.isoformat() for k, v in (("from", start), ("to", end)) if v is not None}
    for name, instance_id in world.ids.items():
        response = await client.get(
            f"/api/campaigns/instances/{instance_id}/performance", params=params
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        expected = expected_performance(world, name, start, end)
        assert answer["daily"] == expected["daily"]
        assert answer == expected | {
            "instance_id": str(instance_id),
            "from": start and _iso_api(start),
            "to": end and _iso_api(end),
        }


def _iso_api(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def test_unique_counts_equal_the_instance_counters(client: Client, world: World) -> None:
    for instance_id in world.ids.values():
        instance = (await client.get(f"/api/campaigns/instances/{instance_id}")).json()
        performance = (
            await client.get(f"/api/campaigns/instances/{instance_id}/performance")
        ).json()
        counters = instance["counters"]
        assert counters["enrolled"] == performance["enrolled"]
        for event_type in ("sent", "opened", "clicked", "replied"):
            assert counters[event_type] == performance["unique"][event_type], event_type


async def test_performance_of_an_instance_without_events(client: Client, clean_db: Pool) -> None:
    instance_id = await make_instance(clean_db, {"lemlist_campaign_id": "quiet"})
    answer = (await client.get(f"/api/campaigns/instances/{instance_id}/performance")).json()
    assert answer["enrolled"] == 0
    assert set(answer["totals"].values()) == {0}
    assert set(answer["rates"].values()) == {None}
    assert answer["by_step"] == [] and answer["daily"] == []
    ranged = await client.get(
        f"/api/campaigns/instances/{instance_id}/performance",
        params={"from": "2025-03-01", "to": "2025-03-04"},
    )
    assert [d["day"] for d in ranged.json()["daily"]] == ["2025-03-01", "2025-03-02", "2025-03-03"]


async def _all_pages(client: Client, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = await client.get(path, params=params | ({"cursor": cursor} if cursor else {}))
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def _shape(items: Iterable[dict[str, Any]]) -> list[tuple[str, str, str, int | None, datetime]]:
    return sorted(
        (i["provider"], i["channel"], i["event_type"], i["step_number"], _at(i["timestamp"]))
        for i in items
    )


def _sent_shape(events: Iterable[Sent]) -> list[tuple[str, str, str, int | None, datetime]]:
    return sorted((e.provider, e.channel, e.event_type, e.step, e.at) for e in events)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_event_filters(client: Client, clean_db: Pool, world: World) -> None:
    traffic = world.traffic
    everything = await _all_pages(client, "/api/events", {"limit": 50})
    assert _shape(everything) == _sent_shape(traffic.events.values())
    keys = [(_at(i["timestamp"]), uuid.UUID(i["id"])) for i in everything]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)

    cases: list[tuple[dict[str, Any], list[Sent]]] = [
        ({"instance_id": str(world.ids["A"])}, traffic.of("A")),
        ({"unmatched": "true"}, traffic.of(None)),
        (
            {"provider": "postmark"},
            [e for e in traffic.events.values() if e.provider == "postmark"],
        ),
        ({"channel": "linkedin"}, [e for e in traffic.events.values() if e.channel == "linkedin"]),
        (
            {"event_type": "opened"},
            [e for e in traffic.events.values() if e.event_type == "opened"],
        ),
        (
            {"instance_id": str(world.ids["B"]), "channel": "email", "event_type": "sent"},
            [e for e in traffic.of("B") if (e.channel, e.event_type) == ("email", "sent")],
        ),
        (
            {"from": "2025-03-04", "to": "2025-03-06T12:00:00+00:00"},
            [
                e
                for e in traffic.events.values()
                if datetime(2025, 3, 4, tzinfo=UTC) <= e.at < datetime(2025, 3, 6, 12, tzinfo=UTC)
            ],
        ),
    ]
    for params, expected in cases:
        assert expected, params
        got = await _all_pages(client, "/api/events", params | {"limit": 9})
        assert _shape(got) == _sent_shape(expected), params

    contact = sorted(traffic.of("A"), key=lambda e: e.contact)[0].contact
    enrollment_id = await clean_db.fetchval(
        "SELECT id FROM campaign_enrollments WHERE instance_id = $1 AND contact_email = $2",
        world.ids["A"],
        contact,
    )
    got = await _all_pages(client, "/api/events", {"enrollment_id": str(enrollment_id)})
    assert _shape(got) == _sent_shape(e for e in traffic.of("A") if e.contact == contact)
    assert {i["enrollment_id"] for i in got} == {str(enrollment_id)}


async def test_event_pages_hold_every_row_once_while_events_arrive(
    client: Client, clean_db: Pool
) -> None:
    traffic = Traffic(client, random.Random(11))
    traffic.keys = {"A": {"lemlist": "cam-A"}}
    await make_instance(clean_db, {"lemlist_campaign_id": "cam-A"})
    for n in range(40):
        at = DAY0 + timedelta(hours=n % 13, minutes=n)
        await traffic.lemlist("emailsOpened", "cam-A", f"p{n % 7}@example.com", at, 1)
    before = {r["id"] for r in await clean_db.fetch("SELECT id FROM campaign_events")}

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 7} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/api/events", params=params)).json()
        seen += [i["id"] for i in page["items"]]
        # New events between pages: before, at and after the page boundary.
        for offset in (-3600, 0, 3600):
            at = _at(page["items"][-1]["timestamp"]) + timedelta(seconds=offset)
            await traffic.lemlist("emailsClicked", "cam-A", "late@example.com", at, 2)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)), "a row was sent twice"
    assert {str(i) for i in before} <= set(seen), "a row that existed was skipped"
    assert len(seen) > len(before), "events arriving after the cursor belong on later pages"


async def test_deliveries_log(client: Client, world: World) -> None:
    traffic = world.traffic
    everything = await _all_pages(client, "/api/deliveries", {"limit": 25})
    assert len(everything) == len(traffic.posted) + traffic.rejected
    keys = [(_at(d["received_at"]), uuid.UUID(d["id"])) for d in everything]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    for delivery in everything:
        assert "body" not in delivery and delivery["body_size"] > 0
        assert "token" not in delivery["query"]
        assert "lemlist-secret" not in json.dumps(delivery)

    attention = await _all_pages(
        client, "/api/deliveries", {"status": ["rejected", "unmatched"], "limit": 4}
    )
    assert Counter(d["status"] for d in attention) == {
        "rejected": traffic.rejected,
        "unmatched": sum(d["status"] == "unmatched" for d in everything),
    }
    assert traffic.rejected and any(d["status"] == "unmatched" for d in attention)
    assert all(d["cause"] for d in attention)

    postmark = await _all_pages(client, "/api/deliveries", {"provider": "postmark"})
    assert len(postmark) == sum(p == "postmark" for p, _ in traffic.posted)
    middle = everything[len(everything) // 2]["received_at"]
    later = await _all_pages(client, "/api/deliveries", {"from": middle})
    assert later == [d for d in everything if _at(d["received_at"]) >= _at(middle)]


async def test_campaign_reads(client: Client, clean_db: Pool) -> None:
    template_id = await clean_db.fetchval(
        "INSERT INTO campaign_templates (name, type, is_active, settings)"
        " VALUES ('Steps', 'multi_channel', true, '{\"tone\": \"warm\"}') RETURNING id"
    )
    await clean_db.execute(
        "INSERT INTO email_sequences"
        " (template_id, step_number, subject, body_template, a_b_variant)"
        " VALUES ($1, 2, 'second', 'b', NULL), ($1, 1, 'first B', 'b', 'B'),"
        " ($1, 1, 'first A', 'b', 'A')",
        template_id,
    )
    await clean_db.execute(
        "INSERT INTO linkedin_sequences (template_id, step_number, action_type)"
        " VALUES ($1, 3, 'message'), ($1, 1, 'profile_visit'), ($1, 2, 'connection_request')",
        template_id,
    )
    await clean_db.execute(
        "INSERT INTO campaign_templates (name, type, is_active) VALUES ('Off', 'email', false)"
    )
    detail = (await client.get(f"/api/campaigns/templates/{template_id}")).json()
    assert [s["subject"] for s in detail["email_sequences"]] == ["first A", "first B", "second"]
    assert [s["action_type"] for s in detail["linkedin_sequences"]] == [
        "profile_visit",
        "connection_request",
        "message",
    ]
    assert detail["settings"] == {"tone": "warm"}
    assert (detail["email_steps"], detail["linkedin_steps"]) == (2, 3)  # A/B variants: one step

    listed = (await client.get("/api/campaigns/templates")).json()["items"]
    assert [t["name"] for t in listed] == ["Steps", "Off"]
    assert "email_sequences" not in listed[0]
    for params, names in [
        ({"is_active": "false"}, ["Off"]),
        ({"type": "multi_channel"}, ["Steps"]),
        ({"type": "linkedin"}, []),
    ]:
        got = (await client.get("/api/campaigns/templates", params=params)).json()["items"]
        assert [t["name"] for t in got] == names, params

    active = await make_instance(clean_db, {"lemlist_campaign_id": "x"}, name="running")
    paused = await make_instance(clean_db, {}, status="paused", name="resting")
    listed = (await client.get("/api/campaigns/instances")).json()["items"]
    assert {i["id"] for i in listed} == {str(active), str(paused)}
    got = (await client.get("/api/campaigns/instances", params={"status": "paused"})).json()
    assert [i["name"] for i in got["items"]] == ["resting"]
    one = (await client.get(f"/api/campaigns/instances/{active}")).json()
    assert one["provider_config"] == {"lemlist_campaign_id": "x"}
    assert one["counters"] == {"enrolled": 0, "sent": 0, "opened": 0, "clicked": 0, "replied": 0}


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/events", {"instance_id": "not-a-uuid"}, "instance_id"),
        ("/api/events", {"enrollment_id": "42"}, "enrollment_id"),
        ("/api/events", {"from": "yesterday"}, "from"),
        ("/api/events", {"to": "2025-13-01"}, "to"),
        ("/api/events", {"from": "2025-03-02", "to": "2025-03-01"}, "from"),
        ("/api/events", {"limit": "0"}, "limit"),
        ("/api/events", {"limit": "100000"}, "limit"),
        ("/api/events", {"limit": "ten"}, "limit"),
        ("/api/events", {"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
        ("/api/events", {"cursor": "%%%"}, "cursor"),
        ("/api/events", {"event_type": "teleported"}, "event_type"),
        ("/api/events", {"provider": "mailchimp"}, "provider"),
        ("/api/events", {"unmatched": "maybe"}, "unmatched"),
        ("/api/deliveries", {"status": "lost"}, "status"),
        ("/api/deliveries", {"from": "2025-03-02", "to": "2025-03-01"}, "from"),
        ("/api/deliveries", {"limit": "1001"}, "limit"),
        ("/api/campaigns/instances", {"status": "sleeping"}, "status"),
        ("/api/campaigns/templates", {"type": "fax"}, "type"),
        ("/api/campaigns/templates", {"is_active": "often"}, "is_active"),
    ],
)
async def test_bad_parameters_are_400_naming_the_field(
    client: Client, path: str, params: dict[str, str], field: str
) -> None:
    response = await client.get(path, params=params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["field"] == field


async def test_performance_parameters_and_unknown_ids(client: Client, clean_db: Pool) -> None:
    instance_id = await make_instance(clean_db, {})
    performance = f"/api/campaigns/instances/{instance_id}/performance"
    for params, field_name in [
        ({"from": "2025-03-10", "to": "2025-03-01"}, "from"),
        ({"from": "soon"}, "from"),
        ({"from": "1900-01-01", "to": "2100-01-01"}, "from"),
    ]:
        response = await client.get(performance, params=params)
        assert response.status_code == 400, params
        assert response.json()["field"] == field_name

    unknown = uuid.uuid4()
    for path in (
        f"/api/campaigns/templates/{unknown}",
        f"/api/campaigns/instances/{unknown}",
        f"/api/campaigns/instances/{unknown}/performance",
        "/api/campaigns/instances/not-a-uuid",
    ):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_openapi_lists_every_endpoint_with_problem_answers(client: Client) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    paths = document["paths"]
    reads = {
        "/api/campaigns/templates": (400,),
        "/api/campaigns/templates/{template_id}": (400, 404),
        "/api/campaigns/instances": (400,),
        "/api/campaigns/instances/{instance_id}": (400, 404),
        "/api/campaigns/instances/{instance_id}/performance": (400, 404),
        "/api/events": (400,),
        "/api/deliveries": (400,),
    }
    assert set(reads) | {"/webhooks/{provider}", "/healthz", "/readyz", "/metrics"} <= set(paths)
    for path, errors in reads.items():
        responses = paths[path]["get"]["responses"]
        assert "$ref" in json.dumps(responses["200"]), path
        for status in errors:
            content = responses[str(status)]["content"]["application/problem+json"]
            assert content["schema"]["$ref"].endswith("/Problem"), path
    schemas = document["components"]["schemas"]
    assert {"Performance", "EventPage", "DeliveryPage", "TemplateDetail", "InstanceList"} <= set(
        schemas
    )
    assert "from" in schemas["Performance"]["properties"]


@pytest.mark.parametrize(
    "where",
    [
        EventFilter(),
        EventFilter(unmatched=False),
        EventFilter(
            instance_ids=(uuid.uuid4(),),
            enrollment_ids=(uuid.uuid4(),),
            delivery_ids=(uuid.uuid4(),),
            providers=("lemlist",),
            channels=("email",),
            event_types=("sent",),
            unmatched=True,
            period=TimeRange(DAY0, DAY0 + timedelta(days=1)),
        ),
        EventFilter(
            instance_ids=(uuid.uuid4(), uuid.uuid4()),
            enrollment_ids=(uuid.uuid4(), uuid.uuid4()),
            delivery_ids=(uuid.uuid4(), uuid.uuid4()),
            providers=("lemlist", "postmark"),
            channels=("email", "linkedin"),
            event_types=("sent", "opened"),
            period=TimeRange(DAY0, None),
        ),
    ],
)
async def test_composed_event_queries_prepare_against_the_schema(
    pool: Pool, where: EventFilter
) -> None:
    for after in (None, Key(DAY0, uuid.uuid4())):
        query, args = events_query(where, after, 10)
        async with pool.acquire() as conn:
            statement = await conn.prepare(query)
            assert len(statement.get_parameters()) == len(args)

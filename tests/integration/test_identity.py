"""One person, one enrollment; enrollment state from events; rates over reach (contract §4, §5).

Webhooks go through the real HTTP edge (or the group-commit Ingestor, for
the concurrency tests) into real PostgreSQL; assertions are on rows.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.db.deliveries import DeliveryFilter
from gateway.db.pool import Pool
from gateway.delivery import Delivery
from gateway.fetch import ResultFetcher
from gateway.ingest import Ingestor
from gateway.ops.progress import Progress
from gateway.ops.reprocess import Reprocessor
from gateway.settings import Settings
from tests.conftest import AUTH
from tests.database import make_instance, post_webhook, running_ingestors
from tests.replaying import everything, recounted, stored_counters

Client = AsyncTestClient[Litestar]

PAYLOADS = Path(__file__).resolve().parents[3] / "shared" / "payloads"
CAMPAIGN = "cam_R7vK2mXq9PdL4sWtA"
AGENT = "7318204659127734"
TAGS = ["q1-outbound-step-1", "q1-outbound-step-2", "q1-outbound-step-3"]
PEOPLE = {
    "dana": ("dana.whitfield@northwind-example.com", "linkedin.com/in/dana-whitfield-example"),
    "marcus": ("m.okafor@contoso-example.net", "linkedin.com/in/marcus-okafor-example"),
    "priya": ("priya.natarajan@tailspin-example.io", "linkedin.com/in/priya-natarajan-example"),
}
ENROLLMENT_STATE = (
    "SELECT lower(contact_email) AS email, linkedin_key, status, current_step, completed_at,"
    " event_mask FROM campaign_enrollments WHERE instance_id = $1 ORDER BY 1, 2"
)


def payload(provider: str, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((PAYLOADS / provider / name).read_text())
    return loaded


def linkedin_invite(person: str) -> dict[str, Any]:
    """lemlist's LinkedIn invitation (it carries the lead's e-mail and profile) for a person."""
    email, key = PEOPLE[person]
    return payload("lemlist", "linkedinInviteDone.json") | {
        "_id": f"act_invite_{person}",
        "leadEmail": email,
        "linkedinUrl": f"https://www.{key}/",
    }


def multichannel_bodies() -> list[tuple[str, dict[str, Any]]]:
    """The three providers' example payloads, plus a lemlist LinkedIn invitation per person."""
    bodies = [("lemlist", payload("lemlist", p.name)) for p in (PAYLOADS / "lemlist").iterdir()]
    bodies += [("lemlist", linkedin_invite(person)) for person in ("marcus", "priya")]
    bodies += [("postmark", payload("postmark", p.name)) for p in (PAYLOADS / "postmark").iterdir()]
    bodies.append(
        ("phantombuster", payload("phantombuster", "linkedin_auto_connect_finished.json"))
    )
    return bodies


async def multichannel_instance(pool: Pool) -> uuid.UUID:
    return await make_instance(
        pool,
        {"lemlist_campaign_id": CAMPAIGN, "postmark_tags": TAGS, "phantombuster_agent_id": AGENT},
    )


async def post_all(client: Client, bodies: list[tuple[str, dict[str, Any]]]) -> None:
    for provider, body in bodies:
        response = await post_webhook(client, provider, json.dumps(body).encode())
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
async def test_three_providers_one_enrollment_per_person(
    client: Client, clean_db: Pool, seed: int
) -> None:
    instance = await multichannel_instance(clean_db)
    bodies = multichannel_bodies()
    random.Random(seed).shuffle(bodies)
    await post_all(client, bodies)

    rows = await clean_db.fetch(ENROLLMENT_STATE, instance)
    people = {(r["email"], r["linkedin_key"]): r for r in rows}
    # Dana, Marcus and Priya with both identifiers; Lindqvist only ever wrote by e-mail.
    assert set(people) == {*PEOPLE.values(), ("j.lindqvist@fabrikam-example.org", None)}
    dana, marcus, priya = (people[PEOPLE[p]] for p in ("dana", "marcus", "priya"))
    assert (dana["status"], dana["current_step"]) == ("completed", 4)
    assert dana["completed_at"] == datetime(2025, 3, 11, 8, 12, 40, 957000, tzinfo=UTC)
    assert marcus["status"] == "bounced"  # lemlist emailsBounced, Postmark HardBounce
    assert priya["status"] == "unsubscribed"
    assert people[("j.lindqvist@fabrikam-example.org", None)]["status"] == "unsubscribed"
    assert (
        await clean_db.fetchval("SELECT count(*) FROM campaign_events WHERE enrollment_id IS NULL")
        == 0
    )
    assert await stored_counters(clean_db) == await recounted(clean_db)


async def test_example_payloads_with_contacts_enrolled_first(
    client: Client, clean_db: Pool
) -> None:
    """How a user runs a campaign: contacts enrolled with both identifiers, then webhooks."""
    instance = await multichannel_instance(clean_db)
    contacts = [
        {"email": email.upper(), "linkedin_url": f"https://{key}"} for email, key in PEOPLE.values()
    ]
    response = await client.post(
        f"/api/campaigns/instances/{instance}/enrollments",
        json={"contacts": contacts},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    plain = [
        (p, b) for p, b in multichannel_bodies() if not b.get("_id", "").startswith("act_invite")
    ]
    await post_all(client, plain)
    rows = await clean_db.fetch(ENROLLMENT_STATE, instance)
    assert [(r["email"], r["linkedin_key"]) for r in rows] == sorted(
        [*PEOPLE.values(), ("j.lindqvist@fabrikam-example.org", None)]
    )
    assert await stored_counters(clean_db) == await recounted(clean_db)


async def test_an_event_with_both_identifiers_fills_in_and_merges(
    client: Client, clean_db: Pool
) -> None:
    instance = await multichannel_instance(clean_db)
    # Marcus known twice: by e-mail (lemlist bounce) and by profile (PhantomBuster row).
    await post_all(
        client,
        [
            ("lemlist", payload("lemlist", "emailsBounced.json")),
            ("phantombuster", payload("phantombuster", "linkedin_auto_connect_finished.json")),
        ],
    )
    email, key = PEOPLE["marcus"]
    before = await clean_db.fetch(
        "SELECT id, created_at FROM campaign_enrollments WHERE lower(contact_email) = $1"
        " OR linkedin_key = $2 ORDER BY created_at, id",
        email,
        key,
    )
    assert len(before) == 2
    enrolled = await clean_db.fetchval(
        "SELECT total_enrolled FROM campaign_instances WHERE id = $1", instance
    )

    await post_all(client, [("lemlist", linkedin_invite("marcus"))])

    after = await clean_db.fetch(
        "SELECT id, contact_email, linkedin_key, merged_from, status FROM campaign_enrollments"
        " WHERE lower(contact_email) = $1 OR linkedin_key = $2",
        email,
        key,
    )
    assert len(after) == 1
    survivor = after[0]
    assert survivor["id"] == before[0]["id"]  # the older one
    assert (survivor["contact_email"], survivor["linkedin_key"]) == (email, key)
    assert [m["enrollment_id"] for m in survivor["merged_from"]] == [str(before[1]["id"])]
    assert survivor["status"] == "bounced"
    assert (
        await clean_db.fetchval(
            "SELECT count(*) FROM campaign_events WHERE enrollment_id = $1", survivor["id"]
        )
        == 3
    )  # the bounce, the invitation row of the run, and lemlist's invitation
    assert (
        await clean_db.fetchval(
            "SELECT total_enrolled FROM campaign_instances WHERE id = $1", instance
        )
        == enrolled - 1
    )
    assert await stored_counters(clean_db) == await recounted(clean_db)


async def test_postmark_only_campaign_has_rates(client: Client, clean_db: Pool) -> None:
    instance = await make_instance(clean_db, {"postmark_tag": "q1-outbound-step-2"})
    for name in ("Delivery.json", "Open.json", "Click.json"):
        response = await post_webhook(
            client, "postmark", json.dumps(payload("postmark", name)).encode()
        )
        assert response.json()["status"] == "processed", response.text
    answer = (await client.get(f"/api/campaigns/instances/{instance}/performance")).json()
    assert answer["unique"]["sent"] == 0
    assert answer["reach"] == {"email": 1, "linkedin": 0}
    rates = answer["rates"]
    assert (rates["delivery_rate"], rates["open_rate"], rates["click_rate"]) == (1.0, 1.0, 1.0)
    assert answer["rate_definitions"]["open_rate"]["denominator"] == {
        "channel": "email",
        "event_types": ["sent", "delivered", "bounced"],
        "human": False,
    }
    [provider] = [p for p in answer["by_provider"] if p["provider"] == "postmark"]
    assert provider["rates"]["open_rate"] == 1.0


async def test_one_postmark_tag_per_step_attaches_every_step(
    client: Client, clean_db: Pool
) -> None:
    instance = await make_instance(clean_db, {"postmark_tags": TAGS})
    for name in ("Bounce.json", "Delivery.json", "SpamComplaint.json"):
        response = await post_webhook(
            client, "postmark", json.dumps(payload("postmark", name)).encode()
        )
        assert response.json()["status"] == "processed", response.text
    attached = await clean_db.fetchval(
        "SELECT count(*) FROM campaign_events WHERE instance_id = $1 AND enrollment_id IS NOT NULL",
        instance,
    )
    assert attached == 3


async def test_key_lists_in_the_management_api(client: Client, clean_db: Pool) -> None:
    template = await client.post(
        "/api/campaigns/templates", json={"name": "T", "type": "email"}, headers=AUTH
    )
    assert template.status_code == 201, template.text
    base = {"template_id": template.json()["id"], "status": "active"}
    first = await client.post(
        "/api/campaigns/instances",
        json=base | {"name": "A", "provider_config": {"postmark_tags": TAGS}},
        headers=AUTH,
    )
    assert first.status_code == 201, first.text
    clash = await client.post(
        "/api/campaigns/instances",
        json=base | {"name": "B", "provider_config": {"postmark_tag": TAGS[2]}},
        headers=AUTH,
    )
    assert clash.status_code == 409, clash.text
    assert TAGS[2] in clash.json()["detail"]
    bad = await client.post(
        "/api/campaigns/instances",
        json=base | {"name": "C", "provider_config": {"lemlist_campaign_ids": ["ok", 7]}},
        headers=AUTH,
    )
    assert bad.status_code == 400, bad.text
    assert "lemlist_campaign_ids" in bad.json()["field"]
    listed = await client.post(
        "/api/campaigns/instances",
        json=base | {"name": "D", "provider_config": {"lemlist_campaign_ids": ["a", CAMPAIGN]}},
        headers=AUTH,
    )
    assert listed.status_code == 201, listed.text
    response = await post_webhook(
        client, "lemlist", json.dumps(payload("lemlist", "emailsSent.json")).encode()
    )
    assert response.json()["status"] == "processed"
    assert await clean_db.fetchval("SELECT instance_id FROM campaign_events") == uuid.UUID(
        listed.json()["id"]
    )


# Dana's lemlist activities; (expected status, current_step, first reply) whatever the order.
DANA = [
    "emailsSent.json",
    "emailsOpened.json",
    "emailsClicked.json",
    "emailsReplied.json",
    "linkedinVisitDone.json",
    "linkedinInviteDone.json",
    "linkedinInviteAccepted.json",
    "linkedinSent.json",
    "linkedinReplied.json",
]
runs = itertools.count()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    order=st.permutations(range(len(DANA) + 2)),
    repeated=st.lists(st.integers(0, len(DANA) + 1), max_size=3),
)
async def test_progression_is_the_same_in_any_order(
    client: Client, clean_db: Pool, order: list[int], repeated: list[int]
) -> None:
    run = next(runs)
    campaign = f"cam_order_{run}"
    instance = await make_instance(clean_db, {"lemlist_campaign_id": campaign})
    bodies = [payload("lemlist", name) for name in DANA]
    # A second reply, later, and an unsubscription of another lead (who must end unsubscribed).
    bodies.append(
        payload("lemlist", "emailsReplied.json")
        | {"_id": "late", "createdAt": "2025-03-20T10:00:00Z"}
    )
    bodies.append(payload("lemlist", "emailsUnsubscribed.json"))
    for body in bodies:
        body |= {"_id": f"{body['_id']}_{run}", "campaignId": campaign}
    for i in [*order, *repeated]:  # redeliveries change nothing
        response = await post_webhook(client, "lemlist", json.dumps(bodies[i]).encode())
        assert response.status_code == 200, response.text
    rows = {r["email"]: r for r in await clean_db.fetch(ENROLLMENT_STATE, instance)}
    dana = rows["dana.whitfield@northwind-example.com"]
    assert (dana["status"], dana["current_step"]) == ("completed", 4)
    assert dana["completed_at"] == datetime(2025, 3, 11, 8, 12, 40, 957000, tzinfo=UTC)
    assert dana["linkedin_key"] == "linkedin.com/in/dana-whitfield-example"
    assert rows["priya.natarajan@tailspin-example.io"]["status"] == "unsubscribed"
    counters = await clean_db.fetchrow(
        "SELECT total_enrolled, total_sent, total_opened, total_clicked, total_replied"
        " FROM campaign_instances WHERE id = $1",
        instance,
    )
    assert tuple(counters) == (2, 1, 1, 1, 1)


async def test_soft_bounce_does_not_end_an_enrollment(client: Client, clean_db: Pool) -> None:
    await make_instance(clean_db, {"postmark_tag": "q1-outbound-step-1"})
    soft = payload("postmark", "Bounce.json") | {"Type": "SoftBounce", "TypeCode": 4096, "ID": 1}
    response = await post_webhook(client, "postmark", json.dumps(soft).encode())
    assert response.json()["status"] == "processed", response.text
    assert await clean_db.fetchval("SELECT status FROM campaign_enrollments") == "active"
    hard = payload("postmark", "Bounce.json")
    await post_webhook(client, "postmark", json.dumps(hard).encode())
    assert await clean_db.fetchval("SELECT status FROM campaign_enrollments") == "bounced"


async def test_api_statuses_are_kept(client: Client, clean_db: Pool) -> None:
    instance = await make_instance(clean_db, {"lemlist_campaign_id": CAMPAIGN})
    await clean_db.execute(
        "INSERT INTO campaign_enrollments (instance_id, contact_email, status)"
        " VALUES ($1, 'dana.whitfield@northwind-example.com', 'paused')",
        instance,
    )
    for name in ("emailsSent.json", "emailsReplied.json"):
        await post_webhook(client, "lemlist", json.dumps(payload("lemlist", name)).encode())
    row = await clean_db.fetchrow("SELECT status, current_step FROM campaign_enrollments")
    assert (row["status"], row["current_step"]) == ("paused", 2)


async def test_reprocess_afterwards_changes_nothing(
    client: Client, clean_db: Pool, settings: Settings
) -> None:
    await multichannel_instance(clean_db)
    await post_all(client, multichannel_bodies())
    before = await everything(clean_db)
    fetcher = ResultFetcher(settings)
    reprocessor = Reprocessor(clean_db, settings, fetcher)
    report = await reprocessor.run(
        DeliveryFilter(providers=("lemlist", "postmark", "phantombuster")),
        Progress("t", None, stream=io.StringIO()),
    )
    await fetcher.aclose()
    assert report.examined == len(multichannel_bodies())
    assert (report.updated, report.new_events, report.attached) == (0, 0, 0)
    assert await everything(clean_db) == before


# Concurrency: two gateway processes (two pools, two group-commit writers) see
# the same new people at once.


@pytest.fixture
async def two_ingestors(settings: Settings, clean_db: Pool) -> AsyncIterator[list[Ingestor]]:
    async with running_ingestors(settings, batch_max=16) as ingestors:
        yield ingestors


def lemlist_delivery(
    activity_id: str, email: str | None, url: str | None, campaign: str
) -> Delivery:
    body = payload("lemlist", "linkedinInviteDone.json") | {
        "_id": activity_id,
        "campaignId": campaign,
        "leadEmail": email,
        "linkedinUrl": url,
    }
    return Delivery(
        provider="lemlist",
        received_at=datetime.now(UTC),
        body=json.dumps(body).encode(),
        headers={},
        query={},
    )


@pytest.mark.parametrize("seed", range(3))
async def test_concurrent_batches_make_one_enrollment_per_person(
    two_ingestors: list[Ingestor], clean_db: Pool, seed: int
) -> None:
    campaign = f"cam_race_{seed}"
    instance = await make_instance(clean_db, {"lemlist_campaign_id": campaign})
    rng = random.Random(seed)
    deliveries = []
    for person in range(30):
        email, url = f"p{person}@example.com", f"https://linkedin.com/in/p{person}"
        # The same person by e-mail only, by profile only, and by both, many times.
        for n, (e, u) in enumerate([(email, None), (None, url), (email.upper(), url)] * 3):
            deliveries.append(lemlist_delivery(f"act_{seed}_{person}_{n}", e, u, campaign))
    rng.shuffle(deliveries)
    outcomes = await asyncio.gather(
        *(two_ingestors[i % 2].ingest(d) for i, d in enumerate(deliveries))
    )
    assert {o.status for o in outcomes} == {"processed"}
    rows = await clean_db.fetch(
        "SELECT lower(contact_email) AS email, linkedin_key FROM campaign_enrollments"
        " WHERE instance_id = $1 ORDER BY 1",
        instance,
    )
    assert len(rows) == 30
    assert all(r["email"] and r["linkedin_key"] for r in rows)
    assert (
        await clean_db.fetchval("SELECT count(*) FROM campaign_events WHERE enrollment_id IS NULL")
        == 0
    )
    assert await stored_counters(clean_db) == await recounted(clean_db)


@pytest.mark.parametrize("seed", range(3))
async def test_concurrent_batches_moving_one_enrollment_keep_state_and_counters_exact(
    two_ingestors: list[Ingestor], clean_db: Pool, seed: int
) -> None:
    """Batches of two processes attach events of the same few people at once.

    Each must see the state the other committed: a lost update would leave an
    event's bit out of its enrollment's state and its instance's counter.
    """
    campaign = f"cam_state_{seed}"
    instance = await make_instance(clean_db, {"lemlist_campaign_id": campaign})
    kinds = ["emailsSent", "emailsOpened", "emailsClicked", "emailsReplied"]
    deliveries = []
    for person in range(2):
        for n in range(150):
            body = payload("lemlist", "emailsOpened.json") | {
                "_id": f"act_state_{seed}_{person}_{n}",
                "type": kinds[n % len(kinds)],
                "campaignId": campaign,
                "leadEmail": f"q{person}@example.com",
                "sequenceStep": n,
            }
            deliveries.append(
                Delivery(
                    provider="lemlist",
                    received_at=datetime.now(UTC),
                    body=json.dumps(body).encode(),
                    headers={},
                    query={},
                )
            )
    random.Random(seed).shuffle(deliveries)
    outcomes = await asyncio.gather(
        *(two_ingestors[i % 2].ingest(d) for i, d in enumerate(deliveries))
    )
    assert {o.status for o in outcomes} == {"processed"}
    states = await clean_db.fetch(
        "SELECT e.event_mask, e.current_step, (SELECT bit_or(event_bit(v.event_type, v.metadata))"
        " FROM campaign_events v WHERE v.enrollment_id = e.id) AS from_events"
        " FROM campaign_enrollments e WHERE e.instance_id = $1",
        instance,
    )
    assert len(states) == 2
    assert all(r["event_mask"] == r["from_events"] and r["current_step"] == 149 for r in states)
    assert await stored_counters(clean_db) == await recounted(clean_db)

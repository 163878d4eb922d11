"""Conformance with real bodies from public sources: `../shared/foreign/*.json`.

Nobody on this project wrote these bodies (django-anymail's Postmark tests and its
bounce-type table, lemlist's docs and public lemlist receivers, PhantomBuster's docs);
each carries an independent reading (`expected`, `also_ok`, see the folder's README).
Every body is posted through the HTTP edge into real PostgreSQL and checked against
that reading: the answer, the `campaign_events` rows of its delivery, a redelivery
adding nothing, the raw body kept even when ignored, and the bounce class of the
bodies marked `not_hard` / `hard_control`. The bodies are read where they are, never
copied in; when the folder is missing the test fails rather than skips.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
import respx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.db.pool import Pool
from providers.vocabulary import PROVIDERS
from tests.bodies import FOREIGN, ForeignBody, encode, foreign_bodies
from tests.database import make_instance, post_webhook

Client = AsyncTestClient[Litestar]

DERIVED_TAG = "anymail-derived"
"""The Postmark `Tag` of the derived bodies: mapped to an instance, so they create enrollments."""


def _cases() -> list[Any]:
    """One case per foreign body; one failing case per provider file that is missing."""
    cases: list[Any] = []
    for provider in PROVIDERS:
        try:
            entries = foreign_bodies(provider)
        except FileNotFoundError:
            cases.append(pytest.param(provider, None, id=f"{provider}-file-missing"))
            continue
        for index, entry in enumerate(entries):
            slug = re.sub(r"[^a-z0-9]+", "-", entry.name.lower()).strip("-")[:60]
            cases.append(pytest.param(provider, entry, id=f"{provider}-{index:02d}-{slug}"))
    return cases


@pytest.mark.parametrize(("provider", "entry"), _cases())
async def test_foreign_body(
    provider: str, entry: ForeignBody | None, client: Client, clean_db: Pool
) -> None:
    assert entry is not None, f"{FOREIGN / provider}.json is missing: the conformance set"
    await make_instance(clean_db, {"postmark_tag": DERIVED_TAG})
    body = encode(entry.body)
    with respx.mock(assert_all_called=False) as outbound:
        # A run that needs its result fetched meets a refusing API; nothing reaches the network.
        outbound.route(host="api.phantombuster.test").respond(503)
        anywhere = outbound.route().mock(side_effect=httpx.ConnectError("refused by the test"))
        first = await post_webhook(client, provider, body)
        assert first.status_code in entry.http, first.text
        delivery = await clean_db.fetchrow("SELECT id, status, body FROM webhook_deliveries")
        assert delivery is not None
        assert bytes(delivery["body"]) == body
        assert await _marker_stored(clean_db, entry.marker)
        events = await clean_db.fetch(
            "SELECT event_type, channel, metadata, enrollment_id FROM campaign_events"
            " WHERE delivery_id = $1",
            delivery["id"],
        )
        if first.status_code == 400:
            assert events == []  # a rejected body the reading allows to be rejected
        elif entry.expected != "stored-only":
            _check_reading(entry, delivery["status"], events)
        await _check_bounce_classes(entry, clean_db, events)

        stored = await clean_db.fetchval("SELECT count(*) FROM campaign_events")
        again = await post_webhook(client, provider, body)
        assert again.status_code in entry.http, again.text
        if again.status_code == 200:
            assert again.json()["events"] == 0
        assert await clean_db.fetchval("SELECT count(*) FROM campaign_events") == stored
        assert await clean_db.fetchval("SELECT count(*) FROM webhook_deliveries") == 2
    assert not anywhere.called


async def _marker_stored(db: Pool, marker: str) -> bool:
    """The marker is in a stored raw delivery, as text or as the hex of its bytes."""
    found: bool = await db.fetchval(
        "SELECT EXISTS (SELECT FROM webhook_deliveries WHERE position(convert_to($1, 'UTF8') IN"
        " body) > 0 OR encode(body, 'hex') LIKE '%' || encode(convert_to($1, 'UTF8'), 'hex')"
        " || '%')",
        marker,
    )
    return found


def _check_reading(entry: ForeignBody, status: str, events: list[Any]) -> None:
    """The delivery's events are one of the acceptable readings: one type, or none."""
    types = {event["event_type"] for event in events}
    assert len(types) <= 1, types
    reading = types.pop() if types else "ignored"
    assert reading in entry.readings, (reading, entry.readings)
    assert all(event["channel"] == entry.channel for event in events)
    if reading == "ignored":
        assert status == "ignored"


async def _check_bounce_classes(entry: ForeignBody, db: Pool, events: list[Any]) -> None:
    """Every bounce says hard or soft; a temporary failure is never hard, the control is."""
    bounces = [event for event in events if event["event_type"] == "bounced"]
    classes = [event["metadata"].get("bounce_class") for event in bounces]
    assert all(found in ("hard", "soft") for found in classes), classes
    if entry.not_hard:
        assert all(found == "soft" for found in classes), classes
        for event in bounces:
            status = await db.fetchval(
                "SELECT status FROM campaign_enrollments WHERE id = $1", event["enrollment_id"]
            )
            assert status not in (None, "bounced")
    if entry.hard_control:
        assert classes == ["hard"]
        status = await db.fetchval(
            "SELECT status FROM campaign_enrollments WHERE id = $1", bounces[0]["enrollment_id"]
        )
        assert status == "bounced"

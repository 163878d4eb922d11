"""One delivery with its body and events, reprocessing it, the business-key search, unmatched keys.

Deliveries arrive through the webhook endpoint only; assertions are on the
answers and on the rows in PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.db import reads
from gateway.db.pool import Pool
from tests.conftest import AUTH, SECRETS, fixture_body
from tests.database import make_instance, post_webhook

Client = AsyncTestClient[Litestar]


def lemlist(
    activity: str, campaign: str, email: str, kind: str = "emailsOpened", **extra: Any
) -> bytes:
    body = json.loads(fixture_body("lemlist", "emailsOpened.json"))
    body |= {"_id": activity, "type": kind, "campaignId": campaign, "leadEmail": email, **extra}
    return json.dumps(body).encode()


async def post(client: Client, body: bytes, provider: str = "lemlist") -> dict[str, Any]:
    response = await post_webhook(client, provider, body)
    assert response.status_code in (200, 400), response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_one_delivery_with_its_json_body_and_events(client: Client, clean_db: Pool) -> None:
    await make_instance(clean_db, {"lemlist_campaign_id": "cam_detail"})
    body = lemlist("act_detail_1", "cam_detail", "Ana@Example.com")
    delivery_id = (await post(client, body))["delivery_id"]

    response = await client.get(f"/api/deliveries/{delivery_id}")
    assert response.status_code == 200, response.text
    detail = response.json()
    assert detail["id"] == delivery_id
    assert detail["status"] == "processed"
    assert detail["body"] == json.loads(body)
    assert "body_base64" not in detail
    assert detail["body_truncated"] is False
    assert detail["query"] == {}  # the token is never stored
    assert detail["events_total"] == 1
    [event] = detail["events"]
    assert event["provider_event_id"] == "act_detail_1"
    assert event["campaign_key"] == "cam_detail"
    assert event["delivery_id"] == delivery_id
    stored = await clean_db.fetchval(
        "SELECT count(*) FROM campaign_events WHERE delivery_id = $1", uuid.UUID(delivery_id)
    )
    assert stored == 1

    # A redelivery wrote no event of its own: it is a duplicate with none listed.
    again = (await post(client, body))["delivery_id"]
    duplicate = (await client.get(f"/api/deliveries/{again}")).json()
    assert duplicate["status"] == "duplicate"
    assert duplicate["events"] == [] and duplicate["events_total"] == 0


async def test_a_body_that_is_not_json_comes_as_base64(client: Client, clean_db: Pool) -> None:
    raw = b"\xff\xfenot json at all"
    answer = await post(client, raw)
    detail = (await client.get(f"/api/deliveries/{answer['delivery_id']}")).json()
    assert detail["status"] == "rejected"
    assert detail["cause"]
    assert "body" not in detail
    assert base64.b64decode(detail["body_base64"]) == raw


async def test_json_nested_too_deep_to_answer_comes_as_base64(
    client: Client, clean_db: Pool
) -> None:
    raw = b'{"a":' * 100 + b"1" + b"}" * 100
    answer = await post(client, raw)
    response = await client.get(f"/api/deliveries/{answer['delivery_id']}")
    assert response.status_code == 200
    assert base64.b64decode(response.json()["body_base64"]) == raw


async def test_secrets_echoed_anywhere_are_masked(client: Client, clean_db: Pool) -> None:
    secret = SECRETS["lemlist"][0]
    body = lemlist("act_secret", "cam_none", "ben@example.com", secret=secret)
    answer = await post(client, body)
    delivery_id = uuid.UUID(answer["delivery_id"])
    # A row written before secrets were masked under every query name.
    await clean_db.execute(
        "UPDATE webhook_deliveries SET query = $2, headers = headers || $3 WHERE id = $1",
        delivery_id,
        {"callback": secret},
        {"referer": f"https://x.example/?t={secret}"},
    )
    for response in (
        await client.get(f"/api/deliveries/{delivery_id}"),
        await client.get("/api/deliveries"),
    ):
        assert response.status_code == 200
        assert secret not in response.text
        assert "[redacted]" in response.text
    detail = (await client.get(f"/api/deliveries/{delivery_id}")).json()
    assert detail["body"]["secret"] == "[redacted]"
    assert detail["query"] == {"callback": "[redacted]"}


async def test_unknown_delivery_is_404(client: Client, clean_db: Pool) -> None:
    for response in (
        await client.get(f"/api/deliveries/{uuid.uuid4()}"),
        await client.post(f"/api/deliveries/{uuid.uuid4()}/reprocess", headers=AUTH),
    ):
        assert response.status_code == 404, response.text
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_reprocess_attaches_once_then_changes_nothing(client: Client, clean_db: Pool) -> None:
    body = lemlist("act_late", "cam_late", "cleo@example.com")
    delivery_id = (await post(client, body))["delivery_id"]
    path = f"/api/deliveries/{delivery_id}/reprocess"

    assert (await client.post(path)).status_code == 401  # writes need the key

    nothing = await client.post(path, headers=AUTH)
    assert nothing.status_code == 200, nothing.text
    assert nothing.json() | {"delivery": None} == {
        "delivery": None,
        "before": "unmatched",
        "changed": False,
        "new_events": 0,
        "events_attached": 0,
    }

    instance_id = await make_instance(clean_db, {"lemlist_campaign_id": "cam_late"})
    first = (await client.post(path, headers=AUTH)).json()
    assert first["before"] == "unmatched"
    assert first["delivery"]["status"] == "processed"
    assert first["changed"] is True
    assert first["events_attached"] == 1 and first["new_events"] == 0

    second = (await client.post(path, headers=AUTH)).json()
    assert second["before"] == "processed"
    assert second["delivery"]["status"] == "processed"
    assert (second["changed"], second["events_attached"], second["new_events"]) == (False, 0, 0)

    row = await clean_db.fetchrow(
        "SELECT count(*) AS events, count(enrollment_id) AS attached, "
        " (SELECT total_enrolled FROM campaign_instances WHERE id = $1) AS enrolled,"
        " (SELECT total_opened FROM campaign_instances WHERE id = $1) AS opened"
        " FROM campaign_events WHERE provider_event_id = 'act_late'",
        instance_id,
    )
    assert dict(row) == {"events": 1, "attached": 1, "enrolled": 1, "opened": 1}
    status = await clean_db.fetchval(
        "SELECT status FROM webhook_deliveries WHERE id = $1", uuid.UUID(delivery_id)
    )
    assert status == "processed"


async def test_events_filter_by_delivery(client: Client, clean_db: Pool) -> None:
    first = (await post(client, lemlist("act_d1", "cam_d", "a@example.com")))["delivery_id"]
    second = (await post(client, lemlist("act_d2", "cam_d", "b@example.com")))["delivery_id"]
    await post(client, lemlist("act_d3", "cam_d", "c@example.com"))

    one = (await client.get("/api/events", params={"delivery_id": first})).json()["items"]
    assert [e["provider_event_id"] for e in one] == ["act_d1"]
    both = await client.get("/api/events", params={"delivery_id": [first, second]})
    assert sorted(e["provider_event_id"] for e in both.json()["items"]) == ["act_d1", "act_d2"]


async def search(client: Client, q: str, **params: Any) -> list[str]:
    response = await client.get("/api/deliveries", params={"q": q, **params})
    assert response.status_code == 200, response.text
    return [d["id"] for d in response.json()["items"]]


async def test_search_by_business_keys(client: Client, clean_db: Pool) -> None:
    await make_instance(clean_db, {"lemlist_campaign_id": "cam_s1"})
    ana_sent = (await post(client, lemlist("act_s1", "cam_s1", "Ana@Example.com", "emailsSent")))[
        "delivery_id"
    ]
    ana_open = (await post(client, lemlist("act_s2", "cam_s1", "ana@example.com")))["delivery_id"]
    ben = (await post(client, lemlist("act_s3", "cam_s1", "ben@example.com")))["delivery_id"]
    other = (await post(client, lemlist("act_s4", "cam_s2", "cleo@example.com")))["delivery_id"]
    await post(client, b"not json")

    assert await search(client, "ANA@example.com") == [ana_sent, ana_open]  # any case
    assert await search(client, "cam_s1") == [ana_sent, ana_open, ben]
    assert await search(client, "cam_s2") == [other]  # unmatched events too
    assert await search(client, "act_s3") == [ben]
    assert await search(client, "  act_s3 ") == [ben]
    assert await search(client, "nobody@example.com") == []
    assert await search(client, "cam_s1", status="unmatched") == []
    assert await search(client, "cam_s1", provider="postmark") == []
    first = await client.get("/api/deliveries", params={"q": "cam_s1", "limit": 2})
    assert [d["id"] for d in first.json()["items"]] == [ana_sent, ana_open]
    cursor = first.json()["next_cursor"]
    assert await search(client, "cam_s1", limit=2, cursor=cursor) == [ben]
    everything = await client.get("/api/deliveries", params={"q": ""})
    assert len(everything.json()["items"]) == 5

    response = await client.get("/api/deliveries", params={"q": "a\x00b"})
    assert response.status_code == 400 and response.json()["field"] == "q"


async def test_unmatched_keys_with_counts(client: Client, clean_db: Pool) -> None:
    await make_instance(clean_db, {"lemlist_campaign_id": "cam_known"})
    await post(client, lemlist("act_u1", "cam_known", "a@example.com"))
    await post(
        client, lemlist("act_u2", "cam_lost", "a@example.com", createdAt="2025-03-01T10:00:00Z")
    )
    await post(
        client, lemlist("act_u3", "cam_lost", "b@example.com", createdAt="2025-03-02T10:00:00Z")
    )
    await post(
        client, lemlist("act_u4", "cam_gone", "c@example.com", createdAt="2025-02-01T10:00:00Z")
    )

    response = await client.get("/api/unmatched")
    assert response.status_code == 200, response.text
    assert response.json()["items"] == [
        {
            "provider": "lemlist",
            "campaign_key": "cam_lost",
            "events": 2,
            "deliveries": 2,
            "first_event_at": "2025-03-01T10:00:00Z",
            "last_event_at": "2025-03-02T10:00:00Z",
        },
        {
            "provider": "lemlist",
            "campaign_key": "cam_gone",
            "events": 1,
            "deliveries": 1,
            "first_event_at": "2025-02-01T10:00:00Z",
            "last_event_at": "2025-02-01T10:00:00Z",
        },
    ]
    assert (await client.get("/api/unmatched?provider=postmark")).json()["items"] == []

    # Mapping the key attaches its events: it leaves the list.
    instance_id = await make_instance(clean_db, {}, status="draft")
    mapped = await client.patch(
        f"/api/campaigns/instances/{instance_id}",
        headers=AUTH,
        json={"status": "active", "provider_config": {"lemlist_campaign_id": "cam_lost"}},
    )
    assert mapped.status_code == 200, mapped.text
    keys = [k["campaign_key"] for k in (await client.get("/api/unmatched")).json()["items"]]
    assert keys == ["cam_gone"]


async def _pages(client: Client, params: dict[str, Any]) -> list[str]:
    seen: list[str] = []
    params = {**params, "limit": 2}
    while True:
        page = (await client.get("/api/deliveries", params=params)).json()
        seen += [d["id"] for d in page["items"]]
        if page["next_cursor"] is None:
            return seen
        params["cursor"] = page["next_cursor"]


async def test_search_pages_alike_by_ids_or_by_walking_the_log(
    client: Client, clean_db: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large campaign's key is searched by walking the log: same answers, same pages."""
    await make_instance(clean_db, {"lemlist_campaign_id": "cam_w"})
    ids = [
        (await post(client, lemlist(f"act_w{n}", "cam_w", f"p{n % 2}@example.com")))["delivery_id"]
        for n in range(5)
    ]
    await post(client, lemlist("act_other", "cam_other", "p0@example.com"))
    expected = {
        "cam_w": ids,
        "P0@example.com": [ids[0], ids[2], ids[4]],
        "act_w3": [ids[3]],
    }
    for cap in (50_000, 1):  # 1: every list is over the cap, the log is walked
        monkeypatch.setattr(reads, "SEARCH_SET_MAX", cap)
        for q, wanted in expected.items():
            assert await _pages(client, {"q": q}) == wanted, (cap, q)
            newest = await _pages(client, {"q": q, "order": "newest"})
            assert newest == wanted[::-1], (cap, q)


async def test_the_log_newest_first(client: Client, clean_db: Pool) -> None:
    ids = [
        (await post(client, lemlist(f"act_n{n}", "cam_n", "a@example.com")))["delivery_id"]
        for n in range(4)
    ]
    assert await _pages(client, {"order": "newest"}) == ids[::-1]
    assert await _pages(client, {"order": "oldest"}) == ids
    response = await client.get("/api/deliveries", params={"order": "sideways"})
    assert response.status_code == 400 and response.json()["field"] == "order"

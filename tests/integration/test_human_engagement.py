"""Human engagement end to end (static rules) and time zones of the performance answer."""

from __future__ import annotations

import json
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.db.pool import Pool
from tests.conftest import fixture_body
from tests.database import make_instance, post_webhook

Client = AsyncTestClient[Litestar]
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/122.0.0.0 Safari/537.36"
)
PERSON_IP = "203.0.113.57"
APPLE_IP = "17.58.101.7"
MIMECAST_IP = "205.139.110.23"


async def _postmark(client: Client, record: str, contact: str, **fields: Any) -> None:
    body = json.loads(fixture_body("postmark", f"{record}.json"))
    message = f"msg-{contact}"
    body |= {"MessageID": message, "Tag": "tag-h", "Recipient": contact, "Metadata": {"step": "1"}}
    body |= {"DeliveredAt": "2025-03-10T09:00:00Z", "ReceivedAt": "2025-03-10T13:00:00Z"}
    geo = dict(body.get("Geo") or {})
    if "ip" in fields:
        geo["IP"] = fields.pop("ip")
    body |= {"Geo": geo} | fields
    response = await post_webhook(client, "postmark", json.dumps(body).encode())
    assert response.status_code == 200, response.text


async def test_postmark_proxy_opens_and_scanner_clicks_are_not_human(
    client: Client, clean_db: Pool
) -> None:
    instance_id = await make_instance(clean_db, {"postmark_tag": "tag-h"})
    # (contact, open as (user agent, address) or None, click as (user agent, address) or None)
    script = [
        ("apple-ip@x.example", (CHROME, APPLE_IP), None),
        ("person@x.example", (CHROME, PERSON_IP), (CHROME, PERSON_IP)),
        ("apple-ua@x.example", ("Mozilla/5.0", PERSON_IP), ("python-requests/2.32", PERSON_IP)),
        ("upgraded@x.example", ("Mozilla/5.0", APPLE_IP), (CHROME, PERSON_IP)),
        ("mimecast@x.example", None, (CHROME, MIMECAST_IP)),
        ("barracuda@x.example", ("Barracuda Sentinel (EE)", PERSON_IP), None),
    ]
    for contact, opened, clicked in script:
        await _postmark(client, "Delivery", contact)
        if opened:
            await _postmark(client, "Open", contact, UserAgent=opened[0], ip=opened[1])
        if clicked:
            await _postmark(
                client,
                "Click",
                contact,
                UserAgent=clicked[0],
                ip=clicked[1],
                ReceivedAt="2025-03-10T13:05:00Z",
            )

    flags = {
        (row["contact"], row["event_type"]): row["rule"]
        for row in await clean_db.fetch(
            "SELECT en.contact_email AS contact, e.event_type,"
            " e.metadata -> 'machine' ->> 'rule' AS rule"
            " FROM campaign_events e JOIN campaign_enrollments en ON en.id = e.enrollment_id"
            " WHERE e.event_type IN ('opened', 'clicked')"
        )
    }
    assert flags == {
        ("apple-ip@x.example", "opened"): "apple_mpp_network",
        ("person@x.example", "opened"): None,
        ("person@x.example", "clicked"): None,
        ("apple-ua@x.example", "opened"): "apple_mpp_user_agent",
        ("apple-ua@x.example", "clicked"): "scanner_user_agent",
        ("upgraded@x.example", "opened"): "apple_mpp_network",
        ("upgraded@x.example", "clicked"): None,
        ("mimecast@x.example", "clicked"): "scanner_network",
        ("barracuda@x.example", "opened"): "scanner_user_agent",
    }

    # Independently: raw counts take every event; a person's opens are the unflagged
    # ones plus the opens of a contact who clicked unflagged.
    reach = len(script)
    raw_opened = sum(1 for _, o, _ in script if o)
    raw_clicked = sum(1 for _, _, c in script if c)
    human_clicked = {c for (c, t), rule in flags.items() if t == "clicked" and rule is None}
    human_opened = {
        c
        for (c, t), rule in flags.items()
        if t == "opened" and (rule is None or c in human_clicked)
    }
    answer = (await client.get(f"/api/campaigns/instances/{instance_id}/performance")).json()
    assert answer["unique"]["opened"] == raw_opened == 5
    assert answer["unique"]["clicked"] == raw_clicked == 4
    assert answer["totals"]["opened"] == 5
    assert answer["human"] == {
        "unique": {"opened": len(human_opened), "clicked": len(human_clicked)},
        "email_reach": reach,
        "human_open_rate": len(human_opened) / reach,
        "human_click_rate": len(human_clicked) / reach,
    }
    assert (len(human_opened), len(human_clicked)) == (2, 2)
    assert answer["rates"]["human_open_rate"] == 2 / 6
    assert answer["rates"]["human_click_rate"] == 2 / 6
    [step] = answer["by_step"]
    assert step["human"] == answer["human"]
    [day] = answer["daily"]
    assert day["day"] == "2025-03-10"
    assert day["human"] == answer["human"]


async def test_a_reply_makes_a_proxy_open_human(client: Client, clean_db: Pool) -> None:
    instance_id = await make_instance(clean_db, {"lemlist_campaign_id": "cam-R"})
    await clean_db.execute(
        "UPDATE campaign_instances SET provider_config = provider_config || $2 WHERE id = $1",
        instance_id,
        {"postmark_tag": "tag-h"},
    )
    await _postmark(client, "Delivery", "r@x.example")
    await _postmark(client, "Open", "r@x.example", UserAgent="Mozilla/5.0")
    path = f"/api/campaigns/instances/{instance_id}/performance"
    assert (await client.get(path)).json()["human"]["unique"] == {"opened": 0, "clicked": 0}
    reply = json.loads(fixture_body("lemlist", "emailsReplied.json"))
    reply |= {
        "campaignId": "cam-R",
        "leadEmail": "r@x.example",
        "createdAt": "2025-03-12T10:00:00Z",
    }
    assert (await post_webhook(client, "lemlist", json.dumps(reply).encode())).status_code == 200
    assert (await client.get(path)).json()["human"]["unique"] == {"opened": 1, "clicked": 0}
    # Only within the range asked for.
    ranged = await client.get(path, params={"to": "2025-03-11"})
    assert ranged.json()["human"]["unique"] == {"opened": 0, "clicked": 0}


async def _sent_at(client: Client, at: str, n: int) -> None:
    body = json.loads(fixture_body("lemlist", "emailsSent.json"))
    body |= {"_id": f"act_tz_{n}", "campaignId": "cam-tz", "createdAt": at}
    body |= {"leadEmail": f"tz{n}@x.example"}
    assert (await post_webhook(client, "lemlist", json.dumps(body).encode())).status_code == 200


def _days(answer: dict[str, Any]) -> dict[str, int]:
    return {d["day"]: d["totals"]["sent"] for d in answer["daily"]}


async def test_daily_buckets_follow_the_time_zone(client: Client, clean_db: Pool) -> None:
    instance_id = await make_instance(clean_db, {"lemlist_campaign_id": "cam-tz"})
    path = f"/api/campaigns/instances/{instance_id}/performance"
    await _sent_at(client, "2025-03-10T23:30:00Z", 1)
    await _sent_at(client, "2025-03-10T12:00:00Z", 2)

    utc = (await client.get(path)).json()
    assert utc["tz"] == "UTC"
    assert _days(utc) == {"2025-03-10": 2}
    tokyo = (await client.get(path, params={"tz": "Asia/Tokyo"})).json()
    assert tokyo["tz"] == "Asia/Tokyo"
    assert _days(tokyo) == {"2025-03-10": 1, "2025-03-11": 1}
    assert tokyo["daily"][1]["human"]["email_reach"] == 1

    # Dates in from/to are days of that zone: Tokyo's 11 March began at 15:00 UTC on the 10th.
    ranged = await client.get(path, params={"tz": "Asia/Tokyo", "from": "2025-03-11"})
    assert ranged.json()["from"] == "2025-03-10T15:00:00Z"
    assert _days(ranged.json()) == {"2025-03-11": 1}
    assert ranged.json()["totals"]["sent"] == 1

    # The instance's own zone is the default; an explicit tz wins.
    await clean_db.execute(
        'UPDATE campaign_instances SET settings = \'{"timezone": "Asia/Tokyo"}\' WHERE id = $1',
        instance_id,
    )
    assert _days((await client.get(path)).json()) == {"2025-03-10": 1, "2025-03-11": 1}
    assert _days((await client.get(path, params={"tz": "UTC"})).json()) == {"2025-03-10": 2}


async def test_an_unknown_time_zone_is_a_400(client: Client, clean_db: Pool) -> None:
    instance_id = await make_instance(clean_db, {"lemlist_campaign_id": "cam-tz"})
    path = f"/api/campaigns/instances/{instance_id}/performance"
    for tz in ("Mars/Olympus", "", "../../etc/passwd", "Asia/Tokyo\x00", "x" * 5000, "+09:00"):
        response = await client.get(path, params={"tz": tz})
        assert response.status_code == 400, tz
        assert response.json()["field"] == "tz"
    await clean_db.execute(
        'UPDATE campaign_instances SET settings = \'{"timezone": "Nowhere/Else"}\' WHERE id = $1',
        instance_id,
    )
    response = await client.get(path)
    assert response.status_code == 400
    assert "settings.timezone" in response.json()["detail"]
    assert (await client.get(path, params={"tz": "Europe/Madrid"})).status_code == 200


async def test_times_at_the_edge_of_the_calendar_are_a_400(client: Client, clean_db: Pool) -> None:
    instance_id = await make_instance(clean_db, {"lemlist_campaign_id": "cam-tz"})
    path = f"/api/campaigns/instances/{instance_id}/performance"
    for params in (
        {"from": "0001-01-01T00:00:00+05:00"},
        {"to": "9999-12-31T23:00:00-05:00"},
        {"from": "0001-01-01", "tz": "Asia/Tokyo"},
    ):
        response = await client.get(path, params=params)
        assert response.status_code == 400, params

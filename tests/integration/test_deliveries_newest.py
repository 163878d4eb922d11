"""`GET /api/deliveries?order=newest`: the log as the console shows it, newest first.

Every filter combination pages to exactly the reverse of the oldest-first
order, and a delivery arriving while pages are read shows up at the top
of a new first page, never inside pages already read.
"""

from __future__ import annotations

import json
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.db.pool import Pool
from tests.database import make_instance, post_webhook

Client = AsyncTestClient[Litestar]


async def _all_pages(client: Client, params: dict[str, Any]) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page_params = params | ({"cursor": cursor} if cursor else {})
        response = await client.get("/api/deliveries", params=page_params)
        assert response.status_code == 200, response.text
        page = response.json()
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


def _lemlist(n: int, campaign: str) -> bytes:
    return json.dumps(
        {
            "_id": f"act_newest_{n}",
            "type": "emailsOpened",
            "createdAt": f"2025-03-10T09:{n:02d}:00Z",
            "leadEmail": f"lead{n}@example.com",
            "campaignId": campaign,
        }
    ).encode()


async def test_newest_first_is_the_exact_reverse_for_every_filter(
    client: Client, clean_db: Pool
) -> None:
    await make_instance(clean_db, {"lemlist_campaign_id": "cam_known"})
    for n in range(11):
        campaign = "cam_known" if n % 3 else "cam_unknown"
        assert (await post_webhook(client, "lemlist", _lemlist(n, campaign))).status_code == 200
    assert (await post_webhook(client, "lemlist", b'{"_id": ')).status_code == 400
    assert (await post_webhook(client, "lemlist", _lemlist(4, "cam_known"))).status_code == 200

    for params in (
        {},
        {"status": ["unmatched", "rejected"]},
        {"status": "duplicate"},
        {"provider": "lemlist"},
        {"q": "cam_unknown"},
        {"q": "act_newest_4"},
    ):
        oldest = await _all_pages(client, {**params, "limit": 3})
        newest = await _all_pages(client, {**params, "order": "newest", "limit": 3})
        assert oldest, params
        assert newest == oldest[::-1], params
    first = (await client.get("/api/deliveries", params={"order": "newest", "limit": 1})).json()
    assert first["items"][0]["status"] == "duplicate"  # the last one posted


async def test_newest_pages_while_deliveries_arrive(client: Client, clean_db: Pool) -> None:
    for n in range(6):
        await post_webhook(client, "lemlist", _lemlist(n, "cam_any"))
    before = await _all_pages(client, {"order": "newest"})
    page = (await client.get("/api/deliveries", params={"order": "newest", "limit": 2})).json()
    arrived = (await post_webhook(client, "lemlist", _lemlist(9, "cam_any"))).json()
    rest = await _all_pages(client, {"order": "newest", "cursor": page["next_cursor"]})
    assert [i["id"] for i in page["items"]] + rest == before
    top = (await client.get("/api/deliveries", params={"order": "newest", "limit": 1})).json()
    assert top["items"][0]["id"] == arrived["delivery_id"]


async def test_an_unknown_order_is_a_400_naming_it(client: Client, clean_db: Pool) -> None:
    response = await client.get("/api/deliveries", params={"order": "random"})
    assert response.status_code == 400
    assert response.json()["field"] == "order"

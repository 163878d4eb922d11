"""Query strings and bodies the API refuses with a 400 instead of ignoring them or failing.

Unknown parameters on every route, single-valued parameters repeated,
repeated filters selecting any of their values, times at the edges of the
calendar (issue 13, defect 1), cursors holding them, and JSON nested deeper
than anything should be (issue 13, defect 11).
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.db.pool import Pool
from tests.conftest import AUTH, fixture_body
from tests.database import make_instance, post_webhook

Client = AsyncTestClient[Litestar]


async def test_every_api_route_refuses_an_unknown_query_parameter(client: Client) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    operations = [
        (method.upper(), path)
        for path, item in document["paths"].items()
        if path.startswith("/api/")
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    assert len(operations) >= 18  # every route of this branch; more may come
    for method, template in operations:
        path = template.format_map({name: uuid.uuid4() for name in _names(template)})
        response = await client.request(method, path, params={"type_": "opened"}, headers=AUTH)
        assert response.status_code == 400, (method, template, response.text)
        problem = response.json()
        assert problem["field"] == "type_", (method, template)
        assert "unknown query parameter `type_`" in problem["detail"]
        assert response.headers["content-type"].startswith("application/problem+json")


def _names(template: str) -> list[str]:
    return [part[1:-1] for part in template.split("/") if part.startswith("{")]


async def test_misspelt_filter_no_longer_answers_everything(client: Client) -> None:
    response = await client.get("/api/events", params={"type": "opened"})
    assert response.status_code == 400
    assert response.json()["field"] == "type"
    assert "`event_type`" in response.json()["detail"]  # says what it takes


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/api/events", "limit=1&limit=2", "limit"),
        ("/api/events", "from=2025-01-01&from=2025-02-01", "from"),
        ("/api/deliveries", "cursor=a&cursor=b", "cursor"),
        ("/api/deliveries", "q=a&q=b", "q"),
        ("/api/campaigns/instances", "limit=5&limit=5", "limit"),
    ],
)
async def test_a_single_valued_parameter_given_twice_is_400(
    client: Client, path: str, query: str, field: str
) -> None:
    response = await client.get(f"{path}?{query}")
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field


def _lemlist(activity: str, kind: str, campaign: str = "cam_any") -> bytes:
    body = json.loads(fixture_body("lemlist", "emailsOpened.json"))
    body |= {"_id": activity, "type": kind, "campaignId": campaign}
    return json.dumps(body).encode()


async def test_a_repeated_filter_selects_any_of_its_values(client: Client, clean_db: Pool) -> None:
    for activity, kind in [("a1", "emailsSent"), ("a2", "emailsOpened"), ("a3", "emailsClicked")]:
        assert (await post_webhook(client, "lemlist", _lemlist(activity, kind))).status_code == 200
    response = await client.get("/api/events?event_type=opened&event_type=clicked")
    assert sorted(e["event_type"] for e in response.json()["items"]) == ["clicked", "opened"]
    response = await client.get("/api/events?unmatched=true&unmatched=false")
    assert len(response.json()["items"]) == 3

    active = await make_instance(clean_db, {}, status="active", name="A")
    paused = await make_instance(clean_db, {}, status="paused", name="P")
    await make_instance(clean_db, {}, status="draft", name="D")
    response = await client.get("/api/campaigns/instances?status=active&status=paused")
    assert {i["id"] for i in response.json()["items"]} == {str(active), str(paused)}
    response = await client.get("/api/campaigns/templates?type=email&type=multi_channel")
    assert len(response.json()["items"]) == 3
    response = await client.get(
        "/api/deliveries", params={"provider": ["postmark", "lemlist"], "status": "unmatched"}
    )
    assert len(response.json()["items"]) == 3


async def test_instances_come_in_keyset_pages(client: Client, clean_db: Pool) -> None:
    made = [await make_instance(clean_db, {}, name=f"I{n}") for n in range(5)]
    # Two share a creation time: the id breaks the tie.
    await clean_db.execute(
        "UPDATE campaign_instances SET created_at = (SELECT created_at FROM campaign_instances"
        " WHERE id = $1) WHERE id = $2",
        made[1],
        made[2],
    )
    expected = [
        str(r["id"])
        for r in await clean_db.fetch(
            "SELECT id FROM campaign_instances ORDER BY created_at DESC, id DESC"
        )
    ]
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = (await client.get("/api/campaigns/instances", params=params)).json()
        assert len(page["items"]) <= 2
        seen += [i["id"] for i in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == expected


def _cursor(moment: str) -> str:
    raw = json.dumps([moment, str(uuid.uuid4())]).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "0001-01-01T00:00:00+05:00"}, "from"),
        ({"to": "9999-12-31T23:59:59-05:00"}, "to"),
        ({"cursor": _cursor("0001-01-01T00:00:00+05:00")}, "cursor"),
        ({"cursor": _cursor("9999-12-31T23:59:59-05:00")}, "cursor"),
    ],
)
@pytest.mark.parametrize("path", ["/api/events", "/api/deliveries", "/api/campaigns/instances"])
async def test_times_outside_utc_are_400(
    client: Client, path: str, params: dict[str, str], field: str
) -> None:
    if path == "/api/campaigns/instances" and field != "cursor":
        return  # no time range there
    response = await client.get(path, params=params)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field


async def test_the_edges_of_the_calendar_still_answer(client: Client, clean_db: Pool) -> None:
    """Times that exist in UTC work, even at its first and last moment."""
    instance_id = await make_instance(clean_db, {})
    performance = f"/api/campaigns/instances/{instance_id}/performance"
    response = await client.get(performance, params={"to": "0001-01-01"})
    assert response.status_code == 200, response.text
    assert response.json()["daily"] == []
    response = await client.get(performance, params={"from": "9999-12-31T23:59:59Z"})
    assert response.status_code == 200, response.text
    # Moved into a time zone, the first or last UTC day leaves the calendar.
    for params in (
        {"from": "0001-01-01T00:00:00Z", "to": "0001-01-02T00:00:00Z", "tz": "America/New_York"},
        {"from": "9999-12-30T00:00:00Z", "to": "9999-12-31T23:59:59Z", "tz": "Asia/Tokyo"},
    ):
        response = await client.get(performance, params=params)
        assert response.status_code == 400, (params, response.text)
        assert response.json()["field"] == "tz"
    for path in ("/api/events", "/api/deliveries"):
        for params in (
            {"from": "0001-01-01T00:00:00-05:00"},
            {"to": "9999-12-31T23:59:59+05:00"},
            {"cursor": _cursor("0001-01-01T05:00:00+05:00")},
        ):
            response = await client.get(path, params=params)
            assert response.status_code == 200, (path, params, response.text)


async def test_json_nested_without_end_is_400_in_the_management_api(client: Client) -> None:
    for depth in (40, 3000):
        body = '{"name": "Deep", "type": "email", "settings": ' + '{"a": ' * depth
        body += "1" + "}" * depth + "}"
        response = await client.post(
            "/api/campaigns/templates",
            content=body.encode(),
            headers={**AUTH, "content-type": "application/json"},
        )
        assert response.status_code == 400, (depth, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    # What a dashboard would store still goes in.
    nested: dict[str, Any] = {"leaf": 1}
    for _ in range(30):
        nested = {"a": nested}
    response = await client.post(
        "/api/campaigns/templates",
        json={"name": "Nested", "type": "email", "settings": nested},
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    template = (await client.get(f"/api/campaigns/templates/{response.json()['id']}")).json()
    assert template["settings"] == nested

"""The read API examples of docs/api.md run, and answer what that page says they answer.

Each curl between the read-api-examples markers is run against the seeded
database plus one unmatched and one rejected webhook, and its answer is
checked against the facts the page states (or the seed fixes). An example
added to the page without a check here fails the test.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.db.pool import Pool
from gateway.db.seed import load_seed
from tests.conftest import fixture_body
from tests.database import post_webhook

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
TEMPLATE = "5eed0001-0000-4000-8000-000000000002"
ACTIVE = "5eed0004-0000-4000-8000-000000000001"
INSTANCE = "5eed0004-0000-4000-8000-000000000002"
UNMATCHED_ACTIVITY = "act_readme_unmatched"


def read_api_examples() -> list[str]:
    """The URLs of the curl commands between the read-api-examples markers."""
    text = API_DOC.read_text()
    block = re.search(r"<!-- read-api-examples -->(.*?)<!-- /read-api-examples -->", text, re.S)
    assert block, "docs/api.md lost its read API examples"
    return [
        shlex.split(line)[-1] for line in block.group(1).splitlines() if line.startswith("curl ")
    ]


def multi_channel_templates(answer: Any) -> None:
    assert [t["id"] for t in answer["items"]] == [TEMPLATE]
    assert all(t["type"] == "multi_channel" and t["is_active"] for t in answer["items"])


def one_template(answer: Any) -> None:
    assert answer["id"] == TEMPLATE and answer["name"] == "SaaS Decision Makers"
    assert [s["step_number"] for s in answer["email_sequences"]] == [1, 2]
    assert [s["step_number"] for s in answer["linkedin_sequences"]] == [1, 2, 3]


def active_instances(answer: Any) -> None:
    assert [i["id"] for i in answer["items"]] == [ACTIVE]
    assert answer["items"][0]["counters"]["enrolled"] == 150


def one_instance(answer: Any) -> None:
    assert answer["id"] == INSTANCE and answer["status"] == "paused"
    assert answer["counters"] == {
        "enrolled": 75,
        "sent": 72,
        "opened": 41,
        "clicked": 15,
        "replied": 6,
    }


def february_figures(answer: Any) -> None:
    """The figures the performance example of docs/api.md shows."""
    assert answer["instance_id"] == INSTANCE and answer["enrolled"] == 1
    shown = ("sent", "delivered", "opened", "clicked", "connection_requested")
    assert {t: answer["totals"][t] for t in shown} == {
        "sent": 1,
        "delivered": 1,
        "opened": 1,
        "clicked": 0,
        "connection_requested": 1,
    }
    assert {t: answer["unique"][t] for t in shown} == {t: answer["totals"][t] for t in shown}
    assert answer["rates"]["open_rate"] == 1.0
    assert [c["channel"] for c in answer["by_channel"]] == ["email", "linkedin"]


def performance(answer: Any) -> None:
    february_figures(answer)
    assert (answer["from"], answer["to"]) == (None, None)


def february(answer: Any) -> None:
    """February in the instance's own time zone (settings.timezone: Europe/Madrid)."""
    february_figures(answer)
    assert answer["tz"] == "Europe/Madrid"
    assert (answer["from"], answer["to"]) == ("2025-01-31T23:00:00Z", "2025-02-28T23:00:00Z")
    days = [d["day"] for d in answer["daily"]]
    assert len(days) == 28 and days[0] == "2025-02-01" and days[-1] == "2025-02-28"


def in_tokyo(answer: Any) -> None:
    february_figures(answer)
    assert answer["tz"] == "Asia/Tokyo"


def sarah(answer: Any) -> None:
    """The seed's events came without raw deliveries: a search finds no delivery."""
    assert answer["items"] == []


def live_instances(answer: Any) -> None:
    """Active and paused, newest first, two per page: the seed has exactly those two."""
    assert [i["id"] for i in answer["items"]] == [INSTANCE, ACTIVE]


def unmatched_keys(answer: Any) -> None:
    [key] = answer["items"]
    assert (key["provider"], key["campaign_key"], key["events"]) == (
        "lemlist",
        "cam_nobody_maps",
        1,
    )


def alerts(answer: Any) -> None:
    """The seeded active instance's providers have been silent since 2025."""
    assert {a["instance_id"] for a in answer["items"]} == {ACTIVE}


def email_events(answer: Any) -> None:
    items = answer["items"]
    assert items and all(e["instance_id"] == INSTANCE and e["channel"] == "email" for e in items)
    assert {e["event_type"] for e in items} == {"sent", "delivered", "opened"}
    assert [e["timestamp"] for e in items] == sorted(e["timestamp"] for e in items)


def unmatched_events(answer: Any) -> None:
    assert [(e["provider_event_id"], e["enrollment_id"]) for e in answer["items"]] == [
        (UNMATCHED_ACTIVITY, None)
    ]


def attention(answer: Any) -> None:
    assert sorted(d["status"] for d in answer["items"]) == ["rejected", "unmatched"]


def metrics(text: str) -> None:
    assert 'gateway_webhook_deliveries_total{provider="lemlist",status="unmatched"} 1.0' in text
    assert 'gateway_webhook_deliveries_total{provider="lemlist",status="rejected"} 1.0' in text


#: What each example of docs/api.md answers; keyed by the example's path and query.
CHECKS: dict[str, Callable[[Any], None]] = {
    "/api/campaigns/templates?type=multi_channel&is_active=true": multi_channel_templates,
    f"/api/campaigns/templates/{TEMPLATE}": one_template,
    "/api/campaigns/instances?status=active": active_instances,
    f"/api/campaigns/instances/{INSTANCE}": one_instance,
    f"/api/campaigns/instances/{INSTANCE}/performance": performance,
    f"/api/campaigns/instances/{INSTANCE}/performance?from=2025-02-01&to=2025-03-01": february,
    f"/api/campaigns/instances/{INSTANCE}/performance?tz=Asia/Tokyo": in_tokyo,
    "/api/deliveries?q=sarah.chen%40brightwave-example.io": sarah,
    "/api/campaigns/instances?status=active&status=paused&limit=2": live_instances,
    "/api/unmatched": unmatched_keys,
    "/api/alerts": alerts,
    f"/api/events?instance_id={INSTANCE}&channel=email&limit=50": email_events,
    "/api/events?unmatched=true": unmatched_events,
    "/api/deliveries?status=rejected&status=unmatched": attention,
    "/metrics": metrics,
}


async def test_readme_examples_answer_what_the_readme_says(
    client: AsyncTestClient[Litestar], clean_db: Pool
) -> None:
    async with clean_db.acquire() as conn:
        assert await load_seed(conn)
    activity = json.loads(fixture_body("lemlist", "emailsSent.json"))
    unmatched = activity | {"_id": UNMATCHED_ACTIVITY, "campaignId": "cam_nobody_maps"}
    assert (await post_webhook(client, "lemlist", json.dumps(unmatched).encode())).json()[
        "status"
    ] == "unmatched"
    assert (await post_webhook(client, "lemlist", b"{not json")).status_code == 400

    examples = read_api_examples()
    targets = []
    for example in examples:
        url = urlsplit(f"http://{example}")
        assert url.port == 8000, example
        targets.append(url.path + (f"?{url.query}" if url.query else ""))
    assert sorted(targets) == sorted(CHECKS), "an example without a check, or the reverse"
    for target in targets:
        response = await client.get(target)
        assert response.status_code == 200, (target, response.text)
        answer = response.text if target == "/metrics" else response.json()
        CHECKS[target](answer)

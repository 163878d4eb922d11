"""GET /api/alerts: active instances whose providers went silent past their setting."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.db.pool import Pool
from tests.conftest import fixture_body
from tests.database import make_instance, post_webhook

Client = AsyncTestClient[Litestar]


async def _opened(client: Client, campaign: str, hours_ago: float, n: int) -> datetime:
    at = datetime.now(UTC) - timedelta(hours=hours_ago)
    body = json.loads(fixture_body("lemlist", "emailsOpened.json"))
    body |= {"_id": f"act_alert_{n}", "campaignId": campaign, "createdAt": at.isoformat()}
    assert (await post_webhook(client, "lemlist", json.dumps(body).encode())).status_code == 200
    return at


async def _settings(pool: Pool, instance_id: object, settings: dict[str, object]) -> None:
    await pool.execute(
        "UPDATE campaign_instances SET settings = $2 WHERE id = $1", instance_id, settings
    )


async def test_silent_campaigns_are_listed_with_since_when(client: Client, clean_db: Pool) -> None:
    quiet = await make_instance(clean_db, {"lemlist_campaign_id": "cam-quiet"}, name="Quiet")
    lively = await make_instance(clean_db, {"lemlist_campaign_id": "cam-lively"}, name="Lively")
    patient = await make_instance(clean_db, {"lemlist_campaign_id": "cam-patient"}, name="Patient")
    paused = await make_instance(
        clean_db, {"lemlist_campaign_id": "cam-paused"}, status="paused", name="Paused"
    )
    last_quiet = await _opened(client, "cam-quiet", 30, 1)
    await _opened(client, "cam-quiet", 40, 2)
    await _opened(client, "cam-lively", 2, 3)
    await _opened(client, "cam-patient", 30, 4)
    await _opened(client, "cam-paused", 300, 5)
    await _settings(clean_db, patient, {"silence_after_hours": 48})
    # An active instance with two providers: Postmark never sent anything since it started.
    started = datetime.now(UTC) - timedelta(days=3)
    both = await make_instance(
        clean_db, {"lemlist_campaign_id": "cam-lively", "email_provider": "postmark"}, name="Both"
    )
    await clean_db.execute(
        "UPDATE campaign_instances SET started_at = $2, provider_config = provider_config"
        " - 'lemlist_campaign_id' || '{\"lemlist_campaign_ids\": [\"cam-x\"]}' WHERE id = $1",
        both,
        started,
    )

    response = await client.get("/api/alerts")
    assert response.status_code == 200
    items = response.json()["items"]
    listed = {(i["instance_name"], i["provider"]) for i in items}
    assert listed == {("Both", "postmark"), ("Both", "lemlist"), ("Quiet", "lemlist")}
    assert [i["instance_name"] for i in items][:2] == ["Both", "Both"]  # longest silence first
    [quiet_item] = [i for i in items if i["instance_name"] == "Quiet"]
    assert quiet_item["instance_id"] == str(quiet)
    assert datetime.fromisoformat(quiet_item["silent_since"]) == last_quiet
    assert quiet_item["last_event_at"] == quiet_item["silent_since"]
    assert quiet_item["silence_after_hours"] == 24
    [postmark_item] = [i for i in items if i["provider"] == "postmark"]
    assert postmark_item["last_event_at"] is None
    assert datetime.fromisoformat(postmark_item["silent_since"]) == started
    assert str(lively) not in json.dumps(items) and str(paused) not in json.dumps(items)

    # A shorter setting lists the patient campaign too; a nonsensical one means 24 h.
    await _settings(clean_db, patient, {"silence_after_hours": 12})
    assert ("Patient", "lemlist") in {
        (i["instance_name"], i["provider"])
        for i in (await client.get("/api/alerts")).json()["items"]
    }
    await _settings(clean_db, lively, {"silence_after_hours": -1})
    await _settings(clean_db, quiet, {"silence_after_hours": "soon"})
    await _settings(clean_db, patient, {"silence_after_hours": 1e300})
    names = {i["instance_name"] for i in (await client.get("/api/alerts")).json()["items"]}
    assert names == {"Both", "Quiet"}

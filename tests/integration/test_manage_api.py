"""The campaign management API against real PostgreSQL: every endpoint's success and errors.

Templates, instances and enrollments are created through the API only; rows
are then read with SQL to check what the API wrote, and webhooks are posted
through the real endpoint to check that mappings attach them.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from itertools import product
from typing import Any

import msgspec
import psycopg
import pytest
from httpx import Response
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.api import deps
from gateway.app import create_app
from gateway.db.campaigns import CAMPAIGNS
from gateway.db.pool import Pool
from gateway.settings import Settings
from tests.conftest import AUTH, fixture_body
from tests.database import make_instance, post_webhook

Client = AsyncTestClient[Litestar]

TEMPLATES = "/api/campaigns/templates"
INSTANCES = "/api/campaigns/instances"
STATUSES = ("draft", "active", "paused", "completed", "failed")
ALLOWED = {
    ("draft", "active"),
    ("active", "paused"),
    ("paused", "active"),
    ("active", "completed"),
    ("paused", "completed"),
} | {(s, "failed") for s in STATUSES}

TEMPLATE: dict[str, Any] = {
    "name": "Fintech CFOs",
    "description": "Close the books faster",
    "type": "multi_channel",
    "settings": {"tone": "warm"},
    "email_sequences": [
        {
            "step_number": 2,
            "subject": "Following up",
            "body_template": "Hi again",
            "delay_hours": 72,
        },
        {"step_number": 1, "subject": "Intro B", "body_template": "Hi", "a_b_variant": "B"},
        {"step_number": 1, "subject": "Intro A", "body_template": "Hi", "a_b_variant": "A"},
    ],
    "linkedin_sequences": [
        {"step_number": 1, "action_type": "profile_visit"},
        {
            "step_number": 2,
            "action_type": "connection_request",
            "message_template": "Hi {{first_name}}",
            "delay_hours": 24,
            "fallback_channel": "email",
        },
    ],
}


def problem(response: Response, status: int) -> dict[str, Any]:
    """The problem JSON of an error answer, after checking its status and media type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


async def create_template(client: Client, **changes: Any) -> dict[str, Any]:
    response = await client.post(TEMPLATES, json=TEMPLATE | changes, headers=AUTH)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def create_instance(
    client: Client, template_id: str | None = None, **changes: Any
) -> dict[str, Any]:
    if template_id is None:
        template_id = (await create_template(client))["id"]
    body = {"template_id": template_id, "name": "March"} | changes
    response = await client.post(INSTANCES, json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def patch(client: Client, instance_id: object, **body: Any) -> Response:
    return await client.patch(f"{INSTANCES}/{instance_id}", json=body, headers=AUTH)


async def lemlist(
    client: Client, kind: str, campaign: str, email: str, *, activity: str | None = None
) -> dict[str, Any]:
    """A lemlist activity webhook for a contact of a campaign."""
    body = json.loads(fixture_body("lemlist", f"{kind}.json"))
    body |= {
        "_id": activity or f"act_{uuid.uuid4().hex}",
        "campaignId": campaign,
        "leadEmail": email,
        "linkedinUrl": None,
    }
    response = await post_webhook(client, "lemlist", json.dumps(body).encode())
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def counters(pool: Pool, instance_id: object) -> dict[str, int]:
    row = await pool.fetchrow(
        "SELECT total_enrolled, total_sent, total_opened, total_clicked, total_replied"
        " FROM campaign_instances WHERE id = $1",
        uuid.UUID(str(instance_id)),
    )
    return dict(row)


# Templates


async def test_create_template_with_its_sequences(client: Client, clean_db: Pool) -> None:
    response = await client.post(TEMPLATES, json=TEMPLATE, headers=AUTH)
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"{TEMPLATES}/{created['id']}"
    assert created == (await client.get(f"{TEMPLATES}/{created['id']}")).json()
    assert (created["name"], created["type"], created["path_type"]) == (
        "Fintech CFOs",
        "multi_channel",
        "structured",
    )
    assert (created["settings"], created["is_active"]) == ({"tone": "warm"}, True)
    assert [(s["step_number"], s["a_b_variant"]) for s in created["email_sequences"]] == [
        (1, "A"),
        (1, "B"),
        (2, None),
    ]
    assert created["email_sequences"][2]["delay_hours"] == 72
    assert [s["action_type"] for s in created["linkedin_sequences"]] == [
        "profile_visit",
        "connection_request",
    ]
    assert created["linkedin_sequences"][1]["fallback_channel"] == "email"
    assert (created["email_steps"], created["linkedin_steps"]) == (2, 2)
    rows = await clean_db.fetchval(
        "SELECT count(*) FROM email_sequences WHERE template_id = $1", uuid.UUID(created["id"])
    )
    assert rows == 3

    bare = await client.post(TEMPLATES, json={"name": "Bare", "type": "email"}, headers=AUTH)
    assert bare.status_code == 201, bare.text
    assert bare.json()["email_sequences"] == [] and bare.json()["settings"] == {}
    listed = (await client.get(TEMPLATES)).json()["items"]
    assert [t["name"] for t in listed] == ["Fintech CFOs", "Bare"]


def _with_email_step(**step: Any) -> dict[str, Any]:
    base = {"step_number": 1, "subject": "s", "body_template": "b"}
    return TEMPLATE | {"email_sequences": [base | step]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in TEMPLATE.items() if k != "name"}, "name"),
        (TEMPLATE | {"name": ""}, "name"),
        (TEMPLATE | {"name": "   "}, "name"),
        (TEMPLATE | {"name": 42}, "name"),
        ({k: v for k, v in TEMPLATE.items() if k != "type"}, "type"),
        (TEMPLATE | {"type": "fax"}, "type"),
        (TEMPLATE | {"path_type": "random"}, "path_type"),
        (TEMPLATE | {"settings": ["not", "an", "object"]}, "settings"),
        (TEMPLATE | {"is_active": "yes"}, "is_active"),
        (TEMPLATE | {"colour": "blue"}, "colour"),
        (_with_email_step(step_number=0), "email_sequences[0].step_number"),
        (_with_email_step(step_number="one"), "email_sequences[0].step_number"),
        (_with_email_step(step_number=1.5), "email_sequences[0].step_number"),
        (_with_email_step(step_number=1001), "email_sequences[0].step_number"),
        (_with_email_step(delay_hours=-1), "email_sequences[0].delay_hours"),
        (_with_email_step(delay_hours=2**31), "email_sequences[0].delay_hours"),
        (_with_email_step(a_b_variant="ab"), "email_sequences[0].a_b_variant"),
        (_with_email_step(subject=None), "email_sequences[0].subject"),
        (_with_email_step(sender="me"), "email_sequences[0].sender"),
        (
            TEMPLATE | {"email_sequences": [{"step_number": 1, "body_template": "b"}]},
            "email_sequences[0].subject",
        ),
        (
            TEMPLATE
            | {
                "email_sequences": [
                    {"step_number": 1, "subject": "a", "body_template": "b"},
                    {"step_number": 2, "subject": "a", "body_template": "b"},
                    {"step_number": 1, "subject": "again", "body_template": "b"},
                ]
            },
            "email_sequences[2].step_number",
        ),
        (
            TEMPLATE
            | {
                "linkedin_sequences": [
                    {"step_number": 1, "action_type": "message"},
                    {"step_number": 1, "action_type": "profile_visit"},
                ]
            },
            "linkedin_sequences[1].step_number",
        ),
        (
            TEMPLATE | {"linkedin_sequences": [{"step_number": 1, "action_type": "dance"}]},
            "linkedin_sequences[0].action_type",
        ),
        (
            TEMPLATE
            | {
                "linkedin_sequences": [
                    {"step_number": 1, "action_type": "message", "fallback_channel": "fax"}
                ]
            },
            "linkedin_sequences[0].fallback_channel",
        ),
        (TEMPLATE | {"type": "email"}, "linkedin_sequences"),
        (TEMPLATE | {"type": "linkedin"}, "email_sequences"),
    ],
)
async def test_bad_template_bodies_are_400_naming_the_field(
    client: Client, clean_db: Pool, body: dict[str, Any], field: str
) -> None:
    template_id = (await create_template(client))["id"]
    for method, path in (("POST", TEMPLATES), ("PUT", f"{TEMPLATES}/{template_id}")):
        response = await client.request(method, path, json=body, headers=AUTH)
        assert problem(response, 400)["field"] == field, (method, response.text)
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_templates") == 1


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'"a string"', b""])
async def test_template_body_that_is_not_an_object_is_400(client: Client, body: bytes) -> None:
    response = await client.post(
        TEMPLATES, content=body, headers=AUTH | {"content-type": "application/json"}
    )
    problem(response, 400)


async def test_a_value_the_database_refuses_is_400_and_nothing_is_written(
    client: Client, clean_db: Pool
) -> None:
    response = await client.post(TEMPLATES, json=TEMPLATE | {"name": "nul\x00"}, headers=AUTH)
    assert "refused" in problem(response, 400)["detail"]
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_templates") == 0


async def test_put_replaces_the_template_and_keeps_kept_steps_ids(
    client: Client, clean_db: Pool
) -> None:
    created = await create_template(client)
    path = f"{TEMPLATES}/{created['id']}"
    ids = {(s["step_number"], s["a_b_variant"]): s["id"] for s in created["email_sequences"]}
    linkedin_ids = {s["step_number"]: s["id"] for s in created["linkedin_sequences"]}
    replacement = TEMPLATE | {
        "name": "Fintech CFOs v2",
        "description": None,
        "settings": {},
        "is_active": False,
        "email_sequences": [
            {
                "step_number": 1,
                "subject": "Intro A, reworded",
                "body_template": "Hi",
                "a_b_variant": "A",
            },
            {"step_number": 3, "subject": "Last try", "body_template": "Bye", "delay_hours": 120},
        ],
        "linkedin_sequences": [
            {"step_number": 1, "action_type": "profile_visit"},
            {"step_number": 2, "action_type": "message", "message_template": "Hello"},
        ],
    }
    response = await client.put(path, json=replacement, headers=AUTH)
    assert response.status_code == 200, response.text
    replaced = response.json()
    assert replaced == (await client.get(path)).json()
    assert (replaced["name"], replaced["description"], replaced["is_active"]) == (
        "Fintech CFOs v2",
        None,
        False,
    )
    assert replaced["settings"] == {}
    email = {(s["step_number"], s["a_b_variant"]): s for s in replaced["email_sequences"]}
    assert set(email) == {(1, "A"), (3, None)}
    assert email[(1, "A")]["id"] == ids[(1, "A")]  # kept step, same id, new subject
    assert email[(1, "A")]["subject"] == "Intro A, reworded"
    assert email[(3, None)]["id"] not in ids.values()
    linkedin = {s["step_number"]: s for s in replaced["linkedin_sequences"]}
    assert {n: s["id"] for n, s in linkedin.items()} == linkedin_ids
    assert (linkedin[2]["action_type"], linkedin[2]["fallback_channel"]) == ("message", None)
    assert replaced["updated_at"] > created["updated_at"]
    assert await clean_db.fetchval("SELECT count(*) FROM email_sequences") == 2

    emptied = await client.put(
        path, json=TEMPLATE | {"email_sequences": [], "linkedin_sequences": []}, headers=AUTH
    )
    assert emptied.status_code == 200
    assert emptied.json()["email_sequences"] == emptied.json()["linkedin_sequences"] == []


async def test_put_is_one_transaction(client: Client, clean_db: Pool) -> None:
    created = await create_template(client)
    path = f"{TEMPLATES}/{created['id']}"
    broken = TEMPLATE | {
        "name": "Renamed",
        "email_sequences": [
            {"step_number": 1, "subject": "fine", "body_template": "b"},
            {"step_number": 2, "subject": "NUL \x00 inside", "body_template": "b"},
        ],
    }
    problem(await client.put(path, json=broken, headers=AUTH), 400)
    assert (await client.get(path)).json() == created  # name and steps as they were


async def test_unknown_templates_are_404(client: Client, clean_db: Pool) -> None:
    unknown = f"{TEMPLATES}/{uuid.uuid4()}"
    problem(await client.put(unknown, json=TEMPLATE, headers=AUTH), 404)
    problem(await client.delete(unknown, headers=AUTH), 404)
    for path in (f"{TEMPLATES}/42", f"{TEMPLATES}/not-a-uuid"):
        problem(await client.put(path, json=TEMPLATE, headers=AUTH), 404)
        problem(await client.delete(path, headers=AUTH), 404)


async def test_delete_template_cascades_to_everything_made_from_it(
    client: Client, clean_db: Pool
) -> None:
    kept = await create_template(client, name="Kept")
    kept_instance = await create_instance(client, kept["id"])
    gone = await create_template(client, name="Gone")
    instance = await create_instance(
        client, gone["id"], provider_config={"lemlist_campaign_id": "cam_gone"}
    )
    await lemlist(client, "emailsSent", "cam_gone", "ana@example.com")
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_events") == 1

    response = await client.delete(f"{TEMPLATES}/{gone['id']}", headers=AUTH)
    assert response.status_code == 204, response.text
    problem(await client.get(f"{TEMPLATES}/{gone['id']}"), 404)
    problem(await client.get(f"{INSTANCES}/{instance['id']}"), 404)
    for table in ("campaign_events", "campaign_enrollments", "instance_keys"):
        assert await clean_db.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    assert await clean_db.fetchval("SELECT count(*) FROM email_sequences") == 3  # Kept's
    assert await clean_db.fetchval("SELECT count(*) FROM linkedin_sequences") == 2
    remaining = [i["id"] for i in (await client.get(INSTANCES)).json()["items"]]
    assert remaining == [kept_instance["id"]]
    assert await clean_db.fetchval("SELECT count(*) FROM webhook_deliveries") == 1  # raw kept


@pytest.mark.parametrize("status", ["active", "paused"])
async def test_delete_is_refused_while_an_instance_runs_unless_forced(
    client: Client, clean_db: Pool, status: str
) -> None:
    template = await create_template(client)
    instance = await create_instance(client, template["id"], name="Running one")
    if status == "paused":
        await patch(client, instance["id"], status="active")
    assert (await patch(client, instance["id"], status=status)).status_code == 200
    path = f"{TEMPLATES}/{template['id']}"
    refused = problem(await client.delete(path, headers=AUTH), 409)
    assert "'Running one'" in refused["detail"] and "force=true" in refused["detail"]
    assert (await client.get(path)).status_code == 200
    problem(await client.delete(path, params={"force": "maybe"}, headers=AUTH), 400)
    assert (await client.delete(path, params={"force": "true"}, headers=AUTH)).status_code == 204
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_instances") == 0


# Instances


async def test_create_instance_from_a_template(client: Client, clean_db: Pool) -> None:
    template = await create_template(client)
    response = await client.post(
        INSTANCES,
        json={
            "template_id": template["id"],
            "name": "Fintech CFOs - March",
            "provider_config": {"email_provider": "lemlist", "custom": {"keep": [1, 2]}},
            "settings": {"daily_send_limit": 50},
        },
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"{INSTANCES}/{created['id']}"
    assert created["status"] == "draft" and created["started_at"] is None
    assert created["template_id"] == template["id"]
    assert created["provider_config"] == {"email_provider": "lemlist", "custom": {"keep": [1, 2]}}
    assert created["settings"] == {"daily_send_limit": 50}
    assert created["counters"] == {
        "enrolled": 0,
        "sent": 0,
        "opened": 0,
        "clicked": 0,
        "replied": 0,
    }
    assert created["attach"] is None  # no campaign key: nothing to attach
    shown = (await client.get(f"{INSTANCES}/{created['id']}")).json()
    assert shown == {k: v for k, v in created.items() if k != "attach"}

    started = await create_instance(client, template["id"], status="active")
    assert started["status"] == "active" and started["started_at"] is not None
    listed = (await client.get(INSTANCES, params={"template_id": template["id"]})).json()
    assert {i["id"] for i in listed["items"]} == {created["id"], started["id"]}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"template_id": "not-a-uuid"}, "template_id"),
        ({"template_id": None}, "template_id"),
        ({"name": ""}, "name"),
        ({"status": "paused"}, "status"),
        ({"status": "sleeping"}, "status"),
        ({"provider_config": ["lemlist"]}, "provider_config"),
        ({"provider_config": {"lemlist_campaign_id": 5}}, "provider_config.lemlist_campaign_id"),
        ({"provider_config": {"lemlist_campaign_id": ""}}, "provider_config.lemlist_campaign_id"),
        ({"provider_config": {"email_provider": "mailchimp"}}, "provider_config.email_provider"),
        (
            {"provider_config": {"linkedin_provider": "postmark"}},
            "provider_config.linkedin_provider",
        ),
        ({"provider_config": {"postmark_tag": None}}, "provider_config.postmark_tag"),
        (
            {"provider_config": {"phantombuster_agent_ids": ["1", 2.5]}},
            "provider_config.phantombuster_agent_ids[1]",
        ),
        (
            {"provider_config": {"phantombuster_agent_id": True}},
            "provider_config.phantombuster_agent_id",
        ),
        ({"settings": "fast"}, "settings"),
        ({"counters": {"sent": 5}}, "counters"),
    ],
)
async def test_bad_instance_bodies_are_400_naming_the_field(
    client: Client, clean_db: Pool, changes: dict[str, Any], field: str
) -> None:
    template = await create_template(client)
    body = {"template_id": template["id"], "name": "March"} | changes
    response = await client.post(INSTANCES, json=body, headers=AUTH)
    assert problem(response, 400)["field"] == field
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_instances") == 0


async def test_instance_of_an_unknown_template_is_404(client: Client, clean_db: Pool) -> None:
    body = {"template_id": str(uuid.uuid4()), "name": "March"}
    assert problem(await client.post(INSTANCES, json=body, headers=AUTH), 404)["field"] == (
        "template_id"
    )
    missing = body | {"template_id": None}
    problem(await client.post(INSTANCES, json=missing, headers=AUTH), 400)


@pytest.mark.parametrize(("current", "wanted"), list(product(STATUSES, STATUSES)))
async def test_status_moves_only_along_the_lifecycle(
    client: Client, clean_db: Pool, current: str, wanted: str
) -> None:
    instance_id = await make_instance(clean_db, {}, status=current)
    before = await clean_db.fetchrow(
        "SELECT started_at, paused_at, completed_at FROM campaign_instances WHERE id = $1",
        instance_id,
    )
    response = await patch(client, instance_id, status=wanted)
    if (current, wanted) in ALLOWED or current == wanted:
        assert response.status_code == 200, response.text
        assert response.json()["status"] == wanted
    else:
        body = problem(response, 409)
        assert body["detail"].startswith(f"cannot go from {current} to {wanted};")
        assert body["field"] == "status"
        assert "failed" in body["detail"]  # what is allowed is said
    after = await clean_db.fetchrow(
        "SELECT status, started_at, paused_at, completed_at FROM campaign_instances WHERE id = $1",
        instance_id,
    )
    if response.status_code == 409 or current == wanted:
        assert after["status"] == current
        assert tuple(after)[1:] == tuple(before)


async def test_status_times_move_with_the_status(client: Client, clean_db: Pool) -> None:
    instance = await create_instance(client)
    path = instance["id"]
    active = (await patch(client, path, status="active")).json()
    assert active["started_at"] is not None and active["paused_at"] is None
    paused = (await patch(client, path, status="paused")).json()
    assert paused["paused_at"] is not None and paused["started_at"] == active["started_at"]
    resumed = (await patch(client, path, status="active")).json()
    assert resumed["paused_at"] is None and resumed["started_at"] == active["started_at"]
    assert resumed["completed_at"] is None
    done = (await patch(client, path, status="completed")).json()
    assert done["completed_at"] is not None
    again = (await patch(client, path, status="completed")).json()
    assert again["completed_at"] == done["completed_at"]  # same status: nothing moves
    problem(await patch(client, path, status="active"), 409)
    assert (await patch(client, path, status="failed")).json()["status"] == "failed"


async def test_patch_name_settings_and_provider_config_merge(
    client: Client, clean_db: Pool
) -> None:
    instance = await create_instance(
        client,
        provider_config={"email_provider": "lemlist", "lemlist_campaign_id": "cam_1", "x": 1},
        settings={"daily_send_limit": 50, "timezone": "UTC"},
    )
    response = await patch(
        client,
        instance["id"],
        name="Renamed",
        provider_config={"email_provider": "postmark", "postmark_tag": "tag-1", "x": None},
        settings={"daily_send_limit": 80},
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["name"] == "Renamed" and changed["status"] == "draft"
    assert changed["provider_config"] == {
        "email_provider": "postmark",
        "lemlist_campaign_id": "cam_1",
        "postmark_tag": "tag-1",
    }
    assert changed["settings"] == {"daily_send_limit": 80, "timezone": "UTC"}
    assert changed["attach"] == {
        "deliveries": 0,
        "events_attached": 0,
        "remaining": 0,
        "error": None,
    }
    renamed_only = (await patch(client, instance["id"], name="Again")).json()
    assert (
        renamed_only["attach"] is None
        and renamed_only["provider_config"] == (changed["provider_config"])
    )


async def test_patch_errors(client: Client, clean_db: Pool) -> None:
    instance = await create_instance(client)
    path = instance["id"]
    assert problem(await patch(client, path), 400)["detail"].startswith("nothing to change")
    assert problem(await patch(client, path, status="sleeping"), 400)["field"] == "status"
    assert problem(await patch(client, path, name=" "), 400)["field"] == "name"
    assert problem(await patch(client, path, counters={}), 400)["field"] == "counters"
    bad_key = await patch(client, path, provider_config={"postmark_tag": 7})
    assert problem(bad_key, 400)["field"] == "provider_config.postmark_tag"
    problem(await patch(client, uuid.uuid4(), status="active"), 404)
    problem(await patch(client, "not-a-uuid", status="active"), 404)
    unchanged = (await client.get(f"{INSTANCES}/{path}")).json()
    assert unchanged == {k: v for k, v in instance.items() if k != "attach"}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"lemlist_campaign_id": "cam_1"}, {"lemlist_campaign_id": "cam_1"}),
        ({"postmark_tag": "tag"}, {"email_provider": "postmark", "postmark_tag": "tag"}),
        ({"phantombuster_agent_ids": ["111", 222]}, {"phantombuster_agent_id": "222"}),
        ({"phantombuster_agent_id": 333}, {"phantombuster_agent_ids": ["333"]}),
    ],
)
async def test_two_live_instances_never_map_one_campaign_key(
    client: Client, clean_db: Pool, first: dict[str, Any], second: dict[str, Any]
) -> None:
    template_id = (await create_template(client))["id"]
    running = await create_instance(
        client, template_id, name="Running", status="active", provider_config=first
    )
    body = {"template_id": template_id, "name": "Next", "provider_config": second}
    refused = problem(
        await client.post(INSTANCES, json=body | {"status": "active"}, headers=AUTH), 409
    )
    assert running["id"] in refused["detail"] and "'Running'" in refused["detail"]
    assert refused["field"] == "provider_config"
    # A draft may prepare the same keys; it cannot go live while the other is.
    draft = await create_instance(client, template_id, name="Next", provider_config=second)
    problem(await patch(client, draft["id"], status="active"), 409)
    other = await create_instance(client, template_id, name="Other", status="active")
    problem(await patch(client, other["id"], provider_config=second), 409)
    await patch(client, running["id"], status="paused")
    problem(await patch(client, draft["id"], status="active"), 409)  # paused is live too
    await patch(client, running["id"], status="completed")
    assert (await patch(client, draft["id"], status="active")).status_code == 200
    assert (await patch(client, running["id"], status="failed")).status_code == 200


# Attaching events that arrived before their mapping


async def test_unmatched_events_attach_when_an_instance_maps_their_campaign(
    client: Client, clean_db: Pool
) -> None:
    await lemlist(client, "emailsSent", "cam_early", "ana@example.com", activity="act_1")
    await lemlist(client, "emailsOpened", "cam_early", "ANA@example.com", activity="act_2")
    await lemlist(client, "emailsSent", "cam_early", "ben@example.com", activity="act_3")
    await lemlist(client, "emailsSent", "cam_unrelated", "cy@example.com", activity="act_4")
    unmatched = (await client.get("/api/events", params={"unmatched": "true"})).json()["items"]
    assert len(unmatched) == 4

    created = await create_instance(
        client, status="active", provider_config={"lemlist_campaign_id": "cam_early"}
    )
    assert created["attach"] == {
        "deliveries": 3,
        "events_attached": 3,
        "remaining": 0,
        "error": None,
    }
    expected = {"enrolled": 2, "sent": 2, "opened": 1, "clicked": 0, "replied": 0}
    assert created["counters"] == expected
    events = (await client.get("/api/events", params={"instance_id": created["id"]})).json()
    assert {e["provider_event_id"] for e in events["items"]} == {"act_1", "act_2", "act_3"}
    assert all(e["enrollment_id"] for e in events["items"])
    left = (await client.get("/api/events", params={"unmatched": "true"})).json()["items"]
    assert [e["provider_event_id"] for e in left] == ["act_4"]
    statuses = await clean_db.fetch("SELECT status FROM webhook_deliveries ORDER BY received_at")
    assert [r["status"] for r in statuses] == ["processed", "processed", "processed", "unmatched"]

    # Attaching again, or a redelivery, changes nothing: counters stay exact.
    again = await client.post(f"{INSTANCES}/{created['id']}/attach", headers=AUTH)
    assert again.status_code == 200, again.text
    assert again.json()["attach"] == {
        "deliveries": 0,
        "events_attached": 0,
        "remaining": 0,
        "error": None,
    }
    assert (await lemlist(client, "emailsSent", "cam_early", "ben@example.com", activity="act_3"))[
        "status"
    ] == "duplicate"
    assert await counters(clean_db, created["id"]) == {
        "total_enrolled": 2,
        "total_sent": 2,
        "total_opened": 1,
        "total_clicked": 0,
        "total_replied": 0,
    }
    performance = (await client.get(f"{INSTANCES}/{created['id']}/performance")).json()
    assert (performance["totals"]["sent"], performance["unique"]["sent"]) == (2, 2)


async def test_a_changed_mapping_attaches_every_provider(client: Client, clean_db: Pool) -> None:
    instance = await create_instance(
        client, status="active", provider_config={"lemlist_campaign_id": "cam_old"}
    )
    await lemlist(client, "emailsSent", "cam_new", "ana@example.com")
    postmark = json.loads(fixture_body("postmark", "Delivery.json"))
    postmark |= {"Tag": "tag-new", "Recipient": "ben@example.com"}
    assert (
        await post_webhook(client, "postmark", json.dumps(postmark).encode())
    ).status_code == 200
    run = json.loads(fixture_body("phantombuster", "linkedin_auto_connect_finished.json"))
    run |= {
        "agentId": "7777",
        "resultObject": json.dumps(
            [
                {
                    "profileUrl": "https://www.linkedin.com/in/cy-example/",
                    "timestamp": "2025-03-10T10:00:00Z",
                }
            ]
        ),
    }
    assert (
        await post_webhook(client, "phantombuster", json.dumps(run).encode())
    ).status_code == 200
    assert (
        await clean_db.fetchval("SELECT count(*) FROM campaign_events WHERE enrollment_id IS NULL")
        == 3
    )

    response = await patch(
        client,
        instance["id"],
        provider_config={
            "lemlist_campaign_id": "cam_new",
            "postmark_tag": "tag-new",
            "phantombuster_agent_ids": [7777],
        },
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["attach"] == {
        "deliveries": 3,
        "events_attached": 3,
        "remaining": 0,
        "error": None,
    }
    assert changed["counters"]["enrolled"] == 3 and changed["counters"]["sent"] == 1
    contacts = await clean_db.fetch(
        "SELECT contact_email, linkedin_url FROM campaign_enrollments WHERE instance_id = $1"
        " ORDER BY contact_email NULLS LAST",
        uuid.UUID(instance["id"]),
    )
    assert [tuple(c) for c in contacts] == [
        ("ana@example.com", None),
        ("ben@example.com", None),
        (None, "https://www.linkedin.com/in/cy-example/"),
    ]


async def test_attach_is_bounded_per_request_and_goes_on_when_asked(
    client: Client, clean_db: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deps, "ATTACH_MAX_DELIVERIES", 2)
    for n in range(5):
        await lemlist(client, "emailsSent", "cam_busy", f"c{n}@example.com")
    created = await create_instance(client, provider_config={"lemlist_campaign_id": "cam_busy"})
    assert created["attach"] == {
        "deliveries": 2,
        "events_attached": 2,
        "remaining": 3,
        "error": None,
    }
    assert created["counters"]["sent"] == 2
    path = f"{INSTANCES}/{created['id']}/attach"
    second = (await client.post(path, headers=AUTH)).json()
    assert (second["attach"]["remaining"], second["counters"]["sent"]) == (1, 4)
    third = (await client.post(path, headers=AUTH)).json()
    assert (third["attach"]["remaining"], third["counters"]["sent"]) == (0, 5)
    problem(await client.post(f"{INSTANCES}/{uuid.uuid4()}/attach", headers=AUTH), 404)


# Enrollments


async def enroll(client: Client, instance_id: object, *contacts: dict[str, Any]) -> Response:
    return await client.post(
        f"{INSTANCES}/{instance_id}/enrollments", json={"contacts": list(contacts)}, headers=AUTH
    )


async def test_enrollment_is_idempotent_on_the_contact(client: Client, clean_db: Pool) -> None:
    instance = await create_instance(client, provider_config={"email_provider": "lemlist"})
    first = await enroll(
        client,
        instance["id"],
        {"email": "Ana@Example.com", "metadata": {"first_name": "Ana"}},
        {"linkedin_url": "https://www.linkedin.com/in/ben-example/", "contact_id": "hs_2"},
        {"email": "cy@example.com", "linkedin_url": "linkedin.com/in/cy"},
        {"email": "ana@example.com"},  # the first contact again, in the same request
    )
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["created"], body["existing"]) == (3, 1)
    assert [i["created"] for i in body["items"]] == [True, True, True, False]
    assert body["items"][3]["id"] == body["items"][0]["id"]
    assert body["items"][0]["contact_email"] == "Ana@Example.com"

    again = await enroll(
        client,
        instance["id"],
        {"email": "ANA@example.COM", "metadata": {"first_name": "Changed"}},
        {"linkedin_url": "http://linkedin.com/in/Ben-Example?trk=x"},
        {"linkedin_url": "https://www.linkedin.com/in/cy/", "email": "new-address@example.com"},
        {"email": "dee@example.com"},
    )
    body = again.json()
    assert (body["created"], body["existing"]) == (1, 3)
    assert [i["id"] for i in body["items"][:3]] == [i["id"] for i in first.json()["items"][:3]]
    rows = await clean_db.fetch(
        "SELECT contact_email, linkedin_url, contact_id, status, current_step, metadata,"
        " provider_config FROM campaign_enrollments ORDER BY contact_email NULLS LAST"
    )
    assert [r["contact_email"] for r in rows] == [
        "Ana@Example.com",
        "cy@example.com",
        "dee@example.com",
        None,
    ]
    assert rows[0]["metadata"] == {"first_name": "Ana"}  # an existing contact is left alone
    assert rows[3]["contact_id"] == "hs_2"
    assert {(r["status"], r["current_step"]) for r in rows} == {("enrolled", 0)}
    assert all(r["provider_config"] == {"email_provider": "lemlist"} for r in rows)
    assert (await counters(clean_db, instance["id"]))["total_enrolled"] == 4

    # A webhook for an enrolled contact lands on that enrollment, not a new one.
    await patch(client, instance["id"], provider_config={"lemlist_campaign_id": "cam_e"})
    await lemlist(client, "emailsSent", "cam_e", "dee@EXAMPLE.com")
    attached = await clean_db.fetchval(
        "SELECT e.contact_email FROM campaign_events v JOIN campaign_enrollments e"
        " ON e.id = v.enrollment_id"
    )
    assert attached == "dee@example.com"
    assert (await counters(clean_db, instance["id"]))["total_enrolled"] == 4


@contextmanager
def concurrent_transaction(
    database_url: str, first: str, then: str, *args: object
) -> Iterator[threading.Thread]:
    """Another session runs `first`, waits until a request blocks on it, runs `then`, commits.

    The test client handles one request at a time, so the competing writer
    is a thread with its own connection.
    """
    started = threading.Event()

    def run() -> None:
        with psycopg.connect(database_url) as conn:
            conn.execute(first.encode(), args[: first.count("%s")])
            started.set()
            deadline = time.monotonic() + 10
            while not conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0]:
                assert time.monotonic() < deadline, "no request waited"
                time.sleep(0.01)
            conn.execute(then.encode(), args[first.count("%s") :])
        # leaving the block commits

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(10)
    try:
        yield thread
    finally:
        thread.join(20)


async def test_an_enrollment_made_meanwhile_is_found_not_doubled(
    client: Client, clean_db: Pool, database_url: str
) -> None:
    instance = await create_instance(client)
    with concurrent_transaction(
        database_url,
        # Enrolled and counted as ingestion and the API do: counted last.
        "WITH made AS (INSERT INTO campaign_enrollments (instance_id, contact_email)"
        " VALUES (%s, %s) RETURNING instance_id)"
        " SELECT apply_counter_deltas(array_agg(instance_id), '{1}', '{0}', '{0}', '{0}', '{0}')"
        " FROM made",
        "SELECT 1",
        uuid.UUID(instance["id"]),
        "ana@example.com",
    ) as thread:
        response = await enroll(client, instance["id"], {"email": "ANA@example.com"})
    assert not thread.is_alive()
    assert response.status_code == 200, response.text
    assert (response.json()["created"], response.json()["existing"]) == (0, 1)
    assert response.json()["items"][0]["contact_email"] == "ana@example.com"
    assert (await counters(clean_db, instance["id"]))["total_enrolled"] == 1


async def test_a_key_is_checked_under_the_mapping_lock(
    client: Client, clean_db: Pool, database_url: str
) -> None:
    """An activation waits for a concurrent mapping change, then sees it: one key, one live."""
    template_id = (await create_template(client))["id"]
    config = {"lemlist_campaign_id": "cam_race"}
    first = await create_instance(client, template_id, name="first", provider_config=config)
    second = await create_instance(client, template_id, name="second", provider_config=config)
    with concurrent_transaction(
        database_url,
        CAMPAIGNS["lock_mappings"],  # as a concurrent request holds it
        "UPDATE campaign_instances SET status = 'active' WHERE id = %s",
        uuid.UUID(first["id"]),
    ) as thread:
        response = await patch(client, second["id"], status="active")
    assert not thread.is_alive()
    assert first["id"] in problem(response, 409)["detail"]
    statuses = await clean_db.fetch("SELECT name, status FROM campaign_instances ORDER BY name")
    assert [tuple(r) for r in statuses] == [("first", "active"), ("second", "draft")]


@pytest.mark.parametrize(
    ("contacts", "field"),
    [
        ([], "contacts"),
        ([{"email": "a@example.com"}] * 1001, "contacts"),
        ([{"email": "a@example.com"}, {"metadata": {"first_name": "Nobody"}}], "contacts[1]"),
        ([{"email": "not an email"}], "contacts[0].email"),
        ([{"email": "@example.com"}], "contacts[0].email"),
        ([{"email": 5}], "contacts[0].email"),
        ([{"linkedin_url": "https://example.com/in/someone"}], "contacts[0].linkedin_url"),
        ([{"email": "a@example.com", "metadata": "vip"}], "contacts[0].metadata"),
        ([{"email": "a@example.com", "phone": "+1"}], "contacts[0].phone"),
    ],
)
async def test_bad_enrollments_are_400_naming_the_field(
    client: Client, clean_db: Pool, contacts: list[dict[str, Any]], field: str
) -> None:
    instance = await create_instance(client)
    assert problem(await enroll(client, instance["id"], *contacts), 400)["field"] == field
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_enrollments") == 0


async def test_enrollment_into_unknown_or_closed_instances(client: Client, clean_db: Pool) -> None:
    contact = {"email": "a@example.com"}
    problem(await enroll(client, uuid.uuid4(), contact), 404)
    for status in ("completed", "failed"):
        instance_id = await make_instance(clean_db, {}, status=status)
        assert status in problem(await enroll(client, instance_id, contact), 409)["detail"]
    for status in ("draft", "active", "paused"):
        instance_id = await make_instance(clean_db, {}, status=status)
        assert (await enroll(client, instance_id, contact)).json()["created"] == 1


async def test_list_enrollments_in_pages(client: Client, clean_db: Pool) -> None:
    instance = await create_instance(client)
    path = f"{INSTANCES}/{instance['id']}/enrollments"
    for n in range(5):  # one request each: distinct enrolled_at
        await enroll(client, instance["id"], {"email": f"c{n}@example.com", "metadata": {"n": n}})
    await clean_db.execute(
        "UPDATE campaign_enrollments SET status = 'active', current_step = 2"
        " WHERE contact_email IN ('c1@example.com', 'c3@example.com')"
    )
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(path, params=params)).json()
        seen += [e["contact_email"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"c{n}@example.com" for n in range(5)]
    active = (await client.get(path, params={"status": "active"})).json()["items"]
    assert [(e["contact_email"], e["current_step"]) for e in active] == [
        ("c1@example.com", 2),
        ("c3@example.com", 2),
    ]
    assert active[0]["metadata"] == {"n": 1} and active[0]["instance_id"] == instance["id"]
    empty = await create_instance(client)
    assert (await client.get(f"{INSTANCES}/{empty['id']}/enrollments")).json() == {
        "items": [],
        "next_cursor": None,
    }
    problem(await client.get(f"{INSTANCES}/{uuid.uuid4()}/enrollments"), 404)
    for params, field in [
        ({"status": "asleep"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
    ]:
        assert problem(await client.get(path, params=params), 400)["field"] == field


# Provider switching


async def test_a_provider_switch_applies_to_new_enrollments_only(
    client: Client, clean_db: Pool
) -> None:
    lemlist_config = {"email_provider": "lemlist", "lemlist_campaign_id": "cam_switch"}
    instance = await create_instance(client, status="active", provider_config=lemlist_config)
    before = (await enroll(client, instance["id"], {"email": "ana@example.com"})).json()

    switched = await patch(
        client,
        instance["id"],
        provider_config={"email_provider": "postmark", "postmark_tag": "switch"},
    )
    new_config = lemlist_config | {"email_provider": "postmark", "postmark_tag": "switch"}
    assert switched.json()["provider_config"] == new_config
    after = (await enroll(client, instance["id"], {"email": "ben@example.com"})).json()

    # Both providers keep reporting: ana through lemlist, ben (and a contact
    # Postmark reports first) through Postmark; every event lands in one table.
    await lemlist(client, "emailsSent", "cam_switch", "ana@example.com")
    for recipient in ("ben@example.com", "cy@example.com"):
        body = json.loads(fixture_body("postmark", "Delivery.json"))
        body |= {"MessageID": str(uuid.uuid4()), "Tag": "switch", "Recipient": recipient}
        answer = await post_webhook(client, "postmark", json.dumps(body).encode())
        assert answer.json()["status"] == "processed", answer.text

    rows = await clean_db.fetch(
        "SELECT e.id, e.contact_email, e.provider_config, v.provider"
        " FROM campaign_enrollments e JOIN campaign_events v ON v.enrollment_id = e.id"
        " ORDER BY e.contact_email"
    )
    assert [(r["contact_email"], r["provider"]) for r in rows] == [
        ("ana@example.com", "lemlist"),
        ("ben@example.com", "postmark"),
        ("cy@example.com", "postmark"),
    ]
    assert str(rows[0]["id"]) == before["items"][0]["id"]
    assert str(rows[1]["id"]) == after["items"][0]["id"]
    assert rows[0]["provider_config"] == lemlist_config
    assert rows[1]["provider_config"] == rows[2]["provider_config"] == new_config
    listed = (await client.get(f"{INSTANCES}/{instance['id']}/enrollments")).json()["items"]
    assert [e["provider_config"]["email_provider"] for e in listed] == [
        "lemlist",
        "postmark",
        "postmark",
    ]
    performance = (await client.get(f"{INSTANCES}/{instance['id']}/performance")).json()
    by_provider = {p["provider"]: p["totals"] for p in performance["by_provider"]}
    assert (by_provider["lemlist"]["sent"], by_provider["postmark"]["delivered"]) == (1, 2)


# API keys


WRITES: list[tuple[str, str]] = [
    ("POST", TEMPLATES),
    ("PUT", f"{TEMPLATES}/{{template}}"),
    ("DELETE", f"{TEMPLATES}/{{template}}"),
    ("POST", INSTANCES),
    ("PATCH", f"{INSTANCES}/{{instance}}"),
    ("POST", f"{INSTANCES}/{{instance}}/attach"),
    ("POST", f"{INSTANCES}/{{instance}}/enrollments"),
]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong-key"},
        {"authorization": "Bearer"},
        {"authorization": "Basic dGVzdC1hcGkta2V5"},  # the key, but not as a bearer token
        {"x-api-key": "test-api-ke"},  # a prefix of the key
        {"x-api-key": "lemlist-secret"},  # a webhook secret is not an API key
    ],
)
async def test_every_write_needs_a_valid_api_key(
    client: Client, clean_db: Pool, headers: dict[str, str]
) -> None:
    template = await create_template(client)
    instance = await create_instance(client, template["id"])
    before = await clean_db.fetchval("SELECT count(*) FROM campaign_templates")
    for method, path in WRITES:
        url = path.format(template=template["id"], instance=instance["id"])
        response = await client.request(method, url, json={"name": "x"}, headers=headers)
        body = problem(response, 401)
        assert response.headers["www-authenticate"] == 'Bearer realm="api"', url
        assert "API key" in body["detail"]
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_templates") == before
    assert (await client.get(f"{INSTANCES}/{instance['id']}")).json()["name"] == "March"


async def test_the_key_is_accepted_in_either_header_and_rotated(client: Client) -> None:
    for headers in (
        {"authorization": "Bearer test-api-key"},
        {"authorization": "bearer  test-api-key"},
        {"x-api-key": "test-api-key"},
        {"x-api-key": "previous-api-key"},  # the second configured key (rotation)
    ):
        response = await client.post(TEMPLATES, json=TEMPLATE, headers=headers)
        assert response.status_code == 201, (headers, response.text)


async def test_reads_are_open_by_default(client: Client, clean_db: Pool) -> None:
    instance = await create_instance(client)
    for path in (
        TEMPLATES,
        f"{TEMPLATES}/{instance['template_id']}",
        INSTANCES,
        f"{INSTANCES}/{instance['id']}",
        f"{INSTANCES}/{instance['id']}/performance",
        f"{INSTANCES}/{instance['id']}/enrollments",
        "/api/events",
        "/api/deliveries",
    ):
        assert (await client.get(path)).status_code == 200, path


@pytest.fixture
async def closed_client(settings: Settings, clean_db: Pool) -> AsyncIterator[Client]:
    """An app configured with GATEWAY_API_READS_OPEN=false."""
    closed = msgspec.structs.replace(settings, api_reads_open=False)
    async with AsyncTestClient(app=create_app(closed, configure_logs=False)) as test_client:
        yield test_client


async def test_reads_need_the_key_when_configured(closed_client: Client) -> None:
    instance = await create_instance(closed_client)
    for path in (
        TEMPLATES,
        f"{INSTANCES}/{instance['id']}",
        f"{INSTANCES}/{instance['id']}/enrollments",
        "/api/events",
    ):
        problem(await closed_client.get(path), 401)
        problem(await closed_client.get(path, headers={"x-api-key": "nope"}), 401)
        assert (await closed_client.get(path, headers=AUTH)).status_code == 200, path
    for path in ("/healthz", "/readyz", "/metrics", "/schema/openapi.json"):
        assert (await closed_client.get(path)).status_code == 200, path
    body = fixture_body("lemlist", "emailsSent.json")
    assert (await post_webhook(closed_client, "lemlist", body)).status_code == 200
    document = (await closed_client.get("/schema/openapi.json")).json()
    assert document["paths"][TEMPLATES]["get"]["security"] == [{"bearer": []}, {"api_key": []}]


async def test_openapi_documents_the_management_api(client: Client) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    paths = document["paths"]
    writes = {
        (TEMPLATES, "post"): (400, 401),
        (f"{TEMPLATES}/{{template_id}}", "put"): (400, 401, 404),
        (f"{TEMPLATES}/{{template_id}}", "delete"): (401, 404, 409),
        (INSTANCES, "post"): (400, 401, 404, 409),
        (f"{INSTANCES}/{{instance_id}}", "patch"): (400, 401, 404, 409),
        (f"{INSTANCES}/{{instance_id}}/attach", "post"): (401, 404),
        (f"{INSTANCES}/{{instance_id}}/enrollments", "post"): (400, 401, 404, 409),
    }
    for (path, method), errors in writes.items():
        operation = paths[path][method]
        assert operation["security"] == [{"bearer": []}, {"api_key": []}], path
        for status in errors:
            content = operation["responses"][str(status)]["content"]["application/problem+json"]
            assert content["schema"]["$ref"].endswith("/Problem"), (path, status)
    assert "security" not in paths[TEMPLATES]["get"]  # reads open by default
    assert set(document["components"]["securitySchemes"]) == {
        "bearer",
        "api_key",
        "webhook_token",  # the webhooks' own secrets (POST /webhooks/{provider})
        "webhook_basic",
    }
    schemas = document["components"]["schemas"]
    assert {"TemplateIn", "InstanceIn", "InstancePatch", "EnrollIn", "EnrollmentPage"} <= set(
        schemas
    )

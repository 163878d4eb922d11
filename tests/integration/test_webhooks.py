"""POST /webhooks/{provider} end to end: HTTP in, rows and counters out."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
import respx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.db.pool import Pool
from gateway.settings import Settings
from tests.conftest import FIXTURES, PB_API, SECRETS, fixture_body
from tests.database import make_instance, post_webhook

Client = AsyncTestClient[Litestar]

#: The shared example payloads and what each must become.
EXPECTED: dict[tuple[str, str], tuple[str, str]] = {
    ("postmark", "Delivery.json"): ("email", "delivered"),
    ("postmark", "Bounce.json"): ("email", "bounced"),
    ("postmark", "SpamComplaint.json"): ("email", "spam_complaint"),
    ("postmark", "Open.json"): ("email", "opened"),
    ("postmark", "Click.json"): ("email", "clicked"),
    ("postmark", "SubscriptionChange.json"): ("email", "unsubscribed"),
    ("lemlist", "emailsSent.json"): ("email", "sent"),
    ("lemlist", "emailsOpened.json"): ("email", "opened"),
    ("lemlist", "emailsClicked.json"): ("email", "clicked"),
    ("lemlist", "emailsReplied.json"): ("email", "replied"),
    ("lemlist", "emailsBounced.json"): ("email", "bounced"),
    ("lemlist", "emailsUnsubscribed.json"): ("email", "unsubscribed"),
    ("lemlist", "linkedinVisitDone.json"): ("linkedin", "profile_visited"),
    ("lemlist", "linkedinInviteDone.json"): ("linkedin", "connection_requested"),
    ("lemlist", "linkedinInviteAccepted.json"): ("linkedin", "connection_accepted"),
    ("lemlist", "linkedinSent.json"): ("linkedin", "message_sent"),
    ("lemlist", "linkedinReplied.json"): ("linkedin", "replied"),
}


def all_fixtures() -> list[tuple[str, str]]:
    return sorted(
        (p.parent.name, p.name) for p in FIXTURES.glob("*/*.json") if p.parent.name in SECRETS
    )


async def events(pool: Pool) -> list[Any]:
    return list(await pool.fetch("SELECT * FROM campaign_events ORDER BY provider_event_id"))


async def deliveries(pool: Pool) -> list[Any]:
    return list(await pool.fetch("SELECT * FROM webhook_deliveries ORDER BY received_at, id"))


@pytest.mark.parametrize(("provider", "name"), sorted(EXPECTED))
async def test_example_payload_lands_once(
    client: Client, clean_db: Pool, provider: str, name: str
) -> None:
    body = fixture_body(provider, name)
    first = await post_webhook(client, provider, body)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "unmatched"  # no instance maps these campaign keys
    assert first.json()["events"] == 1
    rows = await events(clean_db)
    assert [(r["channel"], r["event_type"], r["provider"]) for r in rows] == [
        (*EXPECTED[(provider, name)], provider)
    ]
    assert rows[0]["enrollment_id"] is None
    assert rows[0]["delivery_id"].hex == first.json()["delivery_id"].replace("-", "")

    again = await post_webhook(client, provider, body)
    assert again.status_code == 200
    assert again.json() | {"delivery_id": None} == {
        "delivery_id": None,
        "status": "duplicate",
        "events": 0,
        "duplicates": 1,
    }
    assert len(await events(clean_db)) == 1
    stored = await deliveries(clean_db)
    assert [d["status"] for d in stored] == ["unmatched", "duplicate"]
    assert all(bytes(d["body"]) == body for d in stored)


@pytest.mark.parametrize(("provider", "name"), all_fixtures())
async def test_every_fixture_is_answered_without_server_error(
    client: Client, clean_db: Pool, provider: str, name: str
) -> None:
    body = fixture_body(provider, name)
    # PhantomBuster runs without their result fetch it: from the API, or a result file.
    api_answer = fixture_body("phantombuster-api", "fetch_result_object_response.json")
    rows = fixture_body("phantombuster-api", "linkedin_auto_connect_result_object.parsed.json")
    with respx.mock(assert_all_called=False) as outside:
        outside.get(f"{PB_API}/containers/fetch-result-object").respond(200, content=api_answer)
        outside.get(host="phantombuster.s3.amazonaws.com").respond(200, content=rows)
        first = await post_webhook(client, provider, body)
        assert first.status_code in (200, 400), first.text
        count = len(await events(clean_db))
        again = await post_webhook(client, provider, body)
    assert again.status_code == first.status_code
    assert len(await events(clean_db)) == count, "a redelivery wrote a second event"
    if first.status_code == 200:
        assert again.json()["events"] == 0
        assert first.json()["events"] == count


async def test_lemlist_events_attach_and_keep_counters_exact(
    client: Client, clean_db: Pool
) -> None:
    instance = await make_instance(clean_db, {"lemlist_campaign_id": "cam_R7vK2mXq9PdL4sWtA"})
    for name in (
        "emailsSent.json",
        "emailsOpened.json",
        "emailsClicked.json",
        "emailsReplied.json",
    ):
        response = await post_webhook(client, "lemlist", fixture_body("lemlist", name))
        assert response.json()["status"] == "processed", response.text
    # Dana's LinkedIn events match the same enrollment through her e-mail.
    await post_webhook(client, "lemlist", fixture_body("lemlist", "linkedinInviteDone.json"))
    # Redeliveries change nothing.
    await post_webhook(client, "lemlist", fixture_body("lemlist", "emailsOpened.json"))
    # Another lead of the campaign gets an enrollment of their own.
    await post_webhook(client, "lemlist", fixture_body("lemlist", "emailsBounced.json"))

    enrollments = await clean_db.fetch(
        "SELECT id, contact_email, instance_id FROM campaign_enrollments ORDER BY contact_email"
    )
    assert [e["contact_email"] for e in enrollments] == [
        "dana.whitfield@northwind-example.com",
        "m.okafor@contoso-example.net",
    ]
    counters = await clean_db.fetchrow(
        "SELECT total_enrolled, total_sent, total_opened, total_clicked, total_replied"
        " FROM campaign_instances WHERE id = $1",
        instance,
    )
    assert dict(counters) == {
        "total_enrolled": 2,
        "total_sent": 1,
        "total_opened": 1,
        "total_clicked": 1,
        "total_replied": 1,
    }
    rows = await events(clean_db)
    assert len(rows) == 6
    assert all(r["instance_id"] == instance and r["enrollment_id"] is not None for r in rows)


async def test_counters_count_enrollments_not_events(client: Client, clean_db: Pool) -> None:
    instance = await make_instance(clean_db, {"lemlist_campaign_id": "cam_R7vK2mXq9PdL4sWtA"})
    opened = json.loads(fixture_body("lemlist", "emailsOpened.json"))
    for n in range(3):  # three distinct opens by one lead
        body = json.dumps(opened | {"_id": f"act_open_{n}", "isFirst": n == 0}).encode()
        assert (await post_webhook(client, "lemlist", body)).json()["events"] == 1
    total_opened = await clean_db.fetchval(
        "SELECT total_opened FROM campaign_instances WHERE id = $1", instance
    )
    assert total_opened == 1
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_events") == 3


async def test_postmark_metadata_enrollment_id_wins(client: Client, clean_db: Pool) -> None:
    instance = await make_instance(clean_db, {"postmark_tag": "something-else"})
    enrollment = await clean_db.fetchval(
        "INSERT INTO campaign_enrollments (instance_id, contact_email) VALUES ($1, 'x@example.com')"
        " RETURNING id",
        instance,
    )
    body = json.loads(fixture_body("postmark", "Open.json"))
    body["Metadata"]["enrollment_id"] = str(enrollment)
    response = await post_webhook(client, "postmark", json.dumps(body).encode())
    assert response.json()["status"] == "processed"
    row = (await events(clean_db))[0]
    assert (row["enrollment_id"], row["instance_id"]) == (enrollment, instance)


async def test_postmark_tag_maps_instance_and_recipient_enrolls(
    client: Client, clean_db: Pool
) -> None:
    instance = await make_instance(clean_db, {"postmark_tag": "q1-outbound-step-2"})
    response = await post_webhook(client, "postmark", fixture_body("postmark", "Delivery.json"))
    assert response.json()["status"] == "processed"
    enrollment = await clean_db.fetchrow("SELECT * FROM campaign_enrollments")
    assert enrollment["instance_id"] == instance
    assert enrollment["contact_email"] == "dana.whitfield@northwind-example.com"


async def test_postmark_basic_auth_and_rotated_secret(client: Client, clean_db: Pool) -> None:
    body = fixture_body("postmark", "Click.json")
    for password in SECRETS["postmark"]:
        credentials = base64.b64encode(f"postmark:{password}".encode()).decode()
        response = await client.post(
            "/webhooks/postmark", content=body, headers={"authorization": f"Basic {credentials}"}
        )
        assert response.status_code == 200, response.text
    stored = await deliveries(clean_db)
    assert [d["headers"]["authorization"] for d in stored] == ["[redacted]", "[redacted]"]


@pytest.mark.parametrize(
    "token",
    ["", "wrong", SECRETS["lemlist"][0], SECRETS["postmark"][0] + "x", SECRETS["postmark"][0][:-1]],
)
async def test_bad_secret_is_401_and_stores_nothing(
    client: Client, clean_db: Pool, token: str
) -> None:
    response = await post_webhook(
        client, "postmark", fixture_body("postmark", "Delivery.json"), token=token
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 401
    assert await deliveries(clean_db) == []


async def test_unknown_provider_is_404(client: Client, clean_db: Pool) -> None:
    response = await client.post("/webhooks/mailchimp", params={"token": "x"}, content=b"{}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await deliveries(clean_db) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "$"),
        (b"[1, 2]", "$"),
        (b'"just a string"', "$"),
        (b"\xff\xfe\x00garbage", "$"),
        (b"", "$"),
        (b'{"type": 42}', "$.type"),
    ],
)
async def test_bad_body_is_400_naming_the_field_and_kept(
    client: Client, clean_db: Pool, body: bytes, field: str
) -> None:
    response = await post_webhook(client, "lemlist", body)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["field"] == field
    stored = await deliveries(clean_db)
    assert len(stored) == 1
    assert (stored[0]["status"], bytes(stored[0]["body"])) == ("rejected", body)
    assert stored[0]["cause"]
    assert str(stored[0]["id"]) == problem["delivery_id"]


async def test_oversized_body_is_413_and_recorded(client: Client, clean_db: Pool) -> None:
    body = b'{"_id": "act_big", "type": "emailsSent", "pad": "' + b"x" * (1024 * 1024) + b'"}'
    response = await post_webhook(client, "lemlist", body)
    assert response.status_code == 413
    stored = await deliveries(clean_db)
    assert [(d["status"], d["body_size"] > 1024 * 1024) for d in stored] == [("rejected", True)]
    assert "GATEWAY_MAX_BODY_BYTES" in stored[0]["cause"]


def pb_run_of(size: int) -> bytes:
    """A finished PhantomBuster run whose inline result (one real row, padded) is `size` bytes."""
    body = json.loads(fixture_body("phantombuster", "linkedin_auto_connect_finished.json"))
    rows = json.loads(body["resultObject"])[:1]
    body["resultObject"] = json.dumps(rows)
    padding = size - len(json.dumps(body | {"padding": ""}).encode())
    encoded = json.dumps(body | {"padding": "x" * padding}).encode()
    assert len(encoded) == size
    return encoded


async def test_phantombuster_runs_past_1_mib_are_accepted_up_to_16_mib(
    client: Client, clean_db: Pool
) -> None:
    """Issue 13: a run's inline result past 1 MiB got 413, its rows lost for ever."""
    large = pb_run_of(5 * 1024 * 1024)
    response = await post_webhook(client, "phantombuster", large)
    assert response.status_code == 200, response.text
    assert response.json()["events"] == 1
    too_large = pb_run_of(16 * 1024 * 1024 + 1)
    refused = await post_webhook(client, "phantombuster", too_large)
    assert refused.status_code == 413
    # lemlist keeps the general limit (1 MiB).
    lemlist = await post_webhook(client, "lemlist", b'{"pad": "' + b"x" * 1024 * 1024 + b'"}')
    assert lemlist.status_code == 413
    stored = [(d["provider"], d["status"], d["body_size"]) for d in await deliveries(clean_db)]
    assert stored == [
        ("phantombuster", "unmatched", len(large)),
        ("phantombuster", "rejected", len(too_large)),
        ("lemlist", "rejected", 1024 * 1024 + 11),
    ]
    causes = [d["cause"] for d in await deliveries(clean_db)]
    assert "GATEWAY_MAX_BODY_BYTES_PHANTOMBUSTER=16777216" in causes[1]
    assert "GATEWAY_MAX_BODY_BYTES_LEMLIST=1048576" in causes[2]


async def test_per_provider_body_limits_are_configurable(
    settings: Settings, clean_db: Pool
) -> None:
    limited = msgspec.structs.replace(
        settings, max_body_bytes=10_000, max_body_bytes_postmark=100, max_body_bytes_lemlist=None
    )
    assert [limited.body_limit(p) for p in ("lemlist", "postmark", "phantombuster")] == [
        10_000,
        100,
        16 * 1024 * 1024,
    ]
    async with AsyncTestClient(app=create_app(limited, configure_logs=False)) as small:
        postmark = await post_webhook(small, "postmark", fixture_body("postmark", "Open.json"))
        lemlist = await post_webhook(small, "lemlist", fixture_body("lemlist", "emailsSent.json"))
    assert (postmark.status_code, lemlist.status_code) == (413, 200)
    [cause] = await clean_db.fetch("SELECT cause FROM webhook_deliveries WHERE status = 'rejected'")
    assert "GATEWAY_MAX_BODY_BYTES_POSTMARK=100" in cause["cause"]


@pytest.mark.parametrize(
    ("provider", "name", "field", "value"),
    [
        ("lemlist", "emailsSent.json", "createdAt", "0001-01-01T00:00:00Z"),
        ("lemlist", "emailsOpened.json", "createdAt", "1970-01-01T00:00:00.000Z"),
        ("lemlist", "emailsClicked.json", "createdAt", "9999-12-31T23:59:59Z"),
        ("postmark", "Delivery.json", "DeliveredAt", "0001-01-01T00:00:00"),
        ("postmark", "Open.json", "ReceivedAt", "2100-01-01T00:00:00Z"),
    ],
)
async def test_absurd_event_times_are_rejected_and_kept(
    client: Client, clean_db: Pool, provider: str, name: str, field: str, value: str
) -> None:
    """Issue 13: one event dated year 1 made every default performance view a 400."""
    instance = await make_instance(
        clean_db,
        {"lemlist_campaign_id": "cam_R7vK2mXq9PdL4sWtA", "postmark_tag": "q1-outbound-step-2"},
    )
    ordinary = await post_webhook(client, provider, fixture_body(provider, name))
    assert ordinary.status_code == 200, ordinary.text
    body = json.loads(fixture_body(provider, name)) | {field: value, "_id": "act_absurd"}
    if provider == "postmark":
        body |= {"MessageID": "00000000-absurd", "ID": 987654}
    absurd = json.dumps(body).encode()
    response = await post_webhook(client, provider, absurd)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == f"$.{field}"
    assert "out of range" in response.json()["detail"]
    rejected = await clean_db.fetchrow(
        "SELECT status, cause, body FROM webhook_deliveries WHERE id = $1",
        uuid.UUID(response.json()["delivery_id"]),
    )
    assert (rejected["status"], bytes(rejected["body"])) == ("rejected", absurd)
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_events") == 1
    performance = await client.get(f"/api/campaigns/instances/{instance}/performance")
    assert performance.status_code == 200, performance.text
    assert len(performance.json()["daily"]) == 1


async def test_secrets_are_not_stored(client: Client, clean_db: Pool) -> None:
    secret = SECRETS["lemlist"][0]
    response = await client.post(
        "/webhooks/lemlist",
        params={"token": secret, "campaign": "q1"},
        content=fixture_body("lemlist", "emailsSent.json"),
        headers={"x-forwarded-for": "203.0.113.9", "x-echo": f"token={secret}"},
    )
    assert response.status_code == 200
    assert secret not in response.text
    row = (await deliveries(clean_db))[0]
    assert row["query"] == {"campaign": "q1"}
    assert secret not in json.dumps(row["headers"])
    assert row["headers"]["x-forwarded-for"] == "203.0.113.9"


async def test_concurrent_identical_deliveries_make_one_event(
    client: Client, clean_db: Pool
) -> None:
    await make_instance(clean_db, {"lemlist_campaign_id": "cam_R7vK2mXq9PdL4sWtA"})
    body = fixture_body("lemlist", "emailsOpened.json")
    responses = await asyncio.gather(*(post_webhook(client, "lemlist", body) for _ in range(25)))
    statuses = sorted(r.json()["status"] for r in responses)
    assert statuses == ["duplicate"] * 24 + ["processed"]
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_events") == 1
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_enrollments") == 1
    assert await clean_db.fetchval("SELECT total_opened FROM campaign_instances") == 1


async def test_unmatched_event_attaches_on_redelivery_once_mapped(
    client: Client, clean_db: Pool
) -> None:
    body = fixture_body("lemlist", "emailsSent.json")
    assert (await post_webhook(client, "lemlist", body)).json()["status"] == "unmatched"
    instance = await make_instance(clean_db, {"lemlist_campaign_id": "cam_R7vK2mXq9PdL4sWtA"})
    response = await post_webhook(client, "lemlist", body)
    assert response.json()["status"] == "duplicate"
    row = (await events(clean_db))[0]
    assert row["instance_id"] == instance and row["enrollment_id"] is not None
    assert await clean_db.fetchval("SELECT total_sent FROM campaign_instances") == 1


async def test_database_down_is_503_with_retry_after(
    settings: Any, tmp_path: Path, clean_db: Pool
) -> None:
    dead = settings.__class__(
        **{
            **{f: getattr(settings, f) for f in settings.__struct_fields__},
            "database_url": f"postgresql://postgres@/postgres?host={tmp_path}&port=1",
            "connect_timeout_s": 1.0,
        }
    )
    async with AsyncTestClient(app=create_app(dead, configure_logs=False)) as down:
        response = await post_webhook(down, "lemlist", fixture_body("lemlist", "emailsSent.json"))
        assert response.status_code == 503
        assert response.headers["retry-after"].isdigit()
        ready = await down.get("/readyz")
        assert ready.status_code == 503
        assert (await down.get("/healthz")).status_code == 200

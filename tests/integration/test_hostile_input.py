"""Hostile and broken input at the HTTP edge: never a 5xx, nothing authenticated lost."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.db.pool import Pool
from tests.conftest import SECRETS, fixture_body, post_webhook

Client = AsyncTestClient[Litestar]
PROVIDERS = sorted(SECRETS)


def deep(n: int) -> bytes:
    return b'{"a":' * n + b"1" + b"}" * n


HOSTILE: list[tuple[str, bytes]] = [
    ("invalid utf-8", b'{"_id": "\xff\xfe", "type": "emailsSent"}'),
    ("truncated", fixture_body("lemlist", "emailsSent.json")[:-40]),
    ("array", b'[{"type": "emailsSent"}]'),
    ("scalar", b"42"),
    ("null", b"null"),
    ("empty", b""),
    ("all nulls", json.dumps(dict.fromkeys(["_id", "type", "RecordType", "agentId"])).encode()),
    ("wrong types", b'{"_id": 1, "type": ["emailsSent"], "MessageID": {}, "agentId": true}'),
    (
        "huge numbers",
        b'{"_id": "x", "type": "emailsSent", "sequenceStep": 1e400, "ID": 10' + b"0" * 400 + b"}",
    ),
    ("deeply nested", deep(100_000)),
    ("duplicate keys", b'{"_id": "a", "_id": "b", "type": "emailsSent", "type": "emailsOpened"}'),
    ("long string", json.dumps({"_id": "x" * 900_000, "type": "emailsSent"}).encode()),
    (
        "nul characters",
        json.dumps(
            {
                "_id": "a\u0000b",
                "type": "emailsSent\u0000",
                "leadEmail": "\u0000@x",
                "RecordType": "Open\u0000",
            }
        ).encode(),
    ),
    (
        "sql and script",
        json.dumps(
            {
                "_id": "'; DROP TABLE campaign_events; --",
                "type": "emailsSent",
                "leadEmail": "<script>alert(1)</script>@x.io",
                "campaignId": "' OR 1=1 --",
                "RecordType": "Delivery",
                "MessageID": "'); DELETE FROM webhook_deliveries; --",
                "Recipient": "robert'); DROP TABLE students;--@x.io",
                "agentId": "1; SELECT pg_sleep(5)",
            }
        ).encode(),
    ),
    (
        "unicode",
        json.dumps(
            {
                "_id": "act_ünïcødé_✓",
                "type": "emailsSent",
                "leadEmail": "zoë.ñandú@exämple.com",
                "leadFirstName": "Zoë 🚀",
                "RecordType": "Delivery",
                "MessageID": "m-✓",
                "Recipient": "δοκιμή@παράδειγμα.δοκιμή",
                "agentId": "ä",
                "script": "Auto Connect 🚀",
            }
        ).encode(),
    ),
    (
        "timestamps out of range",
        json.dumps(
            {
                "_id": "t",
                "type": "emailsSent",
                "createdAt": "99999-01-01T00:00:00Z",
                "RecordType": "Delivery",
                "MessageID": "m",
                "Recipient": "a@b",
                "DeliveredAt": "0000-00-00",
            }
        ).encode(),
    ),
]


async def assert_stored_once(pool: Pool, body: bytes) -> Any:
    rows = await pool.fetch("SELECT status, cause, body FROM webhook_deliveries")
    assert len(rows) == 1
    assert bytes(rows[0]["body"]) == body
    if rows[0]["status"] == "rejected":
        assert rows[0]["cause"]
    return rows[0]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(("case", "body"), HOSTILE, ids=[case for case, _ in HOSTILE])
async def test_hostile_bodies_get_the_contracts_status(
    client: Client, clean_db: Pool, provider: str, case: str, body: bytes
) -> None:
    response = await post_webhook(client, provider, body)
    assert response.status_code in (200, 400), (case, response.status_code, response.text)
    if response.status_code == 400:
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["field"]
    row = await assert_stored_once(clean_db, body)
    assert row["status"] == (
        "rejected" if response.status_code == 400 else response.json()["status"]
    )
    # The tables are all still there.
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_events") >= 0


@pytest.mark.parametrize(
    "content_type",
    [
        b"text/plain",
        b"application/x-www-form-urlencoded",
        b"multipart/form-data; boundary=x",
        b"",
        b"\xfc",
    ],
)
async def test_content_type_does_not_matter(
    client: Client, clean_db: Pool, content_type: bytes
) -> None:
    body = fixture_body("lemlist", "emailsSent.json")
    response = await client.post(
        "/webhooks/lemlist",
        params={"token": SECRETS["lemlist"][0]},
        content=body,
        headers={"content-type": content_type},
    )
    assert response.status_code == 200
    assert response.json()["events"] == 1


async def test_form_encoded_body_is_rejected_not_crashed(client: Client, clean_db: Pool) -> None:
    response = await client.post(
        "/webhooks/postmark",
        params={"token": SECRETS["postmark"][0]},
        data={"RecordType": "Delivery"},
    )
    assert response.status_code == 400
    await assert_stored_once(clean_db, b"RecordType=Delivery")


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    provider=st.sampled_from(PROVIDERS),
    body=st.binary(max_size=2048),
    content_type=st.binary(max_size=40).filter(lambda t: b"\n" not in t and b"\r" not in t),
    extra_query=st.dictionaries(
        st.text(min_size=1, max_size=10).filter(lambda k: k != "token"),
        st.text(max_size=20),
        max_size=3,
    ),
)
async def test_any_bytes_never_get_a_server_error(
    client: Client, provider: str, body: bytes, content_type: bytes, extra_query: dict[str, str]
) -> None:
    response = await client.post(
        f"/webhooks/{provider}",
        params={**extra_query, "token": SECRETS[provider][0]},
        content=body,
        headers={"content-type": content_type},
    )
    assert response.status_code in (200, 400), response.text


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    case=st.sampled_from(
        [
            ("postmark", "Delivery.json"),
            ("postmark", "Bounce.json"),
            ("postmark", "Open.json"),
            ("lemlist", "emailsClicked.json"),
            ("lemlist", "linkedinInviteDone.json"),
            ("phantombuster", "linkedin_auto_connect_finished.json"),
        ]
    ),
    data=st.data(),
)
async def test_real_shapes_with_wrong_values_never_get_a_server_error(
    client: Client, case: tuple[str, str], data: st.DataObject
) -> None:
    provider, name = case
    body = json.loads(fixture_body(provider, name))
    for key in data.draw(st.lists(st.sampled_from(sorted(body)), max_size=3, unique=True)):
        body[key] = data.draw(JSON)
    response = await post_webhook(client, provider, json.dumps(body).encode())
    assert response.status_code in (200, 400), response.text

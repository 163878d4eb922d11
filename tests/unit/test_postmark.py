"""Postmark parser: every record type, the ignored deliveries, and malformed bodies."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from providers import postmark
from providers.base import MAX_KEY_BYTES, NormalizedEvent, Parsed, ProviderError

from .helpers import check_parsed, encode, fixture, fixture_json, fixture_names

PROVIDER = "postmark"
TRACE = {"X-PM-Webhook-Trace-Id": "8c1f4a52-9d3b-4e67-a2f0-5b7c9e1d3a48"}
DANA = "dana.whitfield@northwind-example.com"
DANA_MESSAGE = "3f1c2b9e-8d47-4a6b-9c1e-2a7d5e0b6f41"


def parse(body: Any, headers: dict[str, str] | None = None) -> Parsed:
    """Parse bytes, or a JSON value encoded first, and check the result's invariants."""
    raw = body if isinstance(body, bytes) else encode(body)
    parsed = postmark.parse(raw, headers or {})
    check_parsed(parsed)
    return parsed


def only_event(parsed: Parsed) -> NormalizedEvent:
    assert parsed.ignored is None
    assert len(parsed.events) == 1
    return parsed.events[0]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


EVENT_CASES = [
    pytest.param(
        "Delivery.json",
        {
            "event_type": "delivered",
            "provider_event_id": f"Delivery:{DANA_MESSAGE}:{DANA}",
            "occurred_at": at("2025-03-10T14:22:31.482817+00:00"),
            "contact_email": DANA,
            "campaign_key": "q1-outbound-step-2",
            "enrollment_hint": "enr_01HQ7ZK3V9M2",
            "step_number": 2,
        },
        {"record_type": "Delivery", "server_id": 4271093, "message_stream": "outbound"},
        id="delivery",
    ),
    pytest.param(
        "Delivery_MessageIdCasing.json",
        {
            "event_type": "delivered",
            "provider_event_id": (
                "Delivery:5e8b1d27-04c3-4a9f-8b6e-7d2c9f1a3e50:marcus.okafor@contoso-example.net"
            ),
            "occurred_at": at("2025-03-10T08:02:10.100000+00:00"),
            "contact_email": "marcus.okafor@contoso-example.net",
            "enrollment_hint": "enr_01HQ7ZM8R4T6",
            "instance_hint": "inst_q1_ops",
            "step_number": 1,
        },
        {"message_id": "5e8b1d27-04c3-4a9f-8b6e-7d2c9f1a3e50", "server_id": 4271093},
        id="delivery-MessageId-ServerId-casing",
    ),
    pytest.param(
        "Bounce.json",
        {
            "event_type": "bounced",
            "provider_event_id": "Bounce:3718462951",
            "occurred_at": at("2025-03-10T09:05:12.013772+00:00"),
            "contact_email": "m.okafor@contoso-example.net",
            "campaign_key": "q1-outbound-step-1",
            "enrollment_hint": "enr_01HQ7ZM8R4T6",
            "step_number": 1,
        },
        {
            "bounce_type": "HardBounce",
            "bounce_type_code": 1,
            "bounce_class": "hard",
            "bounce_name": "Hard bounce",
            "inactive": True,
            "can_activate": True,
        },
        id="bounce-hard",
    ),
    pytest.param(
        "Bounce_SoftBounce.json",
        {
            "event_type": "bounced",
            "provider_event_id": "Bounce:3718462977",
            "occurred_at": at("2025-03-10T09:07:44.118003+00:00"),
        },
        {"bounce_type": "SoftBounce", "bounce_type_code": 4096, "bounce_class": "soft"},
        id="bounce-soft",
    ),
    pytest.param(
        "Bounce_Unsubscribe.json",
        {"event_type": "unsubscribed", "provider_event_id": "Bounce:3718463388"},
        {"bounce_type": "Unsubscribe", "bounce_type_code": 16},
        id="bounce-unsubscribe",
    ),
    pytest.param(
        "Bounce_TemplateRenderingFailed.json",
        {"event_type": "failed", "provider_event_id": "Bounce:3718463502"},
        {"bounce_type": "TemplateRenderingFailed", "details": "Unknown variable 'first_name'."},
        id="bounce-template-rendering-failed",
    ),
    pytest.param(
        "SpamComplaint.json",
        {
            "event_type": "spam_complaint",
            "provider_event_id": "SpamComplaint:3718499027",
            "occurred_at": at("2025-03-11T16:47:03.552190+00:00"),
            "contact_email": "j.lindqvist@fabrikam-example.org",
            "enrollment_hint": "enr_01HQ80A2C7K1",
            "step_number": 3,
        },
        {"record_type": "SpamComplaint", "bounce_type_code": 100001, "can_activate": False},
        id="spam-complaint",
    ),
    pytest.param(
        "Open.json",
        {
            "event_type": "opened",
            "provider_event_id": f"Open:{DANA_MESSAGE}:{DANA}:2025-03-10T15:03:48.2904411Z",
            "occurred_at": at("2025-03-10T15:03:48.290441+00:00"),
            "contact_email": DANA,
            "campaign_key": "q1-outbound-step-2",
        },
        {
            "first_open": True,
            "platform": "WebMail",
            "read_seconds": 12,
            "client": "Chrome 122.0.0.0",
            "os": "Windows 10",
            "geo_country": "United States",
            "geo_city": "Portland",
        },
        id="open",
    ),
    pytest.param(
        "Open_lowercase_keys.json",
        {
            "event_type": "opened",
            "provider_event_id": f"Open:{DANA_MESSAGE}:{DANA}:2025-03-10T18:44:02.0312245Z",
            "contact_email": DANA,
            "campaign_key": "q1-outbound-step-2",
            "enrollment_hint": "enr_01HQ7ZK3V9M2",
        },
        {"first_open": False, "read_seconds": 3, "record_type": "Open"},
        id="open-lowercase-keys",
    ),
    pytest.param(
        "Click.json",
        {
            "event_type": "clicked",
            "provider_event_id": (
                f"Click:{DANA_MESSAGE}:{DANA}:"
                "https://www.acme-example.com/case-studies/northwind?utm_source=outbound&utm_campaign=q1"
            ),
            "occurred_at": at("2025-03-10T15:04:19.773105+00:00"),
            "contact_email": DANA,
        },
        {
            "url": (
                "https://www.acme-example.com/case-studies/northwind"
                "?utm_source=outbound&utm_campaign=q1"
            ),
            "click_location": "HTML",
            "platform": "Desktop",
        },
        id="click",
    ),
    pytest.param(
        "SubscriptionChange.json",
        {
            "event_type": "unsubscribed",
            "provider_event_id": (
                "SubscriptionChange:outbound:priya.natarajan@tailspin-example.io:"
                "2025-03-12T08:31:57.6620183Z:true"
            ),
            "occurred_at": at("2025-03-12T08:31:57.662018+00:00"),
            "contact_email": "priya.natarajan@tailspin-example.io",
            "enrollment_hint": "enr_01HQ81F5W2Q8",
        },
        {"record_type": "SubscriptionChange", "origin": "Recipient"},
        id="subscription-change-unsubscribe",
    ),
]


@pytest.mark.parametrize(("name", "expected", "metadata"), EVENT_CASES)
def test_event_fixtures(name: str, expected: dict[str, Any], metadata: dict[str, Any]) -> None:
    event = only_event(parse(fixture(PROVIDER, name), TRACE))
    assert event.provider == "postmark"
    assert event.channel == "email"
    for field, value in expected.items():
        assert getattr(event, field) == value, field
    assert metadata.items() <= event.metadata.items()
    assert event.metadata["trace_id"] == TRACE["X-PM-Webhook-Trace-Id"]
    assert "Content" not in str(event.metadata)


IGNORED_CASES = [
    pytest.param("TestDelivery_Bounce.json", "Postmark test delivery", id="test-delivery"),
    pytest.param("Bounce_AutoResponder.json", "'AutoResponder'", id="bounce-autoresponder"),
    pytest.param("Inbound.json", "inbound", id="inbound"),
    pytest.param("UnknownRecordType.json", "'LinkPreview'", id="unknown-record-type"),
    pytest.param("SubscriptionChange_Reactivation.json", "reactivated", id="reactivation"),
    pytest.param("SubscriptionChange_HardBounce.json", "HardBounce", id="hard-bounce-driven"),
]


@pytest.mark.parametrize(("name", "reason"), IGNORED_CASES)
def test_ignored_fixtures(name: str, reason: str) -> None:
    parsed = parse(fixture(PROVIDER, name), TRACE)
    assert parsed.events == []
    assert parsed.ignored is not None
    assert reason in parsed.ignored


def test_every_fixture_is_covered() -> None:
    covered = {case.values[0] for case in EVENT_CASES + IGNORED_CASES}
    assert covered == set(fixture_names(PROVIDER))


def bounce(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = fixture_json(PROVIDER, "Bounce.json")
    body.update(changes)
    return body


# Postmark's descriptions: the address itself cannot take mail.
HARD = ["HardBounce", "BadEmailAddress", "ManuallyDeactivated", "Unconfirmed"]
# Temporary, or the sender's content, reputation or DMARC policy: a later step can arrive.
SOFT = ["Transient", "DnsError", "SoftBounce", "Blocked", "DMARCPolicy"]


@pytest.mark.parametrize("bounce_type", HARD)
def test_hard_bounce_types(bounce_type: str) -> None:
    event = only_event(parse(bounce(Type=bounce_type)))
    assert (event.event_type, event.metadata["bounce_class"]) == ("bounced", "hard")


@pytest.mark.parametrize("bounce_type", SOFT)
def test_soft_bounce_types(bounce_type: str) -> None:
    event = only_event(parse(bounce(Type=bounce_type)))
    assert (event.event_type, event.metadata["bounce_class"]) == ("bounced", "soft")


@pytest.mark.parametrize(
    ("bounce_type", "event_type"),
    [
        ("Unsubscribe", "unsubscribed"),
        ("SpamComplaint", "spam_complaint"),
        ("SMTPApiError", "failed"),
        ("TemplateRenderingFailed", "failed"),
    ],
)
def test_bounce_types_with_their_own_event(bounce_type: str, event_type: str) -> None:
    event = only_event(parse(bounce(Type=bounce_type)))
    assert event.event_type == event_type
    assert event.metadata["bounce_type"] == bounce_type
    assert "bounce_class" not in event.metadata


IGNORED_BOUNCES = ["AutoResponder", "AddressChange", "Subscribe", "ChallengeVerification"]
IGNORED_BOUNCES += ["OpenRelayTest", "VirusNotification", "Unknown", "SpamNotification"]
IGNORED_BOUNCES += ["InboundError", "SomeFutureType", ""]


@pytest.mark.parametrize("bounce_type", IGNORED_BOUNCES)
def test_ignored_bounce_types(bounce_type: str) -> None:
    parsed = parse(bounce(Type=bounce_type))
    assert parsed.events == []
    assert parsed.ignored is not None
    assert repr(bounce_type) in parsed.ignored


def readme_bounce_table() -> list[list[str]]:
    """The rows of the Postmark bounce-type table of docs/providers.md, without backticks."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "providers.md").read_text()
    block = re.search(r"<!-- postmark-bounce-types -->(.*?)<!-- /postmark", doc, re.S)
    assert block, "docs/providers.md lost its Postmark bounce-type table"
    rows = [line for line in block.group(1).strip().splitlines() if line.startswith("|")]
    return [[cell.strip().strip("`") for cell in row.strip("|").split("|")] for row in rows[2:]]


def test_readme_bounce_table_is_what_the_parser_does() -> None:
    rows = readme_bounce_table()
    assert {row[0] for row in rows} == set(postmark._TYPE_CODES.values())
    for bounce_type, code, event_type, bounce_class, _ in rows:
        assert postmark._TYPE_CODES[int(code)] == bounce_type
        parsed = parse(bounce(Type=bounce_type, TypeCode=int(code)))
        if event_type == "ignored":
            assert parsed.events == [], bounce_type
            continue
        event = only_event(parsed)
        assert event.event_type == event_type, bounce_type
        assert event.metadata.get("bounce_class", "") == bounce_class, bounce_type


def test_bounce_type_decides_not_type_code() -> None:
    event = only_event(parse(bounce(Type="HardBounce", TypeCode=4096)))
    assert event.metadata["bounce_class"] == "hard"


@pytest.mark.parametrize(
    ("code", "reading"),
    [(1, ("bounced", "hard")), (256, ("bounced", "soft")), (100007, ("failed", None))],
)
def test_type_code_names_a_bounce_without_type(code: int, reading: tuple[str, str | None]) -> None:
    body = bounce(TypeCode=code)
    del body["Type"]
    event = only_event(parse(body))
    assert (event.event_type, event.metadata.get("bounce_class")) == reading
    assert event.metadata["bounce_type"] == postmark._TYPE_CODES[code]
    assert event.provider_event_id == only_event(parse(bounce())).provider_event_id


def test_bounce_without_type_or_known_code_is_rejected() -> None:
    body = bounce(TypeCode=999)
    del body["Type"]
    with pytest.raises(ProviderError) as raised:
        parse(body)
    assert raised.value.field == "$.Type"


def test_bounce_without_id_uses_message_email_and_time() -> None:
    body = bounce()
    del body["ID"]
    event = only_event(parse(body, TRACE))
    assert event.provider_event_id == (
        "Bounce:9b0e7c44-1f2a-4e8d-b3c6-5a9d2e7f1c08:m.okafor@contoso-example.net:"
        "2025-03-10T09:05:12.0137725Z"
    )


def test_spam_complaint_without_id() -> None:
    body = fixture_json(PROVIDER, "SpamComplaint.json")
    del body["ID"]
    del body["Type"]
    event = only_event(parse(body))
    assert event.event_type == "spam_complaint"
    assert event.provider_event_id.startswith("SpamComplaint:c2d8a1f6-7e35-4b90-8d4c-1f6e3a9b2d57:")


def test_bounce_content_is_not_copied() -> None:
    event = only_event(parse(bounce()))
    assert not any("bounce dump" in str(value) for value in event.metadata.values())


def test_missing_key_part_falls_back_to_trace_header() -> None:
    body = fixture_json(PROVIDER, "Open.json")
    del body["ReceivedAt"]
    event = only_event(parse(body, {"x-pm-webhook-trace-id": "trace-1"}))
    assert event.provider_event_id == "Open:trace:trace-1"
    assert event.occurred_at is None
    assert event.metadata["trace_id"] == "trace-1"


def test_missing_key_part_without_trace_header_names_the_field() -> None:
    body = fixture_json(PROVIDER, "Open.json")
    del body["ReceivedAt"]
    with pytest.raises(ProviderError) as caught:
        parse(body)
    assert caught.value.field == "$.ReceivedAt"


@pytest.mark.parametrize("name", ["Delivery.json", "Bounce.json", "Open.json", "Click.json"])
def test_message_id_is_required_even_with_a_trace_id(name: str) -> None:
    body = fixture_json(PROVIDER, name)
    del body["MessageID"]
    with pytest.raises(ProviderError) as caught:
        parse(body, TRACE)
    assert caught.value.field == "$.MessageID"


def test_subscription_change_without_message_id() -> None:
    body = fixture_json(PROVIDER, "SubscriptionChange.json")
    body["MessageID"] = None
    event = only_event(parse(body))
    assert event.event_type == "unsubscribed"
    assert "message_id" not in event.metadata


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"Origin": "Customer"}, "'Customer'"),
        ({"Origin": "Admin"}, "'Admin'"),
        ({"SuppressionReason": "SpamComplaint"}, "SpamComplaint"),
        ({"SuppressionReason": None}, "None"),
        ({"SuppressSending": False}, "reactivated"),
    ],
)
def test_subscription_changes_that_are_not_unsubscribes(
    changes: dict[str, Any], reason: str
) -> None:
    body = fixture_json(PROVIDER, "SubscriptionChange.json")
    body.update(changes)
    parsed = parse(body)
    assert parsed.events == []
    assert parsed.ignored is not None
    assert reason in parsed.ignored


def test_subscription_change_needs_suppress_sending() -> None:
    body = fixture_json(PROVIDER, "SubscriptionChange.json")
    del body["SuppressSending"]
    with pytest.raises(ProviderError) as caught:
        parse(body)
    assert caught.value.field == "$.SuppressSending"


def test_test_delivery_with_lowercase_keys() -> None:
    body = {"recordtype": "Open", "messageid": postmark.TEST_MESSAGE_ID}
    assert parse(body).ignored == "Postmark test delivery"


def test_metadata_keys_are_case_insensitive() -> None:
    body = fixture_json(PROVIDER, "Delivery.json")
    body["Metadata"] = {"ENROLLMENT_ID": "enr_X", "Instance_Id": "inst_Y", "Step": "4"}
    event = only_event(parse(body))
    assert (event.enrollment_hint, event.instance_hint, event.step_number) == ("enr_X", "inst_Y", 4)


def test_metadata_tolerates_numbers_and_drops_nested_values() -> None:
    body = fixture_json(PROVIDER, "Delivery.json")
    body["Metadata"] = {"enrollment_id": 17, "step": 2**40, "nested": {"a": [1]}, "x": "a\x00b"}
    event = only_event(parse(body))
    assert event.enrollment_hint == "17"
    assert event.step_number is None
    assert event.metadata["postmark_metadata"] == {"enrollment_id": 17, "step": 2**40, "x": "ab"}


def test_informative_fields_of_the_wrong_type_are_dropped() -> None:
    body = fixture_json(PROVIDER, "Open.json")
    body.update(ReadSeconds="12", FirstOpen="yes", Platform=7, Client="Chrome", Geo=[1], OS=None)
    body["ServerID"] = {"id": 1}
    event = only_event(parse(body))
    assert event.metadata["read_seconds"] == 12  # a numeric string still counts
    for dropped in ("first_open", "platform", "client", "os", "geo_country", "server_id"):
        assert dropped not in event.metadata


def test_nul_characters_never_reach_the_event() -> None:
    body = fixture_json(PROVIDER, "Delivery.json")
    body["Recipient"] = "dana\x00@northwind-example.com"
    body["Tag"] = "q1\x00"
    event = only_event(parse(body))
    assert event.contact_email == "dana@northwind-example.com"
    assert event.campaign_key == "q1"
    assert event.provider_event_id == f"Delivery:{DANA_MESSAGE}:dana@northwind-example.com"


def test_long_keys_are_cut_and_hashed() -> None:
    body = fixture_json(PROVIDER, "Click.json")
    body["OriginalLink"] = "https://example.com/" + "é" * 3000
    event = only_event(parse(body))
    full = f"Click:{DANA_MESSAGE}:{DANA}:{body['OriginalLink']}"
    assert len(event.provider_event_id.encode()) <= MAX_KEY_BYTES
    assert event.provider_event_id.endswith(":" + hashlib.sha256(full.encode()).hexdigest())
    assert event.provider_event_id.startswith(f"Click:{DANA_MESSAGE}:")
    assert only_event(parse(body)).provider_event_id == event.provider_event_id


def test_naive_time_is_taken_as_utc() -> None:
    body = fixture_json(PROVIDER, "Delivery.json")
    body["DeliveredAt"] = "2025-03-10T14:22:31"
    assert only_event(parse(body)).occurred_at == datetime(2025, 3, 10, 14, 22, 31, tzinfo=UTC)


def test_missing_time_leaves_occurred_at_to_the_gateway() -> None:
    body = fixture_json(PROVIDER, "Delivery.json")
    del body["DeliveredAt"]
    assert only_event(parse(body)).occurred_at is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"", "$"),
        (b"not json", "$"),
        (b'{"RecordType": "Delivery"', "$"),
        (b"\xff\xfe{}", "$"),
        (b'{"RecordType": "\xed\xa0\x80"}', "$"),
        (b"[" * 5000 + b"]" * 5000, "$"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "$"),
        (b"[]", "$"),
        (b"42", "$"),
        (b'"Delivery"', "$"),
        (b"null", "$"),
        (encode({"RecordType": 5}), "$.RecordType"),
        (encode({"recordType": ["Open"]}), "$.recordType"),
        (encode({"RecordType": "Delivery", "MessageId": 5}), "$.MessageId"),
        (encode(bounce(ID=1.5)), "$.ID"),
        (encode(bounce(ID=True)), "$.ID"),
        (encode(bounce(Type=1)), "$.Type"),
        (encode(bounce(Type=None, TypeCode=None)), "$.Type"),
        (encode(bounce(Email=["x"])), "$.Email"),
        (encode(bounce(BouncedAt="yesterday")), "$.BouncedAt"),
        (encode(bounce(BouncedAt=1741597512)), "$.BouncedAt"),
        (encode(bounce(BouncedAt="0001-01-01T00:00:00+05:00")), "$.BouncedAt"),
        (encode(bounce(Metadata="enr_1")), "$.Metadata"),
        (encode(bounce(Tag=12)), "$.Tag"),
    ],
)
def test_malformed_bodies_name_the_field(body: bytes, field: str) -> None:
    with pytest.raises(ProviderError) as caught:
        postmark.parse(body, {})
    assert caught.value.field == field


def test_error_path_uses_the_body_spelling() -> None:
    body = {"recordtype": "Delivery", "messageid": "m", "recipient": "r", "deliveredat": "soon"}
    with pytest.raises(ProviderError) as caught:
        parse(body)
    assert caught.value.field == "$.deliveredat"

"""lemlist parser: every mapped activity type, the ignored ones, and malformed bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from providers import lemlist
from providers.base import NormalizedEvent, Parsed, ProviderError

from .helpers import check_parsed, encode, fixture, fixture_json, fixture_names

PROVIDER = "lemlist"
CAMPAIGN = "cam_R7vK2mXq9PdL4sWtA"
DANA = "dana.whitfield@northwind-example.com"
DANA_LINKEDIN = "https://www.linkedin.com/in/dana-whitfield-example"


def parse(body: Any) -> Parsed:
    """Parse bytes, or a JSON value encoded first, and check the result's invariants."""
    parsed = lemlist.parse(body if isinstance(body, bytes) else encode(body), {})
    check_parsed(parsed)
    return parsed


def only_event(parsed: Parsed) -> NormalizedEvent:
    assert parsed.ignored is None
    assert len(parsed.events) == 1
    return parsed.events[0]


def activity(name: str = "emailsSent.json", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = fixture_json(PROVIDER, name)
    body.update(changes)
    return body


# name -> (channel, event_type, _id, createdAt, step, extra metadata)
EVENT_CASES: dict[str, tuple[str, str, str, str, int, dict[str, Any]]] = {
    "emailsSent.json": (
        "email",
        "sent",
        "act_Ns3Kd8Wq1Zx6Lm4Pv",
        "2025-03-10T14:22:29.114Z",
        1,
        {"subject": "Quick question about Northwind's fulfilment ops", "variant": "A"},
    ),
    "emailsOpened.json": (
        "email",
        "opened",
        "act_Qa9Tm2Rx6Lw3Kn8Bz",
        "2025-03-10T15:03:51.602Z",
        1,
        {"email_id": "eml_Xm2Lq7Tb4Rv9Ns1Hk"},
    ),
    "emailsClicked.json": (
        "email",
        "clicked",
        "act_Vw5Hc1Pz8Jr4Ms7Xq",
        "2025-03-10T15:04:22.318Z",
        1,
        {"url": "https://www.acme-example.com/case-studies/northwind?utm_source=lemlist"},
    ),
    "emailsReplied.json": (
        "email",
        "replied",
        "act_Kr7Ty3Wm9Ps2Hd6Lc",
        "2025-03-11T08:12:40.957Z",
        2,
        {
            "reply_preview": (
                "Hi Alex, thanks for reaching out. Can you send over a couple of times..."
            ),
            "step_id": "stp_Dq4Rn9Ws2Ty6Kx1Mp",
        },
    ),
    "emailsBounced.json": (
        "email",
        "bounced",
        "act_Mz2Lq6Xs9Vr3Kt8Wn",
        "2025-03-10T09:05:14.402Z",
        1,
        {
            "bounce_reason": (
                "550 5.1.1 The email account that you tried to reach does not exist."
            ),
            "bounce_class": "hard",
            "variant": "B",
        },
    ),
    "emailsUnsubscribed.json": (
        "email",
        "unsubscribed",
        "act_Pd8Wx3Nk6Qz1Tm9Rs",
        "2025-03-12T08:31:55.219Z",
        2,
        {"lead_id": "lea_Gc2Ym7Rs4Hx8Lp5Fu"},
    ),
    "emailsFailed.json": (
        "email",
        "failed",
        "act_Fq2Wn8Lx5Kt1Zr7Mb",
        "2025-03-10T14:22:30.001Z",
        1,
        {"failed_action": "send"},
    ),
    "emailsSendFailed.json": (
        "email",
        "failed",
        "act_Sd4Kx9Mq2Wz7Lt3Nc",
        "2025-03-10T14:22:30.514Z",
        1,
        {"failed_action": "send", "lemlist_type": "emailsSendFailed"},
    ),
    "linkedinVisitDone.json": (
        "linkedin",
        "profile_visited",
        "act_Hx4Qm8Tz2Wk6Ln3Vp",
        "2025-03-10T10:41:07.880Z",
        0,
        {"step": 0, "step_id": "stp_Wm5Kx1Zq7Rt3Ln9Bd"},
    ),
    "linkedinInviteDone.json": (
        "linkedin",
        "connection_requested",
        "act_Zs9Kp4Wn7Lm2Qx6Tr",
        "2025-03-11T10:02:33.145Z",
        3,
        {},
    ),
    "linkedinInviteAccepted.json": (
        "linkedin",
        "connection_accepted",
        "act_Bq3Wz8Kx5Tm1Rn7Lc",
        "2025-03-12T17:26:09.504Z",
        3,
        {},
    ),
    "linkedinSent.json": (
        "linkedin",
        "message_sent",
        "act_Lw6Tn2Qz9Kx4Ms8Rp",
        "2025-03-13T09:15:48.771Z",
        4,
        {},
    ),
    "linkedinVoiceNoteDone.json": (
        "linkedin",
        "voice_message_sent",
        "act_Vd2Kz7Wq4Lm9Xt1Rn",
        "2025-03-14T09:30:10.877Z",
        5,
        {},
    ),
    "linkedinReplied.json": (
        "linkedin",
        "replied",
        "act_Rn5Xk1Wm8Tz3Lq6Vd",
        "2025-03-13T13:48:02.336Z",
        4,
        {"reply_preview": "Thanks Alex - happy to chat. Thursday afternoon works for me."},
    ),
    "linkedinVisitFailed.json": (
        "linkedin",
        "failed",
        "act_Vf7Lm2Qx9Tn4Kw1Zs",
        "2025-03-10T10:41:09.020Z",
        0,
        {"failed_action": "visit"},
    ),
    "linkedinInviteFailed.json": (
        "linkedin",
        "failed",
        "act_If3Rz8Wk1Mx6Tq9Ln",
        "2025-03-11T10:02:35.660Z",
        3,
        {"failed_action": "connect"},
    ),
    "linkedinSendFailed.json": (
        "linkedin",
        "failed",
        "act_Sf6Tq1Zm4Xw9Kr2Lp",
        "2025-03-13T09:15:50.100Z",
        4,
        {"failed_action": "message"},
    ),
    "linkedinVoiceNoteFailed.json": (
        "linkedin",
        "failed",
        "act_Nf9Wx2Lq7Kz4Tm1Rb",
        "2025-03-14T09:30:11.203Z",
        5,
        {"failed_action": "voice_message"},
    ),
}


@pytest.mark.parametrize("name", sorted(EVENT_CASES))
def test_event_fixtures(name: str) -> None:
    channel, event_type, activity_id, created_at, step, metadata = EVENT_CASES[name]
    body = fixture_json(PROVIDER, name)
    event = only_event(parse(fixture(PROVIDER, name)))
    assert event.provider == "lemlist"
    assert (event.channel, event.event_type) == (channel, event_type)
    assert event.provider_event_id == activity_id
    assert event.occurred_at == datetime.fromisoformat(created_at).astimezone(UTC)
    assert event.campaign_key == CAMPAIGN
    assert event.contact_email == body["leadEmail"]
    assert event.step_number == step
    assert event.linkedin_urls == ((body["linkedinUrl"],) if "linkedinUrl" in body else ())
    assert event.instance_hint is None
    assert event.enrollment_hint is None
    expected = {
        "lemlist_type": body["type"],
        "is_first": True,
        "lead_id": body["leadId"],
        "campaign_id": CAMPAIGN,
        "campaign_name": "Q1 Outbound - Ops Leaders (email + LinkedIn)",
        "sequence_id": "seq_Fj3Hs8KdQ1zN6yVbM",
        "step": step,
        "send_user_email": "alex.rivera@outreach.acme-example.com",
        **metadata,
    }
    assert expected.items() <= event.metadata.items()
    assert ("failed_action" in event.metadata) == (event_type == "failed")
    assert ("bounce_class" in event.metadata) == (event_type == "bounced")


IGNORED_FIXTURES = {
    "emailsInterested.json": "'emailsInterested'",
    "hooked.json": "lead-state group 'hooked'",
    "linkedinOpened.json": "'linkedinOpened'",
    "whatsappMessageSent.json": "'whatsappMessageSent'",
}


@pytest.mark.parametrize("name", sorted(IGNORED_FIXTURES))
def test_ignored_fixtures(name: str) -> None:
    parsed = parse(fixture(PROVIDER, name))
    assert parsed.events == []
    assert parsed.ignored is not None
    assert IGNORED_FIXTURES[name] in parsed.ignored


IGNORED_TYPES = [
    *["contacted", "hooked", "attracted", "warmed", "interested", "notInterested"],
    *["emailsInterested", "emailsNotInterested", "linkedinInterested", "linkedinNotInterested"],
    *["linkedinOpened", "linkedinFollowDone", "linkedinFollowFailed", "linkedinFollowSkipped"],
    *["linkedinEndorseDone", "linkedinEndorseFailed", "linkedinEndorseSkipped"],
    *["linkedinLikeLastPostDone", "linkedinLikeLastPostNoPost", "linkedinLikeLastPostFailed"],
    *["linkedinWithdrawInvitationDone", "linkedinWithdrawInvitationFailed"],
    *["whatsappMessageSent", "whatsappMessageDelivered", "whatsappMessageOpened"],
    *["whatsappReplied", "whatsappMessageFailed", "smsSent", "smsDelivered", "smsReplied"],
    *["smsFailed", "aircallCreated", "aircallEnded", "aircallDone", "aircallInterested"],
    *["aircallNotInterested", "callRecordingDone", "callTranscriptDone", "apiDone"],
    *["apiInterested", "apiNotInterested", "apiFailed", "manualInterested"],
    *["manualNotInterested", "paused", "resumed", "stopped", "skipped", "annotated"],
    *["opportunitiesDone", "campaignComplete", "customDomainErrors", "connectionIssue"],
    *["sendLimitReached", "lemwarmPaused", "enrichmentDone", "enrichmentError"],
    *["inboxLabelUpdated", "signalRegistered", "deliverabilityAlertTriggered", "emailsDone"],
    *["snoozed", "linkedinDone", "manualDone", "entityUnsubscribed", "somethingNew", ""],
]


@pytest.mark.parametrize("lemlist_type", IGNORED_TYPES)
def test_ignored_types(lemlist_type: str) -> None:
    parsed = parse(activity(type=lemlist_type))
    assert parsed.events == []
    assert parsed.ignored is not None
    assert repr(lemlist_type) in parsed.ignored


def test_every_fixture_is_covered() -> None:
    covered = set(EVENT_CASES) | set(IGNORED_FIXTURES) | {"emailsSent_without_id.json"}
    assert covered == set(fixture_names(PROVIDER))


def test_missing_id_falls_back_to_lead_campaign_step_and_time() -> None:
    event = only_event(parse(fixture(PROVIDER, "emailsSent_without_id.json")))
    assert event.provider_event_id == (
        f"emailsSent:lea_Pw5Xk9Lm2Rt7Nc4Qe:{CAMPAIGN}:stp_Lk7Qw2Nz5Xc8Vb3Md:2025-03-10T14:22:29.114Z"
    )


def test_fallback_key_with_lead_email_and_sequence_step() -> None:
    body = fixture_json(PROVIDER, "emailsSent_without_id.json")
    del body["leadId"]
    del body["stepId"]
    del body["campaignId"]
    body["leadEmail"] = "Dana.Whitfield@Northwind-Example.com"
    event = only_event(parse(body))
    assert event.provider_event_id == f"emailsSent:{DANA}::1:2025-03-10T14:22:29.114Z"
    assert event.contact_email == "Dana.Whitfield@Northwind-Example.com"
    assert event.campaign_key is None


@pytest.mark.parametrize("missing", ["createdAt", "lead"])
def test_missing_id_without_fallback_parts(missing: str) -> None:
    body = fixture_json(PROVIDER, "emailsSent_without_id.json")
    for field in ("leadId", "leadEmail") if missing == "lead" else ("createdAt",):
        del body[field]
    with pytest.raises(ProviderError) as caught:
        parse(body)
    assert caught.value.field == "$._id"


def test_email_stands_in_for_a_missing_lead_email() -> None:
    body = activity()
    del body["leadEmail"]
    body["email"] = DANA
    assert only_event(parse(body)).contact_email == DANA
    body["leadEmail"] = "other@example.com"
    assert only_event(parse(body)).contact_email == "other@example.com"


def test_fallback_key_takes_email_only_without_lead_id_and_lead_email() -> None:
    body = fixture_json(PROVIDER, "emailsSent_without_id.json")
    del body["leadId"]
    del body["leadEmail"]
    body["email"] = "Dana.Whitfield@Northwind-Example.com"
    event = only_event(parse(body))
    assert event.provider_event_id == (
        f"emailsSent:{DANA}:{CAMPAIGN}:stp_Lk7Qw2Nz5Xc8Vb3Md:2025-03-10T14:22:29.114Z"
    )
    body["leadEmail"] = "first@example.com"
    assert only_event(parse(body)).provider_event_id.startswith("emailsSent:first@example.com:")


@pytest.mark.parametrize("spelling", ["clickedUrl", "url"])
def test_other_spellings_of_the_clicked_link(spelling: str) -> None:
    body = activity("emailsClicked.json")
    del body["linkUrl"]
    body[spelling] = "https://example.com/offer"
    assert only_event(parse(body)).metadata["url"] == "https://example.com/offer"
    body["linkUrl"] = "https://example.com/documented"
    assert only_event(parse(body)).metadata["url"] == "https://example.com/documented"


def test_a_url_field_means_the_link_only_on_a_click() -> None:
    event = only_event(parse(activity("linkedinSent.json", url="https://example.com/x")))
    assert "url" not in event.metadata


def test_reason_stands_in_for_the_bounce_reason() -> None:
    body = activity("emailsBounced.json", reason="hard_bounce")
    assert only_event(parse(body)).metadata["bounce_reason"].startswith("550 5.1.1")
    del body["bounceReason"]
    assert only_event(parse(body)).metadata["bounce_reason"] == "hard_bounce"


@pytest.mark.parametrize("name", ["emailsFailed.json", "linkedinSendFailed.json"])
def test_failure_text_goes_to_error(name: str) -> None:
    body = activity(name, reason="smtp_error")
    assert only_event(parse(body)).metadata["error"] == "smtp_error"
    body["errorMessage"] = "Mailbox disconnected"
    assert only_event(parse(body)).metadata["error"] == "Mailbox disconnected"


def test_failure_text_is_read_only_on_failures() -> None:
    event = only_event(parse(activity(errorMessage="x", reason="y")))
    assert "error" not in event.metadata
    assert "bounce_reason" not in event.metadata


@pytest.mark.parametrize("spelling", ["text", "bodyText"])
def test_other_spellings_of_the_reply_text(spelling: str) -> None:
    body = activity("emailsReplied.json")
    del body["text"]
    body[spelling] = "Sounds good, Thursday?"
    assert only_event(parse(body)).metadata["reply_preview"].startswith("Hi Alex")
    del body["messagePreview"]
    assert only_event(parse(body)).metadata["reply_preview"] == "Sounds good, Thursday?"
    sent = only_event(parse(activity(**{spelling: "Hello"})))
    assert "reply_preview" not in sent.metadata


def test_other_spellings_of_the_wrong_type_are_dropped_not_rejected() -> None:
    body = activity("emailsClicked.json", email=5, clickedUrl=[], url={}, reason=1)
    del body["linkUrl"]
    del body["leadEmail"]
    event = only_event(parse(body))
    assert event.contact_email is None
    assert "url" not in event.metadata


def test_secret_is_never_copied() -> None:
    body = fixture(PROVIDER, "linkedinVoiceNoteDone.json")
    assert b"whsec_do_not_store_3f9a2c" in body
    event = only_event(parse(body))
    assert "whsec_do_not_store_3f9a2c" not in str(event)


def test_step_tested_is_the_variant_when_sequence_tested_is_absent() -> None:
    body = activity()
    del body["sequenceTested"]
    body["stepTested"] = "C"
    assert only_event(parse(body)).metadata["variant"] == "C"


def test_only_present_fields_reach_metadata() -> None:
    body = {"_id": "act_1", "type": "emailsOpened", "leadEmail": DANA}
    event = only_event(parse(body))
    assert event.metadata == {"lemlist_type": "emailsOpened"}
    assert event.occurred_at is None
    assert event.step_number is None


def test_informative_fields_of_the_wrong_type_are_dropped() -> None:
    body = activity(subject=5, isFirst="yes", campaignName=[], linkUrl={}, sequenceTested=1)
    event = only_event(parse(body))
    for dropped in ("subject", "is_first", "campaign_name", "url"):
        assert dropped not in event.metadata
    assert event.metadata["variant"] == "A"  # stepTested


@pytest.mark.parametrize(("step", "expected"), [("2", 2), (2**31, None), ("x", None), (-1, -1)])
def test_step_number(step: object, expected: int | None) -> None:
    assert only_event(parse(activity(sequenceStep=step))).step_number == expected


def test_nul_characters_never_reach_the_event() -> None:
    body = activity("linkedinSent.json", _id="act_\x00X", linkedinUrl="https://x\x00.example/in/a")
    body["leadEmail"] = "\x00"
    event = only_event(parse(body))
    assert event.provider_event_id == "act_X"
    assert event.linkedin_urls == ("https://x.example/in/a",)
    assert event.contact_email is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"", "$"),
        (b"{", "$"),
        (b"[{}]", "$"),
        (b"true", "$"),
        (b"\xc3\x28", "$"),
        (encode({"_id": "act_1"}), "$.type"),
        (encode(activity(type=None)), "$.type"),
        (encode(activity(type=7)), "$.type"),
        (encode(activity(type=["emailsSent"])), "$.type"),
        (encode(activity(_id=12)), "$._id"),
        (encode(activity(createdAt="10/03/2025")), "$.createdAt"),
        (encode(activity(createdAt=1741616549)), "$.createdAt"),
        (encode(activity(leadEmail=False)), "$.leadEmail"),
        (encode(activity(campaignId={"id": 1})), "$.campaignId"),
        (encode(activity(sequenceStep=1.5)), "$.sequenceStep"),
        (encode(activity("linkedinSent.json", linkedinUrl=1)), "$.linkedinUrl"),
    ],
)
def test_malformed_bodies_name_the_field(body: bytes, field: str) -> None:
    with pytest.raises(ProviderError) as caught:
        lemlist.parse(body, {})
    assert caught.value.field == field

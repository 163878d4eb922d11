"""PhantomBuster parser: result rows per phantom, fetch requests, failed runs, bad bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from providers import phantombuster
from providers.base import Parsed, ProviderError, ResultFetch

from .helpers import check_parsed, encode, fixture, fixture_json, fixture_names

PROVIDER = "phantombuster"
API = "phantombuster-api"
"""PhantomBuster API answers and decoded result files: not webhook bodies."""
CONNECT_AGENT = "7318204659127734"
VISIT_AGENT = "6620418837215509"
MESSAGE_AGENT = "1287734409916652"
PRIYA = "linkedin.com/in/priya-natarajan-example"
DANA = "linkedin.com/in/dana-whitfield-example"
MARCUS = "linkedin.com/in/marcus-okafor-example"
CONNECT_KEYS = [
    f"{CONNECT_AGENT}:connect:error:{PRIYA}:2025-03-11T10:01:12.406Z",
    f"{CONNECT_AGENT}:connect:{DANA}:2025-03-11T10:02:31.918Z",
    f"{CONNECT_AGENT}:connect:{MARCUS}:2025-03-11T10:03:47.255Z",
]


def parse(body: Any, fetched: bytes | None = None) -> Parsed:
    """Parse bytes, or a JSON value encoded first, and check the result's invariants."""
    raw = body if isinstance(body, bytes) else encode(body)
    parsed = phantombuster.parse(raw, {}, fetched)
    check_parsed(parsed)
    return parsed


def run(name: str = "linkedin_auto_connect_finished.json", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = fixture_json(PROVIDER, name)
    body.update(changes)
    return body


def summary(parsed: Parsed) -> list[tuple[str, str, datetime | None]]:
    return [(e.provider_event_id, e.event_type, e.occurred_at) for e in parsed.events]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_auto_connect_rows() -> None:
    parsed = parse(fixture(PROVIDER, "linkedin_auto_connect_finished.json"))
    assert summary(parsed) == [
        (CONNECT_KEYS[0], "failed", at("2025-03-11T10:01:12.406+00:00")),
        (CONNECT_KEYS[1], "connection_requested", at("2025-03-11T10:02:31.918+00:00")),
        (CONNECT_KEYS[2], "connection_requested", at("2025-03-11T10:03:47.255+00:00")),
    ]
    failed, dana, _ = parsed.events
    for event in parsed.events:
        assert (event.provider, event.channel) == ("phantombuster", "linkedin")
        assert event.campaign_key == CONNECT_AGENT
        assert event.contact_email is None
    assert failed.metadata["error"] == "Invitation already sent"
    assert failed.metadata["action"] == "connect"
    assert dana.linkedin_urls == (
        "https://www.linkedin.com/in/dana-whitfield-example/",
        "https://www.linkedin.com/in/dana-whitfield-example",
    )
    assert dana.metadata == {
        "container_id": "5590318264471029",
        "agent_name": "Acme - LinkedIn Auto Connect (Q1 ops leaders)",
        "script": "LinkedIn Auto Connect.js",
        "action": "connect",
        "profile_url": "https://www.linkedin.com/in/dana-whitfield-example/",
        "first_name": "Dana",
        "message": (
            "Hi Dana, I work with operations leaders on fulfilment throughput"
            " and would love to connect. - Alex"
        ),
    }


@pytest.mark.parametrize(
    "fetched_name",
    ["fetch_result_object_response.json", "linkedin_auto_connect_result_object.parsed.json"],
)
def test_fetched_result_replaces_the_result_object(fetched_name: str) -> None:
    body = run(resultObject=None)
    assert parse(body).fetch == ResultFetch(container_id="5590318264471029")
    parsed = parse(body, fetched=fixture(API, fetched_name))
    assert [event.provider_event_id for event in parsed.events] == CONNECT_KEYS
    assert parsed == parse(fixture(PROVIDER, "linkedin_auto_connect_finished.json"))


def test_cumulative_result_repeats_rows_with_equal_keys() -> None:
    parsed = parse(fixture(PROVIDER, "auto_connect_cumulative.json"))
    keys = [event.provider_event_id for event in parsed.events]
    assert keys == [
        *CONNECT_KEYS,
        f"{CONNECT_AGENT}:connect:linkedin.com/in/jonas-lindqvist-example:2025-03-12T10:00:41.027Z",
    ]
    assert parsed.events[0].metadata["container_id"] == "5590318264533406"


def test_result_object_as_array_value() -> None:
    parsed = parse(fixture(PROVIDER, "result_array_value.json"))
    assert [event.provider_event_id for event in parsed.events] == CONNECT_KEYS[1:]


def test_legacy_network_booster_rows_without_timestamps() -> None:
    parsed = parse(fixture(PROVIDER, "network_booster_legacy.json"))
    assert summary(parsed) == [
        (f"{CONNECT_AGENT}:connect:{DANA}", "connection_requested", None),
        (f"{CONNECT_AGENT}:connect:error:{MARCUS}", "failed", None),
    ]
    dana, marcus = parsed.events
    assert dana.linkedin_urls == (
        "linkedin.com/in/Dana-Whitfield-Example",
        "https://www.linkedin.com/in/dana-whitfield-example",
    )
    assert marcus.metadata["error"] == "Already in network"


def test_profile_visitor_rows() -> None:
    parsed = parse(fixture(PROVIDER, "profile_visitor.json"))
    assert summary(parsed) == [
        (
            f"{VISIT_AGENT}:visit:{DANA}:2025-03-10T10:40:58.113Z",
            "profile_visited",
            at("2025-03-10T10:40:58.113+00:00"),
        ),
        (f"{VISIT_AGENT}:visit:error:{PRIYA}", "failed", None),
        (
            f"{VISIT_AGENT}:visit:error:linkedin.com/in/ghost-profile-example:2025-03-10T10:41:30.902Z",
            "failed",
            at("2025-03-10T10:41:30.902+00:00"),
        ),
    ]
    visited, not_visited, unavailable = parsed.events
    assert visited.campaign_key == VISIT_AGENT
    assert visited.metadata["container_id"] == "8823004716650091"
    assert visited.metadata["first_name"] == "Dana"
    assert visited.linkedin_urls == (
        "https://www.linkedin.com/in/dana-whitfield-example",
        "https://www.linkedin.com/in/dana-whitfield-example/",
    )
    assert not_visited.metadata["error"] == "profile not visited"
    assert unavailable.metadata["error"] == "unavailable profile"


def test_profile_visitor_object_row_with_nested_profile_url() -> None:
    parsed = parse(fixture(PROVIDER, "profile_visitor_object_row.json"))
    assert summary(parsed) == [
        (
            f"{VISIT_AGENT}:visit:{MARCUS}:2025-03-10T10:45:12.734Z",
            "profile_visited",
            at("2025-03-10T10:45:12.734+00:00"),
        )
    ]
    assert parsed.events[0].linkedin_urls == ("https://www.linkedin.com/in/marcus-okafor-example/",)


def test_message_sender_rows() -> None:
    parsed = parse(fixture(PROVIDER, "message_sender.json"))
    assert [(e.provider_event_id, e.event_type) for e in parsed.events] == [
        (f"{MESSAGE_AGENT}:message:{DANA}:2025-03-13T09:15:44.201Z", "message_sent"),
        (f"{MESSAGE_AGENT}:message:error:{MARCUS}:2025-03-13T09:16:02.480Z", "failed"),
        (
            f"{MESSAGE_AGENT}:message:error:linkedin.com/in/alex-rivera-example:"
            "2025-03-13T09:16:10.015Z",
            "failed",
        ),
    ]
    sent, error, fatal = parsed.events
    assert sent.metadata["message"].startswith("Thanks for connecting, Dana!")
    assert error.metadata["error"].startswith("LinkedIn internal error")
    assert fatal.metadata["error"] == "Trying to send a message to yourself ..."


def test_json_url_asks_for_the_result_file() -> None:
    parsed = parse(fixture(PROVIDER, "result_json_url.json"))
    assert parsed.fetch == ResultFetch(
        container_id="5590318264502377",
        json_url="https://phantombuster.s3.amazonaws.com/UhrenaxfEnY/Zm9vYmFy/result.json",
    )
    assert parsed.events == []


def test_missing_result_asks_for_a_fetch_by_container() -> None:
    parsed = parse(fixture(PROVIDER, "result_missing.json"))
    assert parsed.fetch == ResultFetch(container_id="5590318264520019")
    assert parsed.ignored is None


@pytest.mark.parametrize("empty", [None, "", "   ", "null", '""'])
def test_empty_result_values_ask_for_a_fetch(empty: object) -> None:
    assert parse(run(resultObject=empty)).fetch == ResultFetch(container_id="5590318264471029")


def test_numeric_container_id_becomes_a_string() -> None:
    parsed = parse(run(containerId=5590318264471029, resultObject=None))
    assert parsed.fetch == ResultFetch(container_id="5590318264471029")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("result_missing_no_container.json", "no result object and no containerId to fetch it"),
        ("run_failed.json", "run failed: exitCode=1, exitMessage='finished'"),
        ("run_timeout.json", "run failed: exitCode=None, exitMessage='agent timeout'"),
        ("unknown_script.json", "script 'LinkedIn Search Export.js' is not a known"),
    ],
)
def test_ignored_fixtures(name: str, reason: str) -> None:
    parsed = parse(fixture(PROVIDER, name))
    assert parsed.events == []
    assert parsed.fetch is None
    assert parsed.ignored is not None
    assert parsed.ignored.startswith(reason)


def test_failed_run_is_checked_before_the_result() -> None:
    parsed = parse(run(exitCode=0, exitMessage="killed"))
    assert parsed.ignored == "run failed: exitCode=0, exitMessage='killed'"
    assert parse(run(exitCode=None, exitMessage=None)).events


@pytest.mark.parametrize(
    ("script", "action"),
    [
        ("LinkedIn Auto Connect.js", "connect"),
        ("linkedin-auto-connect", "connect"),
        ("LinkedIn Network Booster.js", "connect"),
        ("LINKEDIN_PROFILE_VISITOR.JS", "visit"),
        ("LinkedIn Profile Scraper.js", "visit"),
        ("LinkedIn Message Sender.js", "message"),
    ],
)
def test_script_recognition(script: str, action: str) -> None:
    parsed = parse(run(script=script))
    assert {event.metadata["action"] for event in parsed.events} == {action}


@pytest.mark.parametrize("script", [None, "", "Sales Navigator Search Export.js"])
def test_unknown_or_missing_script_is_ignored(script: str | None) -> None:
    parsed = parse(run(script=script))
    assert parsed.ignored is not None
    assert "is not a known LinkedIn phantom" in parsed.ignored


def test_every_fixture_is_covered() -> None:
    covered = {
        "linkedin_auto_connect_finished.json",
        "auto_connect_cumulative.json",
        "result_array_value.json",
        "network_booster_legacy.json",
        "profile_visitor.json",
        "profile_visitor_object_row.json",
        "message_sender.json",
        "result_json_url.json",
        "result_missing.json",
        "result_missing_no_container.json",
        "run_failed.json",
        "run_timeout.json",
        "unknown_script.json",
    }
    assert covered == set(fixture_names(PROVIDER))


@pytest.mark.parametrize(
    ("fetched", "outcome"),
    [
        (b'{"resultObject": null}', Parsed(ignored="empty result object")),
        (b'{"resultObject": ""}', Parsed(ignored="empty result object")),
        (b"null", Parsed(ignored="empty result object")),
        (b'{"resultObject": "[]"}', Parsed(ignored="no result rows with a LinkedIn profile URL")),
        (b"[1, null, {}]", Parsed(ignored="no result rows with a LinkedIn profile URL")),
        (b"{}", Parsed(ignored="result object holds no profile rows")),
        (
            b'{"resultObject": "{\\"jsonUrl\\": \\"https://cache.example/r.json\\"}"}',
            Parsed(
                fetch=ResultFetch(
                    container_id="5590318264471029", json_url="https://cache.example/r.json"
                )
            ),
        ),
    ],
)
def test_fetched_results(fetched: bytes, outcome: Parsed) -> None:
    assert parse(run(resultObject=None), fetched=fetched) == outcome


def test_same_row_twice_in_one_result_gives_one_event() -> None:
    rows = fixture_json(API, "linkedin_auto_connect_result_object.parsed.json")
    parsed = parse(run(resultObject=[rows[1], rows[1], rows[2]]))
    assert [event.provider_event_id for event in parsed.events] == CONNECT_KEYS[1:]


def test_nul_characters_never_reach_the_events() -> None:
    row = {
        "profileUrl": "https://www.linkedin.com/in/\x00dana",
        "firstName": "Da\x00na",
        "error": "\x00",
        "timestamp": "2025-03-13T09:15:44.201Z",
    }
    parsed = parse(run(agentId="73\x0018", resultObject=[row]))
    event = parsed.events[0]
    assert event.provider_event_id == "7318:connect:linkedin.com/in/dana:2025-03-13T09:15:44.201Z"
    assert event.event_type == "connection_requested"
    assert event.metadata["first_name"] == "Dana"


@pytest.mark.parametrize(
    ("body", "fetched", "field"),
    [
        (b"", None, "$"),
        (b"[]", None, "$"),
        (b"\xff", None, "$"),
        (fixture(API, "linkedin_auto_connect_result_object.parsed.json"), None, "$"),
        (fixture(API, "fetch_result_object_response.json"), None, "$.agentId"),
        (encode(run(agentId=None)), None, "$.agentId"),
        (encode(run(agentId="")), None, "$.agentId"),
        (encode(run(agentId=1.5)), None, "$.agentId"),
        (encode(run(agentId=True)), None, "$.agentId"),
        (encode(run(containerId=[1])), None, "$.containerId"),
        (encode(run(script=5)), None, "$.script"),
        (encode(run(exitCode="0")), None, "$.exitCode"),
        (encode(run(exitMessage=0)), None, "$.exitMessage"),
        (encode(run(resultObject="[{")), None, "$.resultObject"),
        (encode(run(resultObject="not json")), None, "$.resultObject"),
        (encode(run(resultObject=42)), None, "$.resultObject"),
        (encode(run(resultObject="42")), None, "$.resultObject"),
        (encode(run(resultObject=True)), None, "$.resultObject"),
        (encode(run(resultObject="[" * 5000)), None, "$.resultObject"),
        (encode(run(resultObject=None)), b"{not json", "$.resultObject"),
        (encode(run(resultObject=None)), b"\xff\xfe", "$.resultObject"),
        (encode(run(resultObject=None)), b'{"resultObject": "[1"}', "$.resultObject"),
        (encode(run(resultObject=None)), b'{"resultObject": 3}', "$.resultObject"),
    ],
)
def test_malformed_input_names_the_field(body: bytes, fetched: bytes | None, field: str) -> None:
    with pytest.raises(ProviderError) as caught:
        phantombuster.parse(body, {}, fetched)
    assert caught.value.field == field


@pytest.mark.parametrize(
    "timestamp",
    ["today", 17, "2025-13-45T99:99:99Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"],
)
def test_a_malformed_row_time_spares_the_run(timestamp: object) -> None:
    """One odd row must not reject a whole run: its time falls back to the receive time."""
    rows = [{"url": "linkedin.com/in/a", "timestamp": timestamp}, {"url": "linkedin.com/in/b"}]
    parsed = phantombuster.parse(encode(run(resultObject=rows)), {}, None)
    assert [e.occurred_at for e in parsed.events] == [None, None]
    assert parsed.events[0].provider_event_id == (
        f"{CONNECT_AGENT}:connect:linkedin.com/in/a:{timestamp}"
    )

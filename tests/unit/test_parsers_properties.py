"""For any input, a parser returns a valid `Parsed` or raises ProviderError, nothing else.

Anything else would become a 500, which providers retry forever.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from providers import lemlist, phantombuster, postmark
from providers.base import ProviderError, parse_timestamp

from .helpers import check_parsed, encode, fixture_json, fixture_names

if TYPE_CHECKING:
    from collections.abc import Callable

    from providers.base import Parsed

EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PARSERS: dict[str, Callable[[bytes, dict[str, str]], Parsed]] = {
    "postmark": postmark.parse,
    "lemlist": lemlist.parse,
    "phantombuster": phantombuster.parse,
}
HEADERS = {"X-PM-Webhook-Trace-Id": "trace-\x00-1"}

KEYS = [
    *["RecordType", "recordtype", "MessageID", "MessageId", "ID", "Type", "TypeCode", "Email"],
    *["Recipient", "DeliveredAt", "BouncedAt", "ReceivedAt", "ChangedAt", "OriginalLink", "Tag"],
    *["Metadata", "ServerID", "MessageStream", "SuppressSending", "SuppressionReason", "Origin"],
    *["Client", "OS", "Geo", "FirstOpen", "ReadSeconds", "_id", "type", "createdAt", "leadId"],
    *["leadEmail", "campaignId", "stepId", "sequenceStep", "linkedinUrl", "isFirst", "secret"],
    *["agentId", "containerId", "script", "exitCode", "exitMessage", "resultObject", "jsonUrl"],
    *["baseUrl", "url", "profileUrl", "linkedinProfile", "general", "error", "timestamp"],
]
WORDS = [
    *["Delivery", "Bounce", "SpamComplaint", "Open", "Click", "SubscriptionChange", "HardBounce"],
    *["SoftBounce", "Unsubscribe", "ManualSuppression", "Recipient", "emailsSent"],
    *["linkedinInviteDone", "linkedinVoiceNoteFailed", "hooked", "LinkedIn Auto Connect.js"],
    *["LinkedIn Profile Visitor.js", "LinkedIn Message Sender.js", "finished", "killed"],
    *["2025-03-10T14:22:31.4828173Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"],
    *["https://www.linkedin.com/in/dana/", "linkedin.com/in/\x00", "/", "", "\x00", " "],
    *[postmark.TEST_MESSAGE_ID, "[]", "{}", "null", '[{"url": "linkedin.com/in/x"}]'],
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(WORDS)
)
keys = st.sampled_from(KEYS) | st.text(max_size=12)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3),
    max_leaves=8,
)
# JSON text of rows, as PhantomBuster sends `resultObject`.
json_texts = json_values.map(lambda value: encode(value).decode())
json_objects = st.dictionaries(keys, json_values | json_texts, max_size=8)


def attempt(provider: str, body: bytes, fetched: bytes | None) -> Parsed | ProviderError:
    """Parse, letting only ProviderError escape (as a value)."""
    try:
        if provider == "phantombuster":
            return phantombuster.parse(body, HEADERS, fetched)
        return PARSERS[provider](body, HEADERS)
    except ProviderError as error:
        return error


def outcome(provider: str, body: bytes, fetched: bytes | None = None) -> None:
    """A parser result satisfies the invariants; an error names a JSON path."""
    result = attempt(provider, body, fetched)
    if isinstance(result, ProviderError):
        assert result.field.startswith("$")
    else:
        check_parsed(result)


@pytest.mark.parametrize("provider", sorted(PARSERS))
@EXAMPLES
@given(body=st.binary(max_size=200))
def test_any_bytes(provider: str, body: bytes) -> None:
    outcome(provider, body)


@pytest.mark.parametrize("provider", sorted(PARSERS))
@EXAMPLES
@given(body=json_objects)
def test_any_json_object(provider: str, body: dict[str, Any]) -> None:
    outcome(provider, encode(body))


def fixture_bodies(provider: str) -> list[dict[str, Any]]:
    """The stored example bodies that are JSON objects (webhook bodies, fetched results)."""
    bodies = (fixture_json(provider, name) for name in fixture_names(provider))
    return [body for body in bodies if isinstance(body, dict)]


@st.composite
def mutated_fixtures(draw: st.DrawFn, provider: str) -> dict[str, Any]:
    """A stored example with some fields replaced, removed or added."""
    body = dict(draw(st.sampled_from(fixture_bodies(provider))))
    for field in draw(st.lists(st.sampled_from(sorted(body)), max_size=4, unique=True)):
        if draw(st.booleans()):
            body[field] = draw(json_values | json_texts)
        else:
            del body[field]
    body.update(draw(st.dictionaries(keys, json_values, max_size=3)))
    return body


@pytest.mark.parametrize("provider", sorted(PARSERS))
@EXAMPLES
@given(data=st.data())
def test_mutated_fixtures(provider: str, data: st.DataObject) -> None:
    outcome(provider, encode(data.draw(mutated_fixtures(provider))))


@EXAMPLES
@given(
    body=mutated_fixtures("phantombuster"),
    fetched=st.binary(max_size=100) | json_values.map(encode) | json_objects.map(encode),
)
def test_phantombuster_fetched_results(body: dict[str, Any], fetched: bytes) -> None:
    outcome("phantombuster", encode(body), fetched)


@EXAMPLES
@given(
    rows=st.lists(
        st.dictionaries(st.sampled_from(KEYS), json_values | st.sampled_from(WORDS), max_size=6),
        max_size=4,
    )
)
def test_phantombuster_rows(rows: list[dict[str, Any]]) -> None:
    body = fixture_json("phantombuster", "linkedin_auto_connect_finished.json")
    body["resultObject"] = encode(rows).decode()
    outcome("phantombuster", encode(body))


@pytest.mark.parametrize("provider", sorted(PARSERS))
@pytest.mark.parametrize("depth", [100, 900, 990, 5000])
def test_deep_nesting(provider: str, depth: int) -> None:
    nested = b"[" * depth + b"]" * depth
    outcome(provider, b'{"Metadata": ' + nested + b', "resultObject": ' + nested + b"}")
    body = fixture_json(provider, fixture_names(provider)[-1])
    raw = encode(body)[:-1] + b', "nested": ' + nested + b"}"
    outcome(provider, raw)
    text = msgspec.json.encode(nested.decode())
    outcome(provider, b'{"agentId": 1, "script": "Auto Connect", "resultObject": ' + text + b"}")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2000-01-01T00:00:00Z", datetime(2000, 1, 1, tzinfo=UTC)),
        ("2099-12-31T23:59:59.999999Z", datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2000-01-01T01:00:00+01:00", datetime(2000, 1, 1, tzinfo=UTC)),
        ("1999-12-31T23:59:59.9999999Z", None),
        ("2000-01-01T00:59:59+01:00", None),
        ("2100-01-01T00:00:00Z", None),
        ("0001-01-01T00:00:00Z", None),
        ("1970-01-01T00:00:00Z", None),
        ("9999-12-31T23:59:59Z", None),
    ],
)
def test_event_times_must_fall_between_2000_and_2100(value: str, expected: datetime | None) -> None:
    """An absurd time is refused like an unparseable one (issue 13: year 1 broke charts)."""
    if expected is not None:
        assert parse_timestamp(value, "$.t") == expected
        return
    with pytest.raises(ProviderError, match="out of range") as caught:
        parse_timestamp(value, "$.t")
    assert caught.value.field == "$.t"

"""Machine opens and clicks: the static rules, `classify` (the dynamic rules' oracle), `human`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.engagement import (
    EmailEvent,
    Machine,
    Networks,
    StaticRules,
    classify,
    human,
    load_static_rules,
    read_cidrs,
    static_rules_for,
)
from providers import lemlist, postmark
from tests.conftest import fixture_body

T0 = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/122.0.0.0 Safari/537.36"
)


@pytest.fixture(scope="module")
def rules() -> StaticRules:
    return load_static_rules(Path("/nonexistent"))


def machine(kind: str, rule: str, version: int = 1) -> Machine:
    return Machine(kind=kind, rule=rule, rule_version=version)  # type: ignore[arg-type]


# --- static rules ----------------------------------------------------------------------


def test_networks_answer_by_range_for_both_versions_and_ignore_garbage() -> None:
    nets = Networks(["17.0.0.0/8", "172.224.226.0/27", "172.224.226.32/31", "2a02:26f7::/32"])
    assert "17.253.1.2" in nets
    assert "172.224.226.33" in nets
    assert "172.224.226.34" not in nets
    assert "18.0.0.1" not in nets
    assert "2a02:26f7:1::1" in nets
    assert "::ffff:17.1.2.3" in nets  # IPv4-mapped
    assert "2a03::1" not in nets
    for garbage in ("", "not an ip", "17.0.0.256", None, 17):
        assert garbage not in nets
    # Adjacent ranges merge: /27 then /31 is one span.
    assert nets.size == 3


def test_read_cidrs_takes_first_field_and_skips_comments() -> None:
    text = "# header\n172.224.226.0/27,GB,GB-EN,London,\n\n2a02:26f7::/32 # note\n"
    assert read_cidrs(text) == ["172.224.226.0/27", "2a02:26f7::/32"]


@pytest.mark.parametrize(
    ("event_type", "metadata", "expected"),
    [
        (
            "opened",
            {"geo_ip": "17.58.1.1", "user_agent": CHROME},
            ("privacy_proxy", "apple_mpp_network"),
        ),
        ("opened", {"user_agent": "Mozilla/5.0"}, ("privacy_proxy", "apple_mpp_user_agent")),
        ("opened", {"user_agent": " Mozilla/5.0 "}, ("privacy_proxy", "apple_mpp_user_agent")),
        (
            "opened",
            {"user_agent": "Mozilla/5.0 (compatible; Barracuda Sentinel)"},
            ("scanner", "scanner_user_agent"),
        ),
        ("clicked", {"user_agent": "python-requests/2.32"}, ("scanner", "scanner_user_agent")),
        (
            "clicked",
            {"user_agent": "Microsoft Office Existence Discovery"},
            ("scanner", "scanner_user_agent"),
        ),
        (
            "clicked",
            {"geo_ip": "205.139.110.9", "user_agent": CHROME},
            ("scanner", "scanner_network"),
        ),
        # A person on Private Relay clicking in Safari is a person.
        ("clicked", {"geo_ip": "17.58.1.1", "user_agent": "Mozilla/5.0"}, None),
        # Gateways also proxy a person's image loads.
        ("opened", {"geo_ip": "205.139.110.9", "user_agent": CHROME}, None),
        ("opened", {"geo_ip": "203.0.113.57", "user_agent": CHROME}, None),
        ("opened", {}, None),
        ("delivered", {"user_agent": "Mozilla/5.0"}, None),
    ],
)
def test_static_rules(
    rules: StaticRules, event_type: str, metadata: dict[str, Any], expected: tuple[str, str] | None
) -> None:
    flag = rules.flag(event_type, metadata)
    assert (None if flag is None else (flag.kind, flag.rule)) == expected


def test_refreshed_private_relay_ranges_are_loaded_from_the_data_dir(tmp_path: Path) -> None:
    assert "172.224.226.5" not in load_static_rules(tmp_path).apple
    (tmp_path / "engagement").mkdir()
    (tmp_path / "engagement" / "icloud-private-relay-egress.txt").write_text("172.224.226.0/27\n")
    rules = load_static_rules(tmp_path)
    assert "172.224.226.5" in rules.apple
    assert "17.1.1.1" in rules.apple  # the shipped list stays


def test_rules_are_parsed_again_only_when_the_refreshed_list_changes(tmp_path: Path) -> None:
    first = static_rules_for(tmp_path)
    assert static_rules_for(tmp_path) is first
    (tmp_path / "engagement").mkdir()
    refreshed = tmp_path / "engagement" / "icloud-private-relay-egress.txt"
    refreshed.write_text("172.224.226.0/27\n")
    second = static_rules_for(tmp_path)
    assert second is not first and "172.224.226.5" in second.apple
    assert static_rules_for(tmp_path) is second


def _postmark(name: str, **changes: Any) -> bytes:
    body = json.loads(fixture_body("postmark", name)) | changes
    return json.dumps(body).encode()


def test_apply_writes_the_flag_into_postmark_metadata_and_replaces_a_stale_one(
    rules: StaticRules,
) -> None:
    proxy_open = postmark.parse(_postmark("Open.json", UserAgent="Mozilla/5.0"), {}).events
    [flagged] = rules.apply(proxy_open)
    assert flagged.metadata["machine"] == {
        "kind": "privacy_proxy",
        "rule": "apple_mpp_user_agent",
        "rule_version": 1,
    }
    assert flagged.metadata["geo_ip"] == "203.0.113.57"
    # A flag of an older rule version that no longer applies is dropped.
    stale = proxy_open[0].metadata | {"user_agent": CHROME, "machine": {"rule": "x"}}
    [cleaned] = rules.apply([msgspec.structs.replace(proxy_open[0], metadata=stale)])
    assert "machine" not in cleaned.metadata
    # Other events pass through untouched.
    delivered = postmark.parse(fixture_body("postmark", "Delivery.json"), {}).events
    assert rules.apply(delivered) == delivered
    sent = lemlist.parse(fixture_body("lemlist", "emailsOpened.json"), {}).events
    assert rules.apply(sent) == sent


# --- dynamic rules ---------------------------------------------------------------------


def ev(
    key: str,
    event_type: str,
    seconds: float,
    *,
    message: str | None = "m1",
    url: str | None = None,
    step: int | None = 1,
    machine_flag: dict[str, Any] | None = None,
    lemlist_id: bool = False,
) -> EmailEvent:
    metadata: dict[str, Any] = {}
    if message is not None:
        metadata["email_id" if lemlist_id else "message_id"] = message
    if url is not None:
        metadata["url"] = url
    if machine_flag is not None:
        metadata["machine"] = machine_flag
    return EmailEvent(key, event_type, T0 + timedelta(seconds=seconds), step, metadata)


def rule_of(flags: dict[str, Machine | None], key: str) -> str | None:
    flag = flags[key]
    return None if flag is None else flag.rule


def test_lemlist_open_two_seconds_after_the_send_is_a_machine() -> None:
    flags = classify(
        [
            ev("s", "sent", 0, lemlist_id=True),
            ev("o1", "opened", 2, lemlist_id=True),
            ev("o2", "opened", 5, lemlist_id=True),
            ev("o3", "opened", 5.001, lemlist_id=True),
            ev("c1", "clicked", 600, lemlist_id=True, url="https://a"),
        ]
    )
    assert flags["o1"] == machine("privacy_proxy", "soon_after_send")
    assert rule_of(flags, "o2") == "soon_after_send"  # 5 s is still within
    assert flags["o3"] is None
    assert flags["c1"] is None
    assert "s" not in flags


def test_timing_needs_the_same_message_or_else_the_same_step() -> None:
    flags = classify(
        [
            ev("d1", "delivered", 0, message="m1"),
            ev("o-other", "opened", 1, message="m2"),
            ev("o-same", "opened", 1, message="m1"),
            ev("s-nokey", "sent", 100, message=None, step=2),
            ev("o-step2", "opened", 103, message="m9", step=2),
            ev("o-step3", "opened", 103, message=None, step=3),
            ev("c-before", "clicked", -3, message="m1", url="https://a"),
        ]
    )
    assert flags["o-other"] is None
    assert rule_of(flags, "o-same") == "soon_after_send"
    assert rule_of(flags, "o-step2") == "soon_after_send"
    assert flags["o-step3"] is None
    # Within 5 s before the delivery counts too (scanners sit in front of the mailbox).
    assert flags["c-before"] == machine("scanner", "soon_after_send")


def test_click_within_nine_seconds_of_a_machine_open() -> None:
    proxy = {"kind": "privacy_proxy", "rule": "apple_mpp_user_agent", "rule_version": 1}
    flags = classify(
        [
            ev("o", "opened", 100, machine_flag=proxy),
            ev("c-fast", "clicked", 109, url="https://a"),
            ev("c-slow", "clicked", 111, url="https://b"),
            ev("c-before", "clicked", 99, url="https://c", message="m1"),
            ev("o2", "opened", 300, message="m2"),
            ev("c-human-open", "clicked", 302, message="m2", url="https://a"),
        ]
    )
    assert flags["o"] == machine("privacy_proxy", "apple_mpp_user_agent")
    assert flags["c-fast"] == machine("scanner", "click_after_machine_open")
    assert flags["c-slow"] is None
    assert flags["c-before"] is None
    assert flags["c-human-open"] is None


def test_links_of_one_message_clicked_within_a_second() -> None:
    flags = classify(
        [
            ev("a", "clicked", 50, url="https://a"),
            ev("b", "clicked", 50.9, url="https://b"),
            ev("a-again", "clicked", 53.5, url="https://a", message="m2"),
            ev("c", "clicked", 80, url="https://c"),
            ev("c-twice", "clicked", 80.5, url="https://c"),
        ]
    )
    assert flags["a"] == machine("scanner", "links_at_once")
    assert rule_of(flags, "b") == "links_at_once"
    assert flags["a-again"] is None  # another message, and alone there
    # The same link twice is a double click, not a scanner.
    assert flags["c"] is None
    assert flags["c-twice"] is None


def test_burst_of_three_links_within_two_seconds_across_messages() -> None:
    flags = classify(
        [
            ev("x", "clicked", 100, message="m1", url="https://a"),
            ev("y", "clicked", 101.5, message="m2", url="https://a"),
            ev("z", "clicked", 102, message="m3", url="https://b"),
            ev("far", "clicked", 104.5, message="m4", url="https://z"),
            ev("p", "clicked", 200, message="m1", url="https://p"),
            ev("q", "clicked", 201.5, message="m2", url="https://q"),
        ]
    )
    assert [rule_of(flags, k) for k in ("x", "y", "z")] == ["click_burst"] * 3
    assert flags["far"] is None
    assert flags["p"] is None and flags["q"] is None


def test_stored_static_flags_are_kept_and_dynamic_ones_recomputed() -> None:
    scanner = {"kind": "scanner", "rule": "scanner_user_agent", "rule_version": 1}
    stale = {"kind": "scanner", "rule": "click_burst", "rule_version": 1}
    flags = classify(
        [
            ev("c1", "clicked", 10, url="https://a", machine_flag=scanner),
            ev("c2", "clicked", 500, url="https://b", machine_flag=stale),
        ]
    )
    assert flags["c1"] == machine("scanner", "scanner_user_agent")
    assert flags["c2"] is None


def test_human_upgrades_a_machine_open_on_an_unflagged_click_or_a_reply() -> None:
    proxy = {"kind": "privacy_proxy", "rule": "apple_mpp_network", "rule_version": 1}
    proxy_open = ev("o", "opened", 1000, machine_flag=proxy)
    alone = [proxy_open]
    assert human(alone, classify(alone)) == (False, False)
    clicked = [proxy_open, ev("c", "clicked", 5000, url="https://a")]
    assert human(clicked, classify(clicked)) == (True, True)
    replied = [proxy_open, ev("r", "replied", 9000)]
    assert human(replied, classify(replied)) == (True, False)
    machine_click = [proxy_open, ev("c", "clicked", 1003, url="https://a")]
    assert human(machine_click, classify(machine_click)) == (False, False)
    click_no_open = [ev("c", "clicked", 5000, url="https://a")]
    assert human(click_no_open, classify(click_no_open)) == (False, True)


# --- any arrival order -----------------------------------------------------------------

_types = st.sampled_from(["sent", "delivered", "opened", "clicked", "replied"])
_event = st.tuples(
    _types,
    st.integers(0, 40).map(lambda n: n / 4),  # quarter seconds over 10 s: windows collide
    st.sampled_from([None, "m1", "m2"]),
    st.sampled_from([None, 1, 2]),
    st.sampled_from([None, "https://a", "https://b", "https://c"]),
    st.sampled_from(
        [
            None,
            {"kind": "privacy_proxy", "rule": "apple_mpp_user_agent", "rule_version": 1},
            {"kind": "scanner", "rule": "links_at_once", "rule_version": 1},
        ]
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_event, max_size=12), st.randoms(use_true_random=False))
def test_any_arrival_order_gives_the_same_flags(rows: list[tuple[Any, ...]], rnd: Any) -> None:
    events = [
        EmailEvent(
            f"e{n}",
            kind,
            T0 + timedelta(seconds=seconds),
            step,
            {
                k: v
                for k, v in {"message_id": message, "url": url, "machine": flag}.items()
                if v is not None
            },
        )
        for n, (kind, seconds, message, step, url, flag) in enumerate(rows)
    ]
    flags = classify(events)
    shuffled = list(events)
    rnd.shuffle(shuffled)
    assert classify(shuffled) == flags
    assert human(shuffled, classify(shuffled)) == human(events, flags)
    # Flags only grow as events arrive: every prefix's flag stays set in the whole.
    for cut in range(len(shuffled)):
        for key, flag in classify(shuffled[:cut]).items():
            if flag is not None:
                assert flags[key] is not None

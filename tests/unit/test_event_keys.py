"""Dedup keys never move: every body that gave events keeps its provider_event_ids.

`tests/fixtures/event_keys.json` pins the keys that the parsers of commit 5fde79a
(before lemlist field drift was accepted and before the Postmark bounce-type
fixes) computed for every body the project held: fixtures, captures,
`../shared/payloads` and `../shared/foreign`. A parser change that moved one of them
would store a redelivered event a second time. Each entry is found again by the
sha256 of what the parser reads (`tests.bodies.Body.digest`), so a pinned body that
was edited or deleted fails here too, rather than silently leaving the pin.
"""

from __future__ import annotations

import msgspec
import pytest

from tests.bodies import FIXTURES, Body, all_bodies, event_keys

SNAPSHOT = FIXTURES / "event_keys.json"


class Pinned(msgspec.Struct, frozen=True, kw_only=True):
    sha256: str
    provider: str
    sources: list[str]
    keys: list[str]


PINNED = msgspec.json.decode(SNAPSHOT.read_bytes(), type=list[Pinned])


@pytest.fixture(scope="module")
def bodies() -> dict[str, Body]:
    """Every body held today, by digest (shared/ missing: FileNotFoundError, a failure)."""
    return {body.digest: body for body in all_bodies()}


@pytest.mark.parametrize("pinned", PINNED, ids=[entry.sources[0] for entry in PINNED])
def test_pinned_keys_are_unchanged(pinned: Pinned, bodies: dict[str, Body]) -> None:
    body = bodies.get(pinned.sha256)
    assert body is not None, f"pinned body is gone or was edited: {pinned.sources}"
    assert body.provider == pinned.provider
    assert event_keys(body) == pinned.keys


def test_the_snapshot_covers_every_provider_and_source() -> None:
    """The pins are the whole inventory, not a sample: all three places, all three providers."""
    assert {entry.provider for entry in PINNED} == {"lemlist", "postmark", "phantombuster"}
    sources = [source for entry in PINNED for source in entry.sources]
    places = ("tests/fixtures/", "tests/fixtures/captures/", "shared/payloads/", "shared/foreign/")
    for place in places:
        assert any(source.startswith(place) for source in sources), place
    assert len({entry.sha256 for entry in PINNED}) == len(PINNED) >= 96

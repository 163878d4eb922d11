"""Fixture loading and the invariants every parser result must satisfy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from providers.base import MAX_KEY_BYTES, Parsed
from providers.vocabulary import EVENT_TYPES

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def fixture(provider: str, name: str) -> bytes:
    """The exact bytes of a stored example body."""
    return (FIXTURES / provider / name).read_bytes()


def fixture_json(provider: str, name: str) -> Any:
    """A stored example body, decoded, for tests that vary one field."""
    return msgspec.json.decode(fixture(provider, name))


def fixture_names(provider: str) -> list[str]:
    return sorted(path.name for path in (FIXTURES / provider).glob("*.json"))


def encode(value: Any) -> bytes:
    return msgspec.json.encode(value)


def strings(value: Any) -> list[str]:
    """Every string inside a builtins tree, keys included."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return found


def check_parsed(parsed: object) -> None:
    """What the gateway relies on in any parser result."""
    assert isinstance(parsed, Parsed)
    assert not (parsed.events and (parsed.ignored or parsed.fetch))
    if parsed.ignored is not None:
        assert parsed.ignored.strip()
    for event in parsed.events:
        assert event.event_type in EVENT_TYPES[event.channel], (event.channel, event.event_type)
        assert event.provider_event_id
        assert len(event.provider_event_id.encode()) <= MAX_KEY_BYTES
        assert event.occurred_at is None or event.occurred_at.utcoffset() is not None
        assert event.step_number is None or -(2**31) <= event.step_number < 2**31
        assert all(url for url in event.linkedin_urls)
        # Enrollment progression ends an enrollment only on a hard bounce: every bounce says.
        bounce_class = event.metadata.get("bounce_class")
        assert bounce_class in (("hard", "soft") if event.event_type == "bounced" else (None,))
    assert not any("\x00" in text for text in strings(msgspec.to_builtins(parsed)))

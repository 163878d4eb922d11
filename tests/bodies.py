"""Every provider body the project holds, for tests that must cover all of them.

Three places: the suite's fixtures and captures, `../shared/payloads` (the example
bodies of providers.md) and `../shared/foreign` (real bodies from public sources,
each with an independent reading; see its README). The shared folder sits beside
the repository and is read in place, never copied in: a test that needs it fails
when it is missing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import msgspec

from gateway.delivery import Fetched
from gateway.ops import capture
from providers import lemlist, phantombuster, postmark
from providers.base import Parsed, ProviderError
from providers.vocabulary import PROVIDERS

REPOSITORY = Path(__file__).resolve().parent.parent
SHARED = REPOSITORY.parent / "shared"
FOREIGN = SHARED / "foreign"
FIXTURES = REPOSITORY / "tests" / "fixtures"


class ForeignBody(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of `../shared/foreign/<provider>.json` (fields: its README)."""

    source: str
    name: str
    body: Any
    expected: str
    """An event type, `ignored` (no event) or `stored-only` (only 200 and the raw body)."""
    oracle: str
    channel: str
    http: list[int]
    marker: str
    """A string of the body, to find the stored raw delivery by."""
    also_ok: list[str] = msgspec.field(default_factory=list)
    note: str | None = None
    derived: dict[str, Any] | None = None
    not_hard: bool = False
    """A temporary failure: if stored as `bounced`, it must not end the enrollment."""
    hard_control: bool = False
    """A permanent failure: its `bounced` event must end the enrollment."""

    @property
    def readings(self) -> list[str]:
        """Every acceptable reading: the oracle's first."""
        return [self.expected, *self.also_ok]


def foreign_bodies(provider: str) -> list[ForeignBody]:
    """The foreign bodies of one provider; FileNotFoundError when the folder is missing."""
    path = FOREIGN / f"{provider}.json"
    return msgspec.json.decode(path.read_bytes(), type=list[ForeignBody])


def encode(value: Any) -> bytes:
    """The bytes posted for a decoded body: compact JSON, keys in their order."""
    return msgspec.json.encode(value)


class Body(msgspec.Struct, frozen=True, kw_only=True):
    """One delivery as a parser sees it, with where it came from."""

    source: str
    provider: str
    body: bytes
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    fetched: bytes | None = None

    @property
    def digest(self) -> str:
        """sha256 of everything a parser reads: provider, headers, body, fetched result."""
        parts = [
            self.provider.encode(),
            msgspec.json.encode(dict(sorted(self.headers.items()))),
            self.body,
            self.fetched if self.fetched is not None else b"",
        ]
        return hashlib.sha256(b"\x00".join(parts)).hexdigest()


def all_bodies() -> list[Body]:
    """Fixtures, captures, shared payloads and foreign bodies; raises when shared is missing."""
    paths = [FIXTURES / provider for provider in PROVIDERS]
    paths += sorted((FIXTURES / "captures").glob("*.jsonl"))
    paths += [SHARED / "payloads" / provider for provider in PROVIDERS]
    found: list[Body] = []
    for read in capture.read(paths):
        if isinstance(read, capture.BadLine):
            raise FileNotFoundError(f"{read.source}: {read.error}")
        found.append(
            Body(
                source=_relative(read.source),
                provider=read.provider,
                body=read.body,
                headers=read.headers,
                fetched=read.fetched.body if isinstance(read.fetched, Fetched) else None,
            )
        )
    for provider in PROVIDERS:
        for index, entry in enumerate(foreign_bodies(provider)):
            found.append(
                Body(
                    source=f"shared/foreign/{provider}.json#{index} {entry.name}",
                    provider=provider,
                    body=encode(entry.body),
                )
            )
    return found


def parse(body: Body) -> Parsed:
    """What the provider's parser makes of the body (ProviderError when it rejects it)."""
    match body.provider:
        case "lemlist":
            return lemlist.parse(body.body, body.headers)
        case "postmark":
            return postmark.parse(body.body, body.headers)
        case _:
            return phantombuster.parse(body.body, body.headers, body.fetched)


def event_keys(body: Body) -> list[str]:
    """The sorted dedup keys of the events the body gives; none when rejected or ignored."""
    try:
        parsed = parse(body)
    except ProviderError:
        return []
    return sorted(event.provider_event_id for event in parsed.events)


def _relative(source: str) -> str:
    """A source path within the repository, or `shared/...`, whatever the checkout's name."""
    path, sep, line = source.partition(".jsonl:")
    resolved = Path(path).resolve()
    if resolved.is_relative_to(REPOSITORY):
        relative = resolved.relative_to(REPOSITORY)
    else:
        relative = resolved.relative_to(SHARED.parent)
    return f"{relative.as_posix()}{sep}{line}"

"""`gateway erase`: remove one person from every instance (GDPR erasure).

A person is named by e-mail (any case) or LinkedIn profile URL (compared as
`linkedin_key()` compares them). Erasing removes:

- their enrollments in every instance, and with them their events and the
  firsts behind the instance counters, which follow (the schema's triggers);
- events no instance claimed yet (unmatched) that are theirs: keyed on their
  e-mail, or written from a delivery about them;
- every stored raw delivery whose body or fetched result mentions them. A
  PhantomBuster run lists many people: its raw delivery goes as a whole,
  while the other people's events stay (like a purged delivery, it can then
  no longer be reprocessed).

Finding the deliveries means reading every stored body (no index covers
them): a database-side text match picks candidates page by page, and each is
confirmed here by reading its JSON (nested JSON strings included), so that
`ana@x.example` never erases `dana@x.example`. `plan` only reads; `erase`
deletes what the plan found in one transaction (gateway/db/erase.sql).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Final, NamedTuple
from uuid import UUID

import msgspec

from gateway.db.erase import (
    Erased,
    candidate_deliveries,
    delete_person,
    person_enrollments,
    unmatched_events,
)
from gateway.db.pool import Connection
from providers.base import normalize_linkedin_url

#: Candidate deliveries read per page (their bodies travel to the gateway).
PAGE: Final = 500
_LINKEDIN_URL = re.compile(
    r"(?:[a-z][a-z0-9+.-]*://)?(?:[\w-]+\.)*linkedin\.com/in/[^\s\"'<>?#,:\\]+", re.I
)


class PersonError(ValueError):
    """The e-mail address or LinkedIn URL cannot name a person."""


def _linkedin_key(url: str) -> str | None:
    """A profile's comparison key (`linkedin_key()`), or None when the URL names no profile."""
    key = normalize_linkedin_url(url)
    if key is None or "/in/" not in key or not key.split("/in/", 1)[1]:
        return None
    return key


class Person(NamedTuple):
    """Whom to erase: every e-mail address (lower case) and LinkedIn profile key they have."""

    emails: frozenset[str] = frozenset()
    linkedin_keys: frozenset[str] = frozenset()

    @classmethod
    def of(cls, email: str | None, linkedin_url: str | None) -> Person:
        """The person named on the command line."""
        if email is not None:
            address = email.strip().lower()
            local, at, domain = address.partition("@")
            if not (local and at and domain) or any(c.isspace() for c in address):
                raise PersonError(f"not an e-mail address: {email!r}")
            return cls(emails=frozenset({address}))
        if linkedin_url is not None:
            key = _linkedin_key(linkedin_url)
            if key is None:
                raise PersonError(f"not a LinkedIn profile URL: {linkedin_url!r}")
            return cls(linkedin_keys=frozenset({key}))
        raise PersonError("name the person with --email or --linkedin-url")

    def with_identities(self, emails: set[str], linkedin_keys: set[str]) -> Person:
        """The same person, also known by what their enrollments say."""
        return Person(self.emails | emails, self.linkedin_keys | linkedin_keys)

    @property
    def label(self) -> str:
        return ", ".join(sorted(self.emails) + [f"https://{k}" for k in sorted(self.linkedin_keys)])

    @property
    def needles(self) -> list[str]:
        """Texts one of which every body that mentions the person contains (a candidate test)."""
        slugs = [k.split("/in/", 1)[1].split("/", 1)[0] for k in self.linkedin_keys]
        return sorted(self.emails) + sorted(slugs)

    def mentioned_in(self, text: str) -> bool:
        """Whether one string names the person (not merely contains a longer address or URL)."""
        lowered = text.lower()
        if any(_has_address(lowered, address) for address in self.emails):
            return True
        return bool(self.linkedin_keys) and any(
            _linkedin_key(match) in self.linkedin_keys for match in _LINKEDIN_URL.findall(text)
        )


def _has_address(text: str, address: str) -> bool:
    start = text.find(address)
    while start >= 0:
        end = start + len(address)
        before = text[start - 1] if start else ""
        after = text[end : end + 2]
        local_goes_on = before != "" and (before.isalnum() or before in "._%+-")
        domain_goes_on = (
            after[:1].isalnum() or after[:1] == "-" or (after[:1] == "." and after[1:2].isalnum())
        )
        if not local_goes_on and not domain_goes_on:
            return True
        start = text.find(address, start + 1)
    return False


def mentions(person: Person, *blobs: bytes | None) -> bool:
    """Whether stored bytes (a body, a fetched result) name the person anywhere.

    JSON is read value by value, JSON held in a string (PhantomBuster's
    `resultObject`) too; bytes that are not JSON are read as text.
    """
    for blob in blobs:
        if blob is None:
            continue
        try:
            value = msgspec.json.decode(blob)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            if person.mentioned_in(blob.decode("utf-8", "replace")):
                return True
            continue
        if any(person.mentioned_in(text) for text in _strings(value, depth=0)):
            return True
    return False


def _strings(value: Any, depth: int) -> Iterator[str]:
    """Every string in a JSON value (keys included), and in JSON that strings hold."""
    if depth > 64:
        return
    if isinstance(value, str):
        yield value
        stripped = value.strip()
        if stripped[:1] in ("{", "[") and depth < 4:
            try:
                inner = msgspec.json.decode(stripped)
            except (msgspec.DecodeError, RecursionError):
                return
            yield from _strings(inner, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, depth + 1)


class Enrollment(NamedTuple):
    id: UUID
    instance_id: UUID
    instance_name: str
    events: int


class Plan(NamedTuple):
    """What erasing the person removes."""

    person: Person
    enrollments: list[Enrollment]
    unmatched_events: list[UUID]
    deliveries: list[UUID]
    deliveries_read: int
    """Candidate deliveries read and checked (the text match's hits)."""

    @property
    def events(self) -> int:
        return sum(e.events for e in self.enrollments) + len(self.unmatched_events)


async def plan(conn: Connection, person: Person) -> Plan:
    """Find everything of the person; changes nothing.

    The person is also known by every identifier of the enrollments found (an
    enrollment found by e-mail may hold their LinkedIn URL), until no new one
    turns up.
    """
    while True:
        rows = await person_enrollments(conn, sorted(person.emails), sorted(person.linkedin_keys))
        known = person.with_identities(
            {r["email"] for r in rows if r["email"]},
            {r["linkedin_key"] for r in rows if r["linkedin_key"]},
        )
        if known == person:
            break
        person = known
    enrollments = [
        Enrollment(r["id"], r["instance_id"], r["instance_name"], r["events"]) for r in rows
    ]
    deliveries: list[UUID] = []
    read = 0
    after: tuple[datetime | None, UUID | None] = (None, None)
    while True:
        page = await candidate_deliveries(conn, person.needles, after, PAGE)
        read += len(page)
        deliveries += [r["id"] for r in page if mentions(person, r["body"], r["fetched_body"])]
        if len(page) < PAGE:
            break
        after = (page[-1]["received_at"], page[-1]["id"])
    identifiers = sorted(person.emails | person.linkedin_keys)
    candidates = await unmatched_events(conn, identifiers, deliveries)
    about = set(deliveries)
    unmatched = [
        r["id"]
        for r in candidates
        if r["delivery_id"] in about or person.mentioned_in(r["provider_event_id"])
    ]
    return Plan(person, enrollments, unmatched, deliveries, read)


async def erase(conn: Connection, found: Plan) -> Erased:
    """Delete what `plan` found, in one transaction."""
    async with conn.transaction():
        return await delete_person(
            conn, [e.id for e in found.enrollments], found.unmatched_events, found.deliveries
        )


def render(found: Plan, seconds: float, *, erased: bool) -> str:
    """The summary a person reads after `gateway erase`."""
    head = (
        f"erased {found.person.label}:"
        if erased
        else f"dry run, nothing erased; with --yes, gateway erase removes {found.person.label}:"
    )
    instances = sorted({e.instance_name for e in found.enrollments})
    own = sum(e.events for e in found.enrollments)
    lines = [
        head,
        f"  {'enrollments':<15} {len(found.enrollments):>6}"
        + (f"   in {', '.join(instances)}" if instances else ""),
        f"  {'events':<15} {found.events:>6}"
        f"   {own} of those enrollments, {len(found.unmatched_events)} unmatched",
        f"  {'raw deliveries':<15} {len(found.deliveries):>6}"
        f"   ({found.deliveries_read} candidates read in {seconds:.1f}s)",
    ]
    if erased and found.enrollments:
        lines.append("instance counters follow the removed enrollments")
    return "\n".join(lines)

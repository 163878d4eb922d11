"""What every provider parser returns, and the helpers they share.

A parser turns one delivery (exact body bytes and request headers) into a
`Parsed`: zero or more `NormalizedEvent`s, or the reason the delivery holds no
campaign event. Parsers do no I/O and import nothing from `gateway`, so they can
be re-run over stored raw deliveries at any time (`gateway reprocess`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import msgspec

from providers.vocabulary import Channel, EventType, Provider

BounceClass = Literal["hard", "soft"]
"""`metadata.bounce_class` of every `bounced` event: only a hard bounce ends an enrollment."""
S = TypeVar("S", bound=msgspec.Struct)


class ProviderError(ValueError):
    """The body is not JSON, or not the provider's shape.

    `field` names the offending JSON path (`$` for the whole body) so that the
    400 answer tells the sender what to fix.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NormalizedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One campaign event in the gateway's vocabulary.

    `campaign_key` is the provider's own campaign key (lemlist `campaignId`,
    PhantomBuster `agentId`, Postmark `Tag`); the gateway maps it to a
    campaign instance through `campaign_instances.provider_config`.
    """

    provider: Provider
    provider_event_id: str
    channel: Channel
    event_type: EventType
    occurred_at: datetime | None
    """When it happened per the provider; None: the gateway uses the receive time."""
    metadata: dict[str, Any]
    campaign_key: str | None = None
    instance_hint: str | None = None
    """Postmark `Metadata.instance_id`: names the instance directly."""
    enrollment_hint: str | None = None
    """Postmark `Metadata.enrollment_id`: names the enrollment directly."""
    contact_email: str | None = None
    linkedin_urls: tuple[str, ...] = ()
    """Every LinkedIn profile URL the provider gave for the contact, best first."""
    step_number: int | None = None


class ResultFetch(msgspec.Struct, frozen=True, kw_only=True):
    """Where a PhantomBuster run's result object can be fetched from."""

    container_id: str | None = None
    json_url: str | None = None


class Parsed(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of parsing one delivery."""

    events: list[NormalizedEvent] = msgspec.field(default_factory=list)
    ignored: str | None = None
    """Why the delivery yields no campaign event (ignored type, test delivery, failed run)."""
    fetch: ResultFetch | None = None
    """PhantomBuster only: the result object must be fetched before rows can be parsed."""


def decode_json(data: bytes | str, field: str, what: str = "value") -> Any:
    """Decode JSON, as a ProviderError naming `field` when it is not JSON.

    msgspec reports invalid UTF-8 as UnicodeDecodeError and nesting deeper than
    the interpreter's recursion limit as RecursionError, not as DecodeError.
    """
    try:
        return msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ProviderError(field, f"{what} is not valid JSON ({exc})") from exc


def decode_object(body: bytes) -> dict[str, Any]:
    """Decode a JSON body that must be an object, as a ProviderError otherwise."""
    value = decode_json(body, "$", "body")
    if not isinstance(value, dict):
        raise ProviderError("$", f"expected a JSON object, got {type(value).__name__}")
    return value


#: Event times outside [EARLIEST, LATEST) are absurd (0001-01-01, 1970-01-01,
#: 9999-12-31 are what unset or zeroed provider dates look like) and refused
#: like unparseable ones: counted, one would stretch every chart to year 1.
EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2100, 1, 1, tzinfo=UTC)


def parse_timestamp(value: object, field: str) -> datetime | None:
    """Parse an ISO 8601 time as aware UTC; naive times are taken as UTC.

    Accepts any number of fractional digits (Postmark sends seven) and a `Z`
    suffix. Empty or missing values give None. A time before 2000 or from 2100
    on is a ProviderError, as an unparseable one is.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ProviderError(field, f"expected an ISO 8601 string, got {type(value).__name__}")
    text = value.strip()
    match = _ISO_RE.fullmatch(text)
    if match is None:
        raise ProviderError(field, f"not an ISO 8601 time: {value[:64]!r}")
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")
    zone = match["zone"] or "+00:00"
    if zone in ("Z", "z"):
        zone = "+00:00"
    elif len(zone) == 5:  # +0100
        zone = f"{zone[:3]}:{zone[3:]}"
    try:
        # Years 1 and 9999 with an offset overflow when moved to UTC.
        parsed = datetime.fromisoformat(f"{match['base']}.{fraction}{zone}").astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ProviderError(field, f"not a valid time: {value[:64]!r}") from exc
    if not EARLIEST_TIME <= parsed < LATEST_TIME:
        raise ProviderError(
            field,
            f"time out of range: {value[:64]!r} (accepted: from {EARLIEST_TIME:%Y-%m-%d}"
            f" until {LATEST_TIME:%Y-%m-%d})",
        )
    return parsed


_ISO_RE = re.compile(
    r"(?P<base>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})"
    r"(?:[.,](?P<fraction>\d+))?"
    r"(?P<zone>[Zz]|[+-]\d{2}:?\d{2})?"
)


_WHITE_SPACE = re.compile(r"\s")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")


def normalize_linkedin_url(url: str) -> str | None:
    """The comparison key of a LinkedIn profile URL.

    Lower case, without scheme, `www.`, query, fragment or trailing slashes, so
    that `https://www.linkedin.com/in/Dana/?trk=x` and `linkedin.com/in/dana`
    compare equal. The same rule is the SQL function `linkedin_key()` of the
    migrations; a test checks that both agree.
    """
    # Step for step the order of linkedin_key(): white space goes first.
    key = _WHITE_SPACE.sub("", url.lower())
    key = _SCHEME.sub("", key)
    key = key.split("#", 1)[0].split("?", 1)[0]
    if key.startswith("www."):
        key = key[4:]
    key = key.rstrip("/")
    return key or None


def clean_text(value: object) -> str | None:
    """A provider string fit for a text column: NUL removed, None for non-strings."""
    if not isinstance(value, str):
        return None
    cleaned = value.replace("\x00", "").strip()
    return cleaned or None


def clean_json(value: Any) -> Any:
    """Metadata fit for JSONB: PostgreSQL rejects the NUL character anywhere in it."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, Mapping):
        return {str(k).replace("\x00", ""): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN has no JSON form
        return None
    return value


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup over a plain mapping."""
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def as_int(value: object) -> int | None:
    """An integer from an int or a numeric string; None otherwise (bool is not an int here)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -(2**31) <= value < 2**31 else None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value.strip())
        return number if -(2**31) <= number < 2**31 else None
    return None


def as_bool(value: object) -> bool | None:
    """A JSON boolean; None for anything else."""
    return value if isinstance(value, bool) else None


def brief(value: object, limit: int = 80) -> str:
    """A provider value quoted for a human-readable reason: escaped (no NUL) and short."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}…"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}…"


def view(
    value: Mapping[str, Any], view_type: type[S], spelling: Mapping[str, str] | None = None
) -> S:
    """Convert a decoded object into a view Struct; a wrongly typed field is a ProviderError.

    `spelling` maps a Struct field's encoded name to the key as the body spelled it, so
    the error names the field the way the sender wrote it.
    """
    try:
        return msgspec.convert(value, view_type)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at `")
        path = where.removesuffix("`") or "$"
        name, dot, rest = path.removeprefix("$.").partition(".")
        if spelling and path.startswith("$.") and name in spelling:
            path = f"$.{spelling[name]}{dot}{rest}"
        raise ProviderError(path, message) from exc


def key_part(value: str | float | None) -> str | None:
    """One component of an event key, as the body gave it: NUL removed, None when empty."""
    if value is None or isinstance(value, bool):
        return None
    return str(value).replace("\x00", "") or None


MAX_KEY_BYTES = 1000
"""Longest provider_event_id kept verbatim; it stays well inside a btree index entry."""


def bounded_key(key: str) -> str:
    """An event key at most MAX_KEY_BYTES long (UTF-8): a prefix and the full key's sha256."""
    key = key.replace("\x00", "")
    encoded = key.encode("utf-8", "surrogatepass")
    if len(encoded) <= MAX_KEY_BYTES:
        return key
    digest = hashlib.sha256(encoded).hexdigest()
    prefix = encoded[: MAX_KEY_BYTES - len(digest) - 1].decode("utf-8", "ignore")
    return f"{prefix}:{digest}"


def build_metadata(**fields: object) -> dict[str, Any]:
    """Event metadata: the fields that are present (not None), fit for JSONB."""
    return {name: clean_json(value) for name, value in fields.items() if value is not None}


__all__ = [
    "MAX_KEY_BYTES",
    "BounceClass",
    "NormalizedEvent",
    "Parsed",
    "ProviderError",
    "ResultFetch",
    "as_bool",
    "as_int",
    "bounded_key",
    "brief",
    "build_metadata",
    "clean_json",
    "clean_text",
    "decode_json",
    "decode_object",
    "header",
    "key_part",
    "normalize_linkedin_url",
    "parse_timestamp",
    "view",
]

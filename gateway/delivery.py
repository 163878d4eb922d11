"""One delivery as the gateway stores it: what a webhook request becomes before anything is parsed.

The webhook edge and a direct replay build it the same way (`Delivery.received`):
every configured secret masked in the body, headers and query, credential headers
and query parameters dropped, and only a prefix kept of a body over its provider's
limit. Its statuses are declared here once: `AckStatus` (what a `200` says),
`OutcomeStatus` (what ingestion answers a caller), `DeliveryStatus` (what a stored
row may hold; `webhook_deliveries.status` is CHECKed against it by a test).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final, Literal, get_args
from uuid import UUID

import msgspec

from gateway.ids import uuid7
from gateway.secrets import REDACTED, Redactor
from gateway.settings import setting
from providers.base import clean_json

AckStatus = Literal["processed", "duplicate", "unmatched", "ignored", "pending"]
"""An accepted delivery, answered 200 (`gateway.webhooks.Ack` says what each means)."""
OutcomeStatus = Literal[AckStatus, "rejected"]
"""What ingestion answers a caller; `rejected` (not the provider's shape) is a 400."""
DeliveryStatus = Literal[OutcomeStatus, "failed"]
"""What a stored delivery may hold; `failed`: the gateway failed on it (reprocess retries it)."""

OUTCOME_STATUSES: Final[tuple[OutcomeStatus, ...]] = get_args(OutcomeStatus)
DELIVERY_STATUSES: Final[tuple[DeliveryStatus, ...]] = get_args(DeliveryStatus)

#: Headers never stored: they carry credentials or are meaningless hop by hop.
REDACTED_HEADERS: Final = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
#: Query parameters never stored: the webhook secret travels there.
REDACTED_QUERY: Final = frozenset({"token", "secret", "key", "api_key"})
#: How much of an oversized body is kept, to show what it was.
OVERSIZED_PREFIX_BYTES: Final = 4096
#: The largest size `webhook_deliveries.body_size` (integer) can hold; an
#: announced Content-Length above it is recorded as this, its cause saying more.
MAX_RECORDED_SIZE: Final = 2**31 - 1


class Fetched(msgspec.Struct, frozen=True, kw_only=True):
    """A PhantomBuster result object fetched for a delivery, and where it came from.

    Stored with the delivery, so that reprocessing and an exported capture never fetch it again.
    """

    body: bytes
    source: str


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """One webhook request as received, secrets already removed."""

    provider: str
    received_at: datetime
    body: bytes
    headers: dict[str, str]
    query: dict[str, str]
    body_size: int = -1
    """Size of the whole body; -1: `len(body)`. Differs from it only for an oversized one."""
    id: UUID = msgspec.field(default_factory=uuid7)

    @classmethod
    def received(
        cls,
        provider: str,
        received_at: datetime,
        body: bytes,
        *,
        size: int,
        limit: int,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        redactor: Redactor,
    ) -> Delivery:
        """The delivery to store for a request whose body (`size` bytes in all) came as `body`.

        A body over `limit` keeps only its first OVERSIZED_PREFIX_BYTES, and its size is
        recorded (at most MAX_RECORDED_SIZE); any other body's recorded size is that of the
        stored bytes, which masking may have shortened.
        """
        oversized = size > limit
        return cls(
            provider=provider,
            received_at=received_at,
            body=redactor.body(body[:OVERSIZED_PREFIX_BYTES] if oversized else body),
            body_size=min(size, MAX_RECORDED_SIZE) if oversized else -1,
            headers=redact_headers(headers, redactor),
            query=redact_query(query, redactor),
        )

    @property
    def recorded_size(self) -> int:
        """The size stored in `webhook_deliveries.body_size`."""
        return self.body_size if self.body_size >= 0 else len(self.body)


def too_large(provider: str, limit: int, body: str) -> str:
    """The cause of a 413: what came (`body`), and the setting that would let it in."""
    return f"{body} exceeds {setting(f'max_body_bytes_{provider}').encode_name}={limit}"


def redact_headers(headers: Mapping[str, str], redactor: Redactor) -> dict[str, str]:
    """Headers as stored: credentials replaced, any configured secret masked."""
    stored: dict[str, str] = {}
    for name, value in headers.items():
        lowered = redactor.name(name)
        stored[lowered] = REDACTED if lowered in REDACTED_HEADERS else redactor.text(value)
    cleaned: dict[str, str] = clean_json(stored)
    return cleaned


def redact_query(query: Mapping[str, str], redactor: Redactor) -> dict[str, str]:
    """The query as stored: credential parameters removed, any configured secret masked."""
    kept = {
        redactor.text(k): redactor.text(v)
        for k, v in query.items()
        if k.lower() not in REDACTED_QUERY
    }
    cleaned: dict[str, str] = clean_json(kept)
    return cleaned

"""Postmark outbound webhooks: one event per request, channel `email`.

RecordType (condition) -> event_type, provider_event_id:

- Delivery -> delivered, `Delivery:{MessageID}:{Recipient}`
- Bounce, by `Type` (by `TypeCode` when the body has no `Type`) -> `Bounce:{ID}`:
  - HardBounce, BadEmailAddress, ManuallyDeactivated, Unconfirmed -> bounced
    (bounce_class hard: Postmark says the address itself cannot take mail)
  - Transient, DnsError, SoftBounce, Blocked, DMARCPolicy -> bounced (bounce_class soft:
    temporary, or the sender's content, reputation or DMARC policy, not the address)
  - Unsubscribe -> unsubscribed; SpamComplaint -> spam_complaint;
    SMTPApiError, TemplateRenderingFailed -> failed (the message never left Postmark)
- SpamComplaint -> spam_complaint, `SpamComplaint:{ID}`
- Open -> opened, `Open:{MessageID}:{Recipient}:{ReceivedAt}`
- Click -> clicked, `Click:{MessageID}:{Recipient}:{OriginalLink}`
- SubscriptionChange (recipient's own ManualSuppression) -> unsubscribed,
  `SubscriptionChange:{MessageStream}:{Recipient}:{ChangedAt}:true`

Only a hard bounce ends an enrollment as `bounced`; docs/providers.md gives
Postmark's own description of every type behind this table.

Without `ID`, a bounce is keyed `{RecordType}:{MessageID}:{Email}:{BouncedAt}`. When a key
component is missing, the `X-PM-Webhook-Trace-Id` header keys the event instead
(`{RecordType}:trace:{id}`). Ignored: test deliveries (all-zero MessageID), inbound mail
(no RecordType), unknown record types, the other bounce types, and subscription changes
that are reactivations, bounce/complaint driven or not made by the recipient.

Postmark's key casing varies (`MessageID`, `MessageId`), so top-level keys are matched
case-insensitively, and so are the `Metadata` keys we set at send time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import msgspec

from providers.base import (
    BounceClass,
    NormalizedEvent,
    Parsed,
    ProviderError,
    as_bool,
    as_int,
    bounded_key,
    brief,
    build_metadata,
    clean_text,
    decode_object,
    header,
    key_part,
    parse_timestamp,
    view,
)
from providers.vocabulary import EmailEventType, Provider

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

PROVIDER: Final[Provider] = "postmark"
TEST_MESSAGE_ID = "00000000-0000-0000-0000-000000000000"
"""The MessageID of the payloads Postmark sends from its "send test" button."""
TRACE_HEADER = "X-PM-Webhook-Trace-Id"

_BOUNCE_OUTCOMES: dict[str, tuple[EmailEventType, BounceClass | None]] = {
    # "unknown user, mailbox not found"; "not a valid email address"; "manually
    # deactivated"; "has not clicked on the confirmation link": the address itself.
    **dict.fromkeys(
        ("HardBounce", "BadEmailAddress", "ManuallyDeactivated", "Unconfirmed"),
        ("bounced", "hard"),
    ),
    # "could not temporarily deliver"; "a temporary DNS error"; "unable to temporarily
    # deliver"; an ISP block "due to content or blacklisting" and a DMARC rejection are
    # the sender's to fix: a later step can still reach the address.
    **dict.fromkeys(
        ("Transient", "DnsError", "SoftBounce", "Blocked", "DMARCPolicy"), ("bounced", "soft")
    ),
    "Unsubscribe": ("unsubscribed", None),
    "SpamComplaint": ("spam_complaint", None),
    # "An error occurred while accepting an email through the SMTP API" / "while
    # attempting to render your template": a send failure, nothing reached the recipient.
    **dict.fromkeys(("SMTPApiError", "TemplateRenderingFailed"), ("failed", None)),
}
"""Bounce `Type` -> (event_type, bounce_class); every other type is ignored."""

_TYPE_CODES: dict[int, str] = {
    1: "HardBounce",
    2: "Transient",
    16: "Unsubscribe",
    32: "Subscribe",
    64: "AutoResponder",
    128: "AddressChange",
    256: "DnsError",
    512: "SpamNotification",
    1024: "OpenRelayTest",
    2048: "Unknown",
    4096: "SoftBounce",
    8192: "VirusNotification",
    16384: "ChallengeVerification",
    100000: "BadEmailAddress",
    100001: "SpamComplaint",
    100002: "ManuallyDeactivated",
    100003: "Unconfirmed",
    100006: "Blocked",
    100007: "SMTPApiError",
    100008: "InboundError",
    100009: "DMARCPolicy",
    100010: "TemplateRenderingFailed",
}
"""postmark.js `BounceTypeCode`: names the type of a bounce that carries no `Type`.

When both are present `Type` decides: one Postmark table gives other codes for
Blocked and DMARCPolicy (providers.md §1.6), and the name is what Postmark documents.
"""


class _Record(msgspec.Struct, frozen=True, rename="lower"):
    """Fields every outbound record type carries; keys arrive lower-cased."""

    MessageID: str | None = None
    MessageStream: str | None = None
    Tag: str | None = None
    ServerID: object = None
    Metadata: dict[str, Any] | None = None


class _Delivery(_Record, frozen=True):
    Recipient: str | None = None
    DeliveredAt: str | None = None
    Details: object = None


class _Bounce(_Record, frozen=True):
    """Bounce and SpamComplaint records share one shape."""

    ID: int | str | None = None
    Type: str | None = None
    TypeCode: object = None
    Name: object = None
    Description: object = None
    Details: object = None
    Email: str | None = None
    BouncedAt: str | None = None
    Inactive: object = None
    CanActivate: object = None


class _Tracked(_Record, frozen=True):
    """Open and Click: what the recipient's mail client told Postmark."""

    Recipient: str | None = None
    ReceivedAt: str | None = None
    Platform: object = None
    UserAgent: object = None
    Client: object = None
    OS: object = None
    Geo: object = None


class _Open(_Tracked, frozen=True):
    FirstOpen: object = None
    ReadSeconds: object = None


class _Click(_Tracked, frozen=True):
    OriginalLink: str | None = None
    ClickLocation: object = None


class _SubscriptionChange(_Record, frozen=True):
    Recipient: str | None = None
    ChangedAt: str | None = None
    Origin: str | None = None
    SuppressSending: bool | None = None
    SuppressionReason: str | None = None


@dataclass(frozen=True, slots=True)
class _Context:
    """What every record handler needs besides the record itself."""

    record_type: str
    spelling: dict[str, str]
    """Lower-cased key -> the key as the body spelled it, for error paths."""
    trace_id: str | None

    def path(self, field: str) -> str:
        """The JSON path of a top-level field, spelled as in the body when present."""
        return f"$.{self.spelling.get(field.lower(), field)}"

    def key(self, *parts: tuple[str, str | int | None]) -> str:
        """`{RecordType}:{part}:...`; the trace id stands in when a part is missing."""
        values = [self.record_type]
        for field, value in parts:
            part = key_part(value)
            if part is None:
                if self.trace_id is not None:
                    return bounded_key(f"{self.record_type}:trace:{self.trace_id}")
                raise ProviderError(
                    self.path(field),
                    f"missing: the {self.record_type} event key needs it"
                    f" (and there is no {TRACE_HEADER} header)",
                )
            values.append(part)
        return bounded_key(":".join(values))

    def time(self, value: str | None, field: str) -> datetime | None:
        """The provider's time for the event; None lets the gateway use the receive time."""
        return parse_timestamp(value, self.path(field))


def parse(body: bytes, headers: Mapping[str, str]) -> Parsed:
    """Normalize one Postmark webhook delivery."""
    raw = decode_object(body)
    fields = {key.lower(): value for key, value in raw.items()}
    if fields.get("messageid") == TEST_MESSAGE_ID:
        return Parsed(ignored="Postmark test delivery")
    record_type = fields.get("recordtype")
    if record_type is None:
        return Parsed(ignored="inbound message (no RecordType): not an outbound event")
    spelling = {key.lower(): key for key in raw}
    if not isinstance(record_type, str):
        raise ProviderError(
            f"$.{spelling['recordtype']}", f"expected a string, got {type(record_type).__name__}"
        )
    ctx = _Context(record_type, spelling, clean_text(header(headers, TRACE_HEADER)))
    match record_type:
        case "Delivery":
            return _delivery(view(fields, _Delivery, spelling), ctx)
        case "Bounce" | "SpamComplaint":
            return _bounce(view(fields, _Bounce, spelling), ctx)
        case "Open":
            return _open(view(fields, _Open, spelling), ctx)
        case "Click":
            return _click(view(fields, _Click, spelling), ctx)
        case "SubscriptionChange":
            return _subscription_change(view(fields, _SubscriptionChange, spelling), ctx)
        case _:
            return Parsed(ignored=f"unknown Postmark RecordType {brief(record_type)}")


def _delivery(record: _Delivery, ctx: _Context) -> Parsed:
    return _event(
        record,
        ctx,
        event_type="delivered",
        key=ctx.key(("MessageID", _message_id(record, ctx)), ("Recipient", record.Recipient)),
        occurred_at=ctx.time(record.DeliveredAt, "DeliveredAt"),
        contact=record.Recipient,
        details=clean_text(record.Details),
    )


def _bounce(record: _Bounce, ctx: _Context) -> Parsed:
    bounce_class: BounceClass | None = None
    event_type: EmailEventType
    bounce_type = record.Type
    if bounce_type is None and (code := as_int(record.TypeCode)) is not None:
        bounce_type = _TYPE_CODES.get(code)
    if ctx.record_type == "SpamComplaint":
        event_type = "spam_complaint"
    elif bounce_type is None:
        raise ProviderError(ctx.path("Type"), "missing: the bounce type decides the event")
    elif bounce_type in _BOUNCE_OUTCOMES:
        event_type, bounce_class = _BOUNCE_OUTCOMES[bounce_type]
    else:
        return Parsed(ignored=f"Postmark bounce type {brief(bounce_type)} is not a campaign event")
    message_id = _message_id(record, ctx)
    if key_part(record.ID) is not None:
        key = ctx.key(("ID", record.ID))
    else:
        key = ctx.key(
            ("MessageID", message_id), ("Email", record.Email), ("BouncedAt", record.BouncedAt)
        )
    return _event(
        record,
        ctx,
        event_type=event_type,
        key=key,
        occurred_at=ctx.time(record.BouncedAt, "BouncedAt"),
        contact=record.Email,
        bounce_type=clean_text(bounce_type),
        bounce_type_code=as_int(record.TypeCode),
        bounce_class=bounce_class,
        bounce_name=clean_text(record.Name),
        description=clean_text(record.Description),
        details=clean_text(record.Details),
        inactive=as_bool(record.Inactive),
        can_activate=as_bool(record.CanActivate),
    )


def _open(record: _Open, ctx: _Context) -> Parsed:
    key = ctx.key(
        ("MessageID", _message_id(record, ctx)),
        ("Recipient", record.Recipient),
        ("ReceivedAt", record.ReceivedAt),
    )
    return _event(
        record,
        ctx,
        event_type="opened",
        key=key,
        occurred_at=ctx.time(record.ReceivedAt, "ReceivedAt"),
        contact=record.Recipient,
        first_open=as_bool(record.FirstOpen),
        read_seconds=as_int(record.ReadSeconds),
        **_client_details(record),
    )


def _click(record: _Click, ctx: _Context) -> Parsed:
    key = ctx.key(
        ("MessageID", _message_id(record, ctx)),
        ("Recipient", record.Recipient),
        ("OriginalLink", record.OriginalLink),
    )
    return _event(
        record,
        ctx,
        event_type="clicked",
        key=key,
        occurred_at=ctx.time(record.ReceivedAt, "ReceivedAt"),
        contact=record.Recipient,
        url=clean_text(record.OriginalLink),
        click_location=clean_text(record.ClickLocation),
        **_client_details(record),
    )


def _subscription_change(record: _SubscriptionChange, ctx: _Context) -> Parsed:
    """Only a recipient's own unsubscribe is a campaign event.

    Bounce- and complaint-driven suppressions repeat the Bounce/SpamComplaint webhook,
    and a reactivation has no event type.
    """
    reason = record.SuppressionReason
    if record.SuppressSending is None:
        raise ProviderError(ctx.path("SuppressSending"), "missing: it decides the event")
    if not record.SuppressSending:
        return Parsed(ignored="subscription reactivated (SuppressSending false)")
    if reason in ("HardBounce", "SpamComplaint"):
        return Parsed(ignored=f"suppression caused by {reason}: the {reason} webhook records it")
    if reason != "ManualSuppression":
        return Parsed(ignored=f"suppression reason {brief(reason)} is not an unsubscribe")
    if record.Origin != "Recipient":
        return Parsed(ignored=f"manual suppression by {brief(record.Origin)}, not the recipient")
    key = ctx.key(
        ("MessageStream", record.MessageStream),
        ("Recipient", record.Recipient),
        ("ChangedAt", record.ChangedAt),
        ("SuppressSending", "true"),
    )
    return _event(
        record,
        ctx,
        event_type="unsubscribed",
        key=key,
        occurred_at=ctx.time(record.ChangedAt, "ChangedAt"),
        contact=record.Recipient,
        origin=clean_text(record.Origin),
        suppression_reason=clean_text(reason),
    )


def _message_id(record: _Record, ctx: _Context) -> str:
    """MessageID ties the event to the sent message; only SubscriptionChange may lack it."""
    message_id = key_part(record.MessageID)
    if message_id is None:
        raise ProviderError(ctx.path("MessageID"), "missing")
    return message_id


def _client_details(record: _Tracked) -> dict[str, object]:
    geo = record.Geo if isinstance(record.Geo, dict) else {}
    return {
        "platform": clean_text(record.Platform),
        "user_agent": clean_text(record.UserAgent),
        "client": _name(record.Client),
        "os": _name(record.OS),
        "geo_country": clean_text(geo.get("Country")),
        "geo_city": clean_text(geo.get("City")),
        # The fetching address: the static machine rules compare it with proxy networks.
        "geo_ip": clean_text(geo.get("IP")),
    }


def _name(value: object) -> str | None:
    """`Client` and `OS` are {Name, Company, Family}; the name is the useful part."""
    return clean_text(value.get("Name")) if isinstance(value, dict) else None


def _event(
    record: _Record,
    ctx: _Context,
    *,
    event_type: EmailEventType,
    key: str,
    occurred_at: datetime | None,
    contact: str | None,
    **fields: object,
) -> Parsed:
    """The one event of a delivery, with what every record type carries."""
    sent_metadata = record.Metadata or {}
    hints = {name.lower(): value for name, value in sent_metadata.items()}
    return Parsed(
        events=[
            NormalizedEvent(
                provider=PROVIDER,
                provider_event_id=key,
                channel="email",
                event_type=event_type,
                occurred_at=occurred_at,
                metadata=build_metadata(
                    record_type=ctx.record_type,
                    message_id=clean_text(record.MessageID),
                    message_stream=clean_text(record.MessageStream),
                    tag=clean_text(record.Tag),
                    server_id=as_int(record.ServerID),
                    trace_id=ctx.trace_id,
                    **fields,
                    postmark_metadata=_scalars(record.Metadata),
                ),
                campaign_key=clean_text(record.Tag),
                instance_hint=_hint(hints.get("instance_id")),
                enrollment_hint=_hint(hints.get("enrollment_id")),
                contact_email=clean_text(contact),
                step_number=as_int(hints.get("step")),
            )
        ]
    )


def _hint(value: object) -> str | None:
    """Metadata values are strings by contract; tolerate a number."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return clean_text(value)


def _scalars(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    """The send-time Metadata; Postmark allows only flat values there.

    Nested values are dropped so that a hostile body cannot make cleaning recurse deeply.
    """
    if metadata is None:
        return None
    return {
        name: value
        for name, value in metadata.items()
        if value is None or isinstance(value, str | int | float | bool)
    }

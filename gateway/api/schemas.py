"""Every body the read API sends, as msgspec Structs (the OpenAPI schema comes from these)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

import msgspec
from litestar.openapi import ResponseSpec

PROBLEM_JSON = "application/problem+json"

TemplateType = Literal["email", "linkedin", "multi_channel"]
PathType = Literal["structured", "dynamic_ai"]
InstanceStatus = Literal["draft", "active", "paused", "completed", "failed"]
Provider = Literal["lemlist", "postmark", "phantombuster"]
Channel = Literal["email", "linkedin"]
EmailEventType = Literal[
    "sent",
    "delivered",
    "opened",
    "clicked",
    "replied",
    "bounced",
    "unsubscribed",
    "spam_complaint",
    "failed",
]
LinkedinEventType = Literal[
    "profile_visited",
    "connection_requested",
    "connection_accepted",
    "message_sent",
    "voice_message_sent",
    "replied",
    "failed",
]
EventType = EmailEventType | LinkedinEventType
DeliveryStatus = Literal[
    "processed", "duplicate", "unmatched", "ignored", "rejected", "pending", "failed"
]


class Problem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem document: every error the gateway answers."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    field: str | None = None
    """The query parameter or payload field at fault."""
    delivery_id: str | None = None
    """The stored delivery, when a webhook was kept as rejected."""


_PROBLEMS: dict[int, ResponseSpec] = {
    400: ResponseSpec(
        data_container=Problem,
        description="A query parameter is not valid; `field` names it",
        media_type=PROBLEM_JSON,
        generate_examples=False,
    ),
    404: ResponseSpec(
        data_container=Problem,
        description="Nothing with that id",
        media_type=PROBLEM_JSON,
        generate_examples=False,
    ),
}


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """The OpenAPI description of a handler's error answers."""
    return {status: _PROBLEMS[status] for status in statuses}


class Template(msgspec.Struct, frozen=True, kw_only=True):
    """A campaign template, with how many steps each sequence has (A/B variants count once)."""

    id: UUID
    name: str
    description: str | None
    type: TemplateType
    path_type: PathType
    settings: dict[str, Any]
    is_active: bool
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    email_steps: int
    linkedin_steps: int


class EmailStep(msgspec.Struct, frozen=True, kw_only=True):
    """One step of a template's email sequence (one A/B variant of it)."""

    id: UUID
    step_number: int
    subject: str
    body_template: str
    delay_hours: int
    a_b_variant: str | None
    is_active: bool


class LinkedinStep(msgspec.Struct, frozen=True, kw_only=True):
    """One step of a template's LinkedIn sequence."""

    id: UUID
    step_number: int
    action_type: Literal["profile_visit", "connection_request", "message", "voice_message"]
    message_template: str | None
    delay_hours: int
    fallback_channel: Channel | None


class TemplateDetail(Template, frozen=True, kw_only=True):
    """A template with both sequences in step order."""

    email_sequences: list[EmailStep]
    linkedin_sequences: list[LinkedinStep]


class TemplateList(msgspec.Struct, frozen=True, kw_only=True):
    """Templates, oldest first (a handful: not paged)."""

    items: list[Template]


class Counters(msgspec.Struct, frozen=True, kw_only=True):
    """The instance's counters: enrollments, and enrollments with at least one such event."""

    enrolled: int
    sent: int
    opened: int
    clicked: int
    replied: int


class Instance(msgspec.Struct, frozen=True, kw_only=True):
    """A running (or finished) campaign: a template applied to contacts."""

    id: UUID
    template_id: UUID
    name: str
    status: InstanceStatus
    provider_config: dict[str, Any]
    settings: dict[str, Any]
    counters: Counters
    started_at: datetime | None
    paused_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class InstanceList(msgspec.Struct, frozen=True, kw_only=True):
    """Instances, newest first (hundreds at most: not paged)."""

    items: list[Instance]


class ChannelCounts(msgspec.Struct, frozen=True, kw_only=True):
    """Events per type on one channel, and enrollments with at least one of each type."""

    channel: Channel
    totals: dict[str, int]
    unique: dict[str, int]


class StepCounts(msgspec.Struct, frozen=True, kw_only=True):
    """One sequence step's funnel; `step_number` is null for events without a step."""

    channel: Channel
    step_number: int | None
    totals: dict[str, int]
    unique: dict[str, int]


class ProviderTotals(msgspec.Struct, frozen=True, kw_only=True):
    """Events per type that came through one provider."""

    provider: Provider
    totals: dict[str, int]


class DayTotals(msgspec.Struct, frozen=True, kw_only=True):
    """Events per type on one UTC day."""

    day: date
    totals: dict[str, int]


class Rates(msgspec.Struct, frozen=True, kw_only=True):
    """`unique` counts over unique `sent` (email rates) or `connection_requested`.

    Null where the denominator is 0.
    """

    delivery_rate: float | None
    open_rate: float | None
    click_rate: float | None
    reply_rate: float | None
    bounce_rate: float | None
    unsubscribe_rate: float | None
    connection_accept_rate: float | None


class Performance(msgspec.Struct, frozen=True, kw_only=True):
    """How an instance performs, over all time or over [from, to)."""

    instance_id: UUID
    from_: datetime | None = msgspec.field(name="from")
    to: datetime | None
    enrolled: int
    """Enrollments of the instance (with a range: those enrolled in it)."""
    totals: dict[str, int]
    """Events per type."""
    unique: dict[str, int]
    """Enrollments with at least one event of each type."""
    rates: Rates
    by_channel: list[ChannelCounts]
    by_provider: list[ProviderTotals]
    by_step: list[StepCounts]
    daily: list[DayTotals]


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One normalized event; `enrollment_id` is null while unmatched."""

    id: UUID
    instance_id: UUID | None
    enrollment_id: UUID | None
    delivery_id: UUID | None
    event_type: EventType
    channel: Channel
    provider: Provider
    provider_event_id: str
    step_number: int | None
    timestamp: datetime
    metadata: dict[str, Any]
    created_at: datetime


class EventPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of events; pass `next_cursor` as `cursor` for the next (null: no more now)."""

    items: list[Event]
    next_cursor: str | None


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """One raw delivery as the log shows it: outcome and size, never the body."""

    id: UUID
    provider: Provider
    received_at: datetime
    processed_at: datetime
    status: DeliveryStatus
    cause: str | None
    events_written: int
    duplicates: int
    body_size: int
    headers: dict[str, str]
    """Request headers, credentials redacted."""
    query: dict[str, str]
    """Query parameters, the secret removed."""
    fetched_from: str | None
    """Where a PhantomBuster result object was fetched from."""


class DeliveryPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of deliveries; pass `next_cursor` as `cursor` for the next (null: no more now)."""

    items: list[Delivery]
    next_cursor: str | None

"""Every body the API sends or accepts, as msgspec Structs (the OpenAPI schema comes from these).

Request bodies forbid unknown fields, so that a misspelt field is a 400
naming it rather than a value silently dropped. `provider_config` is the one
open object: its known keys are checked (`ProviderKeys`), others are kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar.openapi import ResponseSpec
from msgspec import UNSET, Meta, UnsetType

from gateway.delivery import DeliveryStatus
from providers.vocabulary import Channel, EventType, Provider

PROBLEM_JSON = "application/problem+json"

TemplateType = Literal["email", "linkedin", "multi_channel"]
PathType = Literal["structured", "dynamic_ai"]
InstanceStatus = Literal["draft", "active", "paused", "completed", "failed"]
EnrollmentStatus = Literal[
    "enrolled", "active", "paused", "completed", "unsubscribed", "bounced", "failed"
]
LinkedinAction = Literal["profile_visit", "connection_request", "message", "voice_message"]


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


def _problem(description: str) -> ResponseSpec:
    return ResponseSpec(
        data_container=Problem,
        description=description,
        media_type=PROBLEM_JSON,
        generate_examples=False,
    )


_PROBLEMS: dict[int, ResponseSpec] = {
    400: _problem("A query parameter or body field is not valid; `field` names it"),
    401: _problem("No valid API key (`Authorization: Bearer …` or `X-API-Key`)"),
    404: _problem("Nothing with that id"),
    409: _problem("The change contradicts the current state; `detail` says why"),
    503: _problem("The database is unreachable or overloaded; retry after `Retry-After` seconds"),
}


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """The OpenAPI description of a handler's error answers; every API call may get a 503."""
    return {status: _PROBLEMS[status] for status in (*statuses, 503)}


def problem_spec(description: str) -> ResponseSpec:
    """A problem-JSON answer described for OpenAPI (the webhook's own statuses)."""
    return _problem(description)


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
    action_type: LinkedinAction
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
    """A page of instances, newest first; pass `next_cursor` as `cursor` (null: no more now)."""

    items: list[Instance]
    next_cursor: str | None


class HumanUnique(msgspec.Struct, frozen=True, kw_only=True):
    """Enrollments a person (not a proxy or a scanner) engaged in."""

    opened: int
    """With an unflagged open, or any open when the enrollment clicked unflagged or replied."""
    clicked: int
    """With an unflagged click."""


class HumanEngagement(msgspec.Struct, frozen=True, kw_only=True):
    """Human opens and clicks (events without `metadata.machine`) and their rates."""

    unique: HumanUnique
    email_reach: int
    """Enrollments with at least one e-mail `sent`, `delivered` or `bounced` event."""
    human_open_rate: float | None
    """`unique.opened` / `email_reach`; null when the reach is 0."""
    human_click_rate: float | None
    """`unique.clicked` / `email_reach`; null when the reach is 0."""


class Rates(msgspec.Struct, frozen=True, kw_only=True):
    """Unique counts over their channel's reach (`rate_definitions` names each); null at 0.

    E-mail rates count e-mail events only, over the enrollments with at least
    one e-mail `sent`, `delivered` or `bounced` event, so that a provider
    reporting no `sent` (Postmark) still has rates; `connection_accept_rate`
    is over `connection_requested`.
    """

    delivery_rate: float | None
    open_rate: float | None
    click_rate: float | None
    reply_rate: float | None
    bounce_rate: float | None
    unsubscribe_rate: float | None
    connection_accept_rate: float | None
    human_open_rate: float | None
    """`human.unique.opened` over the e-mail reach (`human.email_reach`)."""
    human_click_rate: float | None
    """`human.unique.clicked` over the e-mail reach (`human.email_reach`)."""


class Reach(msgspec.Struct, frozen=True, kw_only=True):
    """Each channel's reach: the denominators of the rates."""

    email: int
    """Enrollments with at least one e-mail `sent`, `delivered` or `bounced` event."""
    linkedin: int
    """Enrollments with at least one `connection_requested` event."""


class CountRule(msgspec.Struct, frozen=True, kw_only=True):
    """Enrollments with at least one event of `channel` whose type is one of `event_types`."""

    channel: Channel
    event_types: list[str]
    human: bool = False
    """Only events no privacy proxy or scanner made (an open also counts when the
    enrollment clicked unflagged or replied; contract §8)."""


class RateDefinition(msgspec.Struct, frozen=True, kw_only=True):
    """What one rate divides: both counts are of distinct enrollments."""

    numerator: CountRule
    denominator: CountRule
    description: str


class ChannelCounts(msgspec.Struct, frozen=True, kw_only=True):
    """Events per type on one channel, enrollments with at least one of each type, rates."""

    channel: Channel
    totals: dict[str, int]
    unique: dict[str, int]
    rates: Rates


class StepCounts(msgspec.Struct, frozen=True, kw_only=True):
    """One sequence step's funnel; `step_number` is null for events without a step.

    Its rates are over the step's own reach (e-mail sent, delivered or
    bounced at this step; connections requested at this step).
    """

    channel: Channel
    step_number: int | None
    totals: dict[str, int]
    unique: dict[str, int]
    rates: Rates
    human: HumanEngagement | None
    """E-mail steps only (null on LinkedIn steps)."""


class ProviderTotals(msgspec.Struct, frozen=True, kw_only=True):
    """Events per type that came through one provider, and rates over its own reach."""

    provider: Provider
    totals: dict[str, int]
    unique: dict[str, int]
    rates: Rates


class DayTotals(msgspec.Struct, frozen=True, kw_only=True):
    """Events per type on one day of the answer's time zone (`tz`)."""

    day: date
    totals: dict[str, int]
    human: HumanEngagement
    """Human engagement, and the e-mail reach, among that day's events."""


class Performance(msgspec.Struct, frozen=True, kw_only=True):
    """How an instance performs, over all time or over [from, to)."""

    instance_id: UUID
    from_: datetime | None = msgspec.field(name="from")
    to: datetime | None
    tz: str
    """The IANA time zone of `daily` and of dates given as `from`/`to`."""
    enrolled: int
    """Enrollments of the instance (with a range: those enrolled in it)."""
    totals: dict[str, int]
    """Events per type."""
    unique: dict[str, int]
    """Enrollments with at least one event of each type (either channel)."""
    reach: Reach
    rates: Rates
    rate_definitions: dict[str, RateDefinition]
    human: HumanEngagement
    """What people did: opens and clicks without a machine flag (contract §8)."""
    by_channel: list[ChannelCounts]
    by_provider: list[ProviderTotals]
    by_step: list[StepCounts]
    daily: list[DayTotals]


class SilentProvider(msgspec.Struct, frozen=True, kw_only=True):
    """An active instance's provider that has sent no event for longer than allowed."""

    kind: Literal["silent_provider"] = "silent_provider"
    instance_id: UUID
    instance_name: str
    provider: Provider
    silent_since: datetime
    """The provider's last event for the instance, or when the instance started."""
    last_event_at: datetime | None
    """Null when the provider never sent an event for the instance."""
    silence_after_hours: float
    """The instance's `settings.silence_after_hours` (24 when unset)."""


class AlertList(msgspec.Struct, frozen=True, kw_only=True):
    """Everything that needs a look now, longest silence first."""

    items: list[SilentProvider]


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
    campaign_key: str | None
    """The provider's campaign key (lemlist campaignId, Postmark Tag, PhantomBuster agentId)."""
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


#: The most events `GET /api/deliveries/{id}` lists; `/api/events?delivery_id=` pages the rest.
DELIVERY_EVENTS_SHOWN = 1000


class DeliveryDetail(Delivery, frozen=True, kw_only=True, omit_defaults=True):
    """One stored delivery with its body and the events it wrote.

    Exactly one of `body` (the body when it is JSON) and `body_base64` (when it
    is not) is present. Configured secrets are masked in the body, headers and
    query, wherever they appear.
    """

    body: Any | UnsetType = UNSET
    """The body as JSON, when it parses."""
    body_base64: str | UnsetType = UNSET
    """The exact body bytes, base64, when they are not JSON."""
    body_truncated: bool
    """Only a prefix was kept (the body was over the size limit)."""
    events: list[Event]
    """The events this delivery wrote, in (timestamp, id) order, at most 1000."""
    events_total: int
    """How many events it wrote; page them with `/api/events?delivery_id=`."""


class Reprocessed(msgspec.Struct, frozen=True, kw_only=True):
    """What normalizing a stored delivery again did; a second call changes nothing."""

    delivery: Delivery
    """The delivery with its outcome after reprocessing."""
    before: DeliveryStatus
    """Its status before."""
    changed: bool
    """Whether its stored outcome changed."""
    new_events: int
    events_attached: int
    """Events of it that were unmatched and now have their enrollment."""


class UnmatchedKey(msgspec.Struct, frozen=True, kw_only=True):
    """A provider campaign key whose events no campaign instance claims yet."""

    provider: Provider
    campaign_key: str | None
    """Null: events whose provider named no campaign (a Postmark message without a Tag)."""
    events: int
    deliveries: int
    """The stored deliveries that wrote them (what an attach reprocesses)."""
    first_event_at: datetime
    last_event_at: datetime


class UnmatchedList(msgspec.Struct, frozen=True, kw_only=True):
    """Unmatched campaign keys, the most recently active first."""

    items: list[UnmatchedKey]


class Enrollment(msgspec.Struct, frozen=True, kw_only=True):
    """One contact in an instance, with where it stands in the sequence."""

    id: UUID
    instance_id: UUID
    contact_id: str | None
    contact_email: str | None
    linkedin_url: str | None
    status: EnrollmentStatus
    current_step: int
    next_action_at: datetime | None
    metadata: dict[str, Any]
    """Personalization variables."""
    provider_config: dict[str, Any]
    """The instance's `provider_config` when the contact was enrolled."""
    enrolled_at: datetime
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class EnrollmentPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of enrollments in (enrolled_at, id) order; pass `next_cursor` as `cursor`."""

    items: list[Enrollment]
    next_cursor: str | None


# Request bodies of the management API.

INT4_MAX = 2**31 - 1
#: The deepest a free-form JSON object (`settings`, `provider_config`,
#: `metadata`) may nest. Anything stored must read back: a value nested
#: close to the interpreter's recursion limit would decode when written and
#: fail on every later read.
MAX_JSON_DEPTH = 32


def json_depth(value: object) -> int:
    """How deep a decoded JSON value nests (a scalar is 0, `{}` is 1).

    Walked with a stack, not recursion, so any depth is measured safely.
    """
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[object] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def check_depth(**fields: object) -> None:
    """Refuse a free-form JSON field nested deeper than MAX_JSON_DEPTH (a 400 naming it)."""
    for name, value in fields.items():
        if json_depth(value) > MAX_JSON_DEPTH:
            raise ValueError(f"`{name}` is nested deeper than {MAX_JSON_DEPTH} levels")


#: The most contacts one enrollment request takes.
MAX_CONTACTS = 1000
#: The most steps a sequence holds.
MAX_STEPS = 1000

Name = Annotated[str, Meta(min_length=1, max_length=500, pattern=r"\S")]
StepNumber = Annotated[int, Meta(ge=1, le=MAX_STEPS)]
DelayHours = Annotated[int, Meta(ge=0, le=INT4_MAX)]
Variant = Annotated[str, Meta(pattern=r"^[A-Z]$", description="A/B variant: one capital letter")]
CampaignKey = Annotated[str, Meta(min_length=1, max_length=1000)]
AgentId = CampaignKey | Annotated[int, Meta(ge=0)]
ProviderConfig = Annotated[
    dict[str, Any],
    Meta(
        description="The instance's providers and their campaign keys: `email_provider`"
        " (lemlist, postmark), `linkedin_provider` (lemlist, phantombuster), and each"
        " provider's campaign key alone or as a list: `lemlist_campaign_id` /"
        " `lemlist_campaign_ids`, `postmark_tag` / `postmark_tags` (e.g. one tag per step),"
        " `phantombuster_agent_id` / `phantombuster_agent_ids`. Other keys are kept as given."
    ),
]


class EmailStepIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One step of an email sequence (one A/B variant of it)."""

    step_number: StepNumber
    subject: str
    body_template: str
    delay_hours: DelayHours = 0
    a_b_variant: Variant | None = None
    is_active: bool = True


class LinkedinStepIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One step of a LinkedIn sequence."""

    step_number: StepNumber
    action_type: LinkedinAction
    message_template: str | None = None
    delay_hours: DelayHours = 0
    fallback_channel: Channel | None = None


class TemplateIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A template with its whole sequences: the body of POST, and of PUT, which replaces all."""

    name: Name
    type: TemplateType
    description: str | None = None
    path_type: PathType = "structured"
    settings: dict[str, Any] = {}
    is_active: bool = True
    created_by: str | None = None
    email_sequences: Annotated[list[EmailStepIn], Meta(max_length=MAX_STEPS)] = []
    linkedin_sequences: Annotated[list[LinkedinStepIn], Meta(max_length=MAX_STEPS)] = []

    def __post_init__(self) -> None:
        check_depth(settings=self.settings)


class ProviderKeys(msgspec.Struct, frozen=True, kw_only=True):
    """The keys of `provider_config` the gateway reads, typed; other keys pass through."""

    email_provider: Literal["lemlist", "postmark"] | UnsetType = UNSET
    linkedin_provider: Literal["lemlist", "phantombuster"] | UnsetType = UNSET
    lemlist_campaign_id: CampaignKey | UnsetType = UNSET
    lemlist_campaign_ids: list[CampaignKey] | UnsetType = UNSET
    postmark_tag: CampaignKey | UnsetType = UNSET
    postmark_tags: list[CampaignKey] | UnsetType = UNSET
    phantombuster_agent_id: AgentId | UnsetType = UNSET
    phantombuster_agent_ids: list[AgentId] | UnsetType = UNSET

    def campaign_keys(self) -> list[tuple[Provider, str]]:
        """(provider, key) pairs that attach webhooks, as ingestion compares them (text).

        Each provider's key alone and its list together, once each: what
        `config_campaign_keys()` (gateway/db/functions.sql) reads.
        """
        given: list[tuple[Provider, str | int | UnsetType, list[str] | list[AgentId] | UnsetType]]
        given = [
            ("lemlist", self.lemlist_campaign_id, self.lemlist_campaign_ids),
            ("postmark", self.postmark_tag, self.postmark_tags),
            ("phantombuster", self.phantombuster_agent_id, self.phantombuster_agent_ids),
        ]
        keys: dict[tuple[Provider, str], None] = {}
        for provider, one, many in given:
            values = ([] if one is UNSET else [one]) + ([] if many is UNSET else list(many))
            keys.update(dict.fromkeys((provider, str(value)) for value in values))
        return list(keys)


class InstanceIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A new instance of a template; `active` starts it at once."""

    template_id: UUID
    name: Name
    status: Literal["draft", "active"] = "draft"
    provider_config: ProviderConfig = {}
    settings: dict[str, Any] = {}

    def __post_init__(self) -> None:
        check_depth(provider_config=self.provider_config, settings=self.settings)


class InstancePatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What to change in an instance; absent fields stay.

    `provider_config` and `settings` are merged key by key (a null value
    removes the key), so that switching providers keeps the old provider's
    campaign key, and with it the events of the contacts enrolled before.
    """

    name: Name | UnsetType = UNSET
    status: InstanceStatus | UnsetType = UNSET
    provider_config: ProviderConfig | UnsetType = UNSET
    settings: dict[str, Any] | UnsetType = UNSET

    def __post_init__(self) -> None:
        check_depth(provider_config=self.provider_config, settings=self.settings)


class Attach(msgspec.Struct, frozen=True, kw_only=True):
    """Unmatched events attached after a mapping change, by reprocessing their deliveries."""

    deliveries: int
    """Deliveries reprocessed."""
    events_attached: int
    remaining: int
    """Events with the instance's campaign keys still unmatched (beyond this request's bound,
    or whose raw delivery was purged); `POST …/attach` goes on with them."""
    error: str | None = None


class InstanceWritten(Instance, frozen=True, kw_only=True):
    """The instance after a write; `attach` says what a mapping change attached (null: none)."""

    attach: Attach | None


Email = Annotated[str, Meta(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
LinkedinUrl = Annotated[
    str, Meta(max_length=2000, pattern=r"(?i)linkedin\.com/", description="A LinkedIn profile URL")
]


class ContactIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A contact to enroll: an email and/or a LinkedIn URL, and personalization variables."""

    email: Email | None = None
    linkedin_url: LinkedinUrl | None = None
    contact_id: Annotated[str, Meta(max_length=500)] | None = None
    """The contact's id in your CRM, kept as given."""
    metadata: dict[str, Any] = {}

    def __post_init__(self) -> None:
        check_depth(metadata=self.metadata)


class EnrollIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Contacts to enroll, at most 1000 per request."""

    contacts: Annotated[list[ContactIn], Meta(min_length=1, max_length=MAX_CONTACTS)]


class Enrolled(msgspec.Struct, frozen=True, kw_only=True):
    """The enrollment a contact of the request has, new or found."""

    id: UUID
    contact_email: str | None
    linkedin_url: str | None
    created: bool
    """False: the contact was enrolled already (same email, any case, or LinkedIn profile)."""


class EnrollResult(msgspec.Struct, frozen=True, kw_only=True):
    """Per contact of the request, in its order: the enrollment; and how many were new."""

    created: int
    existing: int
    items: list[Enrolled]

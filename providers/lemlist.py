"""lemlist activity webhooks: one activity object per request, email or LinkedIn.

lemlist `type` -> channel / event_type:

- emailsSent, emailsOpened, emailsClicked, emailsReplied, emailsUnsubscribed -> email /
  sent, opened, clicked, replied, unsubscribed
- emailsBounced -> email / bounced, always bounce_class hard: lemlist gives no class, and
  the contract counts its bounces as hard (they end the enrollment)
- emailsFailed, emailsSendFailed -> email / failed
- linkedinVisitDone, linkedinInviteDone, linkedinInviteAccepted -> linkedin /
  profile_visited, connection_requested, connection_accepted
- linkedinSent, linkedinVoiceNoteDone, linkedinReplied -> linkedin / message_sent,
  voice_message_sent, replied
- linkedinVisitFailed, linkedinInviteFailed, linkedinSendFailed,
  linkedinVoiceNoteFailed -> linkedin / failed

Every other type (lead-state groups, interest marks, other LinkedIn actions, WhatsApp,
SMS, calls, API and manual steps, workspace events) is ignored. The key is the activity
`_id`; without one, `{type}:{leadId or lower(leadEmail)}:{campaignId}:{stepId or
sequenceStep}:{createdAt}`. The body's `secret` is never read.

Integrations report other spellings of some fields; each is read only where the
documented field is absent or empty, so no body that parsed before changes its key:

- the lead's e-mail: `leadEmail`, else `email` (the lead variable of lemlist's activities,
  which receivers fall back on); also in the key fallback, after `leadEmail`
- the clicked link: `linkUrl`, else `clickedUrl` or `url` (emailsClicked only)
- the bounce text: `bounceReason`, else `reason`
- the failure text (`metadata.error`, failure types only): `errorMessage`, else `reason`
- the reply text: `messagePreview`, else `text` or `bodyText` (reply types only)

A differently spelled field of another JSON type is left out, never a 400.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

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
    key_part,
    parse_timestamp,
    view,
)
from providers.vocabulary import Channel, EventType, Provider

if TYPE_CHECKING:
    from collections.abc import Mapping

PROVIDER: Final[Provider] = "lemlist"

_EVENTS: dict[str, tuple[Channel, EventType]] = {
    "emailsSent": ("email", "sent"),
    "emailsOpened": ("email", "opened"),
    "emailsClicked": ("email", "clicked"),
    "emailsReplied": ("email", "replied"),
    "emailsBounced": ("email", "bounced"),
    "emailsUnsubscribed": ("email", "unsubscribed"),
    "emailsFailed": ("email", "failed"),
    "emailsSendFailed": ("email", "failed"),
    "linkedinVisitDone": ("linkedin", "profile_visited"),
    "linkedinInviteDone": ("linkedin", "connection_requested"),
    "linkedinInviteAccepted": ("linkedin", "connection_accepted"),
    "linkedinSent": ("linkedin", "message_sent"),
    "linkedinVoiceNoteDone": ("linkedin", "voice_message_sent"),
    "linkedinReplied": ("linkedin", "replied"),
    "linkedinVisitFailed": ("linkedin", "failed"),
    "linkedinInviteFailed": ("linkedin", "failed"),
    "linkedinSendFailed": ("linkedin", "failed"),
    "linkedinVoiceNoteFailed": ("linkedin", "failed"),
}

_FAILED_ACTIONS: dict[str, str] = {
    "emailsFailed": "send",
    "emailsSendFailed": "send",
    "linkedinVisitFailed": "visit",
    "linkedinInviteFailed": "connect",
    "linkedinSendFailed": "message",
    "linkedinVoiceNoteFailed": "voice_message",
}
"""Which outreach action a failure type reports, in the vocabulary PhantomBuster rows use."""

_BOUNCE_CLASS: BounceClass = "hard"
"""lemlist gives no bounce class; the contract counts `emailsBounced` as a hard bounce."""

_LEAD_STATE_GROUPS = frozenset(
    {"contacted", "hooked", "attracted", "warmed", "interested", "notInterested"}
)


class _Activity(msgspec.Struct, frozen=True):
    """The fields of a lemlist activity that the gateway reads."""

    activity_id: str | None = msgspec.field(default=None, name="_id")
    type: str | None = None
    createdAt: str | None = None
    isFirst: object = None
    leadId: str | None = None
    leadEmail: str | None = None
    linkedinUrl: str | None = None
    campaignId: str | None = None
    campaignName: object = None
    sequenceId: object = None
    sequenceStep: int | str | None = None
    stepId: str | None = None
    sequenceTested: object = None
    stepTested: object = None
    emailId: object = None
    emailTemplateId: object = None
    subject: object = None
    linkUrl: object = None
    bounceReason: object = None
    messagePreview: object = None
    sendUserEmail: object = None
    # Other spellings integrations report (module docstring); any JSON type is accepted.
    email: object = None
    clickedUrl: object = None
    url: object = None
    reason: object = None
    errorMessage: object = None
    text: object = None
    bodyText: object = None


def parse(body: bytes, headers: Mapping[str, str]) -> Parsed:
    """Normalize one lemlist webhook delivery."""
    activity = view(decode_object(body), _Activity)
    if activity.type is None:
        raise ProviderError("$.type", "missing")
    mapped = _EVENTS.get(activity.type)
    if mapped is None:
        if activity.type in _LEAD_STATE_GROUPS:
            return Parsed(
                ignored=f"lemlist lead-state group {brief(activity.type)}:"
                " its activities arrive as their own types"
            )
        return Parsed(ignored=f"lemlist type {brief(activity.type)} is not a campaign event")
    channel, event_type = mapped
    url = clean_text(activity.linkedinUrl)
    step = as_int(activity.sequenceStep)
    return Parsed(
        events=[
            NormalizedEvent(
                provider=PROVIDER,
                provider_event_id=_key(activity),
                channel=channel,
                event_type=event_type,
                occurred_at=parse_timestamp(activity.createdAt, "$.createdAt"),
                metadata=build_metadata(
                    lemlist_type=clean_text(activity.type),
                    is_first=as_bool(activity.isFirst),
                    lead_id=clean_text(activity.leadId),
                    campaign_id=clean_text(activity.campaignId),
                    campaign_name=clean_text(activity.campaignName),
                    sequence_id=clean_text(activity.sequenceId),
                    step=step,
                    step_id=clean_text(activity.stepId),
                    variant=clean_text(activity.sequenceTested) or clean_text(activity.stepTested),
                    email_id=clean_text(activity.emailId),
                    email_template_id=clean_text(activity.emailTemplateId),
                    subject=clean_text(activity.subject),
                    url=_link(activity, event_type),
                    bounce_class=_BOUNCE_CLASS if event_type == "bounced" else None,
                    bounce_reason=_first(activity.bounceReason, activity.reason)
                    if event_type == "bounced"
                    else clean_text(activity.bounceReason),
                    reply_preview=_first(activity.messagePreview, activity.text, activity.bodyText)
                    if event_type == "replied"
                    else clean_text(activity.messagePreview),
                    error=_first(activity.errorMessage, activity.reason)
                    if event_type == "failed"
                    else None,
                    send_user_email=clean_text(activity.sendUserEmail),
                    failed_action=_FAILED_ACTIONS.get(activity.type),
                ),
                campaign_key=clean_text(activity.campaignId),
                contact_email=_lead_email(activity),
                linkedin_urls=(url,) if url else (),
                step_number=step,
            )
        ]
    )


def _first(*values: object) -> str | None:
    """The first value that is a non-empty string: a field, then its other spellings."""
    for value in values:
        text = clean_text(value)
        if text is not None:
            return text
    return None


def _lead_email(activity: _Activity) -> str | None:
    """`leadEmail`, else the lead variable `email`."""
    return _first(activity.leadEmail, activity.email)


def _link(activity: _Activity, event_type: EventType) -> str | None:
    """The clicked link: `linkUrl` on any type, its other spellings on a click only."""
    if event_type == "clicked":
        return _first(activity.linkUrl, activity.clickedUrl, activity.url)
    return clean_text(activity.linkUrl)


def _key(activity: _Activity) -> str:
    """The activity id; lemlist resends it with the activity, so it is retry-stable."""
    activity_id = key_part(activity.activity_id)
    if activity_id is not None:
        return bounded_key(activity_id)
    email = activity.leadEmail.lower() if activity.leadEmail else None
    if email is None and isinstance(activity.email, str):
        email = activity.email.lower()  # only where `leadEmail` gave nothing: no old key moves
    lead = key_part(activity.leadId) or key_part(email)
    created_at = key_part(activity.createdAt)
    if lead is None or created_at is None:
        raise ProviderError(
            "$._id",
            "missing, and no createdAt with leadId or leadEmail (or email) to key the activity on",
        )
    step = key_part(activity.stepId) or key_part(activity.sequenceStep) or ""
    campaign = key_part(activity.campaignId) or ""
    return bounded_key(f"{activity.type}:{lead}:{campaign}:{step}:{created_at}")

"""The gateway's normalized vocabulary, declared once: providers, channels, event types.

Everything else derives from these Literals: `NormalizedEvent` (so mypy checks
what each parser writes), the API's schemas and with them the OpenAPI enums,
the command line's choices and the per-provider settings. The schema's CHECK
constraints say the same in SQL (migrations 0001, 0002, 0007);
tests/integration/test_vocabulary.py holds them to these declarations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, get_args

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
EventType = Literal[EmailEventType, LinkedinEventType]
"""Every event type once (`replied` and `failed` exist on both channels): e-mail's, then
LinkedIn's others. One flat enum, where a union of the two would make OpenAPI's `oneOf`
refuse the shared ones."""

PROVIDERS: Final[tuple[Provider, ...]] = get_args(Provider)
CHANNELS: Final[tuple[Channel, ...]] = get_args(Channel)
EVENT_TYPES: Final[Mapping[Channel, frozenset[EventType]]] = {
    "email": frozenset(get_args(EmailEventType)),
    "linkedin": frozenset(get_args(LinkedinEventType)),
}
"""Which event types each channel has (`ck_campaign_events_type`)."""

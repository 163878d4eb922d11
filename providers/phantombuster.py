"""PhantomBuster end-of-run webhooks: one event per profile row of the result, channel `linkedin`.

Script slug contains -> action: row without error / row with `error` or `fatalError`:

- autoconnect, networkbooster -> connect: connection_requested / failed
- profilevisitor, profilescraper -> visit: profile_visited / failed (also a bare
  `{baseUrl}` row, the legacy record of a profile that could not be visited)
- messagesender -> message: message_sent / failed

The slug is compared lower-cased, without `.js` and without anything but `[a-z0-9]`.
A row's key is `{agentId}:{action}:{profile}:{timestamp}` (`{agentId}:{action}:error:...`
for failures), where `profile` is the normalized first profile URL and `:{timestamp}` is
left out when the row has none. Neither containerId nor the row index is part of it:
result objects can repeat earlier runs' rows, which must keep their keys.

A failed run (exitCode not 0, or exitMessage not "finished") and an unknown script are
ignored. When the webhook does not carry the result rows, `Parsed.fetch` says where the
pipeline can fetch them; it then calls `parse` again with the fetched bytes.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

import msgspec

from providers.base import (
    NormalizedEvent,
    Parsed,
    ProviderError,
    ResultFetch,
    bounded_key,
    brief,
    build_metadata,
    clean_text,
    decode_json,
    decode_object,
    key_part,
    normalize_linkedin_url,
    parse_timestamp,
    view,
)
from providers.vocabulary import LinkedinEventType, Provider

if TYPE_CHECKING:
    from collections.abc import Mapping

PROVIDER: Final[Provider] = "phantombuster"
RESULT_FIELD = "$.resultObject"

_ACTIONS: tuple[tuple[str, str, LinkedinEventType], ...] = (
    ("autoconnect", "connect", "connection_requested"),
    ("networkbooster", "connect", "connection_requested"),
    ("profilevisitor", "visit", "profile_visited"),
    ("profilescraper", "visit", "profile_visited"),
    ("messagesender", "message", "message_sent"),
)
"""(slug fragment, action, event_type) of the LinkedIn phantoms the gateway understands."""
_Action = tuple[str, LinkedinEventType]
"""What a phantom does (connect, visit, message) and the event type of its rows."""

_URL_FIELDS = ("baseUrl", "linkedinProfileUrl", "url", "profileUrl", "linkedinProfile")
"""Row fields holding the profile URL, best first; `general.profileUrl` comes last."""


class _Run(msgspec.Struct, frozen=True):
    """The fields of the end-of-run webhook that the gateway reads."""

    agentId: int | str | None = None
    agentName: object = None
    containerId: int | str | None = None
    script: str | None = None
    exitCode: int | None = None
    exitMessage: str | None = None
    resultObject: Any = None


def parse(body: bytes, headers: Mapping[str, str], fetched: bytes | None = None) -> Parsed:
    """Normalize one PhantomBuster run webhook.

    `fetched` is the result the pipeline fetched after an earlier call asked for it
    (`Parsed.fetch`): a containers/fetch-result-object response or a result file.
    """
    run = view(decode_object(body), _Run)
    agent_id = key_part(run.agentId)
    if agent_id is None:
        raise ProviderError("$.agentId", "missing")
    if run.exitCode not in (None, 0) or run.exitMessage not in (None, "finished"):
        return Parsed(
            ignored=f"run failed: exitCode={brief(run.exitCode)},"
            f" exitMessage={brief(run.exitMessage)}"
        )
    action = _action(run.script)
    if action is None:
        return Parsed(ignored=f"script {brief(run.script)} is not a known LinkedIn phantom")
    container_id = key_part(run.containerId)
    if fetched is not None:
        result = _fetched_result(fetched)
        if result is None:
            return Parsed(ignored="empty result object")
    else:
        result = _result_value(run.resultObject)
        if result is None:
            if container_id is None:
                return Parsed(ignored="no result object and no containerId to fetch it")
            return Parsed(fetch=ResultFetch(container_id=container_id))
    match result:
        case list():
            rows = result
        case {"jsonUrl": str(json_url)} if clean_text(json_url):
            return Parsed(
                fetch=ResultFetch(container_id=container_id, json_url=clean_text(json_url))
            )
        case dict() if _profiles(result):
            rows = [result]
        case dict():
            return Parsed(ignored="result object holds no profile rows")
        case _:
            raise ProviderError(
                RESULT_FIELD, f"expected rows or an object, got {type(result).__name__}"
            )
    return _events(rows, run, agent_id, container_id, action)


def _action(script: str | None) -> _Action | None:
    """(action, event_type) of the phantom that ran, from its script slug."""
    if script is None:
        return None
    slug = re.sub(r"[^a-z0-9]", "", script.lower().removesuffix(".js"))
    for fragment, action, event_type in _ACTIONS:
        if fragment in slug:
            return action, event_type
    return None


def _result_value(value: Any) -> Any:
    """The result object's value: JSON text is decoded; None when there is none."""
    if isinstance(value, str):
        if not value.strip():
            return None
        value = decode_json(value, RESULT_FIELD, "resultObject")
    return None if value is None or value == "" else value


def _fetched_result(fetched: bytes) -> Any:
    """A fetch-result-object response's `resultObject`, or a result file's content."""
    value = decode_json(fetched, RESULT_FIELD, "fetched result")
    if isinstance(value, dict) and "resultObject" in value:
        value = value["resultObject"]
    return _result_value(value)


def _events(
    rows: list[Any],
    run: _Run,
    agent_id: str,
    container_id: str | None,
    action: _Action,
) -> Parsed:
    """One event per row with a profile URL; a row repeated in one result counts once."""
    events: dict[str, NormalizedEvent] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            continue
        profiles = _profiles(row)
        if profiles:
            event = _row_event(row, index, profiles, run, agent_id, container_id, action)
            events.setdefault(event.provider_event_id, event)
    if not events:
        return Parsed(ignored="no result rows with a LinkedIn profile URL")
    return Parsed(events=list(events.values()))


def _row_event(
    row: dict[str, Any],
    index: int,
    profiles: list[tuple[str, str]],
    run: _Run,
    agent_id: str,
    container_id: str | None,
    action: _Action,
) -> NormalizedEvent:
    action_name, event_type = action
    error = clean_text(row.get("error")) or clean_text(row.get("fatalError"))
    if error is None and action_name == "visit" and _bare_base_url(row):
        error = "profile not visited"
    timestamp = row.get("timestamp")
    try:
        occurred_at = parse_timestamp(timestamp, f"{RESULT_FIELD}[{index}].timestamp")
    except ProviderError:
        # One odd row must not reject the run: the receive time stands in for it.
        occurred_at = None
    first_url, profile_key = profiles[0]
    parts = [agent_id, action_name, *(["error"] if error else []), profile_key]
    # The row's time as it gave it (not reformatted), so the key stays recomputable.
    stamp = key_part(timestamp) if isinstance(timestamp, str | int | float) else None
    if stamp is not None:
        parts.append(stamp)
    return NormalizedEvent(
        provider=PROVIDER,
        provider_event_id=bounded_key(":".join(parts)),
        channel="linkedin",
        event_type="failed" if error else event_type,
        occurred_at=occurred_at,
        metadata=build_metadata(
            container_id=container_id,
            agent_name=clean_text(run.agentName),
            script=clean_text(run.script),
            action=action_name,
            profile_url=first_url,
            first_name=clean_text(row.get("firstName")),
            message=clean_text(row.get("message")),
            error=error,
        ),
        campaign_key=agent_id,
        linkedin_urls=tuple(url for url, _ in profiles),
    )


def _profiles(row: dict[str, Any]) -> list[tuple[str, str]]:
    """Every distinct profile URL of a row with its comparison key, best first."""
    candidates = [row.get(field) for field in _URL_FIELDS]
    general = row.get("general")
    if isinstance(general, dict):
        candidates.append(general.get("profileUrl"))
    profiles: list[tuple[str, str]] = []
    for candidate in candidates:
        url = clean_text(candidate)
        key = normalize_linkedin_url(url) if url is not None else None
        if url is not None and key is not None and all(url != seen for seen, _ in profiles):
            profiles.append((url, key))
    return profiles


def _bare_base_url(row: dict[str, Any]) -> bool:
    """The legacy Profile Scraper saves a profile it could not visit as `{baseUrl}` alone."""
    return all(field == "baseUrl" or value in (None, "") for field, value in row.items())

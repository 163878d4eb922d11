"""Machine opens and clicks: which `opened`/`clicked` events a proxy or a scanner made.

Apple Mail Privacy Protection fetches every image of a message when it reaches
the mailbox, and corporate security gateways click every link before the
recipient sees it. Such an event is kept and counted as before, but carries
`metadata.machine = {"kind", "rule", "rule_version"}`; the performance answer
counts `human` engagement without it. Every rule has an id and a version
(`RULES`, and docs/providers.md, "Human engagement", with the sources).

- **Static rules** read one event alone (its user agent and address). They run
  where events are normalized (`StaticRules.apply`), so the flag is written with
  the event. The address lists are loaded once, at startup; nothing is fetched
  at ingest.
- **Dynamic rules** read the other e-mail events of the same enrollment (the
  send or delivery of the same message, other clicks). `classify` is their one
  definition: a pure function of the SET of an enrollment's e-mail events,
  whatever order they arrived in. The write path applies the same rules in SQL
  when later events arrive; this function is its test oracle.
- **Human.** An unflagged open or click is human; an open also counts as human
  when the enrollment clicked unflagged or replied by e-mail (`human`). That
  upgrade is applied when counting, never written: the flag stays the
  evidence of what fetched the pixel.

Nothing here does I/O except `load_static_rules`, which reads the shipped and
refreshed address lists once.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple

import msgspec

from providers.base import NormalizedEvent

Kind = Literal["privacy_proxy", "scanner"]


class Machine(msgspec.Struct, frozen=True, kw_only=True):
    """`metadata.machine`: what most likely made the event, and by which rule."""

    kind: Kind
    rule: str
    rule_version: int

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "rule": self.rule, "rule_version": self.rule_version}


class Rule(NamedTuple):
    """One rule: its id and version (written into every flag it makes) and where it runs."""

    id: str
    version: int
    static: bool
    """True: reads one event alone, applied at normalization; False: needs its neighbours."""


APPLE_NETWORK = Rule("apple_mpp_network", 1, static=True)
"""An open from Apple's own network or an iCloud Private Relay egress range."""
APPLE_USER_AGENT = Rule("apple_mpp_user_agent", 1, static=True)
"""An open whose user agent is exactly `Mozilla/5.0`, the generic one of Apple's proxy."""
SCANNER_USER_AGENT = Rule("scanner_user_agent", 1, static=True)
"""An open or click by a known security scanner or an HTTP library, by its user agent."""
SCANNER_NETWORK = Rule("scanner_network", 1, static=True)
"""A click from a security vendor's published mail-gateway network."""
SOON_AFTER_SEND = Rule("soon_after_send", 1, static=False)
"""An open or click within SEND_WINDOW of the same message's `sent` or `delivered`."""
CLICK_AFTER_MACHINE_OPEN = Rule("click_after_machine_open", 1, static=False)
"""A click within MACHINE_OPEN_WINDOW after a flagged open of the same message."""
LINKS_AT_ONCE = Rule("links_at_once", 1, static=False)
"""A click within LINKS_WINDOW of a click on another link of the same message."""
CLICK_BURST = Rule("click_burst", 1, static=False)
"""A click with BURST_LINKS distinct links clicked within BURST_WINDOW of it."""

RULES: Final[dict[str, Rule]] = {
    rule.id: rule
    for rule in (
        APPLE_NETWORK,
        APPLE_USER_AGENT,
        SCANNER_USER_AGENT,
        SCANNER_NETWORK,
        SOON_AFTER_SEND,
        CLICK_AFTER_MACHINE_OPEN,
        LINKS_AT_ONCE,
        CLICK_BURST,
    )
}
STATIC_RULE_IDS: Final = frozenset(rule.id for rule in RULES.values() if rule.static)

#: lemlist's own bot rule: "an email open is flagged as bot activity if it occurs within
#: 5 seconds of sending the email"; the gateway applies it to deliveries too.
SEND_WINDOW: Final = timedelta(seconds=5)
#: lemlist's second rule: a click within 9 s of an open detected as a bot.
MACHINE_OPEN_WINDOW: Final = timedelta(seconds=9)
#: Two different links of one message clicked within a second: no person is that fast.
LINKS_WINDOW: Final = timedelta(seconds=1)
BURST_WINDOW: Final = timedelta(seconds=2)
BURST_LINKS: Final = 3

APPLE_PROXY_USER_AGENT: Final = "Mozilla/5.0"

#: Lower-case fragments of user agents that no person's mail client or browser sends:
#: security gateways that fetch links and images, and HTTP libraries and headless
#: browsers that scanners are built on. docs/providers.md "Human engagement" gives the sources.
SCANNER_USER_AGENT_TOKENS: Final = (
    "barracuda",
    "mimecast",
    "proofpoint",
    "urldefense",
    "safelinks",
    "microsoft office existence discovery",
    "microsoft office protocol discovery",
    "ms-office; msoffice rmj",
    "headlesschrome",
    "phantomjs",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "go-http-client",
    "okhttp",
    "curl/",
    "wget/",
    "java/",
    "libwww-perl",
)
_SCANNER_UA: Final = re.compile("|".join(re.escape(t) for t in SCANNER_USER_AGENT_TOKENS))

_DATA = "data"
APPLE_NETWORKS_FILE: Final = "apple-networks.txt"
"""Apple's own network, shipped in the package (`gateway/data`)."""
SCANNER_NETWORKS_FILE: Final = "scanner-networks.txt"
"""Security vendors' published mail-gateway networks, shipped in the package."""
PRIVATE_RELAY_FILE: Final = "icloud-private-relay-egress.txt"
"""The iCloud Private Relay egress ranges, written under the data dir by `gateway engagement
refresh` (not shipped: docs/providers.md says why)."""


class Networks:
    """A set of IP networks answering `ip in networks` by binary search over merged ranges.

    Built once from CIDR strings; a lookup parses one address and bisects a sorted
    list, so hundreds of thousands of ranges cost the same per event as ten.
    """

    def __init__(self, cidrs: Iterable[str]) -> None:
        spans: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for cidr in cidrs:
            net = ipaddress.ip_network(cidr, strict=False)
            spans[net.version].append((int(net.network_address), int(net.broadcast_address)))
        self._starts: dict[int, list[int]] = {}
        self._ends: dict[int, list[int]] = {}
        self.size = 0
        for version, ranges in spans.items():
            merged: list[tuple[int, int]] = []
            for start, end in sorted(ranges):
                if merged and start <= merged[-1][1] + 1:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], end))
                else:
                    merged.append((start, end))
            self._starts[version] = [s for s, _ in merged]
            self._ends[version] = [e for _, e in merged]
            self.size += len(merged)

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        value = int(ip)
        starts = self._starts[ip.version]
        at = bisect.bisect_right(starts, value) - 1
        return at >= 0 and value <= self._ends[ip.version][at]


def read_cidrs(text: str) -> list[str]:
    """The networks of a list file: one CIDR a line (first comma-separated field); `#` comments."""
    cidrs = []
    for line in text.splitlines():
        field = line.split("#", 1)[0].split(",", 1)[0].strip()
        if field:
            cidrs.append(field)
    return cidrs


class StaticRules:
    """The rules that read one event alone, with the address lists they need."""

    def __init__(self, apple: Networks, scanners: Networks) -> None:
        self.apple = apple
        self.scanners = scanners

    def flag(self, event_type: str, metadata: Mapping[str, Any]) -> Machine | None:
        """The machine flag of one open or click, or None (human as far as it alone shows)."""
        if event_type not in ("opened", "clicked"):
            return None
        user_agent = metadata.get("user_agent")
        address = metadata.get("geo_ip")
        ua = user_agent.strip() if isinstance(user_agent, str) else ""
        if event_type == "opened":
            # Private Relay also carries people's own browsing: only an open is the proxy's.
            if address in self.apple:
                return _flag("privacy_proxy", APPLE_NETWORK)
            if ua == APPLE_PROXY_USER_AGENT:
                return _flag("privacy_proxy", APPLE_USER_AGENT)
        if ua and _SCANNER_UA.search(ua.lower()):
            return _flag("scanner", SCANNER_USER_AGENT)
        # Gateways' networks also proxy images on a person's open; only clicks are scans.
        if event_type == "clicked" and address in self.scanners:
            return _flag("scanner", SCANNER_NETWORK)
        return None

    def apply(self, events: Sequence[NormalizedEvent]) -> list[NormalizedEvent]:
        """The events with `metadata.machine` set where a static rule says so.

        A flag the metadata already holds is replaced (a newer rule version on
        reprocess); an event no rule flags loses a static flag it carried.
        """
        flagged = []
        for event in events:
            if event.channel != "email" or event.event_type not in ("opened", "clicked"):
                flagged.append(event)
                continue
            machine = self.flag(event.event_type, event.metadata)
            metadata = {k: v for k, v in event.metadata.items() if k != "machine"}
            if machine is not None:
                metadata["machine"] = machine.as_json()
            flagged.append(msgspec.structs.replace(event, metadata=metadata))
        return flagged


def load_static_rules(data_dir: Path) -> StaticRules:
    """The shipped address lists, plus the Private Relay ranges refreshed under `data_dir`."""
    package = resources.files("gateway") / _DATA
    apple = read_cidrs((package / APPLE_NETWORKS_FILE).read_text())
    refreshed = data_dir / "engagement" / PRIVATE_RELAY_FILE
    if refreshed.is_file():
        apple += read_cidrs(refreshed.read_text())
    scanners = read_cidrs((package / SCANNER_NETWORKS_FILE).read_text())
    return StaticRules(Networks(apple), Networks(scanners))


def static_rules_for(data_dir: Path) -> StaticRules:
    """`load_static_rules`, read again only when the refreshed list changed.

    Every Ingestor and Reprocessor takes its rules from here (the management
    API builds a Reprocessor per request): a refreshed list of several hundred
    thousand ranges is parsed once per change, not once per request.
    """
    refreshed = data_dir / "engagement" / PRIVATE_RELAY_FILE
    try:
        stamp = refreshed.stat().st_mtime_ns
    except OSError:
        stamp = None
    return _cached_rules(data_dir.resolve(), stamp)


@functools.lru_cache(maxsize=4)
def _cached_rules(data_dir: Path, stamp: int | None) -> StaticRules:
    # `stamp` (the refreshed file's mtime) is part of the cache key only.
    return load_static_rules(data_dir)


def _flag(kind: Kind, rule: Rule) -> Machine:
    return Machine(kind=kind, rule=rule.id, rule_version=rule.version)


# --- dynamic rules --------------------------------------------------------------------


class EmailEvent(NamedTuple):
    """One e-mail event of an enrollment, as `campaign_events` holds it."""

    provider_event_id: str
    event_type: str
    timestamp: datetime
    step_number: int | None
    metadata: Mapping[str, Any]


class _Item(NamedTuple):
    key: str
    type: str
    at: datetime
    step: int | None
    message: str | None
    url: str | None
    static: Machine | None


def _item(event: EmailEvent) -> _Item:
    meta = event.metadata
    message = meta.get("message_id") or meta.get("email_id")
    url = meta.get("url")
    return _Item(
        key=event.provider_event_id,
        type=event.event_type,
        at=event.timestamp,
        step=event.step_number,
        message=message if isinstance(message, str) else None,
        url=url if isinstance(url, str) else None,
        static=static_flag(meta),
    )


def static_flag(metadata: Mapping[str, Any]) -> Machine | None:
    """The flag a static rule wrote at normalization; dynamic flags are recomputed, not read."""
    machine = metadata.get("machine")
    if not isinstance(machine, Mapping) or machine.get("rule") not in STATIC_RULE_IDS:
        return None
    try:
        return msgspec.convert(machine, Machine)
    except msgspec.ValidationError:
        return None


def same_message(a: _Item, b: _Item) -> bool:
    """The same message when both name one (MessageID, emailId); else the same step."""
    if a.message is not None and b.message is not None:
        return a.message == b.message
    return a.step == b.step


def _within(a: datetime, b: datetime, window: timedelta) -> bool:
    return abs(a - b) <= window


def classify(events: Iterable[EmailEvent]) -> dict[str, Machine | None]:
    """The machine flag of every open and click of ONE enrollment's e-mail events.

    A pure function of the set of events: any arrival order gives the same
    answer. Static flags found in the metadata are kept; the dynamic rules are
    tried in this order, the first that matches giving the flag:

    1. `soon_after_send`: an open or click at most SEND_WINDOW (5 s) before or
       after a `sent` or `delivered` of the same message (opens:
       privacy_proxy, clicks: scanner);
    2. `click_after_machine_open`: a click 0 to 9 s after an open of the same
       message that is flagged (by a static rule or rule 1);
    3. `links_at_once`: a click at most 1 s from a click on another link
       (different `url`) of the same message;
    4. `click_burst`: at least 3 distinct links (message, url), this click's
       included, clicked by the enrollment within 2 s of this click.

    "The same message": both events name a message (`metadata.message_id`, else
    `metadata.email_id`) and it is the same; when either names none, both have
    the same `step_number` (two missing steps are equal).
    """
    items = [_item(e) for e in events]
    anchors = [i for i in items if i.type in ("sent", "delivered")]
    opens = [i for i in items if i.type == "opened"]
    clicks = [i for i in items if i.type == "clicked"]
    flags: dict[str, Machine | None] = {}
    for item in opens:
        flags[item.key] = item.static or _soon_after_send(item, anchors)
    machine_opens = [o for o in opens if flags[o.key] is not None]
    for item in clicks:
        flags[item.key] = (
            item.static
            or _soon_after_send(item, anchors)
            or _after_machine_open(item, machine_opens)
            or _links_at_once(item, clicks)
            or _burst(item, clicks)
        )
    return flags


def _soon_after_send(item: _Item, anchors: list[_Item]) -> Machine | None:
    if any(same_message(item, a) and _within(item.at, a.at, SEND_WINDOW) for a in anchors):
        return _flag("privacy_proxy" if item.type == "opened" else "scanner", SOON_AFTER_SEND)
    return None


def _after_machine_open(click: _Item, machine_opens: list[_Item]) -> Machine | None:
    for o in machine_opens:
        if same_message(click, o) and timedelta(0) <= click.at - o.at <= MACHINE_OPEN_WINDOW:
            return _flag("scanner", CLICK_AFTER_MACHINE_OPEN)
    return None


def _links_at_once(click: _Item, clicks: list[_Item]) -> Machine | None:
    for other in clicks:
        if (
            other.key != click.key
            and other.url != click.url
            and same_message(click, other)
            and _within(click.at, other.at, LINKS_WINDOW)
        ):
            return _flag("scanner", LINKS_AT_ONCE)
    return None


def _burst(click: _Item, clicks: list[_Item]) -> Machine | None:
    links = {(c.message, c.url) for c in clicks if _within(click.at, c.at, BURST_WINDOW)}
    if len(links) >= BURST_LINKS:
        return _flag("scanner", CLICK_BURST)
    return None


class Human(NamedTuple):
    """Whether a person, not a machine, opened and clicked (one enrollment)."""

    opened: bool
    clicked: bool


def human(events: Iterable[EmailEvent], flags: Mapping[str, Machine | None]) -> Human:
    """The read-time rule of the performance answer, for one enrollment's e-mail events.

    Clicked: an unflagged click. Opened: an unflagged open, or any open when the
    enrollment clicked unflagged or replied (a reply or a person's click shows
    the message was read, whatever fetched the pixel).
    """
    events = list(events)
    clicked = any(
        e.event_type == "clicked" and flags.get(e.provider_event_id) is None for e in events
    )
    replied = any(e.event_type == "replied" for e in events)
    opens = [e for e in events if e.event_type == "opened"]
    opened = any(flags.get(e.provider_event_id) is None for e in opens) or (
        bool(opens) and (clicked or replied)
    )
    return Human(opened=opened, clicked=clicked)

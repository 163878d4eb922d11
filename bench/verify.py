"""Did the gateway store exactly what it acknowledged? Checked after every scenario.

Only the contract's tables and columns are read (webhook_deliveries,
campaign_events, campaign_enrollments, and the total_* counters of
campaign_instances), plus the read API's instance counters, so the checks
hold whatever the write path does inside. Rows created before the scenario
started (the preloaded history) are left out.

A fast run that loses or doubles events is a failure, not a result.
"""

from __future__ import annotations

import re
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import httpx
import psycopg

#: Events one new delivery must write: PhantomBuster runs in mix.lua carry 5 rows.
EVENTS_PER_DELIVERY = {"lemlist": 1, "postmark": 1, "phantombuster": 5}
#: The delivery token mix.lua puts in each provider's id field: (run, thread, n).
TOKEN_PATTERNS = {
    "lemlist": re.compile(r"act_(\d{4})(\d{4})(\d{9})"),
    "postmark": re.compile(r"(\d{8})-(\d{4})-4000-a000-(\d{12})"),
    "phantombuster": re.compile(r"(\d{4})(\d{4})(\d{9})"),
}
NEW = ("processed", "unmatched")
Token = tuple[int, int, int]


@dataclass
class WrkRun:
    """One wrk run's summary (written by mix.lua's done()) and its acknowledgements."""

    run: int
    summary: dict[str, Any]
    acks: list[tuple[str, str, int]]
    """(delivery_id, status, events) of every 200 answer."""

    def total(self, section: str) -> Counter[str]:
        """A per-thread counter section of the summary, summed over threads."""
        counts: Counter[str] = Counter()
        for thread in self.summary["threads"].values():
            counts.update({k: int(v) for k, v in (thread.get(section) or {}).items()})
        return counts

    def generated(self) -> dict[int, int]:
        """New deliveries generated per thread: tokens 1..n were sent (or were about to be)."""
        return {
            int(tid): sum(int(v) for v in thread["generated"].values())
            for tid, thread in self.summary["threads"].items()
        }

    @property
    def seconds(self) -> float:
        return float(self.summary["duration_us"]) / 1e6

    def errors(self) -> Counter[str]:
        """Socket errors (connect, read, write, timeout) as wrk counts them."""
        errs = self.summary.get("errors") or {}
        return Counter({k: int(v) for k, v in errs.items() if k != "status" and int(v)})

    def latency_ms(self, percentile: str) -> float:
        return float(self.summary["latency_us"]["percentiles"][percentile]) / 1000

    @property
    def deliveries_per_s(self) -> float:
        """200 answers per second (sent only after COMMIT)."""
        return len(self.acks) / self.seconds

    @property
    def events_per_s(self) -> float:
        return sum(a[2] for a in self.acks) / self.seconds


@dataclass
class Verification:
    """What the database holds after a scenario, and every discrepancy found."""

    problems: list[str] = field(default_factory=list)
    facts: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, other: Verification) -> None:
        self.problems += other.problems
        self.facts |= other.facts

    def describe(self) -> list[str]:
        facts = ", ".join(
            f"{k} {n:,.2f}" if isinstance(n, float) else f"{k} {n:,}" for k, n in self.facts.items()
        )
        if self.ok:
            return [f"verification OK: {facts}"]
        return ["VERIFICATION FAILED:", *(f"  - {p}" for p in self.problems), facts]


DELIVERIES_SQL = """
SELECT d.id::text, d.provider, d.status, d.events_written, md5(d.body),
       CASE d.provider WHEN 'lemlist' THEN b ->> '_id'
                       WHEN 'postmark' THEN b ->> 'MessageID'
                       ELSE b ->> 'containerId' END,
       coalesce(b ->> 'RecordType', b ->> 'agentId')
FROM webhook_deliveries d, LATERAL (SELECT convert_from(d.body, 'UTF8')::jsonb AS b) j
WHERE d.received_at >= %(since)s
"""
EVENTS_SQL = """
SELECT delivery_id::text, provider_event_id, enrollment_id IS NULL
FROM campaign_events WHERE created_at >= %(since)s
"""
#: Per instance: its total_* columns, and what its enrollments and events say.
COUNTERS_SQL = """
WITH enrolled AS (
    SELECT instance_id, count(*) AS n FROM campaign_enrollments
    WHERE instance_id = ANY(%(instances)s) GROUP BY instance_id
), firsts AS (
    SELECT e.instance_id,
           count(DISTINCT ev.enrollment_id) FILTER (WHERE ev.event_type = 'sent') AS sent,
           count(DISTINCT ev.enrollment_id) FILTER (WHERE ev.event_type = 'opened') AS opened,
           count(DISTINCT ev.enrollment_id) FILTER (WHERE ev.event_type = 'clicked') AS clicked,
           count(DISTINCT ev.enrollment_id) FILTER (WHERE ev.event_type = 'replied') AS replied
    FROM campaign_enrollments e JOIN campaign_events ev ON ev.enrollment_id = e.id
    WHERE e.instance_id = ANY(%(instances)s)
    GROUP BY e.instance_id
)
SELECT i.id::text,
       ARRAY[i.total_enrolled, i.total_sent, i.total_opened, i.total_clicked, i.total_replied],
       ARRAY[coalesce(en.n, 0), coalesce(f.sent, 0), coalesce(f.opened, 0),
             coalesce(f.clicked, 0), coalesce(f.replied, 0)]
FROM campaign_instances i
LEFT JOIN enrolled en ON en.instance_id = i.id
LEFT JOIN firsts f ON f.instance_id = i.id
WHERE i.id = ANY(%(instances)s)
"""
COUNTER_NAMES = ("enrolled", "sent", "opened", "clicked", "replied")
#: One person, one enrollment: for the lemlist events attached in one
#: instance since the run started, the lead (leadEmail of the delivery that
#: carried the event) against the enrollment it was attached to.
IDENTITY_SQL = """
WITH ev AS (
    SELECT ev.enrollment_id, lower(convert_from(d.body, 'UTF8')::jsonb ->> 'leadEmail') AS lead
    FROM campaign_events ev
    JOIN webhook_deliveries d ON d.id = ev.delivery_id
    JOIN campaign_enrollments n ON n.id = ev.enrollment_id
    WHERE n.instance_id = %(instance)s AND ev.provider = 'lemlist' AND ev.created_at >= %(since)s
), per_lead AS (
    SELECT lead, count(DISTINCT enrollment_id) AS enrollments FROM ev GROUP BY lead
)
SELECT (SELECT count(*) FROM campaign_enrollments WHERE instance_id = %(instance)s),
       (SELECT count(*) FROM per_lead),
       (SELECT count(*) FROM per_lead WHERE enrollments > 1),
       (SELECT count(*) FROM ev JOIN campaign_enrollments n ON n.id = ev.enrollment_id
        WHERE lower(n.contact_email) IS DISTINCT FROM ev.lead)
"""


class Stored(NamedTuple):
    """One row of DELIVERIES_SQL."""

    id: str
    provider: str
    status: str
    written: int
    digest: str
    token: str | None
    detail: str | None
    """Postmark's RecordType or PhantomBuster's agentId: part of the event key."""


def verify_deliveries(
    url: str, runs: list[WrkRun], connections: int, since: datetime
) -> Verification:
    """Compare the database with what the load generator sent and was told, delivery by delivery.

    Tolerances: at each wrk cutoff, up to one request per connection may have
    been generated but not sent, or committed without its answer arriving.
    """
    with psycopg.connect(url) as conn:
        deliveries = conn.execute(DELIVERIES_SQL, {"since": since}).fetchall()
        events = conn.execute(EVENTS_SQL, {"since": since}).fetchall()
    generated = {r.run: r.generated() for r in runs}
    acks = [a for r in runs for a in r.acks]
    codes = sum((r.total("codes") for r in runs), Counter[str]())
    socket_errors = sum((r.errors() for r in runs), Counter[str]())
    slack = connections * len(runs) + codes.get("503", 0) + socket_errors.total()

    # Deliveries, grouped by the token of the generated delivery they carry.
    by_token: dict[Token, list[Stored]] = defaultdict(list)
    by_id: dict[str, tuple[str, int]] = {}
    problems: Counter[str] = Counter()
    failed = 0
    for row in deliveries:
        d = Stored(*row)
        by_id[d.id] = (d.status, d.written)
        if d.status == "failed" and not d.written:
            failed += 1  # kept raw for `gateway reprocess` when the answer was 503
            continue
        match = TOKEN_PATTERNS[d.provider].fullmatch(d.token or "")
        token = (int(match[1]), int(match[2]), int(match[3])) if match else None
        if token is None or not 1 <= token[2] <= generated.get(token[0], {}).get(token[1], 0):
            problems["stored delivery that the load generator never generated"] += 1
            continue
        by_token[token].append(d)
        if d.status not in (*NEW, "duplicate"):
            problems[f"delivery stored as {d.status!r}"] += 1

    keys_by_delivery: dict[str, list[str]] = defaultdict(list)
    unmatched = 0
    for delivery_id, key, is_unmatched in events:
        unmatched += is_unmatched
        if delivery_id not in by_id:
            problems["event whose delivery is not stored"] += 1
        keys_by_delivery[delivery_id].append(key)

    for stored in by_token.values():
        first = stored[0]
        expected = EVENTS_PER_DELIVERY[first.provider]
        if len({d.digest for d in stored}) != 1:
            problems["redelivery whose bytes differ from the original"] += 1
        keys = [k for d in stored for k in keys_by_delivery.get(d.id, [])]
        if len(keys) < expected:
            problems[f"{first.provider} delivery with events lost"] += 1
        elif len(keys) > expected:
            problems[f"{first.provider} delivery with events doubled"] += 1
        if sum(d.written for d in stored) != len(keys):
            problems["events_written differs from the events stored"] += 1
        if not all(key_fits(first, k) for k in keys):
            problems[f"{first.provider} event key not built from its delivery's ids"] += 1
        if any(d.status == "duplicate" and keys_by_delivery.get(d.id) for d in stored):
            problems["redelivery (answered duplicate) that wrote events"] += 1
    for delivery_id, status, written in acks:
        kept = by_id.get(delivery_id)
        if kept is None:
            problems["acknowledged (200) delivery not stored: LOST"] += 1
        elif kept != (status, written):
            problems["answer differs from the stored delivery's status or events"] += 1

    acked_new = sum(1 for _, status, _ in acks if status in NEW)
    stored_new = len(by_token)
    sent_new = sum(n for per_thread in generated.values() for n in per_thread.values())
    if stored_new < acked_new:
        problems["fewer new deliveries stored than acknowledged"] += 1
    if stored_new - acked_new > slack:
        problems[f"{stored_new - acked_new} new deliveries stored unanswered (> {slack})"] += 1
    if sent_new - stored_new > slack:
        problems[f"{sent_new - stored_new} generated deliveries not stored (> {slack})"] += 1
    if failed > codes.get("503", 0):
        problems["deliveries stored as 'failed' beyond the 503 answers"] += failed
    if unmatched:
        problems["events left unmatched although every key is mapped"] += unmatched
    for code, n in codes.items():
        if code != "503":
            problems[f"HTTP {code} answers"] += n

    v = Verification([f"{what} (x{n})" for what, n in problems.items()])
    v.facts = {
        "new deliveries generated": sent_new,
        "new deliveries stored": stored_new,
        "new deliveries acknowledged": acked_new,
        "redeliveries stored": len(deliveries) - stored_new - failed,
        "events stored": len(events),
        "503 answers": codes.get("503", 0),
        "stored as failed": failed,
        "socket errors": socket_errors.total(),
    }
    return v


def key_fits(delivery: Stored, key: str) -> bool:
    """The event's dedup key is built from its delivery's ids, as the README documents."""
    if delivery.provider == "lemlist":
        return key == delivery.token
    if delivery.provider == "postmark":
        return key.startswith(f"{delivery.detail}:{delivery.token}:")
    return key.startswith(f"{delivery.detail}:connect:")


def counter_mismatches(conn: psycopg.Connection, instances: list[str]) -> dict[str, str]:
    """Instances whose total_* columns differ from their enrollments and events, and how."""
    wrong = {}
    for instance, kept, actual in conn.execute(COUNTERS_SQL, {"instances": instances}):
        if list(kept) != list(actual):
            pairs = zip(COUNTER_NAMES, kept, actual, strict=True)
            wrong[instance] = ", ".join(f"{n} {k} (want {a})" for n, k, a in pairs if k != a)
    return wrong


def derived_counters(conn: psycopg.Connection, instances: list[str]) -> dict[str, list[int]]:
    """What each instance's counters must be: enrolled, sent, opened, clicked, replied."""
    rows = conn.execute(COUNTERS_SQL, {"instances": instances}).fetchall()
    return {r[0]: list(r[2]) for r in rows}


def verify_counters(url: str, base: str, instances: list[str]) -> Verification:
    """total_* columns and the API's counters equal what enrollments and events say.

    Run once the load has drained and before the gateway stops (the API is read).
    """
    v = Verification()
    with psycopg.connect(url) as conn:
        wrong = counter_mismatches(conn, instances)
        derived = derived_counters(conn, instances)
    for instance, how in list(wrong.items())[:3]:
        v.problems.append(f"campaign_instances counters of {instance}: {how}")
    if len(wrong) > 3:
        v.problems.append(f"... counters wrong on {len(wrong)} instances in all")
    if len(derived) != len(instances):
        v.problems.append(f"{len(derived)} scenario instances found instead of {len(instances)}")
    api_wrong: set[str] = set()
    with httpx.Client(base_url=base, timeout=30) as client:
        for instance, want in derived.items():
            answer = client.get(f"/api/campaigns/instances/{instance}")
            got = answer.json().get("counters", {}) if answer.status_code == 200 else {}
            if [got.get(name) for name in COUNTER_NAMES] != want:
                api_wrong.add(instance)
                if len(api_wrong) <= 3:
                    v.problems.append(
                        f"API counters of {instance}: HTTP {answer.status_code} {got}, want"
                        f" {dict(zip(COUNTER_NAMES, want, strict=True))}"
                    )
    exact = set(derived) - set(wrong) - api_wrong
    v.facts["instances with exact counters (columns and API)"] = len(exact)
    v.facts["enrollments"] = sum(c[0] for c in derived.values())
    return v


def verify_identity(url: str, instance: str, since: datetime) -> Verification:
    """One person, one enrollment: enrollments = distinct leads that sent an attached event."""
    with psycopg.connect(url) as conn:
        row = conn.execute(IDENTITY_SQL, {"instance": instance, "since": since}).fetchone()
    enrollments, leads, split, wrong_person = row if row else (0, 0, 0, 0)
    v = Verification()
    if enrollments != leads:
        v.problems.append(f"{enrollments} enrollments for {leads} distinct leads")
    if split:
        v.problems.append(f"{split} leads with events on more than one enrollment")
    if wrong_person:
        v.problems.append(f"{wrong_person} events attached to another person's enrollment")
    v.facts["distinct leads"] = leads
    return v


class SnapshotChecker:
    """Counters exact at committed moments: one REPEATABLE READ snapshot a second.

    Each snapshot compares the total_* columns with what the enrollments and
    events of the same snapshot say. Runs during the warm-up only, so that
    its reads stay out of the measured run's statistics.
    """

    def __init__(self, url: str, instances: list[str]) -> None:
        self._url = url
        self._instances = instances
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.snapshots = 0
        self.wrong: list[str] = []

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> Verification:
        self._stopped.set()
        self._thread.join()
        v = Verification([f"counters inexact in a committed snapshot: {w}" for w in self.wrong[:3]])
        v.facts["mid-run counter snapshots checked"] = self.snapshots
        return v

    def _loop(self) -> None:
        with psycopg.connect(self._url) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            while not self._stopped.wait(1.0):
                with conn.transaction():
                    wrong = counter_mismatches(conn, self._instances)
                self.snapshots += 1
                self.wrong += [f"{i}: {how}" for i, how in wrong.items()]


# --- PhantomBuster runs -----------------------------------------------------------------------

PB_STATE_SQL = """
SELECT (SELECT count(*) FROM campaign_events
        WHERE provider = 'phantombuster' AND provider_event_id LIKE %(agent)s || ':%%'),
       (SELECT count(*) FROM campaign_events ev
        JOIN campaign_enrollments n ON n.id = ev.enrollment_id
        WHERE n.instance_id = %(instance)s),
       (SELECT count(*) FROM campaign_enrollments WHERE instance_id = %(instance)s),
       (SELECT total_enrolled FROM campaign_instances WHERE id = %(instance)s)
"""


class PbState(NamedTuple):
    """What the database holds for one PhantomBuster agent and its instance."""

    events: int
    """Events whose key is the agent's (`{agentId}:...`, as the README documents)."""
    attached: int
    enrollments: int
    total_enrolled: int


def pb_state(url: str, instance: str, agent: str) -> PbState:
    with psycopg.connect(url) as conn:
        row = conn.execute(PB_STATE_SQL, {"agent": agent, "instance": instance}).fetchone()
    return PbState(*(int(x or 0) for x in row)) if row else PbState(0, 0, 0, 0)


def verify_pb_run(
    before: PbState, after: PbState, rows: int, code: int, answer: dict[str, Any]
) -> Verification:
    """One run webhook of `rows` profile rows: all or nothing, each row once, answer = rows.

    A 200 must say `processed` (`duplicate` when nothing was new) with `events`
    = the events the database gained and `duplicates` = the rows it already
    held, and leave exactly one event
    and one enrollment per row. A 503 (overloaded, retried by the provider)
    must leave nothing of the run behind. Whether it was fast enough, or
    wrote the expected number of new events, is for the targets.
    """
    v = Verification()
    gained = after.events - before.events
    if code == 200:
        got = (answer.get("status"), answer.get("events"), answer.get("duplicates"))
        if got != ("processed" if gained else "duplicate", gained, rows - gained):
            v.problems.append(
                f"answered {answer}, but the database gained {gained} events of {rows} rows"
            )
        for what, n in (
            ("events stored for the agent", after.events),
            ("events attached to the instance", after.attached),
            ("enrollments", after.enrollments),
            ("total_enrolled", after.total_enrolled),
        ):
            if n != rows:
                v.problems.append(f"{n} {what}, want {rows}")
    elif code == 503:
        if gained:
            v.problems.append(f"answered 503 but stored {gained} events")
        v.facts["refused (503), nothing stored"] = 1
    else:
        v.problems.append(f"answered HTTP {code}: {answer}")
    v.facts |= {"new events": gained, "events stored": after.events}
    v.facts["enrollments"] = after.enrollments
    return v

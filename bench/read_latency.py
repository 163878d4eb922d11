"""Read API latency with a million events in the database.

    python bench/read_latency.py                       # embedded PostgreSQL in a temp dir
    python bench/read_latency.py --database-url postgresql://user:pw@host/postgres

Creates a fresh database (on the embedded server, or on the given server,
dropped at the end), migrates it, loads --events events (default 1,000,000)
over --instances campaign instances (default 50) with SQL (generate_series:
types, channels, providers, steps and 90 days spread at random; 2% unmatched;
the enrollments' state derived from their events with refresh_enrollments()),
plus --deliveries raw deliveries, then VACUUM ANALYZE
(what autovacuum does on a live database). It then runs the app in process
(Litestar's AsyncTestClient: no network) and times --requests requests per
case, sequentially, each on a random instance, and prints a Markdown table
of p50 / p95 / p99 / max in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient
from scratch import scratch_databases

from gateway.api.params import encode_cursor
from gateway.app import create_app
from gateway.db.migrate import apply_migrations
from gateway.settings import Settings

# {instances} instances of 5 templates; {contacts} enrollments per instance.
SETUP_SQL = """
SELECT setseed(0.42);

INSERT INTO campaign_templates (id, name, type)
SELECT ('00000000-0000-4000-8000-' || lpad(t::text, 12, '0'))::uuid,
       'Bench template ' || t, 'multi_channel'
FROM generate_series(1, 5) t;

INSERT INTO email_sequences (template_id, step_number, subject, body_template, delay_hours)
SELECT ('00000000-0000-4000-8000-' || lpad(t::text, 12, '0'))::uuid, s, 'Step ' || s, 'Hi',
       72 * (s - 1)
FROM generate_series(1, 5) t, generate_series(1, 3) s;

INSERT INTO linkedin_sequences (template_id, step_number, action_type, delay_hours)
SELECT ('00000000-0000-4000-8000-' || lpad(t::text, 12, '0'))::uuid, s,
       (ARRAY['profile_visit', 'connection_request', 'message', 'voice_message'])[s],
       48 * (s - 1)
FROM generate_series(1, 5) t, generate_series(1, 4) s;

INSERT INTO campaign_instances (id, template_id, name, status, provider_config, started_at)
SELECT ('00000000-0000-4000-9000-' || lpad(i::text, 12, '0'))::uuid,
       ('00000000-0000-4000-8000-' || lpad((1 + i % 5)::text, 12, '0'))::uuid,
       'Bench instance ' || i,
       (ARRAY['active', 'active', 'paused', 'completed', 'draft'])[1 + i % 5],
       jsonb_build_object('lemlist_campaign_id', 'bench-cam-' || i,
                          'postmark_tag', 'bench-tag-' || i,
                          'phantombuster_agent_id', 'bench-agent-' || i),
       now() - interval '90 days'
FROM generate_series(0, {instances} - 1) i;

INSERT INTO campaign_enrollments (id, instance_id, contact_email, linkedin_url, status, enrolled_at)
SELECT ('00000000-0000-4000-a000-' || lpad(c::text, 12, '0'))::uuid,
       ('00000000-0000-4000-9000-' || lpad((c % {instances})::text, 12, '0'))::uuid,
       'contact' || c || '@bench.example', 'https://www.linkedin.com/in/contact-' || c,
       'active', now() - interval '90 days' * random()
FROM generate_series(0, {instances} * {contacts} - 1) c;
"""

# One batch of events, rows $1..$2; $3 instances, $4 contacts in all. Email
# 70%, LinkedIn 30%; each channel's types weighted like a funnel (many sent,
# fewer opened, fewer replied); two providers per channel; steps 1-3 (email)
# or 1-4 (LinkedIn); times over the last 90 days; 2% unmatched.
EVENTS_SQL = """
INSERT INTO campaign_events (enrollment_id, instance_id, event_type, channel, provider,
                             provider_event_id, step_number, timestamp, metadata)
SELECT CASE WHEN r.unmatched THEN NULL
            ELSE ('00000000-0000-4000-a000-' || lpad(r.c::text, 12, '0'))::uuid END,
       CASE WHEN r.unmatched THEN NULL
            ELSE ('00000000-0000-4000-9000-' || lpad((r.c % $3::int)::text, 12, '0'))::uuid END,
       CASE WHEN r.email
            THEN (ARRAY['sent', 'sent', 'sent', 'sent', 'delivered', 'delivered', 'delivered',
                        'opened', 'opened', 'opened', 'clicked', 'replied', 'bounced',
                        'unsubscribed', 'spam_complaint', 'failed'])[1 + floor(r.ty * 16)::int]
            ELSE (ARRAY['profile_visited', 'profile_visited', 'connection_requested',
                        'connection_requested', 'connection_accepted', 'message_sent',
                        'message_sent', 'voice_message_sent', 'replied',
                        'failed'])[1 + floor(r.ty * 10)::int]
       END,
       CASE WHEN r.email THEN 'email' ELSE 'linkedin' END,
       CASE WHEN r.pr < 0.5 THEN 'lemlist' WHEN r.email THEN 'postmark' ELSE 'phantombuster' END,
       'bench:' || r.n,
       CASE WHEN r.email THEN 1 + floor(r.st * 3)::int ELSE 1 + floor(r.st * 4)::int END,
       now() - interval '90 days' * r.age,
       -- A real open's metadata is a few hundred bytes (client, user agent, place);
       -- a quarter of the opens and clicks carry a machine flag (Apple Mail Privacy Protection).
       jsonb_build_object('source', 'bench', 'user_agent', repeat('Mozilla/5.0 (bench) ', 8))
       || CASE WHEN r.email AND r.ty >= 7.0 / 16 AND r.ty < 11.0 / 16 AND r.pr < 0.25
               THEN '{"machine": {"kind": "privacy_proxy", "rule": "apple_mpp_network",
                      "rule_version": 1}}'::jsonb
               ELSE '{}' END
FROM (
    SELECT n, random() < 0.02 AS unmatched, floor(random() * $4::int)::int AS c,
           random() < 0.7 AS email, random() AS ty, random() AS pr, random() AS st,
           random() AS age
    FROM generate_series($1::int, $2::int) n
) r
"""

# $1 raw deliveries over 90 days, with outcomes in production-like shares.
DELIVERIES_SQL = """
INSERT INTO webhook_deliveries (provider, received_at, body, body_size, status, cause,
                                events_written)
SELECT (ARRAY['lemlist', 'postmark', 'phantombuster'])[1 + floor(x.p * 3)::int],
       now() - interval '90 days' * x.age,
       convert_to('{"bench": ' || x.n || '}', 'UTF8'),
       octet_length('{"bench": ' || x.n || '}'),
       x.status,
       CASE WHEN x.status IN ('unmatched', 'rejected', 'pending', 'failed') THEN 'bench' END,
       CASE WHEN x.status IN ('processed', 'unmatched') THEN 1 ELSE 0 END
FROM (
    SELECT n, random() AS p, random() AS age,
           CASE WHEN r < 0.85 THEN 'processed' WHEN r < 0.93 THEN 'duplicate'
                WHEN r < 0.96 THEN 'unmatched' WHEN r < 0.98 THEN 'ignored'
                WHEN r < 0.99 THEN 'rejected' WHEN r < 0.995 THEN 'pending'
                ELSE 'failed' END AS status
    FROM (SELECT n, random() AS r FROM generate_series(1, $1::int) n) g
) x
"""

BATCH = 100_000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def load(url: str, args: argparse.Namespace) -> float:
    """Load the data set; returns the seconds it took."""
    started = time.perf_counter()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(SETUP_SQL.format(instances=args.instances, contacts=args.contacts))
        contacts = args.instances * args.contacts
        for first in range(1, args.events + 1, BATCH):
            last = min(first + BATCH - 1, args.events)
            await conn.execute(EVENTS_SQL, first, last, args.instances, contacts)
            log(f"  events {last:>9,} / {args.events:,}  ({time.perf_counter() - started:.0f} s)")
        await conn.execute(DELIVERIES_SQL, args.deliveries)
        await conn.execute("SELECT refresh_enrollments(NULL)")
        log(f"  deliveries {args.deliveries:,}; VACUUM ANALYZE")
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - started


class Case:
    """One kind of request, timed `requests` times."""

    def __init__(self, label: str, make_path: Callable[[random.Random], Awaitable[str]]) -> None:
        self.label = label
        self.make_path = make_path
        self.timings_ms: list[float] = []


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


async def measure(url: str, args: argparse.Namespace, data_dir: Path) -> list[Case]:
    instances = [uuid.UUID(f"00000000-0000-4000-9000-{i:012d}") for i in range(args.instances)]
    conn = await asyncpg.connect(url)
    try:
        # Deep cursors: the key of the row 3/4 of the way through an instance, and
        # of the 900,000th event overall.
        deep_keys = {
            i: await conn.fetchrow(
                "SELECT timestamp, id FROM campaign_events WHERE instance_id = $1"
                " ORDER BY timestamp, id OFFSET (SELECT count(*) * 3 / 4 FROM campaign_events"
                " WHERE instance_id = $1) LIMIT 1",
                i,
            )
            for i in instances
        }
        global_deep = await conn.fetchrow(
            "SELECT timestamp, id FROM campaign_events ORDER BY timestamp, id OFFSET $1 LIMIT 1",
            args.events * 9 // 10,
        )
    finally:
        await conn.close()
    month_ago = (datetime.now(UTC) - timedelta(days=30)).date().isoformat()

    async def performance(rng: random.Random) -> str:
        return f"/api/campaigns/instances/{rng.choice(instances)}/performance"

    async def performance_30d(rng: random.Random) -> str:
        return f"{await performance(rng)}?from={month_ago}"

    async def first_page(rng: random.Random) -> str:
        return f"/api/events?instance_id={rng.choice(instances)}&limit=100"

    async def deep_page(rng: random.Random) -> str:
        instance = rng.choice(instances)
        key = deep_keys[instance]
        cursor = encode_cursor(key["timestamp"], key["id"])
        return f"/api/events?instance_id={instance}&limit=100&cursor={cursor}"

    async def global_deep_page(rng: random.Random) -> str:
        cursor = encode_cursor(global_deep["timestamp"], global_deep["id"])
        return f"/api/events?limit=100&cursor={cursor}"

    async def attention(rng: random.Random) -> str:
        return "/api/deliveries?status=rejected&status=unmatched&limit=100"

    cases = [
        Case("performance, all time", performance),
        Case("performance, last 30 days", performance_30d),
        Case("events of an instance, first page (100)", first_page),
        Case("events of an instance, page at 3/4 (100)", deep_page),
        Case("all events, page at 90% (100)", global_deep_page),
        Case("deliveries rejected + unmatched, first page (100)", attention),
    ]
    settings = Settings(database_url=url, data_dir=data_dir, log_format="json")
    app = create_app(settings, configure_logs=False)
    rng = random.Random(7)
    async with AsyncTestClient[Litestar](app=app) as client:
        for case in cases:
            for n in range(args.warmup + args.requests):
                path = await case.make_path(rng)
                started = time.perf_counter()
                response = await client.get(path)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200 or not response.json().get("items", True):
                    raise SystemExit(f"{path}: {response.status_code} {response.text[:300]}")
                if n >= args.warmup:
                    case.timings_ms.append(elapsed)
            log(f"  {case.label}: median {statistics.median(case.timings_ms):.1f} ms")
    return cases


async def server_version(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        version: str = await conn.fetchval("SHOW server_version")
        return version
    finally:
        await conn.close()


def report(cases: list[Case], args: argparse.Namespace, loaded_s: float, version: str) -> None:
    command = "python bench/read_latency.py " + " ".join(sys.argv[1:])
    print(f"Read API latency, {args.events:,} events over {args.instances} instances")
    print(
        f"{os.cpu_count()} cores, Python {platform.python_version()}, PostgreSQL {version}"
        f" ({'given server' if args.database_url else 'embedded, pgserver'}),"
        f" {datetime.now(UTC):%Y-%m-%d}; load + VACUUM ANALYZE {loaded_s:.0f} s;"
        f" {args.requests} sequential requests per case, in process (no network)"
    )
    print(f"Command: {command.strip()}")
    print()
    print("| request | p50 ms | p95 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    for case in cases:
        t = case.timings_ms
        print(
            f"| {case.label} | {percentile(t, 0.50):.1f} | {percentile(t, 0.95):.1f}"
            f" | {percentile(t, 0.99):.1f} | {max(t):.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="a server to create the bench database on")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--instances", type=int, default=50)
    parser.add_argument("--contacts", type=int, default=2_000, help="enrollments per instance")
    parser.add_argument("--deliveries", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per case")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests per case")
    args = parser.parse_args()

    name = f"gw_bench_{uuid.uuid4().hex[:8]}"
    with (
        tempfile.TemporaryDirectory(prefix="gateway-bench-") as temp,
        scratch_databases(args.database_url, Path(temp), name) as [url],
    ):
        log(f"Migrating and loading {name}")
        apply_migrations(url)
        loaded_s = asyncio.run(load(url, args))
        log(f"Loaded in {loaded_s:.0f} s; timing requests")
        cases = asyncio.run(measure(url, args, Path(temp) / "data"))
        report(cases, args, loaded_s, asyncio.run(server_version(url)))


if __name__ == "__main__":
    main()

"""What the machine flags cost write_batch: hot-campaign lemlist batches, with and without.

    python bench/machine_flags.py                       # embedded PostgreSQL in a temp dir
    python bench/machine_flags.py --baseline-functions old_functions.sql

Two databases on one server, both migrated and loaded alike: one campaign
instance, --leads lemlist leads each sent step 1, 40% of them with an open
(half of those 2 s after the send: a machine), 10% with a click, written
through write_batch itself, then VACUUM ANALYZE. In the "without" database
flag_machine_events is replaced by a no-op (or, with --baseline-functions,
that file's write path is applied over the migrated one: e.g. main's
functions.sql before the flags). Then the same --batches batches of --size
lemlist deliveries (45% sent, 35% opened, 15% clicked, 5% exact
redeliveries, leads at random; an open follows its send by 2 s or by hours)
go to both databases, alternately, one statement each, timed by PostgreSQL
(EXPLAIN ANALYZE's execution time: write_batch whole, commit excluded), with
track_functions on for flag_machine_events' own share. Prints a Markdown
table; keep --batches small on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from scratch import scratch_databases

from gateway.db import ingest
from gateway.db.migrate import apply_migrations
from gateway.db.pool import init_connection
from gateway.engagement import load_static_rules
from gateway.ingest import _event_args, parse_delivery

CAMPAIGN = "cam_hot_flags"
T0 = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
TYPES = {"sent": "emailsSent", "opened": "emailsOpened", "clicked": "emailsClicked"}
NO_FLAGS = """
CREATE OR REPLACE FUNCTION flag_machine_events(
    p_enrollments uuid[], p_at timestamptz[] DEFAULT NULL
) RETURNS integer LANGUAGE sql AS $$ SELECT 0 $$;
"""
RULES = load_static_rules(Path("/nonexistent"))


def activity(event_type: str, lead: int, at: datetime, step: int = 1) -> dict[str, Any]:
    body = {
        "_id": f"act_{uuid.uuid4().hex}",
        "type": TYPES[event_type],
        "createdAt": at.isoformat(timespec="milliseconds"),
        "campaignId": CAMPAIGN,
        "leadId": f"lea_{lead}",
        "leadEmail": f"lead{lead}@hot.example",
        "emailId": f"eml_{lead}_{step}",
        "sequenceStep": step,
    }
    if event_type == "clicked":
        body["linkUrl"] = f"https://acme.example/{random.choice('abc')}"
    return body


def batch_args(bodies: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    """write_batch's arguments for lemlist deliveries, as the Ingestor builds them."""
    received_at = datetime.now(UTC)
    owned, deliveries = [], []
    for body in bodies:
        raw = json.dumps(body).encode()
        events = RULES.apply(parse_delivery("lemlist", raw, {}, None).events)
        delivery_id = uuid.uuid4()
        owned.append((delivery_id, received_at, events))
        deliveries.append(
            ingest.DeliveryArgs(
                id=delivery_id,
                provider="lemlist",
                received_at=received_at,
                body=raw,
                body_size=len(raw),
                headers={},
                query={},
                status=None,
                cause=None,
                events=len(events),
                fetched_body=None,
                fetched_from=None,
            )
        )
    return _event_args(owned), deliveries


def history(leads: int) -> list[list[dict[str, Any]]]:
    """Step 1 sent to every lead, 40% opened (half 2 s later), 10% clicked; batches of 250."""
    bodies = []
    for lead in range(leads):
        sent = T0 + timedelta(seconds=lead * 7)
        bodies.append(activity("sent", lead, sent))
        if random.random() < 0.4:
            later = timedelta(seconds=2) if random.random() < 0.5 else timedelta(hours=3)
            bodies.append(activity("opened", lead, sent + later))
            if random.random() < 0.25:
                bodies.append(activity("clicked", lead, sent + later + timedelta(minutes=1)))
    return [bodies[i : i + 250] for i in range(0, len(bodies), 250)]


def hot_batches(leads: int, batches: int, size: int) -> list[list[dict[str, Any]]]:
    """The measured load: what a hot campaign's webhooks bring in one group commit."""
    clock = T0 + timedelta(days=1)
    sent: dict[int, datetime] = {}
    seen: list[dict[str, Any]] = []
    out = []
    for _ in range(batches):
        batch: list[dict[str, Any]] = []
        while len(batch) < size:
            clock += timedelta(milliseconds=200)
            roll = random.random()
            lead = random.randrange(leads)
            if roll < 0.05 and seen:
                batch.append(random.choice(seen))
                continue
            if roll < 0.50 or lead not in sent:
                sent[lead] = clock
                body = activity("sent", lead, clock, step=2)
            elif roll < 0.85:
                gap = timedelta(seconds=2) if random.random() < 0.5 else timedelta(hours=2)
                body = activity("opened", lead, sent[lead] + gap, step=2)
            else:
                body = activity("clicked", lead, clock + timedelta(hours=2), step=2)
            seen.append(body)
            batch.append(body)
        out.append(batch)
    return out


async def setup(url: str, baseline: str | None, leads: int) -> None:
    conn = await asyncpg.connect(url)
    await init_connection(conn)
    try:
        if baseline is not None:
            await conn.execute(baseline)
        template = await conn.fetchval(
            "INSERT INTO campaign_templates (name, type) VALUES ('t', 'email') RETURNING id"
        )
        await conn.execute(
            "INSERT INTO campaign_instances (template_id, name, status, provider_config)"
            " VALUES ($1, 'hot', 'active', $2)",
            template,
            {"lemlist_campaign_id": CAMPAIGN},
        )
        random.seed(7)
        for bodies in history(leads):
            await ingest.write_batch(conn, *batch_args(bodies), store=True)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def timed(conn: asyncpg.Connection, bodies: list[dict[str, Any]]) -> float:
    """PostgreSQL's execution time of one write_batch statement, in ms."""
    events, deliveries = batch_args(bodies)
    event_columns = [list(c) for c in zip(*events, strict=True)]
    delivery_columns = [list(c) for c in zip(*deliveries, strict=True)]
    plan = await conn.fetchval(
        "EXPLAIN (ANALYZE, FORMAT JSON) " + ingest.INGEST["write_batch"],
        *event_columns,
        *delivery_columns,
        True,
    )
    parsed = json.loads(plan) if isinstance(plan, str) else plan
    return float(parsed[0]["Execution Time"])


async def function_stats(conn: asyncpg.Connection) -> dict[str, tuple[int, float]]:
    await conn.execute("SELECT pg_stat_force_next_flush()")
    await asyncio.sleep(1.2)
    rows = await conn.fetch(
        "SELECT funcname, calls, total_time FROM pg_stat_user_functions"
        " WHERE funcname IN ('write_batch', 'flag_machine_events', 'machine_flag_changes')"
    )
    return {r["funcname"]: (r["calls"], r["total_time"]) for r in rows}


async def measure(urls: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    conns = {}
    for name, url in urls.items():
        conns[name] = await asyncpg.connect(url)
        await init_connection(conns[name])
        await conns[name].execute("SET track_functions = 'all'")
    random.seed(11)
    load = hot_batches(args.leads, args.warmup + args.batches, args.size)
    times: dict[str, list[float]] = {name: [] for name in urls}
    before = {name: await function_stats(conn) for name, conn in conns.items()}
    for n, bodies in enumerate(load):
        order = list(conns) if n % 2 == 0 else list(reversed(conns))
        for name in order:
            ms = await timed(conns[name], bodies)
            if n >= args.warmup:
                times[name].append(ms)
    after = {name: await function_stats(conn) for name, conn in conns.items()}
    flags = {
        name: await conn.fetchval(
            "SELECT count(*) FROM campaign_events WHERE metadata -> 'machine' IS NOT NULL"
        )
        for name, conn in conns.items()
    }
    for conn in conns.values():
        await conn.close()
    return {"times": times, "before": before, "after": after, "flags": flags}


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q * 100) - 1]


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\n{args.batches} batches of {args.size} lemlist deliveries over {args.leads} leads"
        f" (after {args.warmup} warm-up batches), PostgreSQL execution time per batch, ms:\n"
    )
    print("| write path | mean | p50 | p95 | flagged events at the end |")
    print("|---|--:|--:|--:|--:|")
    for name, values in result["times"].items():
        print(
            f"| {name} | {statistics.fmean(values):.2f} | {quantile(values, 0.5):.2f}"
            f" | {quantile(values, 0.95):.2f} | {result['flags'][name]} |"
        )
    print()
    for function in ("flag_machine_events", "machine_flag_changes"):
        calls0, total0 = result["before"]["with"].get(function, (0, 0.0))
        calls1, total1 = result["after"]["with"].get(function, (0, 0.0))
        if calls1 > calls0:
            print(
                f"{function}: {calls1 - calls0} calls,"
                f" {(total1 - total0) / (calls1 - calls0):.3f} ms per call (track_functions,"
                " warm-up included)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="a server to create the bench databases on")
    parser.add_argument("--leads", type=int, default=5_000)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument(
        "--baseline-functions", type=Path, help="SQL applied to the 'without' database"
    )
    args = parser.parse_args()
    baseline = args.baseline_functions.read_text() if args.baseline_functions else NO_FLAGS

    names = {
        "with": f"gw_flags_{uuid.uuid4().hex[:8]}",
        "without": f"gw_noflags_{uuid.uuid4().hex[:8]}",
    }
    with (
        tempfile.TemporaryDirectory(prefix="gateway-flags-") as temp,
        scratch_databases(args.database_url, Path(temp), *names.values()) as created,
    ):
        urls = dict(zip(names, created, strict=True))
        for kind, url in urls.items():
            apply_migrations(url)
            asyncio.run(setup(url, baseline if kind == "without" else None, args.leads))
        report(asyncio.run(measure(urls, args)), args)


if __name__ == "__main__":
    main()

"""Plans and timings of `GET /api/deliveries?q=` over millions of rows, and what its index costs.

    python bench/search_plans.py                   # embedded PostgreSQL in a temp dir
    python bench/search_plans.py --deliveries 500000

Loads --deliveries raw deliveries, each with one event (every 8th delivery a
redelivery that wrote none), over --campaigns lemlist campaigns of very
different sizes (campaign k holds a share proportional to 1/k), 2% of the
events unmatched, and one enrollment per contact e-mail; then VACUUM
ANALYZE. It prints `EXPLAIN (ANALYZE, BUFFERS)` of the search query for an
e-mail, a provider event id, the largest and a small campaign key and a key
that matches nothing, then times each through the app, and finally times
inserting --insert-events events into campaign_events with and without
idx_campaign_events_campaign_key (the price ingestion pays for it).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

import asyncpg
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.db.migrate import apply_migrations
from gateway.db.pool import init_connection
from gateway.db.reads import READS, SEARCH_SET_MAX, search_query
from gateway.settings import Settings

LOAD_SQL = """
SELECT setseed(0.17);

INSERT INTO campaign_templates (id, name, type)
VALUES ('00000000-0000-4000-8000-000000000001', 'Search bench', 'multi_channel');

INSERT INTO campaign_instances (id, template_id, name, status, provider_config)
SELECT ('00000000-0000-4000-9000-' || lpad(k::text, 12, '0'))::uuid,
       '00000000-0000-4000-8000-000000000001', 'Campaign ' || k, 'active',
       jsonb_build_object('lemlist_campaign_id', 'cam-' || k)
FROM generate_series(1, {campaigns}) k;

CREATE TEMP TABLE plan AS
SELECT n,
       -- Zipf-like campaign sizes: campaign 1 is the largest.
       least({campaigns}, 1 + floor(exp(random() * ln({campaigns} + 1)) - 1)::int) AS k,
       floor(random() * {contacts})::int AS contact,
       random() < 0.02 AS unmatched,
       n % 8 = 0 AS redelivery,
       now() - interval '90 days' * random() AS at
FROM generate_series(1, {deliveries}) n;

INSERT INTO campaign_enrollments (id, instance_id, contact_email, status)
SELECT DISTINCT ON (p.contact)
       ('00000000-0000-4000-a000-' || lpad(p.contact::text, 12, '0'))::uuid,
       ('00000000-0000-4000-9000-' || lpad(p.k::text, 12, '0'))::uuid,
       'Lead' || p.contact || '@Bench.example', 'active'
FROM plan p
ORDER BY p.contact;

INSERT INTO webhook_deliveries (id, provider, received_at, body, body_size, status, events_written)
SELECT ('00000000-0000-4000-b000-' || lpad(p.n::text, 12, '0'))::uuid, 'lemlist', p.at,
       convert_to('{{"bench": ' || p.n || '}}', 'UTF8'), 14,
       CASE WHEN p.redelivery THEN 'duplicate' WHEN p.unmatched THEN 'unmatched'
            ELSE 'processed' END,
       CASE WHEN p.redelivery THEN 0 ELSE 1 END
FROM plan p;

INSERT INTO campaign_events (enrollment_id, instance_id, delivery_id, event_type, channel,
                             provider, provider_event_id, campaign_key, timestamp)
SELECT CASE WHEN p.unmatched THEN NULL
            ELSE e.id END,
       CASE WHEN p.unmatched THEN NULL ELSE e.instance_id END,
       ('00000000-0000-4000-b000-' || lpad(p.n::text, 12, '0'))::uuid,
       'opened', 'email', 'lemlist', 'act_' || p.n, 'cam-' || p.k, p.at
FROM plan p
JOIN campaign_enrollments e
  ON e.id = ('00000000-0000-4000-a000-' || lpad(p.contact::text, 12, '0'))::uuid
WHERE NOT p.redelivery;
"""

INSERT_SQL = """
INSERT INTO campaign_events (delivery_id, event_type, channel, provider, provider_event_id,
                             campaign_key, timestamp)
SELECT gen_random_uuid(), 'sent', 'email', 'lemlist', 'ins_' || $1::text || '_' || n,
       'cam-' || (1 + n % 50), now()
FROM generate_series(1, $2::int) n
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def main(args: argparse.Namespace) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        root = args.keep or Path(tempfile.mkdtemp(prefix="search-bench-"))
        server = pgserver.get_server(
            root / "pgdata", cleanup_mode="stop" if args.keep else "delete"
        )
    url = server.get_uri()
    try:
        apply_migrations(url)
        conn = await asyncpg.connect(url)
        await init_connection(conn)
        if not await conn.fetchval("SELECT count(*) FROM campaign_templates"):
            started = time.perf_counter()
            await conn.execute(
                LOAD_SQL.format(
                    campaigns=args.campaigns, contacts=args.contacts, deliveries=args.deliveries
                )
            )
            await conn.execute("VACUUM ANALYZE")
            log(f"loaded in {time.perf_counter() - started:.0f} s")
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM webhook_deliveries) AS deliveries,"
            " (SELECT count(*) FROM campaign_events) AS events,"
            " (SELECT count(*) FROM campaign_enrollments) AS enrollments,"
            " (SELECT count(*) FROM campaign_events WHERE campaign_key = 'cam-1') AS largest,"
            " (SELECT count(*) FROM campaign_events WHERE campaign_key = $1) AS small",
            f"cam-{args.campaigns}",
        )
        print(f"# {dict(counts)}\n")
        queries = {
            "lead e-mail": "lead42@bench.example",
            "provider event id": "act_4242",
            "largest campaign key": "cam-1",
            "small campaign key": f"cam-{args.campaigns}",
            "nothing": "nobody@nowhere.example",
        }
        statuses = ["processed", "duplicate", "unmatched", "ignored", "rejected", "pending"]
        statuses.append("failed")
        # The app runs these as prepared statements, which PostgreSQL may plan
        # once for any value (generic) after five runs: show both plans.
        for mode in ("force_custom_plan", "force_generic_plan"):
            await conn.execute(f"SET plan_cache_mode = {mode}")
            for label, q in queries.items():
                keys_plan = await conn.fetch(
                    f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {READS['search_keys']}",
                    q,
                    SEARCH_SET_MAX + 1,
                )
                keys = await conn.fetchrow(READS["search_keys"], q, SEARCH_SET_MAX + 1)
                filters: list[object] = [statuses, None, None, None]
                for newest in (False, True):
                    query, query_args = search_query(keys, q, filters, None, 101, newest=newest)
                    plan = await conn.fetch(
                        f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {query}", *query_args
                    )
                    order = "newest" if newest else "oldest"
                    print(f"## {mode}: q = {q!r} ({label}), {order} first\n```")
                    if not newest:
                        print("\n".join(r[0] for r in keys_plan))
                        print()
                    print("\n".join(r[0] for r in plan))
                    print("```\n")
        await conn.execute("RESET plan_cache_mode")
        await conn.close()

        settings = Settings(database_url=url, data_dir=root / "data", log_format="json")
        app = create_app(settings, configure_logs=False)
        print("| q | order | p50 ms | p95 ms | max ms |\n|---|---|--:|--:|--:|")
        async with AsyncTestClient(app=app) as client:
            for (label, q), order in itertools.product(queries.items(), ("oldest", "newest")):
                timings = []
                for _ in range(args.requests):
                    t0 = time.perf_counter()
                    response = await client.get("/api/deliveries", params={"q": q, "order": order})
                    timings.append((time.perf_counter() - t0) * 1000)
                    if response.status_code != 200:
                        raise SystemExit(f"{label}: {response.status_code} {response.text}")
                timings.sort()
                p95 = timings[max(0, round(0.95 * len(timings)) - 1)]
                print(
                    f"| {label} | {order} | {statistics.median(timings):.1f} | {p95:.1f} |"
                    f" {timings[-1]:.1f} |"
                )

        conn = await asyncpg.connect(url)
        timings: dict[str, list[float]] = {"with the index": [], "without it": []}
        for _ in range(args.rounds):
            for label in timings:
                # Each insert is rolled back, so every round sees the same table;
                # DROP INDEX is transactional and comes back with the rollback.
                transaction = conn.transaction()
                await transaction.start()
                if label == "without it":
                    await conn.execute("DROP INDEX idx_campaign_events_campaign_key")
                t0 = time.perf_counter()
                await conn.execute(INSERT_SQL, uuid.uuid4().hex[:8], args.insert_events)
                timings[label].append(time.perf_counter() - t0)
                await transaction.rollback()
        print(f"\n| insert {args.insert_events:,} events (median of {args.rounds}) | s |")
        print("|---|--:|")
        for label, values in timings.items():
            print(f"| {label} | {statistics.median(values):.2f} |")
        await conn.close()
    finally:
        server.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=2_000_000)
    parser.add_argument("--campaigns", type=int, default=50)
    parser.add_argument("--contacts", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--insert-events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="keep the loaded database in DIR and reuse it on the next run (loading takes minutes)",
    )
    asyncio.run(main(parser.parse_args()))

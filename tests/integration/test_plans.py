"""The write path's plans stay index probes as tables grow under them (issue 12).

A writer connection caches its plans while the tables are nearly empty and
their statistics say so; the tables then grow a hundredfold without a new
ANALYZE, and the same connection writes on. No write-path statement may read a
table sequentially, whatever plan it had cached: pg_stat_user_tables counts.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import pytest

from gateway.db import ingest
from gateway.db.migrate import apply_migrations
from gateway.db.pool import init_connection

#: The tables a webhook's batch reads or writes.
WRITE_PATH = (
    "campaign_events",
    "campaign_enrollments",
    "contact_keys",
    "instance_keys",
    "campaign_instances",
    "webhook_deliveries",
)


def batch(run: str, people: range) -> tuple[list[ingest.EventArgs], list[ingest.DeliveryArgs]]:
    """One lemlist event per person (e-mail and LinkedIn profile), each its own delivery."""
    at = datetime.now(UTC)
    events, deliveries = [], []
    for person in people:
        delivery_id = uuid.uuid4()
        events.append(
            ingest.EventArgs(
                id=uuid.uuid4(),
                provider="lemlist",
                provider_event_id=f"act_{run}_{person}",
                campaign_key="cam_growth",
                instance_hint=None,
                enrollment_hint=None,
                email=f"lead{person}@example.com",
                urls=f"https://www.linkedin.com/in/lead-{person}",
                delivery_id=delivery_id,
                event_type="opened",
                channel="email",
                step_number=1,
                timestamp=at,
                metadata={},
            )
        )
        deliveries.append(
            ingest.DeliveryArgs(
                delivery_id, "lemlist", at, b"{}", 2, {}, {}, None, None, 1, None, None
            )
        )
    events.sort(key=lambda e: e.provider_event_id)
    return events, deliveries


async def seq_scans(conn: asyncpg.Connection) -> dict[str, tuple[int, int, int]]:
    """(sequential scans, index scans, rows fetched by index scans) per write-path table."""
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    rows = await conn.fetch(
        "SELECT relname, seq_scan, coalesce(idx_scan, 0) AS idx_scan,"
        " coalesce(idx_tup_fetch, 0) AS fetched FROM pg_stat_user_tables"
        " WHERE relname = ANY($1::text[])",
        list(WRITE_PATH),
    )
    return {r["relname"]: (r["seq_scan"], r["idx_scan"], r["fetched"]) for r in rows}


async def flushed(writer: asyncpg.Connection) -> None:
    """Make the writer's pending table statistics visible to other sessions."""
    await writer.execute("SELECT pg_stat_force_next_flush()")
    await writer.execute("SELECT 1")
    await asyncio.sleep(0.5)


@asynccontextmanager
async def growth_instance(
    create_database: Callable[[], str],
) -> AsyncIterator[tuple[asyncpg.Connection, asyncpg.Connection, uuid.UUID]]:
    """A migrated database with one lemlist instance, analyzed while nearly empty.

    Yields an admin connection, a writer connection set up as the gateway's,
    and the instance's id.
    """
    url = create_database()
    apply_migrations(url)
    admin = await asyncpg.connect(url)
    writer = await asyncpg.connect(url)
    await init_connection(writer)
    try:
        template = await admin.fetchval(
            "INSERT INTO campaign_templates (name, type) VALUES ('t', 'email') RETURNING id"
        )
        instance = await admin.fetchval(
            "INSERT INTO campaign_instances (template_id, name, status, provider_config)"
            " VALUES ($1, 'growth', 'active', '{\"lemlist_campaign_id\": \"cam_growth\"}')"
            " RETURNING id",
            template,
        )
        await admin.execute("ANALYZE")
        yield admin, writer, instance
    finally:
        await writer.close()
        await admin.close()


@pytest.mark.slow
async def test_write_path_never_scans_a_growing_table(
    create_database: Callable[[], str],
) -> None:
    async with growth_instance(create_database) as (admin, writer, instance):
        # Plans cached on nearly empty tables: custom plans first, then generic ones.
        for n in range(8):
            await ingest.write_batch(writer, *batch(f"a{n}", range(n * 5, n * 5 + 5)), store=True)

        # A hundredfold growth behind the planner's back: no ANALYZE follows.
        await admin.execute(
            "INSERT INTO campaign_enrollments (instance_id, contact_email, linkedin_url, status)"
            " SELECT $1, 'old' || g || '@example.com', 'https://linkedin.com/in/old-' || g,"
            " 'active' FROM generate_series(1, 4000) g",
            instance,
        )
        await admin.execute(
            "INSERT INTO campaign_events (enrollment_id, instance_id, event_type, channel,"
            " provider, provider_event_id, campaign_key, timestamp)"
            " SELECT e.id, e.instance_id, 'sent', 'email', 'lemlist', 'old_' || e.id || '_' || k,"
            " 'cam_growth', now() FROM campaign_enrollments e, generate_series(1, 5) k"
        )
        await admin.execute(
            "INSERT INTO webhook_deliveries (provider, body, body_size, status)"
            " SELECT 'lemlist', '\\x7b7d', 2, 'processed' FROM generate_series(1, 20000)"
        )
        await flushed(writer)
        before = await seq_scans(admin)

        # New people, people of the grown tables, and redeliveries, on the same connection.
        for n in range(6):
            await ingest.write_batch(
                writer, *batch(f"b{n}", range(1000 + n * 10, 1010 + n * 10)), store=True
            )
        old = [f"old{g}@example.com" for g in range(1, 31)]
        events, deliveries = batch("c", range(30))
        events = [e._replace(email=email, urls=None) for e, email in zip(events, old, strict=True)]
        await ingest.write_batch(writer, events, deliveries, store=True)
        await ingest.write_batch(writer, *batch("b0", range(1000, 1010)), store=True)
        await flushed(writer)
        after = await seq_scans(admin)

        grown = {t: after[t][0] - before[t][0] for t in WRITE_PATH}
        assert grown == dict.fromkeys(WRITE_PATH, 0), grown
        assert after["contact_keys"][1] > before["contact_keys"][1]  # the probes did happen
        # Probes, not index ranges filtered row by row: 98 events read a few
        # enrollments each, never the instance's 4,000.
        fetched = after["campaign_enrollments"][2] - before["campaign_enrollments"][2]
        assert fetched < 1000, fetched
        assert (
            await admin.fetchval(
                "SELECT count(*) FROM campaign_enrollments WHERE instance_id = $1", instance
            )
            == 40 + 4000 + 60
        )


async def test_merges_probe_the_enrollments_they_merge(
    create_database: Callable[[], str],
) -> None:
    """Merging people of a grown instance reads their enrollments, not the instance's."""
    async with growth_instance(create_database) as (admin, writer, instance):
        # Each person twice: once known by e-mail only, once by LinkedIn only.
        await admin.execute(
            "INSERT INTO campaign_enrollments (instance_id, contact_email, status)"
            " SELECT $1, 'lead' || g || '@example.com', 'active' FROM generate_series(1, 2000) g",
            instance,
        )
        await admin.execute(
            "INSERT INTO campaign_enrollments (instance_id, linkedin_url, status)"
            " SELECT $1, 'https://www.linkedin.com/in/lead-' || g, 'active'"
            " FROM generate_series(1, 2000) g",
            instance,
        )
        await flushed(writer)
        before = await seq_scans(admin)

        # Events carrying both identifiers prove each pair one person.
        for n in range(8):
            await ingest.write_batch(
                writer, *batch(f"m{n}", range(1 + n * 5, 6 + n * 5)), store=True
            )
        await flushed(writer)
        after = await seq_scans(admin)

        assert (
            await admin.fetchval(
                "SELECT count(*) FROM campaign_enrollments WHERE instance_id = $1", instance
            )
            == 4000 - 40
        )
        assert after["campaign_enrollments"][0] == before["campaign_enrollments"][0]
        fetched = after["campaign_enrollments"][2] - before["campaign_enrollments"][2]
        assert fetched < 1000, fetched

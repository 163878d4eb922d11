"""The sample data of the original design, loaded into the migrated schema.

The queries under "Verify Schema" and "View Sample Data" are the seed
document's own (seed/000_caab0d8d36ab637f.txt), run verbatim.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gateway.db import ingest
from gateway.db.seed import SEED_COUNTS, load_seed
from tests.schema import INDEXES, INDEXES_QUERY, by_table

if TYPE_CHECKING:
    from gateway.db.pool import Pool

ACTIVE = uuid.UUID("5eed0004-0000-4000-8000-000000000001")
PAUSED = uuid.UUID("5eed0004-0000-4000-8000-000000000002")
DRAFT = uuid.UUID("5eed0004-0000-4000-8000-000000000003")
COMPLETED_ENROLLMENT = uuid.UUID("5eed0005-0000-4000-8000-000000000001")
ACTIVE_ENROLLMENT = uuid.UUID("5eed0005-0000-4000-8000-000000000002")
MULTI_CHANNEL_ENROLLMENT = uuid.UUID("5eed0005-0000-4000-8000-000000000003")

BASELINE = {
    ACTIVE: (150, 145, 87, 34, 12),
    PAUSED: (75, 72, 41, 15, 6),
    DRAFT: (0, 0, 0, 0, 0),
}
"""(enrolled, sent, opened, clicked, replied) per seeded instance."""

COUNTERS = "SELECT total_enrolled, total_sent, total_opened, total_clicked, total_replied"

CAMPAIGN_TABLES = (
    "campaign_templates",
    "email_sequences",
    "linkedin_sequences",
    "campaign_instances",
    "campaign_enrollments",
    "campaign_events",
)


async def seeded(pool: Pool) -> Pool:
    async with pool.acquire() as conn:
        assert await load_seed(conn) is True
    return pool


async def row_counts(pool: Pool) -> dict[str, int]:
    return {table: await pool.fetchval(f"SELECT count(*) FROM {table}") for table in SEED_COUNTS}


async def counters(pool: Pool, instance_id: uuid.UUID) -> tuple[int, ...]:
    row = await pool.fetchrow(f"{COUNTERS} FROM campaign_instances WHERE id = $1", instance_id)
    return tuple(row)


async def add_event(
    pool: Pool, enrollment_id: uuid.UUID, instance_id: uuid.UUID, event_type: str
) -> None:
    """One more lemlist email event for the enrollment, written as ingestion writes it."""
    delivery_id = uuid.uuid4()
    at = datetime(2025, 1, 12, 9, 30, tzinfo=UTC)
    event = ingest.EventArgs(
        id=uuid.uuid4(),
        provider="lemlist",
        provider_event_id=f"act_test_{uuid.uuid4().hex}",
        campaign_key=None,
        instance_hint=instance_id,
        enrollment_hint=enrollment_id,
        email=None,
        urls=None,
        delivery_id=delivery_id,
        event_type=event_type,
        channel="email",
        step_number=2,
        timestamp=at,
        metadata={},
    )
    delivery = ingest.DeliveryArgs(
        delivery_id, "lemlist", at, b"{}", 2, {}, {}, None, None, 1, None, None
    )
    async with pool.acquire() as conn:
        [outcome] = await ingest.write_batch(conn, [event], [delivery], store=True)
    assert (outcome.status, outcome.written) == ("processed", 1)


async def test_load_seed_gives_exactly_the_seed_counts(clean_db: Pool) -> None:
    await seeded(clean_db)
    assert await row_counts(clean_db) == SEED_COUNTS


async def test_load_seed_twice_adds_nothing(clean_db: Pool) -> None:
    await seeded(clean_db)
    async with clean_db.acquire() as conn:
        assert await load_seed(conn) is False
    assert await row_counts(clean_db) == SEED_COUNTS


async def test_concurrent_loads_seed_once(clean_db: Pool) -> None:
    async def load() -> bool:
        async with clean_db.acquire() as conn:
            return await load_seed(conn)

    assert sorted(await asyncio.gather(load(), load())) == [False, True]
    assert await row_counts(clean_db) == SEED_COUNTS


async def test_second_load_keeps_counters_moved_by_ingestion(clean_db: Pool) -> None:
    await seeded(clean_db)
    await add_event(clean_db, ACTIVE_ENROLLMENT, ACTIVE, "replied")
    moved = await counters(clean_db, ACTIVE)
    assert moved == (150, 145, 87, 34, 13)
    async with clean_db.acquire() as conn:
        assert await load_seed(conn) is False
    assert await counters(clean_db, ACTIVE) == moved


async def test_verify_schema_counts(clean_db: Pool) -> None:
    await seeded(clean_db)
    tables = await clean_db.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    )
    assert set(CAMPAIGN_TABLES) <= {r["tablename"] for r in tables}  # \dt
    assert await clean_db.fetchval("SELECT COUNT(*) FROM campaign_templates;") == 4
    assert await clean_db.fetchval("SELECT COUNT(*) FROM email_sequences;") == 5
    assert await clean_db.fetchval("SELECT COUNT(*) FROM linkedin_sequences;") == 6
    assert await clean_db.fetchval("SELECT COUNT(*) FROM campaign_instances;") == 3
    assert await clean_db.fetchval("SELECT COUNT(*) FROM campaign_enrollments;") == 3
    assert await clean_db.fetchval("SELECT COUNT(*) FROM campaign_events;") == 16


async def test_view_campaign_templates(clean_db: Pool) -> None:
    await seeded(clean_db)
    rows = await clean_db.fetch(
        "SELECT id, name, type, path_type, is_active FROM campaign_templates;"
    )
    assert {(r["name"], r["type"], r["path_type"], r["is_active"]) for r in rows} == {
        ("Tech Company Outreach", "email", "structured", True),
        ("SaaS Decision Makers", "multi_channel", "structured", True),
        ("LinkedIn Connection Campaign", "linkedin", "structured", True),
        ("AI-Personalized Enterprise", "multi_channel", "dynamic_ai", False),
    }


async def test_view_active_campaigns_with_metrics(clean_db: Pool) -> None:
    await seeded(clean_db)
    rows = await clean_db.fetch(
        """
        SELECT
            name,
            status,
            total_enrolled,
            total_sent,
            total_opened,
            total_replied
        FROM campaign_instances
        WHERE status = 'active';
        """
    )
    assert [tuple(r) for r in rows] == [
        ("Tech Company Outreach - Q1 2025 Series B CTOs", "active", 150, 145, 87, 12)
    ]


async def test_view_recent_events(clean_db: Pool) -> None:
    await seeded(clean_db)
    rows = await clean_db.fetch(
        """
        SELECT
            ce.event_type,
            ce.channel,
            ce.provider,
            ce.timestamp,
            ci.name as campaign_name
        FROM campaign_events ce
        JOIN campaign_enrollments enr ON ce.enrollment_id = enr.id
        JOIN campaign_instances ci ON enr.instance_id = ci.id
        ORDER BY ce.timestamp DESC
        LIMIT 10;
        """
    )
    saas = "SaaS Decision Makers - EMEA February 2025"
    tech = "Tech Company Outreach - Q1 2025 Series B CTOs"
    assert [(r["event_type"], r["channel"], r["provider"], r["campaign_name"]) for r in rows] == [
        ("message_sent", "linkedin", "phantombuster", saas),
        ("connection_requested", "linkedin", "phantombuster", saas),
        ("opened", "email", "postmark", saas),
        ("delivered", "email", "postmark", saas),
        ("sent", "email", "postmark", saas),
        ("profile_visited", "linkedin", "phantombuster", saas),
        ("opened", "email", "lemlist", tech),
        ("sent", "email", "lemlist", tech),
        ("replied", "email", "lemlist", tech),
        ("opened", "email", "lemlist", tech),
    ]
    timestamps = [r["timestamp"] for r in rows]
    assert timestamps == sorted(timestamps, reverse=True)


async def test_seeded_counters_are_the_baseline(clean_db: Pool) -> None:
    await seeded(clean_db)
    for instance_id, baseline in BASELINE.items():
        assert await counters(clean_db, instance_id) == baseline
    statuses = await clean_db.fetch("SELECT id, status FROM campaign_instances")
    assert {r["id"]: r["status"] for r in statuses} == {
        ACTIVE: "active",
        PAUSED: "paused",
        DRAFT: "draft",
    }


async def test_enrollments_and_their_events(clean_db: Pool) -> None:
    await seeded(clean_db)
    rows = await clean_db.fetch(
        """
        SELECT e.id, e.status, e.current_step, e.next_action_at, e.contact_email, e.linkedin_url,
               count(ev.id) AS events,
               count(ev.id) FILTER (WHERE ev.channel = 'linkedin') AS linkedin_events,
               bool_and(ev.instance_id = e.instance_id) AS same_instance
        FROM campaign_enrollments e
        JOIN campaign_events ev ON ev.enrollment_id = e.id
        GROUP BY e.id
        """
    )
    by_id = {r["id"]: r for r in rows}
    assert by_id[COMPLETED_ENROLLMENT]["status"] == "completed"
    assert by_id[COMPLETED_ENROLLMENT]["events"] == 6
    active = by_id[ACTIVE_ENROLLMENT]
    assert (active["status"], active["events"]) == ("active", 4)
    assert active["current_step"] > 0
    assert active["next_action_at"] is not None
    multi = by_id[MULTI_CHANNEL_ENROLLMENT]
    assert multi["events"] == 6
    assert multi["linkedin_events"] > 0
    assert multi["contact_email"]
    assert multi["linkedin_url"]
    assert all(r["same_instance"] for r in rows)

    providers = await clean_db.fetch("SELECT DISTINCT provider, channel FROM campaign_events")
    assert {r["provider"] for r in providers} == {"lemlist", "postmark", "phantombuster"}
    assert {r["channel"] for r in providers} == {"email", "linkedin"}
    missing = await clean_db.fetchval(
        "SELECT count(*) FROM campaign_events"
        " WHERE step_number IS NULL OR metadata = '{}'::jsonb OR instance_id IS NULL"
    )
    assert missing == 0


async def test_instances_name_provider_keys_of_their_own(clean_db: Pool) -> None:
    """The example payloads' campaign keys never attach to seeded instances."""
    await seeded(clean_db)
    rows = await clean_db.fetch("SELECT provider_config FROM campaign_instances")
    for row in rows:
        config = row["provider_config"]
        assert config["email_provider"] in ("lemlist", "postmark")
        assert config["linkedin_provider"] in ("lemlist", "phantombuster")
        keys = {
            config.get("lemlist_campaign_id"),
            config.get("postmark_tag"),
            config.get("phantombuster_agent_id"),
            *config.get("phantombuster_agent_ids", []),
        }
        assert keys - {None}
        assert not keys & {
            "cam_R7vK2mXq9PdL4sWtA",
            "7318204659127734",
            "q1-outbound-step-1",
            "q1-outbound-step-2",
            "q1-outbound-step-3",
        }


async def test_seeded_state_prevents_double_counting(clean_db: Pool) -> None:
    await seeded(clean_db)
    masks = await clean_db.fetch(
        "SELECT e.id, e.event_mask, (SELECT bit_or(event_bit(v.event_type, v.metadata))"
        " FROM campaign_events v WHERE v.enrollment_id = e.id) AS from_events"
        " FROM campaign_enrollments e WHERE e.id = ANY($1::uuid[])",
        [COMPLETED_ENROLLMENT, ACTIVE_ENROLLMENT, MULTI_CHANNEL_ENROLLMENT],
    )
    assert len(masks) == 3
    assert all(r["event_mask"] == r["from_events"] != 0 for r in masks)

    # Sarah Chen has opened already: another open moves nothing.
    await add_event(clean_db, COMPLETED_ENROLLMENT, ACTIVE, "opened")
    assert await counters(clean_db, ACTIVE) == BASELINE[ACTIVE]

    # Marcus Bell has never clicked: his first click counts once.
    await add_event(clean_db, ACTIVE_ENROLLMENT, ACTIVE, "clicked")
    assert await counters(clean_db, ACTIVE) == (150, 145, 87, 35, 12)


async def test_email_steps_and_delays(clean_db: Pool) -> None:
    await seeded(clean_db)
    rows = await clean_db.fetch(
        "SELECT template_id, step_number, subject, body_template, delay_hours"
        " FROM email_sequences ORDER BY template_id, step_number"
    )
    assert len({r["template_id"] for r in rows}) == 2
    assert {r["delay_hours"] for r in rows if r["step_number"] > 1} == {72, 96, 120}
    assert all(r["delay_hours"] == 0 for r in rows if r["step_number"] == 1)
    assert all("{{" in r["subject"] for r in rows)
    assert all(r["body_template"].startswith("<p>") for r in rows)


async def test_linkedin_steps_with_email_fallback(clean_db: Pool) -> None:
    await seeded(clean_db)
    rows = await clean_db.fetch(
        "SELECT template_id, step_number, action_type, fallback_channel"
        " FROM linkedin_sequences ORDER BY template_id, step_number"
    )
    by_template: dict[uuid.UUID, list[str]] = {}
    for r in rows:
        by_template.setdefault(r["template_id"], []).append(r["action_type"])
    assert all(
        actions[:3] == ["profile_visit", "connection_request", "message"]
        for actions in by_template.values()
    )
    assert [r["fallback_channel"] for r in rows if r["fallback_channel"]] == ["email"]


async def test_the_campaign_tables_carry_their_named_indexes(clean_db: Pool) -> None:
    """The seed document's six tables, with (at least) its 19 indexes, each by name."""
    rows = await clean_db.fetch(INDEXES_QUERY)
    found = by_table([(r["tablename"], r["indexname"]) for r in rows])
    expected = {table: INDEXES[table] for table in CAMPAIGN_TABLES}
    assert {table: found.get(table) for table in CAMPAIGN_TABLES} == expected
    assert sum(len(names) for names in expected.values()) >= 19

"""Migrations are tested code: apply, roll back, apply again; SQL matches schema."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from yoyo import read_migrations

from gateway.db.migrate import (
    apply_migrations,
    migration_backend,
    migrations_dir,
    rollback_migrations,
)
from gateway.db.pool import Pool
from gateway.db.sql import FILES, load_queries
from providers.base import normalize_linkedin_url
from tests.schema import INDEXES, INDEXES_QUERY, MIGRATIONS, by_table

CAMPAIGN_TABLES = {
    "campaign_templates",
    "campaign_instances",
    "email_sequences",
    "linkedin_sequences",
    "campaign_enrollments",
    "campaign_events",
}


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename NOT LIKE '\\_yoyo%' AND tablename NOT LIKE 'yoyo%'"
        )
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


async def _indexes(url: str) -> dict[str, frozenset[str]]:
    conn = await asyncpg.connect(url)
    try:
        return by_table([(r["tablename"], r["indexname"]) for r in await conn.fetch(INDEXES_QUERY)])
    finally:
        await conn.close()


async def test_apply_rollback_apply(create_database: Callable[[], str]) -> None:
    url = create_database()
    applied = apply_migrations(url)
    assert applied == list(MIGRATIONS)
    assert await _tables(url) == set(INDEXES)
    assert await _indexes(url) == INDEXES
    assert apply_migrations(url) == []  # running it twice is safe

    assert rollback_migrations(url) == list(reversed(MIGRATIONS))
    assert await _tables(url) == set()
    assert await _indexes(url) == {}

    assert apply_migrations(url) == list(MIGRATIONS)
    assert await _indexes(url) == INDEXES


async def test_exactly_the_named_indexes(pool: Pool) -> None:
    """Every index the read and write paths rely on, by name (tests/schema.py)."""
    found = by_table([(r["tablename"], r["indexname"]) for r in await pool.fetch(INDEXES_QUERY)])
    assert found == INDEXES
    # The original design's six tables carry at least its 19 indexes.
    assert sum(len(INDEXES[table]) for table in CAMPAIGN_TABLES) >= 19


BY_FILE = {stem: load_queries(stem) for stem in FILES}
NAMED = {name: sql for queries in BY_FILE.values() for name, sql in queries.items()}


def test_query_names_are_unique_across_files() -> None:
    assert len(NAMED) == sum(len(queries) for queries in BY_FILE.values())


@pytest.mark.parametrize("name", sorted(NAMED))
async def test_every_named_query_prepares_against_the_schema(pool: Pool, name: str) -> None:
    async with pool.acquire() as conn:
        await conn.prepare(NAMED[name])


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://www.linkedin.com/in/Dana-Whitfield/", "linkedin.com/in/dana-whitfield"),
        ("http://linkedin.com/in/dana-whitfield?trk=x#top", "linkedin.com/in/dana-whitfield"),
        ("  linkedin.com/in/dana-whitfield//  ", "linkedin.com/in/dana-whitfield"),
        ("HTTPS://WWW.LINKEDIN.COM/IN/ABC", "linkedin.com/in/abc"),
        ("/", None),
        ("/ ?", None),  # found by hypothesis: white space goes before the trailing slash
        ("a/ /", "a"),
    ],
)
async def test_sql_linkedin_key(pool: Pool, url: str, key: str | None) -> None:
    assert await pool.fetchval("SELECT linkedin_key($1)", url) == key


@settings(max_examples=150, deadline=None)
@given(
    st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from("\t\n "),
        max_size=60,
    )
)
async def test_sql_and_python_linkedin_keys_agree(pool: Pool, url: str) -> None:
    assert await pool.fetchval("SELECT linkedin_key($1)", url) == normalize_linkedin_url(url)


async def test_people_split_by_earlier_versions_are_merged_on_upgrade(
    create_database: Callable[[], str],
) -> None:
    """A database written before migration 0007 holds one person as two enrollments.

    lemlist's LinkedIn activity named both the lead's e-mail and profile but
    was matched by e-mail only; PhantomBuster's row for the profile then made
    a second enrollment. Upgrading merges them, with their events and counters.
    """
    url = create_database()
    before = read_migrations(str(migrations_dir())).filter(
        lambda m: m.id <= "0006_event_campaign_key"
    )
    with migration_backend(url) as backend, backend.lock():
        backend.apply_migrations(backend.to_apply(before))
    conn = await asyncpg.connect(url)
    try:
        template = await conn.fetchval(
            "INSERT INTO campaign_templates (name, type) VALUES ('t', 'multi_channel') RETURNING id"
        )
        instance = await conn.fetchval(
            "INSERT INTO campaign_instances (template_id, name, status, provider_config)"
            " VALUES ($1, 'split', 'active',"
            ' \'{"lemlist_campaign_id": "cam_split", "phantombuster_agent_id": "77"}\')'
            " RETURNING id",
            template,
        )
        by_email = await conn.fetchval(
            "INSERT INTO campaign_enrollments (instance_id, contact_email, created_at)"
            " VALUES ($1, 'dana@example.com', '2025-01-01') RETURNING id",
            instance,
        )
        by_profile = await conn.fetchval(
            "INSERT INTO campaign_enrollments (instance_id, linkedin_url, created_at)"
            " VALUES ($1, 'https://www.linkedin.com/in/dana/', '2025-01-02') RETURNING id",
            instance,
        )
        lemlist_body = (
            '{"_id": "act_1", "type": "linkedinInviteDone", "campaignId": "cam_split",'
            ' "leadEmail": "Dana@example.com", "linkedinUrl": "https://linkedin.com/in/dana"}'
        )
        delivery = await conn.fetchval(
            "INSERT INTO webhook_deliveries (provider, body, body_size, status)"
            " VALUES ('lemlist', convert_to($1, 'UTF8'), 100, 'processed') RETURNING id",
            lemlist_body,
        )
        for enrollment, provider, key, event_type, channel, owner in (
            (by_email, "lemlist", "act_0", "sent", "email", None),
            (by_email, "lemlist", "act_1", "connection_requested", "linkedin", delivery),
            (
                by_profile,
                "phantombuster",
                "77:connect:dana",
                "connection_accepted",
                "linkedin",
                None,
            ),
        ):
            await conn.execute(
                "INSERT INTO campaign_events (enrollment_id, instance_id, delivery_id, event_type,"
                " channel, provider, provider_event_id, timestamp)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, '2025-02-01')",
                enrollment,
                instance,
                owner,
                event_type,
                channel,
                provider,
                key,
            )
        assert (
            await conn.fetchval(
                "SELECT total_enrolled FROM campaign_instances WHERE id = $1", instance
            )
            == 2
        )

        apply_migrations(url)

        rows = await conn.fetch(
            "SELECT id, contact_email, linkedin_key, status, event_mask, merged_from"
            " FROM campaign_enrollments"
        )
        assert len(rows) == 1
        [dana] = rows
        assert (dana["id"], dana["contact_email"], dana["linkedin_key"]) == (
            by_email,
            "dana@example.com",
            "linkedin.com/in/dana",
        )
        assert dana["status"] == "active"
        assert [m["enrollment_id"] for m in msgspec.json.decode(dana["merged_from"])] == [
            str(by_profile)
        ]
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM campaign_events WHERE enrollment_id = $1", by_email
            )
            == 3
        )
        counters = await conn.fetchrow(
            "SELECT total_enrolled, total_sent FROM campaign_instances WHERE id = $1", instance
        )
        assert tuple(counters) == (1, 1)
    finally:
        await conn.close()

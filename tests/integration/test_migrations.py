"""Migrations are tested code: apply, roll back, apply again; SQL matches schema."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.db.manage import MANAGE
from gateway.db.migrate import apply_migrations, rollback_migrations
from gateway.db.pool import Pool
from gateway.db.queries import QUERIES
from gateway.db.reads import READS
from gateway.erase import ERASE
from providers.base import normalize_linkedin_url

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


async def test_apply_rollback_apply(create_database: Callable[[], str]) -> None:
    url = create_database()
    applied = apply_migrations(url)
    assert applied == sorted(applied) and len(applied) >= 3
    assert await _tables(url) >= CAMPAIGN_TABLES | {"webhook_deliveries"}
    assert apply_migrations(url) == []  # running it twice is safe

    assert rollback_migrations(url) == list(reversed(applied))
    assert await _tables(url) == set()

    assert apply_migrations(url) == applied
    assert await _tables(url) >= CAMPAIGN_TABLES


async def test_at_least_the_seeds_19_indexes(pool: Pool) -> None:
    count = await pool.fetchval(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND tablename = ANY($1)",
        list(CAMPAIGN_TABLES),
    )
    assert count >= 19


NAMED = QUERIES | READS | MANAGE | ERASE


def test_query_names_are_unique_across_files() -> None:
    assert len(NAMED) == len(QUERIES) + len(READS) + len(MANAGE) + len(ERASE)


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

"""The sample campaign data of the original design, loaded once (`gateway seed`).

The data itself is plain SQL in `seed.sql` next to this module. Loading is
guarded rather than repeated: once the sample data is in, ingestion moves the
seeded instance counters, and running the seed again must neither add rows nor
put those counters back to the baseline.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncpg

SEED_SQL = Path(__file__).with_name("seed.sql")

SEED_COUNTS: dict[str, int] = {
    "campaign_templates": 4,
    "email_sequences": 5,
    "linkedin_sequences": 6,
    "campaign_instances": 3,
    "campaign_enrollments": 3,
    "campaign_events": 16,
}
"""Rows per table that the seed adds, as the original design lists them."""

FIRST_TEMPLATE_ID = uuid.UUID("5eed0001-0000-4000-8000-000000000001")
"""Present exactly when the seed has been loaded: the first row seed.sql inserts."""

SEED_LOCK_KEY = 0x5EED_6A7E_0001
"""pg_advisory_xact_lock key: concurrent `gateway seed` runs load the data once."""


def seed_sql() -> str:
    """The seed statements, read from disk on every call (the file is small)."""
    return SEED_SQL.read_text(encoding="utf-8")


async def load_seed(conn: asyncpg.Connection) -> bool:
    """Load the sample data unless it is there already; True when it was loaded.

    One transaction under an advisory lock, so two concurrent runs cannot both
    see "absent" and both load; the loser waits, sees the first template and
    returns False without touching anything.
    """
    sql = seed_sql()
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SEED_LOCK_KEY)
        present = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM campaign_templates WHERE id = $1)", FIRST_TEMPLATE_ID
        )
        if present:
            return False
        await conn.execute(sql)
    return True

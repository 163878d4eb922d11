"""`gateway.db.retry.retried`: the one retry rule of ingestion, reprocess and the management API.

Real PostgreSQL errors, not made-up ones: a real deadlock is retried until both
sides commit; a value a CHECK refuses is not retried; a conflict that never
goes away becomes a 503 after RETRIES attempts.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import asyncpg
import pytest

from gateway.db.pool import Connection, Pool
from gateway.db.retry import RETRIES, retried
from gateway.errors import Unavailable

TEMPLATE = "INSERT INTO campaign_templates (id, name, type) VALUES ($1, $2, 'email')"
RENAME = "UPDATE campaign_templates SET name = $2 WHERE id = $1"


async def test_a_deadlocked_transaction_runs_again_until_both_commit(clean_db: Pool) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    for template_id in (first, second):
        await clean_db.execute(TEMPLATE, template_id, "before")
    attempts: Counter[str] = Counter()
    locked = {"a": asyncio.Event(), "b": asyncio.Event()}

    async def update(conn: Connection, me: str, other: str, order: tuple[uuid.UUID, ...]) -> None:
        """Lock one row, wait for the other side to lock the other, then take the second."""
        attempts[me] += 1
        async with conn.transaction():
            await conn.execute(
                "UPDATE campaign_templates SET name = $2 WHERE id = $1", order[0], me
            )
            locked[me].set()
            await locked[other].wait()
            await conn.execute(
                "UPDATE campaign_templates SET name = $2 WHERE id = $1", order[1], me
            )

    async with clean_db.acquire() as a, clean_db.acquire() as b:
        async with asyncio.timeout(30):
            await asyncio.gather(
                retried(lambda: update(a, "a", "b", (first, second)), what="test"),
                retried(lambda: update(b, "b", "a", (second, first)), what="test"),
            )
    # PostgreSQL rolled one side back once; run again, it committed after the other,
    # so both rows hold what it wrote.
    assert sorted(attempts.values()) == [1, 2]
    [(again, _)] = [side for side in attempts.items() if side[1] == 2]
    names = await clean_db.fetch(
        "SELECT name FROM campaign_templates WHERE id = ANY($1::uuid[])", [first, second]
    )
    assert [row["name"] for row in names] == [again, again]


async def test_a_refused_value_is_not_run_again(clean_db: Pool) -> None:
    attempts = 0

    async def insert() -> None:
        nonlocal attempts
        attempts += 1
        await clean_db.execute(TEMPLATE, uuid.uuid4(), " ")  # CHECK: a name is not blank

    with pytest.raises(asyncpg.CheckViolationError):
        await retried(insert, what="test")
    assert attempts == 1
    assert await clean_db.fetchval("SELECT count(*) FROM campaign_templates") == 0


async def test_a_conflict_that_stays_is_a_503_after_every_attempt(clean_db: Pool) -> None:
    taken = uuid.uuid4()
    await clean_db.execute(TEMPLATE, taken, "first")
    attempts = 0

    async def insert() -> None:
        nonlocal attempts
        attempts += 1
        await clean_db.execute(TEMPLATE, taken, "again")

    with pytest.raises(Unavailable) as raised:
        await retried(insert, what="test")
    assert attempts == RETRIES
    assert isinstance(raised.value.__cause__, asyncpg.UniqueViolationError)
    assert raised.value.status == 503

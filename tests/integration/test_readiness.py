"""`/readyz` says not ready while writes fail, not only while the database is unreachable."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import msgspec
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.db.migrate import apply_migrations
from gateway.readiness import WriteHealth
from gateway.settings import Settings
from tests.conftest import fixture_body
from tests.database import post_webhook

#: What a full disk does to an INSERT: SQLSTATE 53100, raised by a real trigger.
DISK_FULL = """
CREATE FUNCTION disk_is_full() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'could not extend file: No space left on device'
        USING ERRCODE = 'disk_full';
END $$;
CREATE TRIGGER disk_is_full BEFORE INSERT ON webhook_deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION disk_is_full();
"""


async def test_readyz_is_503_while_every_write_fails(
    create_database: Callable[[], str], settings: Settings
) -> None:
    """Issue 13: /readyz answered 200 while the disk was full and every webhook got 503."""
    url = create_database()
    apply_migrations(url)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(DISK_FULL)
        app = create_app(msgspec.structs.replace(settings, database_url=url), configure_logs=False)
        async with AsyncTestClient(app=app) as client:
            assert (await client.get("/readyz")).status_code == 200  # nothing written yet
            body = fixture_body("lemlist", "emailsSent.json")
            refused = await post_webhook(client, "lemlist", body)
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"].isdigit()
            ready = await client.get("/readyz")
            assert ready.status_code == 503, ready.text
            assert ready.headers["retry-after"].isdigit()
            assert ready.json()["status"] == "unavailable"
            assert ready.json()["detail"].startswith("writes failing: database unavailable")
            assert (await client.get("/healthz")).status_code == 200  # alive, not ready

            await conn.execute("DROP TRIGGER disk_is_full ON webhook_deliveries")
            accepted = await post_webhook(client, "lemlist", body)
            assert accepted.status_code == 200, accepted.text
            assert (await client.get("/readyz")).json() == {"status": "ready"}
        assert await conn.fetchval("SELECT count(*) FROM webhook_deliveries") == 1
    finally:
        await conn.close()


def test_a_failed_write_stops_counting_after_its_window() -> None:
    """A gateway taken out of rotation gets traffic again to prove itself."""
    now = [100.0]
    health = WriteHealth(window_s=30, clock=lambda: now[0])
    assert health.failing() is None
    health.failed("disk full")
    now[0] += 29
    assert health.failing() == "disk full"
    now[0] += 2
    assert health.failing() is None
    health.failed("disk full")
    health.committed()
    assert health.failing() is None

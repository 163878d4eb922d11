"""What production does to a gateway: SIGKILL mid-load, PostgreSQL going away.

Real `gateway serve` processes, real PostgreSQL servers, real HTTP clients
that retry like providers do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import psutil
import pytest

from gateway.db.migrate import apply_migrations
from tests.conftest import fixture_body
from tests.e2e.helpers import free_port, gateway_env, map_lemlist_campaign, serving, wait_healthy

pytestmark = pytest.mark.slow

CAMPAIGN = "cam_R7vK2mXq9PdL4sWtA"
SECRET = "s3cret"


def bodies(count: int, prefix: str) -> dict[str, bytes]:
    """Unique lemlist activities by id, spread over 50 leads and two types."""
    sent = json.loads(fixture_body("lemlist", "emailsSent.json"))
    opened = json.loads(fixture_body("lemlist", "emailsOpened.json"))
    made = {}
    for n in range(count):
        template = sent if n % 2 else opened
        activity = f"act_{prefix}_{n}"
        made[activity] = json.dumps(
            template | {"_id": activity, "leadEmail": f"lead{n % 50}@example.com"}
        ).encode()
    return made


async def post_all(
    base: str, todo: dict[str, bytes], concurrency: int = 32, request_timeout_s: float = 10
) -> dict[str, httpx.Response | None]:
    """Post each body once; None where no answer came (connection refused, reset, timeout)."""
    results: dict[str, httpx.Response | None] = {}
    queue = list(todo.items())
    async with httpx.AsyncClient(timeout=request_timeout_s) as client:

        async def worker() -> None:
            while queue:
                activity, body = queue.pop()
                try:
                    results[activity] = await client.post(
                        f"{base}/webhooks/lemlist", params={"token": SECRET}, content=body
                    )
                except httpx.HTTPError:
                    results[activity] = None

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


async def assert_consistent(url: str, acked: dict[str, str], expected_ids: set[str]) -> None:
    """Every acknowledged delivery kept; one row per event; counters equal the events."""
    conn = await asyncpg.connect(url)
    try:
        stored = {
            r["provider_event_id"]
            for r in await conn.fetch("SELECT provider_event_id FROM campaign_events")
        }
        assert stored == expected_ids, (
            f"missing {len(expected_ids - stored)}, extra {len(stored - expected_ids)}"
        )
        assert await conn.fetchval("SELECT count(*) FROM campaign_events") == len(expected_ids)
        delivery_ids = {str(r["id"]) for r in await conn.fetch("SELECT id FROM webhook_deliveries")}
        lost = {a for a, d in acked.items() if d not in delivery_ids}
        assert not lost, f"{len(lost)} acknowledged deliveries have no raw row"
        mismatch = await conn.fetch(
            """
            SELECT i.id FROM campaign_instances i
            WHERE i.total_enrolled <> (SELECT count(*) FROM campaign_enrollments
                                       WHERE instance_id = i.id)
               OR i.total_sent <> (SELECT count(DISTINCT enrollment_id) FROM campaign_events
                                   WHERE instance_id = i.id AND event_type = 'sent')
               OR i.total_opened <> (SELECT count(DISTINCT enrollment_id) FROM campaign_events
                                     WHERE instance_id = i.id AND event_type = 'opened')
            """
        )
        assert not mismatch, "instance counters differ from the events"
    finally:
        await conn.close()


def test_sigkill_mid_load_loses_and_doubles_nothing(
    create_migrated_database: Callable[[], str], tmp_path: Path
) -> None:
    url = create_migrated_database()
    asyncio.run(map_lemlist_campaign(url, CAMPAIGN))
    env = gateway_env(
        DATABASE_URL=url, GATEWAY_DATA_DIR=str(tmp_path), GATEWAY_SECRET_LEMLIST=SECRET
    )
    todo = bodies(3000, "crash")
    port = free_port()
    acked: dict[str, str] = {}

    with serving(env, tmp_path, port=port) as (base, proc):
        # Kill once a good share is committed, while requests are still in flight.
        async def stored_count() -> int:
            conn = await asyncpg.connect(url)
            try:
                value: int = await conn.fetchval("SELECT count(*) FROM webhook_deliveries")
                return value
            finally:
                await conn.close()

        async def run() -> dict[str, httpx.Response | None]:
            posting = asyncio.create_task(post_all(base, todo))
            # The state to wait for is in the database, not in this process.
            while await stored_count() < 800 and not posting.done():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            os.kill(proc.pid, signal.SIGKILL)
            return await posting

        first = asyncio.run(run())
        assert proc.wait(timeout=10) == -signal.SIGKILL

    for activity, response in first.items():
        if response is not None and response.status_code == 200:
            acked[activity] = response.json()["delivery_id"]
    unanswered = {a: b for a, b in todo.items() if a not in acked}
    assert acked, "the kill came before any acknowledgement"
    assert unanswered, "the kill came after the last request"

    # Providers retry what got no 200, and some redeliver what did.
    again = dict(unanswered)
    again.update(random.Random(7).sample(sorted((a, todo[a]) for a in acked), k=len(acked) // 5))
    with serving(env, tmp_path, port=port) as (base, _):
        second = asyncio.run(post_all(base, again))
    assert all(r is not None and r.status_code == 200 for r in second.values())
    for activity in acked:
        if activity in second:
            assert second[activity].json()["status"] == "duplicate"  # type: ignore[union-attr]

    asyncio.run(assert_consistent(url, acked, set(todo)))


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """A PostgreSQL server of this test's own, with stop and start controls.

    `start` retries while the backends of a killed postmaster still hold its
    shared memory (PostgreSQL refuses to start beside them).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
        from pgserver._commands import pg_ctl

    pgdata = tmp_path / "pg" / "pgdata"
    pgdata.parent.mkdir()
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    url = server.get_uri()
    socket_dir = parse_qs(urlsplit(url).query)["host"][0]
    user = "pgserver" if os.geteuid() == 0 else None

    def stop() -> None:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=30)

    def start() -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                log = str(pgdata / "log")
                pg_ctl(
                    ["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", log, "start"],
                    pgdata=pgdata,
                    user=user,
                    timeout=30,
                )
                return
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    yield url, stop, start
    with contextlib.suppress(subprocess.CalledProcessError):
        stop()  # whichever postmaster runs now: pgserver only knows the first
    server.cleanup()


def postmaster_pid(pgdata: Path) -> int:
    """The pid of the postmaster running on `pgdata` (first line of postmaster.pid)."""
    return int((pgdata / "postmaster.pid").read_text().splitlines()[0])


@pytest.mark.parametrize("how", ["stopped", "sigkilled"])
def test_database_outage_gives_fast_503_and_recovers_without_restart(
    own_server: tuple[str, Callable[[], None], Callable[[], None]], tmp_path: Path, how: str
) -> None:
    url, stop, start = own_server
    apply_migrations(url)
    env = gateway_env(
        DATABASE_URL=url, GATEWAY_DATA_DIR=str(tmp_path), GATEWAY_SECRET_LEMLIST=SECRET
    )
    with serving(env, tmp_path) as (base, proc):
        before = asyncio.run(post_all(base, bodies(100, "before")))
        assert {r.status_code for r in before.values() if r is not None} == {200}

        if how == "stopped":
            stop()
        else:  # a crash: no shutdown, the backends find their postmaster gone
            os.kill(postmaster_pid(tmp_path / "pg" / "pgdata"), signal.SIGKILL)
        started = time.monotonic()
        during = asyncio.run(post_all(base, bodies(100, "during"), request_timeout_s=30))
        elapsed = time.monotonic() - started
        codes = {r.status_code for r in during.values() if r is not None}
        assert codes == {503}, codes
        assert all(r is not None and r.headers["retry-after"].isdigit() for r in during.values())
        assert elapsed < 20, f"answers took {elapsed:.1f}s: the gateway hung on the outage"
        ready = httpx.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 503
        assert httpx.get(f"{base}/healthz").status_code == 200

        start()
        wait_healthy(base, proc, 30, tmp_path / "unused.log")
        after = asyncio.run(post_all(base, bodies(100, "during")))
        assert {r.status_code for r in after.values() if r is not None} == {200}
        assert {r.json()["status"] for r in after.values() if r is not None} == {"unmatched"}
    assert asyncio.run(_count(url)) == 200


async def _count(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        value: int = await conn.fetchval("SELECT count(*) FROM campaign_events")
        return value
    finally:
        await conn.close()


def embedded_postmaster_runs(pgdata: Path) -> int | None:
    """The pid of a postmaster running on `pgdata`, or None."""
    try:
        pid = postmaster_pid(pgdata)
        return pid if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE else None
    except (FileNotFoundError, psutil.Error):
        return None


def exits(pid: int, within_s: float = 10) -> bool:
    """Whether `pid` is gone (or only waits to be reaped) within the time given."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


@contextlib.contextmanager
def no_leftover_postmaster(pgdata: Path) -> Iterator[None]:
    """Whatever the test asserts, leave no PostgreSQL it started running."""
    try:
        yield
    finally:
        pid = embedded_postmaster_runs(pgdata)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)


def test_serve_restarts_its_embedded_postgres_after_a_sigkill(tmp_path: Path) -> None:
    """Issue 13: a SIGKILLed embedded postmaster left the gateway answering 503 for ever."""
    env = gateway_env(GATEWAY_DATA_DIR=str(tmp_path / "data"), GATEWAY_SECRET_LEMLIST=SECRET)
    pgdata = tmp_path / "data" / "pgdata"
    with no_leftover_postmaster(pgdata), serving(env, tmp_path) as (base, proc):
        before = asyncio.run(post_all(base, bodies(20, "before")))
        assert {r.status_code for r in before.values() if r is not None} == {200}
        killed = postmaster_pid(pgdata)
        os.kill(killed, signal.SIGKILL)

        seen: list[int] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            ready = httpx.get(f"{base}/readyz", timeout=10)
            seen.append(ready.status_code)
            if ready.status_code == 200 and seen.count(503):
                break
            assert ready.status_code in (200, 503), ready.text
            if ready.status_code == 503:
                assert ready.json()["status"] == "unavailable" and ready.json()["detail"]
            time.sleep(0.2)
        assert seen[-1] == 200, f"not ready again after 90 s: {seen[-5:]}"
        assert 503 in seen, "/readyz never said the database was gone"
        restarted = postmaster_pid(pgdata)
        assert restarted != killed
        after = asyncio.run(post_all(base, bodies(20, "after")))
        assert {r.status_code for r in after.values() if r is not None} == {200}
        again = asyncio.run(post_all(base, bodies(20, "before")))  # stored before the kill
        assert {r.json()["status"] for r in again.values() if r is not None} == {"duplicate"}
        assert proc.poll() is None
    log = next(tmp_path.glob("serve-*.log")).read_text()
    assert "embedded_postgres.died" in log and "embedded_postgres.restarted" in log
    assert embedded_postmaster_runs(pgdata) is None, "a clean stop left PostgreSQL running"


def test_after_a_sigkilled_serve_a_clean_restart_and_stop_stop_postgres(tmp_path: Path) -> None:
    """Issue 13: the SIGKILLed serve stayed in pgserver's handle file, so a later
    clean stop thought PostgreSQL still in use and left it running."""
    env = gateway_env(GATEWAY_DATA_DIR=str(tmp_path / "data"), GATEWAY_SECRET_LEMLIST=SECRET)
    pgdata = tmp_path / "data" / "pgdata"
    with no_leftover_postmaster(pgdata):
        with serving(env, tmp_path) as (base, proc):
            first = asyncio.run(post_all(base, bodies(10, "first")))
            assert {r.status_code for r in first.values() if r is not None} == {200}
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
        survivor = embedded_postmaster_runs(pgdata)
        assert survivor is not None  # a crash stops nothing: PostgreSQL runs on
        assert json.loads((pgdata / ".handle_pids.json").read_text()) == [proc.pid]

        with serving(env, tmp_path) as (base, second):
            assert embedded_postmaster_runs(pgdata) == survivor  # joined, not started again
            again = asyncio.run(post_all(base, bodies(10, "first")))
            assert {r.json()["status"] for r in again.values() if r is not None} == {"duplicate"}
            assert json.loads((pgdata / ".handle_pids.json").read_text()) == [second.pid]
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=30) == 0
        assert embedded_postmaster_runs(pgdata) is None, "the clean stop left PostgreSQL running"
        assert exits(survivor)

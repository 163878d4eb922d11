"""`gateway replay`, `export` and `reprocess` as an operator runs them, on real PostgreSQL.

The HTTP replay goes to a real `gateway serve` process; the direct one into
another database; both must leave the same state.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SECRETS
from tests.e2e.helpers import gateway_env, run_gateway, serving
from tests.replaying import CAPTURE_FILES, MAPPINGS, add_instance, connect, snapshot

FILES = [str(p) for p in CAPTURE_FILES]
SECRET_ENV = {f"GATEWAY_SECRET_{p.upper()}": ",".join(s) for p, s in SECRETS.items()}


@pytest.fixture
def fresh(create_migrated_database: Callable[[], str]) -> Callable[..., str]:
    """A migrated database with these instances (default: every capture mapping)."""

    def make(mappings: dict[str, dict[str, object]] = MAPPINGS) -> str:
        url = create_migrated_database()
        asyncio.run(_add(url, mappings))
        return url

    return make


async def _add(url: str, mappings: dict[str, dict[str, object]]) -> None:
    conn = await connect(url)
    for name, config in mappings.items():
        await add_instance(conn, name, config)
    await conn.close()


def state(url: str) -> dict[str, list[tuple[Any, ...]]]:
    async def read() -> dict[str, list[tuple[Any, ...]]]:
        conn = await connect(url)
        try:
            return await snapshot(conn)
        finally:
            await conn.close()

    return asyncio.run(read())


def summary(stdout: str) -> dict[str, int]:
    """The outcome table at the end of a replay or reprocess."""
    rows = (line.rsplit(None, 1) for line in stdout.splitlines() if line.startswith("  "))
    return {name.strip(): int(n) for name, n in rows}


def test_new_commands_name_their_environment_variables() -> None:
    for command in ("replay", "export", "reprocess"):
        result = run_gateway(command, "--help", env=gateway_env())
        assert result.returncode == 0, result.stderr
        assert "DATABASE_URL" in result.stdout and "GATEWAY_DATA_DIR" in result.stdout
    assert "GATEWAY_SECRET_" in run_gateway("replay", "--help", env=gateway_env()).stdout


@pytest.mark.slow
def test_replay_over_http_and_direct_leave_the_same_state(
    fresh: Callable[..., str], tmp_path: Path
) -> None:
    direct_db, served_db = fresh(), fresh()
    env = gateway_env(GATEWAY_DATA_DIR=str(tmp_path), **SECRET_ENV)

    direct = run_gateway("replay", *FILES, "--database-url", direct_db, env=env)
    assert direct.returncode == 1, direct.stderr  # the capture holds a rejected body
    assert "replayed 34 deliveries into the database" in direct.stdout
    expected = {
        "processed": 17,
        "duplicate": 2,
        "unmatched": 7,
        "ignored": 7,
        "pending": 0,
        "rejected": 1,
        "errors": 0,
        "invalid": 0,
    }
    assert summary(direct.stdout) == expected
    assert "lemlist.jsonl:8: rejected: $: body is not valid JSON" in direct.stderr

    with serving(gateway_env(DATABASE_URL=served_db, **SECRET_ENV), tmp_path) as (base, _):
        over_http = run_gateway("replay", "--url", base, "--concurrency", "4", *FILES, env=env)
    assert over_http.returncode == 1, over_http.stderr
    assert f"replayed 34 deliveries to {base}" in over_http.stdout
    assert summary(over_http.stdout) == expected
    assert "lemlist.jsonl:8: rejected: HTTP 400" in over_http.stderr

    assert state(direct_db) == state(served_db)

    again = run_gateway("replay", *FILES, "--database-url", direct_db, env=env)
    assert again.returncode == 0, again.stderr
    assert summary(again.stdout)["duplicate"] == 34


def test_replay_over_http_with_a_wrong_secret_fails(
    fresh: Callable[..., str], tmp_path: Path
) -> None:
    served_db = fresh({})
    with serving(gateway_env(DATABASE_URL=served_db, **SECRET_ENV), tmp_path) as (base, _):
        wrong = gateway_env(GATEWAY_DATA_DIR=str(tmp_path / "elsewhere"))  # generates others
        result = run_gateway("replay", "--url", base, FILES[0], env=wrong)
    assert result.returncode == 1
    assert summary(result.stdout)["errors"] == 15
    assert "error: secret refused" in result.stderr


@pytest.mark.slow
def test_export_replay_and_reprocess(fresh: Callable[..., str], tmp_path: Path) -> None:
    lemlist_only = {"lemlist Q1": MAPPINGS["lemlist Q1"]}
    source, target = fresh(lemlist_only), fresh(lemlist_only)
    env = gateway_env(GATEWAY_DATA_DIR=str(tmp_path), **SECRET_ENV)
    assert run_gateway("replay", *FILES, "--database-url", source, env=env).returncode == 1

    capture = tmp_path / "production.jsonl"
    exported = run_gateway("export", "--database-url", source, "--output", str(capture), env=env)
    assert exported.returncode == 0, exported.stderr
    assert "exported 34 deliveries" in exported.stderr
    filtered = run_gateway(
        "export", "--database-url", source, "--provider", "postmark", "--status", "unmatched",
        "--from", "2025-03-10", "--to", "2025-03-11T00:00:00Z", env=env,
    )  # fmt: skip
    lines = [json.loads(line) for line in filtered.stdout.splitlines()]
    assert len(lines) == 6 and {line["provider"] for line in lines} == {"postmark"}

    replayed = run_gateway("replay", str(capture), "--database-url", target, env=env)
    assert summary(replayed.stdout)["rejected"] == 1
    assert state(target) == state(source)

    asyncio.run(_add(target, {"postmark step 2": MAPPINGS["postmark step 2"]}))
    before = state(target)
    dry = run_gateway("reprocess", "--dry-run", "--database-url", target, env=env)
    assert dry.returncode == 0, dry.stderr
    assert "dry run: 34 deliveries examined" in dry.stdout
    assert summary(dry.stdout)["attached events"] == 4
    assert state(target) == before

    real = run_gateway("reprocess", "--batch-size", "7", "--database-url", target, env=env)
    assert real.returncode == 0, real.stderr
    done = summary(real.stdout)
    assert (done["attached events"], done["new events"], done["deliveries updated"]) == (4, 0, 4)
    assert "unmatched -> processed" in real.stdout
    assert state(target) != before

    again = run_gateway("reprocess", "--database-url", target, env=env)
    assert summary(again.stdout)["deliveries updated"] == 0

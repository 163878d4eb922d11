"""The `gateway` command as a user runs it, against real PostgreSQL."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from gateway.db.migrate import migrations_dir
from tests.conftest import fixture_body
from tests.e2e.helpers import free_port, gateway_env, run_gateway, serving, wait_healthy


@pytest.fixture
def fresh_url(create_database: Callable[[], str]) -> str:
    return create_database()


def test_help_names_environment_variables() -> None:
    for args in (["--help"], ["serve", "--help"], ["db", "check", "--help"]):
        result = run_gateway(*args, env=gateway_env())
        assert result.returncode == 0
        assert "DATABASE_URL" in result.stdout
        assert "GATEWAY_DATA_DIR" in result.stdout


def test_migrate_twice_is_safe(fresh_url: str, tmp_path: Path) -> None:
    env = gateway_env(DATABASE_URL=fresh_url, GATEWAY_DATA_DIR=str(tmp_path))
    first = run_gateway("migrate", env=env)
    assert first.returncode == 0, first.stderr
    migrations = [p for p in migrations_dir().glob("*.sql") if not p.name.endswith(".rollback.sql")]
    assert f"applied {len(migrations)} migration(s)" in first.stdout
    second = run_gateway("migrate", env=env)
    assert "applied 0 migration(s)" in second.stdout


def test_seed_then_stats_show_the_seed_counts(fresh_url: str, tmp_path: Path) -> None:
    env = gateway_env(GATEWAY_DATA_DIR=str(tmp_path))
    seeded = run_gateway("seed", "--database-url", fresh_url, env=env)
    assert seeded.returncode == 0, seeded.stderr
    again = run_gateway("seed", "--database-url", fresh_url, env=env)
    assert "nothing added" in again.stdout
    stats = run_gateway("db", "stats", "--database-url", fresh_url, env=env)
    assert stats.returncode == 0, stats.stderr
    counts = dict(line.split() for line in stats.stdout.splitlines() if line.startswith("  "))
    assert counts == {
        "campaign_templates": "4",
        "email_sequences": "5",
        "linkedin_sequences": "6",
        "campaign_instances": "3",
        "campaign_enrollments": "3",
        "campaign_events": "16",
        "webhook_deliveries": "0",
    }
    assert "Database size:" in stats.stdout and "Connections:" in stats.stdout


def test_db_check(fresh_url: str, tmp_path: Path) -> None:
    ok = run_gateway("db", "check", env=gateway_env(DATABASE_URL=fresh_url))
    assert ok.returncode == 0, ok.stderr
    assert "Database: gw_test_" in ok.stdout
    assert "Server time:" in ok.stdout
    assert "PostgreSQL version: PostgreSQL 1" in ok.stdout
    down = run_gateway(
        "db", "check", env=gateway_env(DATABASE_URL=f"postgresql://x@/db?host={tmp_path}&port=9")
    )
    assert down.returncode != 0
    assert down.stderr.startswith("error: cannot reach the database at postgresql://x@")


def test_urls_generates_owner_only_secrets_once(tmp_path: Path) -> None:
    env = gateway_env(GATEWAY_DATA_DIR=str(tmp_path), GATEWAY_SECRET_LEMLIST="a,b")
    first = run_gateway("urls", "--base-url", "https://hooks.example.com", env=env)
    assert first.returncode == 0, first.stderr
    secrets_file = tmp_path / "webhook-secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    stored = json.loads(secrets_file.read_text())
    assert set(stored) == {"postmark", "phantombuster"}
    assert f"https://hooks.example.com/webhooks/postmark?token={stored['postmark']}" in first.stdout
    assert f"https://postmark:{stored['postmark']}@hooks.example.com/webhooks/postmark" in (
        first.stdout
    )
    assert "https://hooks.example.com/webhooks/lemlist?token=a" in first.stdout
    second = run_gateway("urls", "--base-url", "https://hooks.example.com", env=env)
    assert second.stdout == first.stdout


def test_api_key_is_generated_once_and_printed(fresh_url: str, tmp_path: Path) -> None:
    env = gateway_env(DATABASE_URL=fresh_url, GATEWAY_DATA_DIR=str(tmp_path / "data"))
    with serving(env, tmp_path) as (base, _):
        printed = run_gateway("api-key", env=env)
        assert printed.returncode == 0, printed.stderr
        key = printed.stdout.strip()
        template = {"name": "T", "type": "email"}
        created = httpx.post(
            f"{base}/api/campaigns/templates", json=template, headers={"x-api-key": key}
        )
        assert created.status_code == 201, created.text
        refused = httpx.post(f"{base}/api/campaigns/templates", json=template)
        assert refused.status_code == 401
    serve_log = next(tmp_path.glob("serve-*.log")).read_text()
    assert key not in serve_log  # stdout is a file here, not a terminal: never printed
    assert "gateway api-key" in serve_log
    key_file = tmp_path / "data" / "api-key.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert run_gateway("api-key", env=env).stdout.strip() == key
    configured = run_gateway("api-key", env=env | {"GATEWAY_API_KEY": "first,second"})
    assert configured.stdout.strip() == "first"


@pytest.mark.slow
def test_serve_on_embedded_postgres_keeps_data_across_restarts(tmp_path: Path) -> None:
    """The README's first command: no DATABASE_URL, data under GATEWAY_DATA_DIR."""
    env = gateway_env(GATEWAY_DATA_DIR=str(tmp_path / "data"), GATEWAY_SECRET_LEMLIST="s3cret")
    body = fixture_body("lemlist", "emailsSent.json")
    with serving(env, tmp_path) as (base, proc):
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        posted = httpx.post(f"{base}/webhooks/lemlist?token=s3cret", content=body)
        assert posted.json()["status"] == "unmatched"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    pgdata = tmp_path / "data" / "pgdata"
    assert not (pgdata / "postmaster.pid").exists(), "embedded PostgreSQL left running"
    with serving(env, tmp_path) as (base, _):
        again = httpx.post(f"{base}/webhooks/lemlist?token=s3cret", content=body)
        assert again.json()["status"] == "duplicate"  # the first event survived the restart
    stats = run_gateway("db", "stats", env=env)
    assert "campaign_events        1" in stats.stdout


def test_serve_prints_generated_secrets_to_a_terminal_only(fresh_url: str, tmp_path: Path) -> None:
    """Issue 13: `serve` printed generated secrets to stdout even when it was a log file."""
    logged = tmp_path / "logged"
    logged.mkdir()
    env = gateway_env(DATABASE_URL=fresh_url, GATEWAY_DATA_DIR=str(logged / "data"))
    with serving(env, logged):
        pass
    log = next(logged.glob("serve-*.log")).read_text()
    generated = [
        *json.loads((logged / "data" / "webhook-secrets.json").read_text()).values(),
        json.loads((logged / "data" / "api-key.json").read_text())["api_key"],
    ]
    assert len(generated) == 4
    assert not [secret for secret in generated if secret in log]
    assert "gateway urls" in log and "gateway api-key" in log

    # On a terminal, the person starting it sees them once.
    shown = tmp_path / "terminal"
    env = gateway_env(DATABASE_URL=fresh_url, GATEWAY_DATA_DIR=str(shown / "data"))
    terminal, stdout = pty.openpty()
    port = free_port()
    stderr_log = shown.parent / "terminal-serve.log"
    with stderr_log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--port", str(port)],
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
    os.close(stdout)
    printed = b""
    try:
        deadline = time.monotonic() + 60
        while b"gateway api-key" not in printed and time.monotonic() < deadline:
            if select.select([terminal], [], [], 1)[0]:
                try:
                    printed += os.read(terminal, 4096)
                except OSError:  # the terminal closed: serve exited
                    break
        wait_healthy(f"http://127.0.0.1:{port}", proc, 60, stderr_log)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        os.close(terminal)
    secrets = json.loads((shown / "data" / "webhook-secrets.json").read_text())
    key = json.loads((shown / "data" / "api-key.json").read_text())["api_key"]
    text = printed.decode()
    assert all(text.count(secret) >= 1 for secret in secrets.values()), text
    assert text.count(key) == 1, text

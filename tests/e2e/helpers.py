"""Running the real `gateway` command in subprocesses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx


def gateway_env(**overrides: str | None) -> dict[str, str]:
    """The test process's environment without gateway settings, plus overrides."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GATEWAY_", "PHANTOMBUSTER_")) and k != "DATABASE_URL"
    }
    env["GATEWAY_LOG_FORMAT"] = "json"
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_gateway(
    *args: str, env: Mapping[str, str], cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m gateway ARGS` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serving(
    env: Mapping[str, str], cwd: Path, *extra: str, port: int | None = None, startup_s: float = 60
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A `gateway serve` process, ready to answer; stopped with SIGTERM afterwards."""
    port = port or free_port()
    log = (cwd / f"serve-{port}.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--port", str(port), *extra],
        env=dict(env),
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc, startup_s, cwd / f"serve-{port}.log")
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def wait_healthy(base: str, proc: subprocess.Popen[str], timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gateway exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"gateway not ready after {timeout_s}s:\n{log.read_text()}")


async def map_lemlist_campaign(url: str, campaign_id: str) -> None:
    """An active instance mapped to a lemlist campaign, written straight to the database."""
    conn = await asyncpg.connect(url)
    try:
        template = await conn.fetchval(
            "INSERT INTO campaign_templates (name, type) VALUES ('t', 'email') RETURNING id"
        )
        await conn.execute(
            "INSERT INTO campaign_instances (template_id, name, status, provider_config)"
            " VALUES ($1, 'i', 'active', jsonb_build_object('lemlist_campaign_id', $2::text))",
            template,
            campaign_id,
        )
    finally:
        await conn.close()

"""docker-compose.yml and the Dockerfile, checked by reading them.

There is no Docker engine in the test environment, so these tests parse the
files and assert the facts the deployment relies on.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment, in either of Compose's two spellings."""
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Target path -> source, for short ("src:dst") and long volume syntax."""
    found: dict[str, str] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        found[target] = source
    return found


def test_postgres_service(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert postgres["image"] == "postgres:16-alpine"
    assert environment(postgres) == {
        "POSTGRES_DB": "rtgs_sales_automation",
        "POSTGRES_USER": "rtgs_user",
        "POSTGRES_PASSWORD": "rtgs_password_dev",
    }
    assert "5432:5432" in postgres["ports"]
    check = postgres["healthcheck"]
    assert "pg_isready" in " ".join(check["test"])
    assert {"interval", "timeout", "retries"} <= check.keys()


def test_named_volumes_are_declared_and_mounted(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    postgres_data = mounts(compose["services"]["postgres"])["/var/lib/postgresql/data"]
    gateway_data = mounts(compose["services"]["gateway"])["/data"]
    assert {postgres_data, gateway_data} <= declared


def test_gateway_waits_for_healthy_postgres(compose: dict[str, Any]) -> None:
    depends_on = compose["services"]["gateway"]["depends_on"]
    assert depends_on["postgres"]["condition"] == "service_healthy"


def test_gateway_environment(compose: dict[str, Any]) -> None:
    env = environment(compose["services"]["gateway"])
    assert env["DATABASE_URL"] == (
        "postgresql://rtgs_user:rtgs_password_dev@postgres:5432/rtgs_sales_automation"
    )
    assert env["GATEWAY_DATA_DIR"] == "/data"
    assert env["GATEWAY_LOG_FORMAT"] == "json"
    for provider in ("LEMLIST", "POSTMARK", "PHANTOMBUSTER"):
        name = f"GATEWAY_SECRET_{provider}"
        assert env[name] == f"${{{name}:-}}"
    assert "8000:8000" in compose["services"]["gateway"]["ports"]


def test_gateway_is_built_from_the_dockerfile(compose: dict[str, Any]) -> None:
    build = compose["services"]["gateway"]["build"]
    context, dockerfile = (
        (build, "Dockerfile")
        if isinstance(build, str)
        else (build.get("context", "."), build.get("dockerfile", "Dockerfile"))
    )
    assert (ROOT / context / dockerfile).is_file()


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    pairs = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, args = line.strip().partition(" ")
            pairs.append((instruction.upper(), args.strip()))
    return pairs


def test_dockerfile() -> None:
    instructions = dockerfile_instructions()
    by_name: dict[str, list[str]] = {}
    for name, args in instructions:
        by_name.setdefault(name, []).append(args)
    assert by_name["FROM"] == ["python:3.11-slim"]
    assert any("pip install ." in run for run in by_name["RUN"])
    assert by_name["USER"][-1] not in ("root", "0")
    assert by_name["EXPOSE"] == ["8000"]
    # Healthy means ready for webhooks: database reachable and writes succeeding.
    assert "/readyz" in by_name["HEALTHCHECK"][-1]
    assert json.loads(by_name["CMD"][-1]) == [
        "gateway",
        "serve",
        "--host",
        "0.0.0.0",  # noqa: S104 - inside the container; Compose publishes the port
        "--port",
        "8000",
    ]
    # Everything the build copies exists and is not excluded by .dockerignore.
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for args in by_name["COPY"]:
        for source in args.split()[:-1]:
            assert (ROOT / source).exists(), source
            assert source.rstrip("/") not in ignored, source

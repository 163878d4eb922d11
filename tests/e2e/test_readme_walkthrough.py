"""The campaign management walkthrough of docs/api.md, run as a new user runs it: bash and curl.

The block between the management-api-walkthrough markers runs unchanged but
for two substitutions: the port of the `gateway serve` started here, and
this interpreter's `-m gateway` for `.venv/bin/gateway`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import free_port, gateway_env, serving

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def walkthrough() -> str:
    """The bash block between the walkthrough markers."""
    text = API_DOC.read_text()
    marker = "management-api-walkthrough"
    block = re.search(rf"<!-- {marker} -->\s*```bash\n(.*?)```\s*<!-- /{marker} -->", text, re.S)
    assert block, "docs/api.md lost its management API walkthrough"
    return block.group(1)


def answers(output: str) -> list[Any]:
    """The JSON documents curl printed, one after another (curl adds no newline)."""
    decoder = json.JSONDecoder()
    documents, at = [], 0
    while at < len(output):
        if output[at].isspace():
            at += 1
            continue
        document, at = decoder.raw_decode(output, at)
        documents.append(document)
    return documents


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walkthrough is curl commands")
def test_readme_walkthrough_runs(create_database: Callable[[], str], tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = gateway_env(
        DATABASE_URL=create_database(),
        GATEWAY_DATA_DIR=str(tmp_path / "data"),
        GATEWAY_BASE_URL=base,
    )
    script = walkthrough()
    assert script.count("localhost:8000") >= 4 and ".venv/bin/gateway api-key" in script
    script = script.replace("localhost:8000", f"127.0.0.1:{port}").replace(
        ".venv/bin/gateway", f"{sys.executable} -m gateway"
    )
    with serving(env, tmp_path, port=port):
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    enrolled, sent, opened, performance, enrollments = answers(result.stdout)
    assert (enrolled["created"], enrolled["existing"]) == (2, 0)
    assert (sent["status"], opened["status"]) == ("processed", "processed")
    assert performance["enrolled"] == 2
    assert (performance["totals"]["sent"], performance["totals"]["opened"]) == (1, 1)
    assert performance["rates"]["open_rate"] == 1.0
    assert [p["provider"] for p in performance["by_provider"] if p["totals"]["sent"]] == ["lemlist"]
    contacts = {e["contact_email"]: e for e in enrollments["items"]}
    assert set(contacts) == {"ana@ledgerly.example", "ben@finch.example"}
    assert contacts["ben@finch.example"]["metadata"] == {"first_name": "Ben"}
    assert contacts["ana@ledgerly.example"]["provider_config"]["lemlist_campaign_id"] == (
        "cam_fintech_march"
    )

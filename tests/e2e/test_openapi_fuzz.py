"""schemathesis against the app's own OpenAPI schema: zero server errors."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.helpers import gateway_env, run_gateway, serving

pytestmark = pytest.mark.slow

API_KEY = "fuzz-api-key"


def test_no_server_error_anywhere_in_the_schema(
    create_migrated_database: Callable[[], str], tmp_path: Path
) -> None:
    url = create_migrated_database()
    env = gateway_env(
        DATABASE_URL=url,
        GATEWAY_DATA_DIR=str(tmp_path),
        GATEWAY_API_KEY=API_KEY,
        GATEWAY_SECRET_LEMLIST="fuzz-lemlist",
    )
    assert run_gateway("seed", env=env).returncode == 0  # real ids for the generator to hit
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st, "schemathesis is a test dependency"
    with serving(env, tmp_path) as (base, _):
        result = subprocess.run(
            [
                st,
                "run",
                f"{base}/schema/openapi.json",
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "30",
                "--generation-deterministic",
                "--request-timeout",
                "10",
                "--header",
                f"Authorization: Bearer {API_KEY}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    summary = re.search(r"(\d+) generated, (\d+) passed", output)
    assert summary, output[-4000:]
    generated, passed = map(int, summary.groups())
    assert generated == passed > 500

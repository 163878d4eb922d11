"""The wheel carries what a non-editable install needs: console assets and migrations.

The wheel is built with hatchling (the project's build backend), unpacked into
a temporary directory, and the console is served from there in a fresh
interpreter: what `pip install .` would put in site-packages, without the
checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from hatchling.builders.wheel import WheelBuilder

ROOT = Path(__file__).resolve().parents[1]

SERVE_FROM_WHEEL = """
import gateway.console, gateway.db.migrate
from litestar import Litestar
from litestar.testing import TestClient

assert gateway.console.__file__.startswith({unpacked!r}), gateway.console.__file__
with TestClient(Litestar([gateway.console.console_router()])) as client:
    for path in ("/console", "/console/campaigns", "/console/assets/console.js",
                 "/console/assets/console.css", "/console/assets/vendor/chart.umd.min.js"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
    assert b"Chart.js v4" in client.get("/console/assets/vendor/chart.umd.min.js").content
print("served from the wheel")
"""


def test_wheel_serves_the_console_without_the_checkout(tmp_path: Path) -> None:
    wheel = Path(
        next(WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"]))
    )
    names = set(zipfile.ZipFile(wheel).namelist())
    for asset in (
        "gateway/console/index.html",
        "gateway/console/assets/console.js",
        "gateway/console/assets/console.css",
        "gateway/console/assets/favicon.svg",
        "gateway/console/assets/vendor/chart.umd.min.js",
        "gateway/console/assets/vendor/chart.js-LICENSE.md",
        "gateway/_migrations/0001_campaign_schema.sql",
    ):
        assert asset in names, f"{asset} missing from {wheel.name}"

    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    result = subprocess.run(
        [sys.executable, "-c", SERVE_FROM_WHEEL.format(unpacked=str(unpacked))],
        env={**os.environ, "PYTHONPATH": str(unpacked)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

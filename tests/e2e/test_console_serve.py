"""`gateway serve` says where the console is, and serves it there."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from tests.e2e.helpers import gateway_env, serving


def test_serve_prints_the_console_url_and_serves_it(
    create_database: Callable[[], str], tmp_path: Path
) -> None:
    env = gateway_env(DATABASE_URL=create_database(), GATEWAY_DATA_DIR=str(tmp_path / "data"))
    with serving(env, tmp_path) as (base, _):
        page = httpx.get(f"{base}/console")
        script = httpx.get(f"{base}/console/assets/console.js")
    banner = next(tmp_path.glob("serve-*.log")).read_text()
    assert f"Console: {base}/console" in banner
    assert page.status_code == 200 and "<title>Gateway console</title>" in page.text
    assert script.status_code == 200 and script.headers["content-type"].startswith(
        "text/javascript"
    )

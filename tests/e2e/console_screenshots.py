"""Regenerate the console screenshots in docs/ from a realistic dataset.

    .venv/bin/python -m tests.e2e.console_screenshots [--out docs]

Starts an embedded PostgreSQL in a temporary directory, loads `gateway seed`,
sets up campaigns through the management API and replays three weeks of
webhooks of all three providers (`tests/e2e/console_data.py`), serves the
gateway, and photographs the main pages in Debian's Chromium (`apt-get install
chromium`). Nothing outside this machine is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import warnings
from datetime import UTC, datetime
from pathlib import Path

import httpx
from playwright.async_api import TimeoutError as PlaywrightTimeout
from playwright.async_api import async_playwright

from tests.e2e.console_data import capture, setup_campaigns
from tests.e2e.helpers import gateway_env, run_gateway, serving
from tests.e2e.test_console import CHROMIUM, CHROMIUM_ARGS

API_KEY = "screenshot-api-key"


async def photograph(base: str, out: Path, ids: dict[str, str], delivery: str) -> list[str]:
    """Screenshots of the main pages; what did not show as expected."""
    failed: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = await browser.new_context(
            viewport={"width": 1360, "height": 900},
            device_scale_factor=1,
            locale="en-US",
            timezone_id="Europe/Paris",
        )
        page = await context.new_page()

        async def open_page(path: str, ready: str) -> None:
            await page.goto(base + path)
            try:
                await page.wait_for_selector(ready, timeout=15_000)
            except PlaywrightTimeout:
                failed.append(f"{path}: {ready} never showed")
            await page.wait_for_load_state("networkidle")

        async def shot(name: str, *, full_page: bool = True) -> None:
            await page.screenshot(path=out / name, full_page=full_page)
            print(f"{out / name}: {page.url}")

        # The log as a person first sees it: one screenful.
        await open_page("/console/deliveries", "table tbody tr")
        await shot("console-deliveries.png", full_page=False)
        await open_page(f"/console/deliveries/{delivery}", "pre.json")
        await shot("console-delivery.png")
        await open_page("/console/campaigns", "table tbody tr")
        await shot("console-campaigns.png")
        await open_page(f"/console/campaigns/{ids['ops']}", "#chart-daily")
        await shot("console-performance.png")
        # A key about to be mapped: instance chosen, the button asks to confirm.
        await open_page("/console/unmatched", "table tbody tr")
        row = page.locator("table tbody tr").first
        await row.locator("select").select_option(label="Retail VPs: April (draft)")
        await row.locator("button").click()
        await shot("console-unmatched.png", full_page=False)
        await browser.close()
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="console-shots-") as tmp:
        root = Path(tmp)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            server = pgserver.get_server(root / "pgdata", cleanup_mode="stop")
        try:
            env = gateway_env(
                DATABASE_URL=server.get_uri(),
                GATEWAY_DATA_DIR=str(root / "data"),
                GATEWAY_API_KEY=API_KEY,
            )
            for command in (["migrate"], ["seed"]):
                done = run_gateway(*command, env=env, cwd=root)
                if done.returncode:
                    print(done.stdout, done.stderr, file=sys.stderr)
                    return 1
            with serving(env, root) as (base, _):
                with httpx.Client(base_url=base, timeout=60) as client:
                    ids = setup_campaigns(client, API_KEY)
                lines = capture(datetime.now(UTC))
                path = root / "capture.jsonl"
                path.write_text("".join(json.dumps(line) + "\n" for line in lines))
                replayed = run_gateway("replay", str(path), env=env, cwd=root, timeout=600)
                print(replayed.stdout.strip())
                delivery = httpx.get(
                    f"{base}/api/deliveries", params={"provider": "phantombuster", "limit": 1}
                ).json()["items"][0]["id"]
                failed = asyncio.run(photograph(base, args.out, ids, delivery))
        finally:
            server.cleanup()
    for problem in failed:
        print(f"not as expected: {problem}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

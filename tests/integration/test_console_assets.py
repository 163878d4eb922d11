"""How the console's shell and assets are served: from the package, same origin only.

The browser tests (tests/e2e/test_console.py) check what the pages do; these
check the HTTP side: every page path answers the shell with a strict
Content-Security-Policy, every asset it names is served from the package with
a validator, and nothing else is.
"""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.settings import Settings

ASSETS = Path(__file__).resolve().parents[2] / "gateway" / "console" / "assets"
PAGES = [
    "/console",
    "/console/deliveries",
    "/console/deliveries/5eed0004-0000-4000-8000-000000000002",
    "/console/campaigns",
    "/console/campaigns/5eed0004-0000-4000-8000-000000000002",
    "/console/unmatched",
]


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_path_answers_the_shell_with_a_strict_policy(
    client: AsyncTestClient[Litestar], path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert '<script src="/console/assets/console.js" defer></script>' in response.text


async def test_the_shell_names_only_assets_the_gateway_serves(
    client: AsyncTestClient[Litestar],
) -> None:
    shell = (await client.get("/console")).text
    references = re.findall(r'(?:src|href)="([^"]+)"', shell)
    assert references, "the shell names no asset"
    assets = [ref for ref in references if ref.startswith("/console/assets/")]
    assert {"/console/assets/console.js", "/console/assets/vendor/chart.umd.min.js"} <= set(assets)
    for ref in references:
        assert ref.startswith("/"), f"{ref} is not on the gateway's own origin"
    for ref in assets:
        response = await client.get(ref)
        assert response.status_code == 200, ref
        assert response.content, ref


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("console.js", "text/javascript; charset=utf-8"),
        ("console.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
        ("vendor/chart.umd.min.js", "text/javascript; charset=utf-8"),
    ],
)
async def test_assets_are_served_from_the_package_with_a_validator(
    client: AsyncTestClient[Litestar], name: str, media_type: str
) -> None:
    response = await client.get(f"/console/assets/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.content == (ASSETS / name).read_bytes()
    etag = response.headers["etag"]
    again = await client.get(f"/console/assets/{name}", headers={"if-none-match": etag})
    assert again.status_code == 304
    assert again.content == b""


@pytest.mark.parametrize(
    "path",
    [
        "/console/assets/nothing.js",
        "/console/assets/../__init__.py",
        "/console/assets/%2e%2e/index.html",
        "/console/assets/vendor",
        "/console/deliveries/not-a-uuid",
        "/console/elsewhere",
    ],
)
async def test_anything_else_under_console_is_a_404(
    client: AsyncTestClient[Litestar], path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 404


async def test_the_console_is_not_part_of_the_api_schema(
    client: AsyncTestClient[Litestar],
) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    assert not [path for path in schema["paths"] if path.startswith("/console")]


async def test_with_reads_closed_the_shell_is_served_and_the_data_is_not(
    settings: Settings, clean_db: object
) -> None:
    """The shell holds no data; the API behind it keeps its own rule."""
    closed = msgspec.structs.replace(settings, api_reads_open=False)
    async with AsyncTestClient(app=create_app(closed, configure_logs=False)) as client:
        assert (await client.get("/console/deliveries")).status_code == 200
        assert (await client.get("/console/assets/console.js")).status_code == 200
        assert (await client.get("/api/deliveries")).status_code == 401

"""The operator console at `/console`: pages that read and act through the public API.

The pages hold no data. Each is the same HTML shell; its script reads what it
shows from `/api` in the browser, so everything the console shows a dashboard
can read too, under the same rule: reads open unless GATEWAY_API_READS_OPEN is
false, actions (reprocess, mapping) with the API key, which the page asks for
and keeps in sessionStorage, for the browser tab only.

Every asset ships inside the package (Chart.js vendored under
`assets/vendor`, see VENDORED.md there), read once at app creation: the
console works offline and behind a firewall, and its Content-Security-Policy
lets the browser load nothing from any other origin.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, Final

import msgspec
from litestar import Request, Response, Router, get
from litestar.params import FromPath

from gateway import __version__
from gateway.errors import NotFound

#: Only this origin, for everything; no inline script or style.
CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
MEDIA_TYPES: Final = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".md": "text/plain",
}
#: The shell's paths; the script picks the page from the path.
PAGES: Final = [
    "/console",
    "/console/deliveries",
    "/console/deliveries/{delivery_id:uuid}",
    "/console/campaigns",
    "/console/campaigns/{instance_id:uuid}",
    "/console/unmatched",
]


class Asset(msgspec.Struct, frozen=True):
    """One file of `assets/`, in memory, with its validator."""

    body: bytes
    media_type: str
    etag: str


def load_assets(root: Traversable) -> dict[str, Asset]:
    """Every file under `root` by its path relative to it (`vendor/chart.umd.min.js`)."""
    assets: dict[str, Asset] = {}
    pending: list[tuple[str, Traversable]] = [("", root)]
    while pending:
        prefix, folder = pending.pop()
        for entry in folder.iterdir():
            if entry.is_dir():
                pending.append((f"{prefix}{entry.name}/", entry))
                continue
            suffix = entry.name[entry.name.rfind(".") :]
            if suffix not in MEDIA_TYPES:
                continue
            body = entry.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            assets[prefix + entry.name] = Asset(body, MEDIA_TYPES[suffix], etag)
    return assets


def console_router() -> Router:
    """`GET /console…`: the shell for every page, and the assets it loads."""
    package = resources.files(__name__)
    assets = load_assets(package / "assets")
    shell = (package / "index.html").read_text().replace("{{version}}", __version__)

    @get(PAGES, include_in_schema=False)
    async def console_page() -> Response[str]:
        return Response(
            shell,
            media_type="text/html",
            headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
        )

    @get("/console/assets/{name:path}", include_in_schema=False)
    async def console_asset(
        request: Request[Any, Any, Any], name: FromPath[str]
    ) -> Response[bytes]:
        asset = assets.get(name.lstrip("/"))
        if asset is None:
            raise NotFound(f"no console asset {name}")
        headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache", "ETag": asset.etag}
        if request.headers.get("if-none-match") == asset.etag:
            return Response(b"", status_code=304, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)

    return Router(path="/", route_handlers=[console_page, console_asset])

"""The OpenAPI document and its pages under `/schema`, every asset served by the gateway.

Litestar's render plugins load Swagger UI, ReDoc and the others from a CDN,
which fails offline and behind a firewall, and tells a third party who reads
the docs. The gateway serves one interactive page, Swagger UI (it can send
requests, with the API key or a webhook secret), from the files the
`swagger-ui-py` package ships (`swagger_ui/static`; Swagger UI 5.24.2 in
swagger-ui-py 25.7.1), plus the document itself as JSON and YAML.

    /schema, /schema/swagger   Swagger UI
    /schema/openapi.json       the document (also .yaml)
    /schema/assets/…           Swagger UI's script, style sheet and icon
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Final

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import Components
from litestar.static_files import create_static_files_router

from gateway import __version__
from gateway.api.auth import SECURITY_SCHEMES

SCHEMA_PATH: Final = "/schema"
ASSETS_PATH: Final = f"{SCHEMA_PATH}/assets"


def swagger_ui_files() -> Path:
    """Where swagger-ui-py keeps Swagger UI's distribution files."""
    return Path(str(files("swagger_ui") / "static"))


def openapi_config() -> OpenAPIConfig:
    """The document's metadata, security schemes and its pages, all local."""
    swagger = SwaggerRenderPlugin(
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
        path=["/", "/swagger"],
    )
    return OpenAPIConfig(
        title="Outreach webhook gateway",
        version=__version__,
        description="Webhooks of lemlist, Postmark and PhantomBuster in; campaign events,"
        " performance and the raw delivery log out.",
        components=Components(security_schemes=SECURITY_SCHEMES),
        path=SCHEMA_PATH,
        render_plugins=[swagger, YamlRenderPlugin()],
    )


def schema_assets() -> Router:
    """Swagger UI's files at /schema/assets, cached by browsers for a day."""
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[swagger_ui_files()],
        cache_control=CacheControlHeader(max_age=86400, public=True),
        include_in_schema=False,
        name="schema_assets",
    )

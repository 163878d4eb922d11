"""API keys on `/api`: writes always need one; reads only with GATEWAY_API_READS_OPEN=false.

The key travels in a header (`Authorization: Bearer …` or `X-API-Key: …`),
is compared in constant time, and is never logged or answered.
"""

from __future__ import annotations

from typing import Any

import structlog
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
from litestar.openapi.spec import Reference, SecurityRequirement, SecurityScheme
from litestar.types import Guard

from gateway.errors import ApiKeyRequired
from gateway.secrets import ApiKeys, api_key_from_request

log = structlog.get_logger("gateway.api")

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

SECURITY_SCHEMES: dict[str, SecurityScheme | Reference] = {
    "bearer": SecurityScheme(
        type="http",
        scheme="bearer",
        description="The API key (GATEWAY_API_KEY, or `gateway api-key`) as a bearer token",
    ),
    "api_key": SecurityScheme(
        type="apiKey",
        name="X-API-Key",
        security_scheme_in="header",
        description="The API key in the X-API-Key header",
    ),
    "webhook_token": SecurityScheme(
        type="apiKey",
        name="token",
        security_scheme_in="query",
        description="A webhook's secret in its URL (lemlist and PhantomBuster can only send"
        " it there); `gateway urls` prints each URL with it",
    ),
    "webhook_basic": SecurityScheme(
        type="http",
        scheme="basic",
        description="A webhook's secret as the HTTP Basic password, any user name (Postmark"
        " puts `user:secret@` in its webhook URL)",
    ),
}
#: Either scheme will do.
API_KEY: list[SecurityRequirement] = [{"bearer": []}, {"api_key": []}]


def api_key_guard(keys: ApiKeys, *, reads_open: bool) -> Guard:
    """The guard of the `/api` router.

    It runs after routing and before the body is read, so that a request
    without a valid key learns nothing, not even whether an id exists.
    """

    def require_api_key(
        connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        methods = handler.http_methods if isinstance(handler, HTTPRouteHandler) else set()
        if reads_open and methods <= READ_METHODS:
            return
        if not keys.verify(api_key_from_request(connection.headers)):
            log.info(
                "api.unauthorized", method=connection.scope.get("method"), path=connection.url.path
            )
            raise ApiKeyRequired

    return require_api_key

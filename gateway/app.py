"""`create_app(settings)`: explicit wiring, no import-time state.

What exists when the app is built (settings, secrets, metrics, the clock) is
handed to the route handlers as they are made. What the lifespan opens (the
pool, the PhantomBuster fetcher, the ingestion pipeline) lives on `app.state`
and reaches every handler, webhook and API alike, the one way Litestar
offers: the `pool`, `fetcher` and `ingestor` dependencies declared here.
Errors become problem JSON (RFC 9457) here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Final

import msgspec
import structlog
from litestar import Litestar, Request, Response, get
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from gateway.api import api_router
from gateway.api.query import QueryRules
from gateway.api.schemas import PROBLEM_JSON, Problem
from gateway.console import console_router
from gateway.db.pool import Pool, connection, open_pool
from gateway.errors import GatewayError, Unavailable
from gateway.fetch import ResultFetcher
from gateway.ingest import Ingestor
from gateway.logs import configure_logging
from gateway.metrics import Metrics, metrics_handler
from gateway.openapi import openapi_config, schema_assets
from gateway.secrets import (
    ApiKeys,
    Redactor,
    SecretMask,
    WebhookSecrets,
    load_api_keys,
    load_secrets,
)
from gateway.settings import Settings
from gateway.webhooks import EdgeServices, webhook_handler

log = structlog.get_logger(__name__)


class Health(msgspec.Struct, frozen=True, omit_defaults=True):
    """Liveness or readiness."""

    status: str
    detail: str | None = None
    """Why the gateway is not ready."""


def problem_response(
    status: int,
    title: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response[Problem]:
    """The one place an error becomes an HTTP answer."""
    body = Problem(
        title=title,
        status=status,
        detail=detail,
        field=_str_or_none(extra.get("field")),
        delivery_id=_str_or_none(extra.get("delivery_id")),
    )
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {}))


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _gateway_error(_: Request[Any, Any, Any], exc: GatewayError) -> Response[Problem]:
    return problem_response(exc.status, exc.title, exc.detail, exc.headers, **exc.extra)


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    extra = exc.extra if isinstance(exc.extra, dict) else {}
    if isinstance(exc.extra, list) and exc.extra:  # validation errors name the parameter
        first = exc.extra[0]
        if isinstance(first, dict):
            message = str(first.get("message", ""))
            extra = {"field": _field(first.get("key"), message)}
            detail = f"{detail}: {message}".rstrip(": ")
    return problem_response(exc.status_code, _title(exc.status_code), detail, exc.headers, **extra)


_NAMED_FIELD = re.compile(r"(?:missing required|contains unknown) field `([^`]+)`")


def _field(key: object, message: str) -> str | None:
    """The parameter or body field at fault, as a dotted path (`contacts[2].email`).

    Litestar names a body `data` and reports a missing or unknown field at its
    parent object; the message names the field itself.
    """
    parent = None if key in (None, "data") else str(key)
    named = _NAMED_FIELD.search(message)
    if named is None:
        return parent
    return f"{parent}.{named[1]}" if parent else named[1]


def _too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[Problem]:
    """A JSON body nested deeper than the decoder can follow is the client's fault.

    msgspec decodes with the interpreter's recursion limit and raises
    RecursionError, not a DecodeError, past it (about 1,000 levels).
    """
    log.info("http.body_too_deep", path=request.url.path)
    return problem_response(400, "Bad request", "the JSON body is nested too deeply")


def _unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    log.error("http.unhandled_error", path=request.url.path, exc_info=exc)
    return problem_response(
        HTTP_500_INTERNAL_SERVER_ERROR, "Internal error", "the gateway failed on this request"
    )


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def create_app(
    settings: Settings,
    *,
    secrets: WebhookSecrets | None = None,
    api_keys: ApiKeys | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    configure_logs: bool = True,
) -> Litestar:
    """The gateway's ASGI app on `settings.database_url` (which must be set)."""
    if settings.database_url is None:
        raise ValueError("create_app needs settings.database_url; the CLI starts the embedded one")
    database_url = settings.database_url
    if configure_logs:
        configure_logging(settings.log_format)
    if secrets is None:
        secrets, _ = load_secrets(settings)
    if api_keys is None:
        api_keys, _ = load_api_keys(settings)
    metrics = Metrics(settings)
    # Every configured secret is masked wherever a webhook could carry it, API keys included.
    redactor = Redactor([*secrets.all_values(), *api_keys.values])
    edge = EdgeServices(settings, secrets, clock, metrics, redactor)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_pool(settings, database_url) as pool:
            fetcher = ResultFetcher(settings)
            ingestor = Ingestor(pool, settings, fetcher)
            await ingestor.start()
            app.state.update(pool=pool, fetcher=fetcher, ingestor=ingestor)
            ticker = asyncio.create_task(
                metrics.tick(pool, lambda: ingestor.queued), name="metrics-gauges"
            )
            try:
                yield
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
                await ingestor.stop()
                metrics.close()
                await fetcher.aclose()

    @get("/healthz", summary="Process alive")
    async def healthz() -> Health:
        return Health("ok")

    @get("/readyz", summary="Database reachable and webhooks being stored")
    async def readyz(
        pool: NamedDependency[Pool], ingestor: NamedDependency[Ingestor]
    ) -> Response[Health]:
        try:
            async with connection(pool, settings) as conn:
                await conn.fetchval("SELECT 1", timeout=2)
        except Unavailable as exc:
            return _not_ready(exc.detail)
        except TimeoutError:
            return _not_ready("database did not answer SELECT 1 within 2 s")
        failing = ingestor.health.failing()
        if failing is not None:
            return _not_ready(f"writes failing: {failing}")
        return Response(Health("ready"))

    query_rules = QueryRules()
    mask = SecretMask([*secrets.all_values(), *api_keys.values])
    app = Litestar(
        route_handlers=[
            webhook_handler(edge),
            healthz,
            readyz,
            metrics_handler(metrics, settings),
            api_router(settings, api_keys, mask, query_rules),
            schema_assets(),
            console_router(),
        ],
        middleware=[metrics.middleware],
        lifespan=[lifespan],
        dependencies=LIFESPAN_SERVICES,
        exception_handlers={
            GatewayError: _gateway_error,
            HTTPException: _http_error,
            RecursionError: _too_deep,
            Exception: _unexpected_error,
        },
        openapi_config=openapi_config(),
        logging_config=None,
        debug=False,
    )
    query_rules.learn(app)
    return app


def _pool(request: Request[Any, Any, Any]) -> Pool:
    pool: Pool = request.app.state.pool
    return pool


def _fetcher(request: Request[Any, Any, Any]) -> ResultFetcher:
    fetcher: ResultFetcher = request.app.state.fetcher
    return fetcher


def _ingestor(request: Request[Any, Any, Any]) -> Ingestor:
    ingestor: Ingestor = request.app.state.ingestor
    return ingestor


#: What the lifespan opens, as the dependencies every handler declares by name.
#: (A provider reading `request.app.state` costs about half what one taking
#: Litestar's `state` does, which is validated into a new State per request.)
LIFESPAN_SERVICES: Final = {
    "pool": Provide(_pool, sync_to_thread=False),
    "fetcher": Provide(_fetcher, sync_to_thread=False),
    "ingestor": Provide(_ingestor, sync_to_thread=False),
}


def _not_ready(detail: str) -> Response[Health]:
    return Response(
        Health("unavailable", detail),
        status_code=Unavailable.status,
        headers={"Retry-After": str(Unavailable.retry_after_s)},
    )


def app_from_env() -> Litestar:
    """Factory for uvicorn workers: everything comes from the environment."""
    return create_app(Settings.from_env())

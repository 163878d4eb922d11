"""`POST /webhooks/{provider}`: body → verify → parse → ingest → status.

The secret is checked before the body is read, so an unauthenticated request
never reaches the database as data; the answer is sent only after the
delivery's transaction has committed. Every configured secret is masked in
the headers, query and body before anything is parsed or stored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, cast

import msgspec
import structlog
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import SecurityRequirement
from litestar.params import PathParameter, QueryParameter

from gateway.api.schemas import problem_spec
from gateway.delivery import OVERSIZED_PREFIX_BYTES, AckStatus, Delivery, too_large
from gateway.errors import (
    InvalidPayload,
    PayloadTooLarge,
    RequestTimeout,
    Unauthorized,
    UnknownProvider,
)
from gateway.ingest import Ingestor, elapsed_ms
from gateway.metrics import Metrics
from gateway.secrets import Redactor, WebhookSecrets, credentials_from_request
from gateway.settings import Settings
from providers.vocabulary import PROVIDERS

log = structlog.get_logger("gateway.webhook")


class Ack(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to an accepted webhook, sent after COMMIT."""

    delivery_id: str
    status: AckStatus
    """processed: new events, all attached; unmatched: some with no campaign instance yet;
    duplicate: every event was stored already; ignored: nothing for the vocabulary;
    pending: a PhantomBuster result still to fetch."""
    events: int
    """New events written."""
    duplicates: int
    """Events already stored, not written again."""


#: Either way of presenting the webhook secret.
WEBHOOK_SECURITY: list[SecurityRequirement] = [{"webhook_token": []}, {"webhook_basic": []}]

Provider = Annotated[
    str,
    PathParameter(
        description="lemlist, postmark or phantombuster (anything else: 404)",
        schema_extra={"enum": list(PROVIDERS)},
    ),
]
Token = Annotated[
    str | None,
    QueryParameter(
        description="The provider's webhook secret (`gateway urls` prints each URL with it);"
        " or send it as the HTTP Basic password"
    ),
]

WEBHOOK_RESPONSES: dict[int, ResponseSpec] = {
    400: problem_spec(
        "Body not JSON or not the provider's shape; `field` names the field, `delivery_id` the"
        " delivery kept as rejected"
    ),
    401: problem_spec("Missing or wrong secret (`WWW-Authenticate: Basic`); nothing stored"),
    404: problem_spec("No such provider"),
    408: problem_spec("The body arrived too slowly; providers retry"),
    413: problem_spec("Body over the size limit; recorded as rejected with its cause"),
    503: problem_spec(
        "Database unreachable or overloaded, or shutting down; retry after `Retry-After`"
    ),
}


class EdgeServices:
    """What the webhook edge needs from `create_app`; the pipeline comes per request (DI)."""

    def __init__(
        self,
        settings: Settings,
        secrets: WebhookSecrets,
        clock: Callable[[], datetime],
        metrics: Metrics,
        redactor: Redactor | None = None,
    ) -> None:
        self.settings = settings
        self.secrets = secrets
        self.clock = clock
        self.metrics = metrics
        self.redactor = redactor or Redactor(secrets.all_values())
        self.body_limits = {p: settings.body_limit(p) for p in PROVIDERS}


def webhook_handler(services: EdgeServices) -> HTTPRouteHandler:
    """The route handler, wired explicitly to its services.

    The ingestion pipeline, which the app's lifespan starts, is injected as the
    API's pool is: Litestar's `ingestor` dependency (`gateway.app`).
    """

    @post(
        "/webhooks/{provider:str}",
        request_max_body_size=None,
        status_code=200,
        summary="Receive a webhook",
        description="Answered `200` only after the delivery and its events are committed.",
        responses=WEBHOOK_RESPONSES,
        security=WEBHOOK_SECURITY,
    )
    async def receive_webhook(
        request: Request[Any, Any, Any],
        provider: Provider,
        ingestor: NamedDependency[Ingestor],
        token: Token = None,
    ) -> Response[Ack]:
        started = time.perf_counter()
        if provider not in PROVIDERS:
            raise UnknownProvider(provider=provider)
        received_at = services.clock()
        limit = services.body_limits[provider]
        announced = announced_size(request.headers.get("content-length"))
        query = dict(request.query_params)
        offered = credentials_from_request(query, request.headers.get("authorization"))
        if not services.secrets.verify(provider, offered):
            if announced is not None and announced > limit:  # never read, never stored
                cause = too_large(provider, limit, f"announced body of {announced} bytes")
                raise PayloadTooLarge(cause)
            log.info("webhook.unauthorized", provider=provider, path=request.url.path)
            raise Unauthorized
        if announced is not None and announced > limit:  # not read at all
            body, size, came = b"", announced, f"announced body of {announced} bytes"
        else:
            body, size = await read_body(request, limit, services.settings.body_read_timeout_s)
            came = f"body of {size}+ bytes"
        delivery = Delivery.received(
            provider,
            received_at,
            body,
            size=size,
            limit=limit,
            headers=dict(request.headers),
            query=query,
            redactor=services.redactor,
        )
        if size > limit:
            cause = too_large(provider, limit, came)
            outcome = await ingestor.record(delivery, "rejected", cause=cause)
            _log(services.metrics, provider, outcome.delivery_id, "rejected", 0, 0, started, cause)
            raise PayloadTooLarge(cause, delivery_id=str(outcome.delivery_id))
        outcome = await ingestor.ingest(delivery)
        _log(
            services.metrics,
            provider,
            outcome.delivery_id,
            outcome.status,
            outcome.events,
            outcome.duplicates,
            started,
            cause=outcome.cause,
        )
        if outcome.status == "rejected":
            raise InvalidPayload(
                outcome.cause, field=outcome.field or "$", delivery_id=str(outcome.delivery_id)
            )
        return Response(
            Ack(
                delivery_id=str(outcome.delivery_id),
                status=cast(AckStatus, outcome.status),  # ingestion's outcomes, never "rejected"
                events=outcome.events,
                duplicates=outcome.duplicates,
            )
        )

    return receive_webhook


def announced_size(content_length: str | None) -> int | None:
    """The Content-Length as a number; None when absent or not plain ASCII digits.

    The HTTP server refuses a malformed Content-Length before the app sees it;
    this only guards the conversion (`str.isdigit` also accepts `²`).
    """
    if content_length and content_length.isascii() and content_length.isdigit():
        return int(content_length)
    return None


async def read_body(
    request: Request[Any, Any, Any], limit: int, timeout_s: float
) -> tuple[bytes, int]:
    """The body up to `limit` bytes; past it, a short prefix and the size seen.

    Reading stops at the first chunk past the limit, so a request holds at
    most `limit` bytes (plus one chunk) in memory, whatever it sends.
    """
    chunks = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                chunks += chunk
                if len(chunks) > limit:
                    return bytes(chunks[:OVERSIZED_PREFIX_BYTES]), len(chunks)
    except TimeoutError as exc:
        raise RequestTimeout from exc
    return bytes(chunks), len(chunks)


def _log(
    metrics: Metrics,
    provider: str,
    delivery_id: object,
    status: str,
    events: int,
    duplicates: int,
    started: float,
    cause: str | None = None,
) -> None:
    """The one canonical line per webhook, and its outcome counted in the metrics."""
    metrics.observe_delivery(provider, status, events, duplicates)
    log.info(
        "webhook.ingested",
        provider=provider,
        delivery_id=str(delivery_id),
        status=status,
        events=events,
        duplicates=duplicates,
        ms=elapsed_ms(started),
        cause=cause,
    )

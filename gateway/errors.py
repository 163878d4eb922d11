"""The gateway's one error tree, mapped to HTTP in exactly one place (`app.py`).

    GatewayError
    ├── UnknownProvider          404  no such webhook provider
    ├── NotFound                 404  no such resource
    ├── Unauthorized             401  missing or wrong webhook secret (challenge: Basic)
    │   └── ApiKeyRequired       401  missing or wrong API key (challenge: Bearer)
    ├── BadRequest               400  bad query parameter or request body
    │   └── InvalidPayload       400  webhook body not JSON or not the provider's shape
    ├── Conflict                 409  the change contradicts the resource's state
    ├── RequestTimeout           408  body arrived too slowly
    ├── PayloadTooLarge          413  body over GATEWAY_MAX_BODY_BYTES
    └── Unavailable              503  database unreachable or overloaded (retry later)

Each class docstring is its default message; `headers` are the HTTP headers
its answer must carry. Database driver errors become `Unavailable` once, at
the database boundary (`gateway.db.pool`).
"""

from __future__ import annotations

from typing import ClassVar


class GatewayError(Exception):
    """The gateway could not handle the request."""

    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None, **extra: object) -> None:
        self.detail = detail or (self.__doc__ or self.title).strip().splitlines()[0]
        self.extra = extra
        super().__init__(self.detail)

    @property
    def headers(self) -> dict[str, str]:
        """Headers the answer must carry (a challenge, a retry delay)."""
        return {}


class UnknownProvider(GatewayError):
    """No webhook provider of that name; use lemlist, postmark or phantombuster."""

    status = 404
    title = "Unknown provider"


class NotFound(GatewayError):
    """Nothing with that id."""

    status = 404
    title = "Not found"


class Unauthorized(GatewayError):
    """A valid webhook secret is required, as ?token=… or as the HTTP Basic password."""

    status = 401
    title = "Unauthorized"
    challenge: ClassVar[str] = 'Basic realm="webhooks", charset="UTF-8"'

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": self.challenge}


class ApiKeyRequired(Unauthorized):
    """A valid API key is required, as `Authorization: Bearer …` or `X-API-Key: …`."""

    challenge = 'Bearer realm="api"'


class BadRequest(GatewayError):
    """The request is not valid."""

    status = 400
    title = "Bad request"


class InvalidPayload(BadRequest):
    """The webhook body is not JSON, or not the provider's shape."""

    title = "Invalid payload"


class Conflict(GatewayError):
    """The change contradicts the resource's current state."""

    status = 409
    title = "Conflict"


class RequestTimeout(GatewayError):
    """The request body arrived too slowly; send it again."""

    status = 408
    title = "Request timeout"


class PayloadTooLarge(GatewayError):
    """The webhook body is larger than the gateway accepts."""

    status = 413
    title = "Payload too large"


class Unavailable(GatewayError):
    """The database is unreachable or overloaded; retry later."""

    status = 503
    title = "Service unavailable"
    retry_after_s: ClassVar[int] = 5

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}

"""The gateway's one error tree, mapped to HTTP in exactly one place (`app.py`).

    GatewayError
    ├── UnknownProvider          404  no such webhook provider
    ├── NotFound                 404  no such resource
    ├── Unauthorized             401  missing or wrong webhook secret
    ├── BadRequest               400  bad query parameter or request body
    │   └── InvalidPayload       400  webhook body not JSON or not the provider's shape
    ├── RequestTimeout           408  body arrived too slowly
    ├── PayloadTooLarge          413  body over GATEWAY_MAX_BODY_BYTES
    └── Unavailable              503  database unreachable or overloaded (retry later)

Each class docstring is its default message. Database driver errors become
`Unavailable` once, at the database boundary (`gateway.db.pool`).
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


class BadRequest(GatewayError):
    """The request is not valid."""

    status = 400
    title = "Bad request"


class InvalidPayload(BadRequest):
    """The webhook body is not JSON, or not the provider's shape."""

    title = "Invalid payload"


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

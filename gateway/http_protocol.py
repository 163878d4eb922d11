"""The connection limits of the contract that uvicorn lacks, as its HTTP protocol.

uvicorn closes a keep-alive connection idle for `timeout_keep_alive`, but one
that never completes a request head (silent, or dribbling a header a byte at a
time) stays open for ever, and its `limit_concurrency` answers a plain-text
503 without `Retry-After`. This subclass of its httptools protocol adds:

- a deadline for the request head: HEAD_TIMEOUT_S from the moment the
  connection opens, or from the end of the previous response, until the head
  is complete; past it the connection is closed;
- the connection cap (`GATEWAY_MAX_CONNECTIONS`, handed over as uvicorn's
  `limit_concurrency`): a request on a connection past the cap gets a 503
  problem JSON with `Retry-After`, and its connection is closed.

Both work on the event loop's timers and the server's connection set: no task,
no await and nothing per byte, so the per-request cost is one timer.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar, Final

import msgspec
import structlog
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.api.schemas import PROBLEM_JSON, Problem
from gateway.errors import Unavailable

log = structlog.get_logger(__name__)

#: A connection must complete each request head within this many seconds.
HEAD_TIMEOUT_S: Final = 10.0
#: An idle keep-alive connection is closed after this many seconds.
KEEP_ALIVE_S: Final = 5
#: At most one warning about the cap per this many seconds (not one per refused request).
WARN_EVERY_S: Final = 10.0

_OVERLOADED_BODY: Final = msgspec.json.encode(
    Problem(
        title="Service unavailable",
        status=503,
        detail="too many open connections; retry later",
    )
)
_OVERLOADED_HEADERS: Final = [
    (b"content-type", PROBLEM_JSON.encode()),
    (b"content-length", str(len(_OVERLOADED_BODY)).encode()),
    (b"retry-after", str(Unavailable.retry_after_s).encode()),
    (b"connection", b"close"),
]


async def overloaded(scope: Any, receive: Any, send: Any) -> None:
    """The answer to a request past the connection cap (an ASGI app of its own)."""
    await send({"type": "http.response.start", "status": 503, "headers": _OVERLOADED_HEADERS})
    await send({"type": "http.response.body", "body": _OVERLOADED_BODY, "more_body": False})


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a request-head deadline and a connection cap."""

    _warned_at: ClassVar[float] = 0.0

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # The cap is ours: uvicorn's own check would answer first, in plain text.
        self.max_connections = self.limit_concurrency
        self.limit_concurrency = None
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_received()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._head_received()
        if self.max_connections is None or len(self.connections) <= self.max_connections:
            super().on_headers_complete()
            return
        self._warn_over_cap()
        app, self.app = self.app, overloaded
        try:
            super().on_headers_complete()  # hands `self.app` to this request's cycle
        finally:
            self.app = app

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn arms its keep-alive timer only when no pipelined request is
        # waiting: the connection is then idle, waiting for the next head.
        if self.timeout_keep_alive_task is not None:
            self._await_head()

    def _await_head(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_timed_out)

    def _head_received(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _warn_over_cap(self) -> None:
        now = time.monotonic()
        if now - GatewayHttpProtocol._warned_at >= WARN_EVERY_S:
            GatewayHttpProtocol._warned_at = now
            log.warning(
                "http.connection_cap",
                connections=len(self.connections),
                max_connections=self.max_connections,
            )

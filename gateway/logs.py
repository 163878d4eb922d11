"""structlog, configured once per process: JSON off a terminal, console on one.

structlog's own lines (the canonical line per webhook among them) are rendered
and written straight to stderr, one write per line, without going through the
standard library's logging machinery: that machinery cost about a tenth of a
webhook's CPU in the gateway. Standard-library records (uvicorn, asyncpg) go
through the same renderer, so one process writes one format. Nothing here
ever sees a secret: the webhook edge logs the path without its query string
and redacted headers only.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import msgspec
import structlog


class _StderrLogger:
    """Writes each rendered line to the current sys.stderr, and knows its logger's name.

    The stream is looked up on every line, not kept: tests and tools swap
    sys.stderr, and a cached logger must follow.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def msg(self, message: str) -> None:
        stream = sys.stderr
        stream.write(message + "\n")
        stream.flush()

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def _stderr_logger(*args: Any) -> _StderrLogger:
    return _StderrLogger(str(args[0]) if args else "")


def _json(event: Any, **_: Any) -> str:
    """JSON lines through msgspec; anything it cannot encode becomes its str()."""
    return msgspec.json.encode(event, enc_hook=str).decode()


class _Output:
    """How structlog's lines are rendered and from which level, as configured last.

    Loggers are cached on first use (a webhook's line costs no lookup), so
    they reach the configuration through this one object: configuring again
    (another format, another level) applies to loggers already in use.
    """

    def __init__(self) -> None:
        self.level = logging.INFO
        self.renderer: Any = structlog.processors.JSONRenderer(serializer=_json)

    def admit(self, logger: Any, method: str, event: Any) -> Any:
        """The first processor: a line below the level goes no further."""
        if _LEVELS.get(method, logging.INFO) < self.level:
            raise structlog.DropEvent
        return event

    def render(self, logger: Any, method: str, event: Any) -> Any:
        return self.renderer(logger, method, event)


_LEVELS = logging.getLevelNamesMapping() | {"warn": logging.WARNING, "exception": logging.ERROR}
_LEVELS = {name.lower(): number for name, number in _LEVELS.items()}
_OUTPUT = _Output()


def configure_logging(
    log_format: Literal["json", "console"] | None, level: int = logging.INFO
) -> None:
    """Route structlog and stdlib logging through one renderer.

    With no format given: console on a terminal, json otherwise.
    """
    if log_format is None:
        log_format = "console" if sys.stderr.isatty() else "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_json)
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    _OUTPUT.level, _OUTPUT.renderer = level, renderer
    structlog.configure(
        processors=[
            _OUTPUT.admit,
            *shared,
            structlog.processors.format_exc_info,
            _OUTPUT.render,
        ],
        logger_factory=_stderr_logger,
        wrapper_class=structlog.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's access log would print query strings, where webhook secrets live.
    logging.getLogger("uvicorn.access").disabled = True
    # pgserver and yoyo narrate every step at INFO, and httpx logs whole URLs
    # (query strings included) for every request; their warnings still show.
    for chatty in ("pgserver", "yoyo", "httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))

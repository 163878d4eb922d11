"""structlog, configured once per process: JSON off a terminal, console on one.

Standard-library records (uvicorn, asyncpg) go through the same renderer, so
one process writes one format. Nothing here ever sees a secret: the webhook
edge logs the path without its query string and redacted headers only.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import structlog


def configure_logging(log_format: Literal["json", "console"], level: int = logging.INFO) -> None:
    """Route structlog and stdlib logging through one renderer."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
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

"""The embedded PostgreSQL (pgserver) used when no DATABASE_URL is set.

pgserver ships real PostgreSQL 16 binaries as a wheel. Its data lives under
`GATEWAY_DATA_DIR/pgdata` and survives restarts; the server stops when the
last gateway process that started it exits (pgserver counts its users).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)


def start_embedded(data_dir: Path) -> str:
    """Start (or join) the embedded server and return its connection URL."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pgserver  # imported late: it starts nothing, but is slow to import

        data_dir = data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(  # type: ignore[attr-defined]  # re-exported, untyped
            data_dir / "pgdata", cleanup_mode="stop"
        )
    url: str = server.get_uri()
    log.info("embedded_postgres.started", pgdata=str(data_dir / "pgdata"))
    return url

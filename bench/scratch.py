"""Scratch databases for the bench scripts, on a given server or an embedded one.

bench/read_latency.py and bench/machine_flags.py each need fresh databases
that are gone afterwards, whether the user names a server (`--database-url`)
or not (an embedded PostgreSQL under the script's temporary directory).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg


@contextmanager
def scratch_databases(server_url: str | None, work: Path, *names: str) -> Iterator[list[str]]:
    """Create the empty databases `names` and yield their URLs; drop them at the end.

    Without `server_url`, an embedded server under `work` holds them and is
    stopped afterwards.
    """
    server = None
    if server_url is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import pgserver

            server = pgserver.get_server(  # type: ignore[attr-defined]  # re-exported, untyped
                work / "pgdata", cleanup_mode="stop"
            )
        server_url = str(server.get_uri())
    try:
        for name in names:
            _admin(server_url, f'CREATE DATABASE "{name}"')
        yield [urlunsplit(urlsplit(server_url)._replace(path=f"/{name}")) for name in names]
    finally:
        for name in names:
            _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if server is not None:
            server.cleanup()


def _admin(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement.encode())

"""Failures a user of the `gateway` command can fix, as one `error:` line each.

A database that cannot be reached, a file that cannot be read or written, a
data directory that cannot be used: `main()` prints `error: <what> <where>`
and exits 1, with no traceback. Anything else is a bug and keeps its
traceback. A database URL is only ever shown without its password.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psycopg

from gateway.errors import Unavailable
from gateway.settings import Settings


class CliError(Exception):
    """A failure the user can fix; its message says what and where."""


def database_place(settings: Settings) -> str:
    """Which database a command uses, for messages: the URL without its password."""
    if settings.database_url is None:
        return f"the embedded PostgreSQL under {(settings.data_dir / 'pgdata').resolve()}"
    return f"the database at {redact_url(settings.database_url)}"


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "(a malformed URL)"
    if not password:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


#: Errors that mean the server refused or dropped us, not that a file failed.
_REFUSED: tuple[type[BaseException], ...] = (
    asyncpg.InvalidAuthorizationSpecificationError,  # wrong password, unknown role
    asyncpg.InvalidCatalogNameError,  # no such database
    asyncpg.InsufficientPrivilegeError,
    asyncpg.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.OperatorInterventionError,  # starting up, shutting down
    asyncpg.ReadOnlySQLTransactionError,  # a read-only replica
)
_UNREACHABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    psycopg.OperationalError,  # the migrations' driver
    socket.gaierror,
    TimeoutError,
)


@contextmanager
def database_errors(settings: Settings) -> Iterator[None]:
    """Driver and network errors of a command's database work, as one CliError.

    The pool's error boundary (`gateway.db.pool`) turns "cannot serve us now"
    into `Unavailable`; its cause says why, as the driver's own error does
    for the migrations' driver. A broken pipe is the reader of our output
    closing early, not the database.
    """
    place = database_place(settings)
    try:
        yield
    except BrokenPipeError:
        raise
    except Unavailable as exc:
        cause = exc.__cause__
        message = None if cause is None else _database_failure(place, cause)
        raise CliError(message or f"{place} is unavailable: {exc.detail}") from exc
    except Exception as exc:
        message = _database_failure(place, exc)
        if message is None:
            raise
        raise CliError(message) from exc


def _database_failure(place: str, exc: BaseException) -> str | None:
    """What a driver or network error says about the database; None: not the database's.

    A refused connection (ConnectionError) and a missing Unix socket
    (FileNotFoundError without a file name) are the network's.
    """
    if isinstance(exc, BrokenPipeError):
        return None
    if isinstance(exc, _REFUSED):
        return f"{place} refused: {_first_line(exc)}"
    if isinstance(exc, _UNREACHABLE):
        return f"cannot reach {place}: {_first_line(exc)}"
    if isinstance(exc, ConnectionError):
        return f"cannot reach {place}: {exc.strerror or exc}"
    if isinstance(exc, FileNotFoundError) and exc.filename is None:
        return f"cannot reach {place}: no server socket there"
    return None


@contextmanager
def file_errors(path: Path | str, action: str) -> Iterator[None]:
    """An OSError while reading or writing `path`, as one CliError naming it."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise CliError(f"cannot {action} {path}: {exc.strerror or exc}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]

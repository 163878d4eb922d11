"""yoyo migrations (plain SQL files, each with a rollback) and the write path's functions.

An installed wheel carries the migrations as `gateway/_migrations`; a checkout
(or an editable install) reads the top-level `migrations/` folder. The
functions in `functions.sql` are not versioned by yoyo: the file is their one
current source and is applied (CREATE OR REPLACE) before the migrations, so a
migration can call them, and again after, so none that a migration dropped is
missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from yoyo import get_backend, read_migrations
from yoyo.backends import DatabaseBackend

FUNCTIONS = Path(__file__).with_name("functions.sql")


def migrations_dir() -> Path:
    """Where the migration files are, installed or in a checkout."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_migrations", package.parent / "migrations"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("no migrations folder next to the gateway package")


def yoyo_url(database_url: str) -> str:
    """yoyo picks its driver from the scheme: psycopg 3 here."""
    scheme, sep, rest = database_url.partition("://")
    if not sep or scheme not in ("postgres", "postgresql"):
        raise ValueError("DATABASE_URL must start with postgresql://")
    return f"postgresql+psycopg://{rest}"


def apply_functions(database_url: str) -> None:
    """(Re)create the write path's functions, in one transaction."""
    with psycopg.connect(database_url) as conn:
        conn.execute(FUNCTIONS.read_bytes())


@contextmanager
def migration_backend(database_url: str) -> Iterator[DatabaseBackend]:
    """yoyo's backend on the database, its connection closed after the block (yoyo never does)."""
    backend = get_backend(yoyo_url(database_url))
    try:
        yield backend
    finally:
        backend.connection.close()


def apply_migrations(database_url: str) -> list[str]:
    """Apply every pending migration under yoyo's lock; safe to run twice or concurrently."""
    migrations = read_migrations(str(migrations_dir()))
    with migration_backend(database_url) as backend, backend.lock():
        pending = backend.to_apply(migrations)
        apply_functions(database_url)
        if pending:
            backend.apply_migrations(pending)
            apply_functions(database_url)
    return [m.id for m in pending]


def rollback_migrations(database_url: str) -> list[str]:
    """Roll back every applied migration (tests prove each rollback works)."""
    migrations = read_migrations(str(migrations_dir()))
    with migration_backend(database_url) as backend, backend.lock():
        applied = backend.to_rollback(migrations)
        backend.rollback_migrations(applied)
    return [m.id for m in applied]

"""yoyo migrations: plain SQL files, each with a rollback.

An installed wheel carries them as `gateway/_migrations`; a checkout (or an
editable install) reads the top-level `migrations/` folder.
"""

from __future__ import annotations

from pathlib import Path

from yoyo import get_backend, read_migrations


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


def apply_migrations(database_url: str) -> list[str]:
    """Apply every pending migration under yoyo's lock; safe to run twice or concurrently."""
    backend = get_backend(yoyo_url(database_url))
    migrations = read_migrations(str(migrations_dir()))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    return [m.id for m in pending]


def rollback_migrations(database_url: str) -> list[str]:
    """Roll back every applied migration (tests prove each rollback works)."""
    backend = get_backend(yoyo_url(database_url))
    migrations = read_migrations(str(migrations_dir()))
    with backend.lock():
        applied = backend.to_rollback(migrations)
        backend.rollback_migrations(applied)
    return [m.id for m in applied]

"""What `gateway db check` and `gateway db stats` print: named SQL from stats.sql."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from asyncpg import Connection

from gateway.db.sql import load_queries

STATS: dict[str, str] = load_queries("stats")


class ServerFacts(NamedTuple):
    """Which database a command reached, the server's clock and its version."""

    database: str
    server_time: datetime
    version: str


async def server_facts(conn: Connection) -> ServerFacts:
    """The database's name, the server's time and its version string."""
    row = await conn.fetchrow(STATS["server_facts"])
    return ServerFacts(row["database"], row["server_time"], row["version"])


class Connections(NamedTuple):
    """Client connections to this database, to the whole server, and the most it takes."""

    database: int
    server: int
    max: int


class DatabaseStats(NamedTuple):
    """The database's size (as PostgreSQL prints it), rows per table, connections."""

    size: str
    rows: dict[str, int]
    connections: Connections


async def database_stats(conn: Connection) -> DatabaseStats:
    """Size, exact rows of each campaign table and of the raw deliveries, connections."""
    size: str = await conn.fetchval(STATS["database_size"])
    rows = {r["table_name"]: r["rows"] for r in await conn.fetch(STATS["table_rows"])}
    connections = Connections(*await conn.fetchrow(STATS["connections"]))
    return DatabaseStats(size, rows, connections)

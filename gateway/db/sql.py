"""Named SQL: the `-- name: x` blocks of the .sql files in this folder, each file read once.

Each file belongs to one module of this package, which loads it at import
and wraps every block in a thin typed function taking the connection first:
`ingest.sql` (the write path), `deliveries.sql` (stored deliveries, for the
operators' tools), `campaigns.sql` (the management API's writes), `reads.sql`
(the read API), `erase.sql` (`gateway erase`), `stats.sql` (`gateway db`).
Every block of every file is prepared against the migrated schema in
tests/integration/test_migrations.py, so SQL and schema cannot drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

#: The named-SQL files of this folder, by stem.
FILES: Final = ("ingest", "deliveries", "campaigns", "reads", "erase", "stats")


def load_queries(stem: str) -> dict[str, str]:
    """The blocks of `<stem>.sql` in this folder, by name; leading comments stay with a block."""
    path = Path(__file__).with_name(f"{stem}.sql")
    blocks = re.split(r"^-- name: *(\w+) *$", path.read_text(), flags=re.MULTILINE)
    queries: dict[str, str] = {}
    for name, body in zip(blocks[1::2], blocks[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} defined twice in {path}")
        queries[name] = body.strip()
    return queries

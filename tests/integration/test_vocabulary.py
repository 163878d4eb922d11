"""The schema's CHECK constraints allow exactly the vocabularies the Python code declares.

Each vocabulary is declared once as a Literal (providers, channels and event
types in `providers/vocabulary.py`, delivery statuses in `gateway/delivery.py`,
the campaign tables' in `gateway/api/schemas.py`); the migrations say the same
in SQL. A value the code can write that a CHECK refuses would turn a webhook
into a 503 retried for ever; a value a CHECK allows that the code does not know
would be served outside the API's enums. Read from `pg_constraint` of the
migrated database, so a migration that changes a CHECK is held here too.
"""

from __future__ import annotations

import re
from typing import Any, get_args

import pytest

from gateway.api.schemas import (
    EnrollmentStatus,
    InstanceStatus,
    LinkedinAction,
    PathType,
    TemplateType,
)
from gateway.db.pool import Pool
from gateway.delivery import DELIVERY_STATUSES
from providers.vocabulary import CHANNELS, EVENT_TYPES, PROVIDERS

CHECKS = """
SELECT c.conrelid::regclass::text AS table_name,
       array_agg(a.attname::text ORDER BY a.attname) AS columns,
       pg_get_constraintdef(c.oid) AS definition
FROM pg_constraint c
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
WHERE c.contype = 'c' AND c.connamespace = 'public'::regnamespace
GROUP BY c.oid, c.conrelid
"""
#: A text literal in a constraint's definition as PostgreSQL prints it.
LITERAL = re.compile(r"'((?:[^']|'')*)'::text")
#: One channel's branch of `ck_campaign_events_type`.
CHANNEL_BRANCH = re.compile(
    r"channel = '(?P<channel>\w+)'::text\) AND \(event_type = ANY \(ARRAY\[(?P<types>[^\]]*)\]"
)


async def _checks(pool: Pool) -> list[tuple[str, tuple[str, ...], str]]:
    rows = await pool.fetch(CHECKS)
    return [(r["table_name"], tuple(r["columns"]), r["definition"]) for r in rows]


def _allowed(checks: list[tuple[str, tuple[str, ...], str]], table: str, column: str) -> set[str]:
    """The values the one list-of-values CHECK on `table.column` allows."""
    lists = [
        definition
        for name, columns, definition in checks
        if (name, columns) == (table, (column,)) and "ARRAY[" in definition
    ]
    assert len(lists) == 1, f"{table}.{column}: {lists}"
    return {value.replace("''", "'") for value in LITERAL.findall(lists[0])}


VOCABULARIES: list[tuple[str, str, tuple[Any, ...]]] = [
    ("webhook_deliveries", "status", DELIVERY_STATUSES),
    ("webhook_deliveries", "provider", PROVIDERS),
    ("campaign_events", "provider", PROVIDERS),
    ("instance_keys", "provider", PROVIDERS),
    ("campaign_events", "channel", CHANNELS),
    ("linkedin_sequences", "fallback_channel", CHANNELS),
    ("linkedin_sequences", "action_type", get_args(LinkedinAction)),
    ("campaign_templates", "type", get_args(TemplateType)),
    ("campaign_templates", "path_type", get_args(PathType)),
    ("campaign_instances", "status", get_args(InstanceStatus)),
    ("campaign_enrollments", "status", get_args(EnrollmentStatus)),
]


@pytest.mark.parametrize(
    ("table", "column", "declared"), VOCABULARIES, ids=[f"{t}.{c}" for t, c, _ in VOCABULARIES]
)
async def test_a_check_allows_exactly_the_declared_values(
    pool: Pool, table: str, column: str, declared: tuple[str, ...]
) -> None:
    assert _allowed(await _checks(pool), table, column) == set(declared)


async def test_event_types_per_channel_are_the_declared_ones(pool: Pool) -> None:
    [definition] = [
        d
        for table, columns, d in await _checks(pool)
        if table == "campaign_events" and columns == ("channel", "event_type")
    ]
    allowed = {
        m["channel"]: set(LITERAL.findall(m["types"])) for m in CHANNEL_BRANCH.finditer(definition)
    }
    assert allowed == {channel: set(types) for channel, types in EVENT_TYPES.items()}

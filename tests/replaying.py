"""What the replay, export and reprocess tests share: captures, mappings, database state."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import asyncpg

from gateway.db.pool import Connection, Pool, init_connection
from gateway.ops.progress import Progress
from gateway.ops.replay import Tally
from tests.conftest import FIXTURES

CAPTURES = FIXTURES / "captures"
CAPTURE_FILES: list[Path] = sorted(CAPTURES.glob("*.jsonl"))

#: Campaign instances the captures' campaign keys map to, by instance name. Postmark
#: tags other than step 2 and two of the three PhantomBuster agents stay unmatched.
MAPPINGS: dict[str, dict[str, object]] = {
    "lemlist Q1": {"lemlist_campaign_id": "cam_R7vK2mXq9PdL4sWtA"},
    "postmark step 2": {"postmark_tag": "q1-outbound-step-2"},
    "auto connect": {"phantombuster_agent_id": "7318204659127734"},
}


async def connect(url: str) -> Connection:
    conn: Connection = await asyncpg.connect(url)
    await init_connection(conn)
    return conn


async def add_instance(db: Pool | Connection, name: str, provider_config: dict[str, object]) -> Any:
    """A template and an active instance with these provider keys."""
    template_id = await db.fetchval(
        "INSERT INTO campaign_templates (name, type) VALUES ($1, 'multi_channel') RETURNING id",
        f"{name} template",
    )
    return await db.fetchval(
        "INSERT INTO campaign_instances (template_id, name, status, provider_config)"
        " VALUES ($1, $2, 'active', $3) RETURNING id",
        template_id,
        name,
        provider_config,
    )


async def add_mappings(db: Pool | Connection) -> None:
    for name, config in MAPPINGS.items():
        await add_instance(db, name, config)


def quiet() -> tuple[Progress, Tally, io.StringIO]:
    """A progress line and a tally that write into a buffer the test can read."""
    out = io.StringIO()
    return Progress("test", None, stream=out), Tally(out), out


async def snapshot(db: Pool | Connection) -> dict[str, list[tuple[Any, ...]]]:
    """The database state a replay produces, free of ids, creation times and arrival order.

    An event's time is kept when the provider gave one; the receive time it
    falls back to otherwise is the replay's (or the server's) own, so it shows
    as None. Enrollments are named by contact (e-mail, else LinkedIn key),
    deliveries are a multiset (concurrency decides which of two redeliveries
    comes first, never what the pair adds up to).
    """
    events = await db.fetch(
        """
        SELECT e.provider, e.provider_event_id, e.event_type, e.channel, e.step_number,
               CASE WHEN e.timestamp = d.received_at THEN NULL ELSE e.timestamp END AS timestamp,
               e.metadata, i.name AS instance,
               coalesce(lower(n.contact_email), n.linkedin_key) AS contact
        FROM campaign_events e
        LEFT JOIN webhook_deliveries d ON d.id = e.delivery_id
        LEFT JOIN campaign_instances i ON i.id = e.instance_id
        LEFT JOIN campaign_enrollments n ON n.id = e.enrollment_id
        ORDER BY e.provider, e.provider_event_id
        """
    )
    enrollments = await db.fetch(
        "SELECT i.name, coalesce(lower(n.contact_email), n.linkedin_key) AS contact"
        " FROM campaign_enrollments n JOIN campaign_instances i ON i.id = n.instance_id"
        " ORDER BY 1, 2"
    )
    counters = await db.fetch(
        "SELECT name, total_enrolled, total_sent, total_opened, total_clicked, total_replied"
        " FROM campaign_instances ORDER BY name"
    )
    deliveries = await db.fetch(
        "SELECT provider, status, events_written, duplicates FROM webhook_deliveries"
        " ORDER BY 1, 2, 3, 4"
    )
    return {
        "events": [tuple(r) for r in events],
        "enrollments": [tuple(r) for r in enrollments],
        "counters": [tuple(r) for r in counters],
        "deliveries": [tuple(r) for r in deliveries],
    }


async def recounted(db: Pool | Connection) -> list[tuple[Any, ...]]:
    """Instance counters computed from scratch, to hold the stored ones against."""
    rows = await db.fetch(
        """
        SELECT i.name,
               (SELECT count(*) FROM campaign_enrollments n WHERE n.instance_id = i.id),
               count(DISTINCT e.enrollment_id) FILTER (WHERE e.event_type = 'sent'),
               count(DISTINCT e.enrollment_id) FILTER (WHERE e.event_type = 'opened'),
               count(DISTINCT e.enrollment_id) FILTER (WHERE e.event_type = 'clicked'),
               count(DISTINCT e.enrollment_id) FILTER (WHERE e.event_type = 'replied')
        FROM campaign_instances i
        LEFT JOIN campaign_enrollments n ON n.instance_id = i.id
        LEFT JOIN campaign_events e ON e.enrollment_id = n.id
        GROUP BY i.id, i.name
        ORDER BY i.name
        """
    )
    return [tuple(r) for r in rows]


async def stored_counters(db: Pool | Connection) -> list[tuple[Any, ...]]:
    rows = await db.fetch(
        "SELECT name, total_enrolled, total_sent, total_opened, total_clicked, total_replied"
        " FROM campaign_instances ORDER BY name"
    )
    return [tuple(r) for r in rows]


async def everything(db: Pool | Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables replay and reprocess write, ids and times included."""
    tables = {
        "webhook_deliveries": "id",
        "campaign_events": "id",
        "campaign_enrollments": "id",
        "campaign_instances": "id",
        "instance_keys": "provider, campaign_key, instance_id",
    }
    return {
        table: [tuple(r) for r in await db.fetch(f"SELECT * FROM {table} ORDER BY {order}")]
        for table, order in tables.items()
    }

"""`gateway erase`: one person removed from every table, counters recomputed, others kept."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any, NamedTuple

from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.db.pool import Pool
from tests.conftest import fixture_body
from tests.database import make_instance, post_webhook
from tests.e2e.helpers import gateway_env, run_gateway

Client = AsyncTestClient[Litestar]
DANA = "Dana.Whitfield@Northwind-Example.com"
DANA_LI = "https://www.linkedin.com/in/dana-whitfield-example/"
ANA = "ana.whitfield@northwind-example.com"  # a suffix of DANA's address: never erased with her


async def _lemlist(client: Client, kind: str, campaign: str, email: str, **extra: Any) -> None:
    body = json.loads(fixture_body("lemlist", f"{kind}.json"))
    body |= {"_id": f"act_{uuid.uuid4().hex}", "campaignId": campaign, "leadEmail": email}
    body |= extra
    response = await post_webhook(client, "lemlist", json.dumps(body).encode())
    assert response.status_code in (200, 400), response.text


async def _postmark(client: Client, record: str, tag: str, email: str) -> None:
    body = json.loads(fixture_body("postmark", f"{record}.json"))
    body |= {"MessageID": str(uuid.uuid4()), "Tag": tag, "Recipient": email, "Metadata": {}}
    assert (await post_webhook(client, "postmark", json.dumps(body).encode())).status_code == 200


async def _world(client: Client, pool: Pool) -> None:
    await make_instance(
        pool,
        {"lemlist_campaign_id": "cam-A", "postmark_tag": "tag-A", "phantombuster_agent_id": "ag-A"},
        name="A",
    )
    await make_instance(pool, {"lemlist_campaign_id": "cam-B"}, name="B")
    for person in (DANA, ANA):
        await _lemlist(client, "emailsSent", "cam-A", person, linkedinUrl=None)
        await _lemlist(client, "emailsOpened", "cam-A", person.upper())
        await _lemlist(client, "emailsReplied", "cam-B", person)
        await _postmark(client, "Open", "tag-A", person)
        await _postmark(client, "Click", "tag-unmapped", person)  # unmatched
    # Dana's LinkedIn profile on her enrollment in A, then a PhantomBuster run naming
    # her and two other people.
    await pool.execute(
        "UPDATE campaign_enrollments SET linkedin_url = $1 WHERE lower(contact_email) = lower($2)"
        " AND instance_id = (SELECT id FROM campaign_instances WHERE name = 'A')",
        DANA_LI,
        DANA,
    )
    run = json.loads(fixture_body("phantombuster", "linkedin_auto_connect_finished.json"))
    run["agentId"] = "ag-A"
    assert (
        await post_webhook(client, "phantombuster", json.dumps(run).encode())
    ).status_code == 200
    # A rejected delivery that mentions her (no event, raw body kept).
    await _lemlist(client, "emailsOpened", "cam-A", DANA, createdAt="yesterday")


async def _tables_mentioning(pool: Pool, text: str) -> dict[str, int]:
    """Rows of every column of every table that hold the text (bodies read as bytes too)."""
    columns = await pool.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name NOT LIKE '\\_yoyo%'"
        " AND table_name NOT LIKE 'yoyo%'"
    )
    found: dict[str, int] = {}
    for c in columns:
        column = f'"{c["table_name"]}"."{c["column_name"]}"'
        expr = f"encode({column}, 'escape')" if c["data_type"] == "bytea" else f"{column}::text"
        count = await pool.fetchval(
            f'SELECT count(*) FROM "{c["table_name"]}" WHERE {expr} ILIKE $1', f"%{text}%"
        )
        if count:
            found[f"{c['table_name']}.{c['column_name']}"] = count
    return found


async def _anas(pool: Pool) -> tuple[int, int, int]:
    """Ana's enrollments, their events, and the deliveries naming her (as a JSON string)."""
    enrollments = await pool.fetchval(
        "SELECT count(*) FROM campaign_enrollments WHERE lower(contact_email) = $1", ANA
    )
    events = await pool.fetchval(
        "SELECT count(*) FROM campaign_events e JOIN campaign_enrollments n"
        " ON n.id = e.enrollment_id WHERE lower(n.contact_email) = $1",
        ANA,
    )
    deliveries = await pool.fetchval(
        "SELECT count(*) FROM webhook_deliveries WHERE encode(body, 'escape') ILIKE $1",
        f'%"{ANA}"%',
    )
    return enrollments, events, deliveries


async def _counters_match_events(pool: Pool) -> None:
    rows = await pool.fetch(
        "SELECT i.name, i.total_enrolled, i.total_sent, i.total_opened, i.total_clicked,"
        " i.total_replied,"
        " (SELECT count(*) FROM campaign_enrollments e WHERE e.instance_id = i.id) AS enrolled,"
        " (SELECT count(DISTINCT enrollment_id) FILTER (WHERE event_type = 'sent')"
        "  FROM campaign_events e WHERE e.instance_id = i.id) AS sent,"
        " (SELECT count(DISTINCT enrollment_id) FILTER (WHERE event_type = 'opened')"
        "  FROM campaign_events e WHERE e.instance_id = i.id) AS opened,"
        " (SELECT count(DISTINCT enrollment_id) FILTER (WHERE event_type = 'clicked')"
        "  FROM campaign_events e WHERE e.instance_id = i.id) AS clicked,"
        " (SELECT count(DISTINCT enrollment_id) FILTER (WHERE event_type = 'replied')"
        "  FROM campaign_events e WHERE e.instance_id = i.id) AS replied"
        " FROM campaign_instances i"
    )
    for r in rows:
        assert r["total_enrolled"] == r["enrolled"], r["name"]
        for kind in ("sent", "opened", "clicked", "replied"):
            assert r[f"total_{kind}"] == r[kind], (r["name"], kind)


class Ran(NamedTuple):
    code: int
    out: str
    err: str


async def _erase(database_url: str, *args: str) -> Ran:
    """The real command, as a person runs it."""
    env = gateway_env(DATABASE_URL=database_url)
    done = await asyncio.to_thread(run_gateway, "erase", *args, env=env)
    return Ran(done.returncode, done.stdout, done.stderr)


async def test_erase_by_email_removes_the_person_everywhere(
    client: Client, clean_db: Pool, database_url: str
) -> None:
    await _world(client, clean_db)
    before = await _tables_mentioning(clean_db, DANA)
    assert {"campaign_enrollments.contact_email", "webhook_deliveries.body"} <= set(before)
    assert await _tables_mentioning(clean_db, "dana-whitfield-example")
    ana_before = await _anas(clean_db)
    assert ana_before == (2, 4, 5)  # sent, opened, Postmark open, reply; 3 lemlist + 2 Postmark
    counts = {
        t: await clean_db.fetchval(f"SELECT count(*) FROM {t}")
        for t in ("campaign_enrollments", "campaign_events", "webhook_deliveries")
    }

    ran = await _erase(database_url, "--email", DANA.upper())
    assert ran.code == 0, ran.err
    dry = ran.out
    assert dry.startswith("dry run, nothing erased")
    assert "enrollments          2   in A, B" in dry
    # Sent, opened, Postmark open (A) + replied (B) + her PhantomBuster row; 1 unmatched click.
    assert "events               6   5 of those enrollments, 1 unmatched" in dry
    # 3 lemlist, 2 Postmark, the run, the rejected one.
    assert "raw deliveries       7" in dry
    for table, count in counts.items():
        assert await clean_db.fetchval(f"SELECT count(*) FROM {table}") == count

    ran = await _erase(database_url, "--email", DANA, "--yes")
    assert ran.code == 0, ran.err
    out = ran.out
    assert out.startswith("erased dana.whitfield@northwind-example.com, https://linkedin.com/in/")
    assert await _tables_mentioning(clean_db, DANA) == {}
    assert await _tables_mentioning(clean_db, "linkedin.com/in/dana-whitfield-example") == {}
    await _counters_match_events(clean_db)
    # Ana, whose address is the tail of Dana's, keeps everything.
    assert await _anas(clean_db) == ana_before
    # The run's other people keep their events; its raw delivery is gone with Dana's row.
    others = await clean_db.fetchval(
        "SELECT count(*) FROM campaign_events WHERE provider = 'phantombuster'"
    )
    assert others == 2
    assert (
        await clean_db.fetchval("SELECT count(*) FROM campaign_enrollments")
        == counts["campaign_enrollments"] - 2
    )

    # Again: nothing left to erase.
    again = await _erase(database_url, "--email", DANA, "--yes")
    assert again.code == 0
    assert "enrollments          0" in again.out


async def test_erase_by_linkedin_url_and_bad_arguments(
    client: Client, clean_db: Pool, database_url: str
) -> None:
    await _world(client, clean_db)
    ran = await _erase(
        database_url, "--linkedin-url", "linkedin.com/in/Dana-Whitfield-Example?x=1", "--yes"
    )
    assert ran.code == 0, ran.err
    # Known by her profile, found with her e-mail too (her enrollment in A holds both).
    assert await _tables_mentioning(clean_db, DANA) == {}
    assert await _tables_mentioning(clean_db, "dana-whitfield-example") == {}
    assert await _tables_mentioning(clean_db, "marcus-okafor-example")  # another row's person
    await _counters_match_events(clean_db)

    for args in (["--email", "not-an-address"], ["--linkedin-url", "https://example.com/dana"]):
        ran = await _erase(database_url, *args)
        assert ran.code == 2
        assert ran.err.startswith("error: not a"), ran.err

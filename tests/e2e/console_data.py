"""A realistic dataset for looking at the console: campaigns and three weeks of webhooks.

Two running campaigns are set up through the management API (a lemlist +
PhantomBuster one with e-mail and LinkedIn steps, a Postmark one), plus a
draft. `capture()` writes what their providers would have posted over the
last three weeks, in the shapes of /work/shared/payloads, as a capture
(docs/operations.md: replay) with realistic receive times: funnels that thin out step
by step, bounces, complaints, PhantomBuster runs with failed rows,
redeliveries, a few rejected bodies, ignored types, and two campaign keys
no instance maps (the Unmatched page). Deterministic for a given seed and
`now`.
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx

OPS_CAMPAIGN = "cam_R7vK2mXq9PdL4sWtA"
OPS_AGENT = "7318204659127734"
FINTECH_TAG = "fintech-cfos-march"
WEBINAR_CAMPAIGN = "cam_Webinar_Followup_Apr"
NEWSLETTER_TAG = "newsletter-april"

FIRST = [
    "Dana",
    "Marcus",
    "Priya",
    "Jonas",
    "Amara",
    "Luis",
    "Mei",
    "Tomasz",
    "Ingrid",
    "Kofi",
    "Sofia",
    "Ravi",
    "Elena",
    "Noah",
    "Yuki",
    "Omar",
    "Clara",
    "Mateo",
    "Hannah",
    "Arjun",
    "Leila",
    "Pieter",
    "Grace",
    "Diego",
    "Freya",
    "Samuel",
    "Nadia",
    "Viktor",
    "Chloe",
    "Idris",
]
LAST = [
    "Whitfield",
    "Okafor",
    "Natarajan",
    "Lindqvist",
    "Mensah",
    "Herrera",
    "Chen",
    "Nowak",
    "Berg",
    "Asante",
    "Rossi",
    "Iyer",
    "Petrova",
    "Fischer",
    "Tanaka",
    "Haddad",
    "Dubois",
    "Silva",
    "Becker",
    "Kapoor",
    "Karimi",
    "Jansen",
    "Murphy",
    "Alvarez",
    "Nielsen",
    "Adeyemi",
    "Sorensen",
    "Horvat",
    "Laurent",
    "Rahman",
]
COMPANIES = [
    "northwind",
    "contoso",
    "fabrikam",
    "tailspin",
    "adventureworks",
    "wingtip",
    "litware",
    "proseware",
    "fourthcoffee",
    "woodgrove",
    "lucerne",
    "margie",
    "alpineski",
    "blueyonder",
    "cohowinery",
]


def people(count: int, rng: random.Random) -> list[dict[str, str]]:
    """Distinct contacts with an e-mail and a LinkedIn profile."""
    chosen: list[dict[str, str]] = []
    names = [(f, la) for f in FIRST for la in LAST]
    rng.shuffle(names)
    for first, last in names[:count]:
        company = rng.choice(COMPANIES)
        slug = f"{first}-{last}".lower()
        chosen.append(
            {
                "first": first,
                "last": last,
                "email": f"{first}.{last}@{company}-example.com".lower(),
                "linkedin": f"https://www.linkedin.com/in/{slug}-{rng.randrange(100, 999)}/",
                "company": company,
            }
        )
    return chosen


def setup_campaigns(client: httpx.Client, key: str) -> dict[str, str]:
    """Templates and instances through the management API; instance ids by role."""
    auth = {"authorization": f"Bearer {key}"}

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = client.post(path, json=body, headers=auth)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    ops = post(
        "/api/campaigns/templates",
        {
            "name": "Ops leaders: e-mail + LinkedIn",
            "type": "multi_channel",
            "email_sequences": [
                {"step_number": n, "subject": s, "body_template": "Hi {{first_name}}, …"}
                for n, s in [(1, "Fulfilment throughput"), (2, "Re: throughput"), (3, "Last try")]
            ],
            "linkedin_sequences": [
                {"step_number": 1, "action_type": "profile_visit"},
                {"step_number": 2, "action_type": "connection_request"},
            ],
        },
    )
    cfo = post(
        "/api/campaigns/templates",
        {
            "name": "CFO e-mail sequence",
            "type": "email",
            "email_sequences": [
                {"step_number": n, "subject": f"Closing the books, part {n}", "body_template": "…"}
                for n in (1, 2, 3)
            ],
        },
    )
    instances = {
        "ops": post(
            "/api/campaigns/instances",
            {
                "template_id": ops["id"],
                "name": "Q1 Outbound: Ops Leaders",
                "status": "active",
                "provider_config": {
                    "email_provider": "lemlist",
                    "linkedin_provider": "phantombuster",
                    "lemlist_campaign_id": OPS_CAMPAIGN,
                    "phantombuster_agent_id": OPS_AGENT,
                },
            },
        ),
        "fintech": post(
            "/api/campaigns/instances",
            {
                "template_id": cfo["id"],
                "name": "Fintech CFOs: March",
                "status": "active",
                "provider_config": {"email_provider": "postmark", "postmark_tag": FINTECH_TAG},
            },
        ),
        "retail": post(
            "/api/campaigns/instances",
            {"template_id": ops["id"], "name": "Retail VPs: April", "status": "draft"},
        ),
    }
    return {role: str(instance["id"]) for role, instance in instances.items()}


class Capture:
    """Capture lines with receive times a few seconds after each event."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.lines: list[dict[str, Any]] = []

    def add(self, provider: str, at: datetime, body: Any, *, raw: bytes | None = None) -> None:
        received = at + timedelta(seconds=self.rng.uniform(0.3, 20))
        agents = {
            "lemlist": "lemlist-webhooks/1.0",
            "postmark": "Postmark",
            "phantombuster": "PhantomBuster-Webhook/2",
        }
        line: dict[str, Any] = {
            "provider": provider,
            "received_at": _iso(received),
            "headers": {"content-type": "application/json", "user-agent": agents[provider]},
            "query": {},
            "body": {"base64": base64.b64encode(raw).decode()} if raw is not None else body,
        }
        if provider == "postmark":
            line["headers"]["x-pm-webhook-trace-id"] = str(uuid.UUID(int=self.rng.getrandbits(128)))
        self.lines.append(line)

    def redeliver(self, count: int) -> None:
        """Providers retry: the same bodies again, a minute or an hour later."""
        for line in self.rng.sample(self.lines, count):
            again = dict(line)
            again["received_at"] = _iso(
                datetime.fromisoformat(line["received_at"])
                + timedelta(seconds=self.rng.choice([60, 300, 3600]))
            )
            self.lines.append(again)


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _id(rng: random.Random, prefix: str) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
    return prefix + "".join(rng.choice(alphabet) for _ in range(17))


def lemlist_body(
    rng: random.Random, kind: str, person: dict[str, str], campaign: str, at: datetime, step: int
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "_id": _id(rng, "act_"),
        "type": kind,
        "isFirst": True,
        "teamId": "tea_Zq8Lm3NbVx7RtK2pW",
        "createdAt": _iso(at),
        "sendUserEmail": "alex.rivera@outreach.acme-example.com",
        "sendUserName": "Alex Rivera",
        "leadId": "lea_" + person["email"].split("@")[0].replace(".", "")[:17],
        "leadFirstName": person["first"],
        "leadLastName": person["last"],
        "leadEmail": person["email"],
        "linkedinUrl": person["linkedin"],
        "campaignId": campaign,
        "campaignName": "Q1 Outbound - Ops Leaders",
        "sequenceStep": step,
        "subject": f"Quick question about {person['company'].title()}'s fulfilment ops",
    }
    if kind == "emailsClicked":
        body["url"] = "https://www.acme-example.com/case-studies/northwind?utm_source=outbound"
    if kind == "emailsBounced":
        body["errorMessage"] = "550 5.1.1 The email account that you tried to reach does not exist"
    return body


def postmark_body(
    rng: random.Random, record: str, person: dict[str, str], tag: str, at: datetime, step: int
) -> dict[str, Any]:
    message = str(uuid.UUID(int=rng.getrandbits(128)))
    body: dict[str, Any] = {
        "RecordType": record,
        "MessageStream": "outbound",
        "MessageID": message,
        "Recipient": person["email"],
        "Tag": tag,
        "Metadata": {"step": str(step)},
        "ServerID": 4271093,
    }
    if record == "Delivery":
        body["DeliveredAt"] = _iso(at)
        body["Details"] = "smtp;250 2.0.0 OK"
    elif record in ("Open", "Click"):
        body["ReceivedAt"] = _iso(at)
        body["Platform"] = rng.choice(["WebMail", "Desktop", "Mobile"])
        body["UserAgent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/122.0.0.0"
        if record == "Click":
            body["OriginalLink"] = "https://www.acme-example.com/cfo-guide?utm_campaign=march"
            body["ClickLocation"] = "HTML"
    else:  # Bounce, SpamComplaint
        body.update(
            ID=rng.randrange(3_700_000_000, 3_800_000_000),
            Type="HardBounce" if record == "Bounce" else "SpamComplaint",
            Email=person["email"],
            BouncedAt=_iso(at),
            Description="The server was unable to deliver your message.",
        )
    return body


def phantombuster_run(
    rng: random.Random, agent: str, rows: list[tuple[dict[str, str], datetime, str | None]]
) -> dict[str, Any]:
    result = []
    for person, at, error in rows:
        row: dict[str, Any] = {
            "profileUrl": person["linkedin"],
            "baseUrl": person["linkedin"],
            "firstName": person["first"],
            "message": f"Hi {person['first']}, I work with operations leaders. - Alex",
            "timestamp": _iso(at),
        }
        if error:
            row["error"] = error
        result.append(row)
    return {
        "agentId": agent,
        "agentName": "Acme - LinkedIn Auto Connect (Q1 ops leaders)",
        "containerId": str(rng.randrange(10**15, 10**16)),
        "script": "LinkedIn Auto Connect.js",
        "exitCode": 0,
        "exitMessage": "finished",
        "resultObject": json.dumps(result),
    }


def capture(now: datetime, seed: int = 7) -> list[dict[str, Any]]:
    """Three weeks of webhooks up to `now`, oldest first."""
    rng = random.Random(seed)
    start = now - timedelta(days=21)
    out = Capture(rng)
    crowd = people(140, rng)
    ops, fintech, webinar, newsletter = crowd[:60], crowd[60:105], crowd[105:125], crowd[125:]

    def moment(day: float) -> datetime:
        """Business hours on a day after `start`."""
        base = start + timedelta(days=day)
        return base.replace(hour=8, minute=0, second=0) + timedelta(minutes=rng.uniform(0, 9 * 60))

    # Ops leaders on lemlist: three e-mail steps, each to those who have not replied.
    pending: list[tuple[datetime, dict[str, str]]] = [(moment(rng.uniform(0, 12)), p) for p in ops]
    for step in (1, 2, 3):
        remaining = []
        for sent_at, person in pending:
            if sent_at > now:
                continue
            out.add(
                "lemlist",
                sent_at,
                lemlist_body(rng, "emailsSent", person, OPS_CAMPAIGN, sent_at, step),
            )
            if rng.random() < 0.05:
                bounce = sent_at + timedelta(minutes=2)
                out.add(
                    "lemlist",
                    bounce,
                    lemlist_body(rng, "emailsBounced", person, OPS_CAMPAIGN, bounce, step),
                )
                continue
            replied = False
            if rng.random() < 0.6:
                opened = sent_at + timedelta(hours=rng.uniform(0.2, 30))
                if opened < now:
                    out.add(
                        "lemlist",
                        opened,
                        lemlist_body(rng, "emailsOpened", person, OPS_CAMPAIGN, opened, step),
                    )
                    if rng.random() < 0.3:
                        clicked = opened + timedelta(minutes=rng.uniform(1, 50))
                        out.add(
                            "lemlist",
                            clicked,
                            lemlist_body(rng, "emailsClicked", person, OPS_CAMPAIGN, clicked, step),
                        )
                    if rng.random() < 0.18:
                        replied_at = opened + timedelta(hours=rng.uniform(1, 20))
                        if replied_at < now:
                            out.add(
                                "lemlist",
                                replied_at,
                                lemlist_body(
                                    rng, "emailsReplied", person, OPS_CAMPAIGN, replied_at, step
                                ),
                            )
                            replied = True
            if rng.random() < 0.02:
                out.add(
                    "lemlist",
                    sent_at + timedelta(days=1),
                    lemlist_body(
                        rng,
                        "emailsUnsubscribed",
                        person,
                        OPS_CAMPAIGN,
                        sent_at + timedelta(days=1),
                        step,
                    ),
                )
                continue
            if not replied:
                remaining.append((sent_at + timedelta(days=rng.uniform(3, 5)), person))
        pending = remaining

    # LinkedIn for the same people: PhantomBuster Auto Connect runs of five profiles a day...
    invited = rng.sample(ops, 45)
    for run, batch in enumerate(invited[i : i + 5] for i in range(0, len(invited), 5)):
        at = moment(3 + run * 2)
        if at > now:
            break
        rows = [
            (
                p,
                at + timedelta(seconds=40 * n),
                "Invitation already sent" if rng.random() < 0.1 else None,
            )
            for n, p in enumerate(batch)
        ]
        out.add("phantombuster", at + timedelta(minutes=4), phantombuster_run(rng, OPS_AGENT, rows))
        # ...and lemlist reports the acceptances and replies it sees.
        for person, requested, error in rows:
            if error is None and rng.random() < 0.45:
                accepted = requested + timedelta(hours=rng.uniform(3, 60))
                if accepted < now:
                    out.add(
                        "lemlist",
                        accepted,
                        lemlist_body(
                            rng, "linkedinInviteAccepted", person, OPS_CAMPAIGN, accepted, 2
                        ),
                    )
                    if rng.random() < 0.3:
                        reply = accepted + timedelta(hours=rng.uniform(2, 30))
                        if reply < now:
                            out.add(
                                "lemlist",
                                reply,
                                lemlist_body(
                                    rng, "linkedinReplied", person, OPS_CAMPAIGN, reply, 2
                                ),
                            )

    # Fintech CFOs on Postmark.
    for person in fintech:
        for step in (1, 2, 3):
            delivered = moment(rng.uniform(3, 10) + (step - 1) * 4)
            if delivered > now:
                break
            if rng.random() < 0.04:
                out.add(
                    "postmark",
                    delivered,
                    postmark_body(rng, "Bounce", person, FINTECH_TAG, delivered, step),
                )
                break
            out.add(
                "postmark",
                delivered,
                postmark_body(rng, "Delivery", person, FINTECH_TAG, delivered, step),
            )
            if rng.random() < 0.5:
                opened = delivered + timedelta(hours=rng.uniform(0.1, 26))
                if opened < now:
                    out.add(
                        "postmark",
                        opened,
                        postmark_body(rng, "Open", person, FINTECH_TAG, opened, step),
                    )
                    if rng.random() < 0.25:
                        clicked = opened + timedelta(minutes=rng.uniform(1, 30))
                        out.add(
                            "postmark",
                            clicked,
                            postmark_body(rng, "Click", person, FINTECH_TAG, clicked, step),
                        )
            if rng.random() < 0.015:
                complained = delivered + timedelta(hours=5)
                out.add(
                    "postmark",
                    complained,
                    postmark_body(rng, "SpamComplaint", person, FINTECH_TAG, complained, step),
                )
                break

    # Keys no instance maps yet.
    for person in webinar:
        at = moment(rng.uniform(8, 12))
        if at < now:
            out.add("lemlist", at, lemlist_body(rng, "emailsSent", person, WEBINAR_CAMPAIGN, at, 1))
            if rng.random() < 0.5:
                opened = at + timedelta(hours=2)
                if opened < now:
                    out.add(
                        "lemlist",
                        opened,
                        lemlist_body(rng, "emailsOpened", person, WEBINAR_CAMPAIGN, opened, 1),
                    )
    for person in newsletter:
        at = moment(rng.uniform(9, 11))
        if at < now:
            out.add("postmark", at, postmark_body(rng, "Delivery", person, NEWSLETTER_TAG, at, 1))

    # What else arrives: lead-state webhooks lemlist sends, a Postmark test, broken bodies.
    for day in (3, 9, 15):
        person = rng.choice(ops)
        at = moment(day)
        out.add(
            "lemlist",
            at,
            {**lemlist_body(rng, "emailsSent", person, OPS_CAMPAIGN, at, 1), "type": "hooked"},
        )
    test_at = moment(0.5)
    out.add(
        "postmark",
        test_at,
        {
            "RecordType": "Delivery",
            "MessageID": "00000000-0000-0000-0000-000000000000",
            "Recipient": "john@example.com",
            "DeliveredAt": _iso(test_at),
            "Tag": "welcome-email",
        },
    )
    for day in (6, 13):
        at = moment(day)
        truncated = json.dumps(
            lemlist_body(rng, "emailsOpened", rng.choice(ops), OPS_CAMPAIGN, at, 1)
        )
        out.add("lemlist", at, None, raw=truncated[: len(truncated) // 2].encode())
    missing_at = moment(11)
    out.add(
        "postmark",
        missing_at,
        {
            "RecordType": "Open",
            "Recipient": rng.choice(fintech)["email"],
            "ReceivedAt": _iso(missing_at),
            "Tag": FINTECH_TAG,
        },
    )

    out.redeliver(12)
    out.lines.sort(key=lambda line: line["received_at"])
    return out.lines

"""Webhook ingestion gateway for sales outreach (lemlist, Postmark, PhantomBuster).

A webhook passes through `webhooks.py` (the edge) → `delivery.py` (what is
stored) → `ingest.py` (parse with `providers/`, fetch with `fetch.py`, flag
with `engagement.py`) → `db/ingest.py` (one statement, then COMMIT). The read
and management API is `api/` over `db/reads.py` and `db/campaigns.py`; the
operators' tools over stored deliveries are `ops/`, run by `cli.py`.
"""

__version__ = "0.1.0"

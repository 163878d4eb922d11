"""Operators' tools over stored deliveries: no webhook passes through here.

Every delivery is stored raw, so what was received can be read again:
`capture` (the JSON Lines format), `replay` (captures through the pipeline
again), `export` (stored deliveries out as a capture), `reprocess` (stored
deliveries normalized again; also behind the API's reprocess and attach),
`retention` (`gateway purge`), `erase` (one person removed), and
`engagement_refresh` (Apple's relay ranges for the machine-open rules), with
`progress` drawing their progress line. The webhook's own path is
`gateway/webhooks.py` → `gateway/ingest.py` → `gateway/db/ingest.py`.
"""

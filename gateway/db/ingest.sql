-- Named SQL of the write path (gateway/ingest.py), loaded by gateway/db/ingest.py.
-- Values always travel as $n parameters; set-based statements take parallel
-- arrays through unnest(), so one statement serves one event or a thousand.

-- name: write_batch
-- A whole group commit in one statement and its own implicit transaction
-- (gateway/db/functions.sql explains the steps): events and deliveries as
-- parallel arrays, named as the function names them.
SELECT delivery_id, status, written, duplicates, cause
FROM write_batch(
    ev_id => $1, ev_provider => $2, ev_key => $3, ev_campaign_key => $4, ev_instance_hint => $5,
    ev_enrollment_hint => $6, ev_email => $7, ev_urls => $8, ev_delivery => $9,
    ev_type => $10, ev_channel => $11, ev_step => $12, ev_at => $13, ev_metadata => $14,
    d_id => $15, d_provider => $16, d_received_at => $17, d_body => $18, d_body_size => $19,
    d_headers => $20, d_query => $21, d_status => $22, d_cause => $23, d_events => $24,
    d_fetched_body => $25, d_fetched_from => $26, store => $27);

-- Named SQL over stored deliveries and what they wrote, for the operators'
-- tools (gateway/ops: export, replay, reprocess, purge), loaded by
-- gateway/db/deliveries.py. Values always travel as $n parameters.

-- name: page_deliveries
-- Stored deliveries in (received_at, id) order after a keyset cursor, for
-- export and reprocess. Every filter is always bound (all providers, all
-- statuses, ±infinity for an open time range), so one plan serves every call
-- and the cursor stays an index range on (received_at, id).
SELECT id, provider, received_at, body, body_size, headers, query, status, cause,
       events_written, duplicates, fetched_body, fetched_from
FROM webhook_deliveries
WHERE provider = ANY($1::text[])
  AND status = ANY($2::text[])
  AND received_at >= coalesce($3::timestamptz, '-infinity')
  AND received_at < coalesce($4::timestamptz, 'infinity')
  AND (received_at, id) > (coalesce($5::timestamptz, '-infinity'),
                           coalesce($6::uuid, '00000000-0000-0000-0000-000000000000'))
ORDER BY received_at, id
LIMIT $7;

-- name: count_deliveries
-- How many deliveries `page_deliveries` will go through, for the progress line.
SELECT count(*)
FROM webhook_deliveries
WHERE provider = ANY($1::text[])
  AND status = ANY($2::text[])
  AND received_at >= coalesce($3::timestamptz, '-infinity')
  AND received_at < coalesce($4::timestamptz, 'infinity');

-- name: stored_bodies
-- The bodies stored for a provider at one receive time: how a direct replay
-- recognizes a capture line that is stored already.
SELECT body FROM webhook_deliveries WHERE provider = $1 AND received_at = $2;

-- name: stored_events
-- Which of these event keys are stored, with their enrollment (if any) and
-- machine flag: reprocess writes only when something is missing, unattached
-- or flagged otherwise, and counts what it attaches.
SELECT provider_event_id, enrollment_id, metadata -> 'machine' AS machine
FROM campaign_events
WHERE provider = $1 AND provider_event_id = ANY($2::text[]);

-- name: delivery_events
-- Per delivery: the events it wrote itself, and how many of them still have
-- no enrollment: what its status says.
SELECT delivery_id, count(*) AS own, count(*) FILTER (WHERE enrollment_id IS NULL) AS unmatched
FROM campaign_events
WHERE delivery_id = ANY($1::uuid[])
GROUP BY delivery_id;

-- name: update_delivery_outcome
-- A reprocessed delivery's new outcome; its raw body and headers never change.
UPDATE webhook_deliveries
SET status = $2, cause = $3, events_written = $4, duplicates = $5,
    fetched_body = $6, fetched_from = $7, processed_at = now()
WHERE id = $1;

-- name: purge_deliveries
-- One batch of raw deliveries received before the cutoff, oldest first.
-- Events keep their delivery_id (there is no foreign key), so purging never
-- touches them; SKIP LOCKED leaves rows another transaction holds for the
-- next run instead of waiting on them.
DELETE FROM webhook_deliveries
WHERE id IN (
    SELECT id FROM webhook_deliveries
    WHERE received_at < $1
    ORDER BY received_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED)
RETURNING id, provider, received_at, body, headers, query, fetched_body, fetched_from;

-- name: count_purgeable
-- What a purge would delete, shown before it asks: how many, from when to when.
SELECT count(*) AS count, min(received_at) AS oldest, max(received_at) AS newest
FROM webhook_deliveries
WHERE received_at < $1;

-- name: stale_machine_flags
-- The enrollments among these whose opens and clicks are not flagged as the
-- current rules say (a rule's version changed since): reprocess rewrites them.
SELECT DISTINCT enrollment_id FROM machine_flag_changes($1::uuid[]);

-- name: flag_machine_events
-- Recompute these enrollments' machine flags; how many events changed.
SELECT flag_machine_events($1::uuid[]);

-- name: machine_flags
-- The machine flag of each e-mail open and click of these enrollments, by
-- event id: reprocess counts the flags a delivery's transaction changed.
SELECT id, metadata -> 'machine' AS machine
FROM campaign_events
WHERE enrollment_id = ANY($1::uuid[]) AND channel = 'email'
  AND event_type IN ('opened', 'clicked');

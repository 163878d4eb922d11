-- Named SQL, loaded once by gateway/db/queries.py. Each block starts with
-- "-- name: <name>". Values always travel as $n parameters; set-based
-- statements take parallel arrays through unnest(), so one statement serves
-- one event or a thousand.

-- name: resolve_targets
-- For each event: its campaign instance and, when the contact is known, its
-- enrollment. Metadata.enrollment_id wins; then the instance named by
-- Metadata.instance_id or by the provider's campaign key (active instances
-- first, newest first); then the contact by e-mail (case-insensitive), else by
-- LinkedIn URL (compared through linkedin_key()). The two contact lookups are
-- separate so that each is one probe of its unique index, however large the
-- campaign.
WITH ev AS (
    SELECT *
    FROM unnest($1::int[], $2::text[], $3::text[], $4::uuid[], $5::uuid[], $6::text[], $7::text[])
        AS t (idx, provider, campaign_key, instance_hint, enrollment_hint, email, urls)
)
SELECT ev.idx,
       coalesce(hinted.instance_id, inst.id) AS instance_id,
       coalesce(hinted.id, by_email.id, by_url.id) AS enrollment_id
FROM ev
LEFT JOIN campaign_enrollments hinted ON hinted.id = ev.enrollment_hint
LEFT JOIN LATERAL (
    SELECT i.id
    FROM campaign_instances i
    WHERE hinted.id IS NULL
      AND (
        i.id = ev.instance_hint
        OR (ev.provider = 'lemlist' AND i.provider_config ->> 'lemlist_campaign_id' = ev.campaign_key)
        OR (ev.provider = 'postmark' AND i.provider_config ->> 'postmark_tag' = ev.campaign_key)
        OR (ev.provider = 'phantombuster' AND (
              i.provider_config ->> 'phantombuster_agent_id' = ev.campaign_key
              OR EXISTS (
                  SELECT 1
                  FROM jsonb_array_elements_text(
                      CASE WHEN jsonb_typeof(i.provider_config -> 'phantombuster_agent_ids') = 'array'
                           THEN i.provider_config -> 'phantombuster_agent_ids' END) AS a (agent_id)
                  WHERE a.agent_id = ev.campaign_key)))
      )
    ORDER BY i.id = ev.instance_hint DESC NULLS LAST, i.status = 'active' DESC, i.created_at DESC, i.id
    LIMIT 1
) inst ON true
LEFT JOIN LATERAL (
    SELECT e.id
    FROM campaign_enrollments e
    WHERE e.instance_id = inst.id
      AND e.contact_email IS NOT NULL
      AND lower(e.contact_email) = lower(ev.email)
) by_email ON true
LEFT JOIN LATERAL (
    SELECT e.id
    FROM campaign_enrollments e
    WHERE by_email.id IS NULL
      AND e.instance_id = inst.id
      AND e.linkedin_key IS NOT NULL
      AND e.linkedin_key = ANY (ARRAY(
          SELECT linkedin_key(u) FROM unnest(string_to_array(ev.urls, E'\n')) AS u))
    ORDER BY e.created_at, e.id
    LIMIT 1
) by_url ON true;

-- name: lock_instances
-- The row locks the counter triggers will need, taken first and in id order:
-- concurrent batches then queue on them instead of deadlocking.
SELECT id FROM campaign_instances WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE;

-- name: create_enrollments
-- Enroll contacts seen for a known instance; a contact enrolled meanwhile (by
-- a concurrent delivery, or twice in this batch) is left alone. The instance's
-- provider_config is copied: switching providers applies to new enrollments.
INSERT INTO campaign_enrollments (instance_id, contact_email, linkedin_url, status, provider_config)
SELECT t.instance_id, t.email, t.url, 'active', i.provider_config
FROM unnest($1::uuid[], $2::text[], $3::text[]) WITH ORDINALITY AS t (instance_id, email, url, n)
JOIN campaign_instances i ON i.id = t.instance_id
ORDER BY t.instance_id, lower(t.email), linkedin_key(t.url), t.n
ON CONFLICT DO NOTHING;

-- name: insert_events
-- Deduplication: UNIQUE (provider, provider_event_id). A redelivered event is
-- not written again; one that was unmatched is attached when it now resolves.
-- Returns the rows written or attached; `inserted` tells which.
INSERT INTO campaign_events (
    enrollment_id, instance_id, delivery_id, event_type, channel, provider,
    provider_event_id, step_number, timestamp, metadata)
SELECT *
FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
            $7::text[], $8::int[], $9::timestamptz[], $10::jsonb[])
ON CONFLICT (provider, provider_event_id) DO UPDATE
    SET enrollment_id = EXCLUDED.enrollment_id, instance_id = EXCLUDED.instance_id
    WHERE campaign_events.enrollment_id IS NULL
      AND (EXCLUDED.enrollment_id IS NOT NULL
           OR (campaign_events.instance_id IS NULL AND EXCLUDED.instance_id IS NOT NULL))
RETURNING provider, provider_event_id, enrollment_id, (xmax = 0) AS inserted;

-- name: insert_deliveries
-- Raw deliveries with their outcomes, many per statement (group commit).
INSERT INTO webhook_deliveries (
    id, provider, received_at, body, body_size, headers, query, status, cause,
    events_written, duplicates, fetched_body, fetched_from)
SELECT *
FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::bytea[], $5::int[], $6::jsonb[],
            $7::jsonb[], $8::text[], $9::text[], $10::int[], $11::int[], $12::bytea[], $13::text[]);

-- name: ping
SELECT 1;

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
-- Which of these event keys are stored, and whether each has its enrollment:
-- reprocess writes only when something is missing or unattached, and counts
-- what it attaches.
SELECT provider_event_id, enrollment_id IS NOT NULL AS attached
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
SELECT count(*) FROM webhook_deliveries WHERE received_at < $1;

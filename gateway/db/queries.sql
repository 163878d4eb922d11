-- Named SQL, loaded once by gateway/db/queries.py. Each block starts with
-- "-- name: <name>". Values always travel as $n parameters; set-based
-- statements take parallel arrays through unnest(), so one statement serves
-- one event or a thousand.

-- name: resolve_targets
-- For each event: its campaign instance and, when the contact is known, its
-- enrollment. Metadata.enrollment_id wins; then the instance named by
-- Metadata.instance_id or by the provider's campaign key (active instances
-- first, newest first); then the contact by e-mail (case-insensitive) or by
-- LinkedIn URL (compared through linkedin_key()).
WITH ev AS (
    SELECT *
    FROM unnest($1::int[], $2::text[], $3::text[], $4::uuid[], $5::uuid[], $6::text[], $7::text[])
        AS t (idx, provider, campaign_key, instance_hint, enrollment_hint, email, urls)
)
SELECT ev.idx,
       coalesce(hinted.instance_id, inst.id) AS instance_id,
       coalesce(hinted.id, contact.id) AS enrollment_id
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
      AND (
        lower(e.contact_email) = lower(ev.email)
        OR e.linkedin_key IN (
            SELECT linkedin_key(u) FROM unnest(string_to_array(ev.urls, E'\n')) AS u)
      )
    ORDER BY lower(e.contact_email) = lower(ev.email) DESC NULLS LAST, e.created_at, e.id
    LIMIT 1
) contact ON true;

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

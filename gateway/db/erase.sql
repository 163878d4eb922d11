-- Named SQL of `gateway erase` (GDPR erasure of one person), loaded by
-- gateway/db/erase.py. Everything erase deletes is deleted here, in one place,
-- and the instance counters follow (apply_counter_deltas(), as every writer
-- of the campaign tables does).

-- name: erase_enrollments
-- The person's enrollments in every instance: by any of their e-mail addresses
-- ($1, lower case) or LinkedIn profile keys ($2, linkedin_key()), also where
-- an enrollment merged into another one carried them (merged_from). One probe
-- of the unique indexes (instance_id, lower(contact_email)) and (instance_id,
-- linkedin_key) per instance, and a look at the enrollments that merged others.
SELECT e.id, e.instance_id, i.name AS instance_name, lower(e.contact_email) AS email,
       e.linkedin_key,
       (SELECT count(*) FROM campaign_events ev WHERE ev.enrollment_id = e.id) AS events
FROM campaign_instances i
JOIN campaign_enrollments e ON e.instance_id = i.id
WHERE lower(e.contact_email) = ANY($1::text[])
   OR e.linkedin_key = ANY($2::text[])
   OR (e.merged_from <> '[]'::jsonb
       AND EXISTS (SELECT 1 FROM jsonb_array_elements(e.merged_from) AS m (merged)
                   WHERE lower(m.merged ->> 'contact_email') = ANY($1::text[])
                      OR linkedin_key(m.merged ->> 'linkedin_url') = ANY($2::text[])))
ORDER BY i.name, e.id;

-- name: erase_candidate_deliveries
-- Stored deliveries whose body or fetched result holds one of the texts $1 (any
-- case), after (received_at, id) > ($2, $3), at most $4: a keyset-paged
-- sequential scan of webhook_deliveries, since no index covers the bodies. The
-- bodies are compared in bytea's escape format (non-ASCII bytes as \ooo), and
-- so are the texts. Candidates only: gateway/ops/erase.py checks each one exactly.
WITH needles AS (
    SELECT array_agg('%' || replace(replace(replace(
               encode(convert_to(t, 'UTF8'), 'escape'),
               '\', '\\'), '%', '\%'), '_', '\_') || '%') AS patterns
    FROM unnest($1::text[]) AS t
)
SELECT w.id, w.provider, w.received_at, w.body, w.fetched_body
FROM webhook_deliveries w, needles n
WHERE (w.received_at, w.id) > (coalesce($2::timestamptz, '-infinity'),
                               coalesce($3::uuid, '00000000-0000-0000-0000-000000000000'))
  AND (encode(w.body, 'escape') ILIKE ANY (n.patterns)
       OR encode(coalesce(w.fetched_body, ''::bytea), 'escape') ILIKE ANY (n.patterns))
ORDER BY w.received_at, w.id
LIMIT $4;

-- name: erase_unmatched_events
-- Events without an enrollment that are the person's: keyed on one of their
-- identifiers ($1: e-mail addresses and LinkedIn profile keys, lower case;
-- Postmark keys hold the recipient, PhantomBuster keys the profile) or written
-- from a delivery about them ($2).
-- Candidates: gateway/ops/erase.py confirms a key names them (ana@ is not dana@).
SELECT e.id, e.provider_event_id, e.delivery_id
FROM campaign_events e
WHERE e.enrollment_id IS NULL
  AND (EXISTS (SELECT 1 FROM unnest($1::text[]) AS t
               WHERE position(t IN lower(e.provider_event_id)) > 0)
       OR e.delivery_id = ANY($2::uuid[]));

-- name: erase_delete
-- Delete in one statement: the enrollments (their events cascade) with their
-- share of the counters, the unmatched events, the raw deliveries. Returns
-- what was deleted.
WITH enrollments AS (
    DELETE FROM campaign_enrollments WHERE id = ANY($1::uuid[])
    RETURNING id, instance_id, event_mask
),
counted AS (
    SELECT apply_counter_deltas(
               array_agg(instance_id), array_agg(-1),
               array_agg(-(event_mask & 1 <> 0)::integer),
               array_agg(-(event_mask & 4 <> 0)::integer),
               array_agg(-(event_mask & 8 <> 0)::integer),
               array_agg(-(event_mask & 16 <> 0)::integer))
    FROM enrollments
),
unmatched AS (
    DELETE FROM campaign_events WHERE id = ANY($2::uuid[]) AND enrollment_id IS NULL RETURNING id
),
deliveries AS (
    DELETE FROM webhook_deliveries WHERE id = ANY($3::uuid[]) RETURNING id
)
SELECT (SELECT count(*) FROM enrollments, counted) AS enrollments,
       (SELECT count(*) FROM unmatched) AS unmatched_events,
       (SELECT count(*) FROM deliveries) AS deliveries;

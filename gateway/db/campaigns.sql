-- Named SQL of the management API (gateway/api/manage.py, enrollments.py),
-- loaded by gateway/db/campaigns.py. Each write runs inside one transaction of
-- its handler. Counters are never written here: the schema's triggers
-- (migration 0003) move them when enrollments and events change.

-- name: insert_template
INSERT INTO campaign_templates (name, description, type, path_type, settings, is_active, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id;

-- name: update_template
-- Takes the template's row lock first, so that concurrent replacements of
-- the same template's sequences run one after the other.
UPDATE campaign_templates
SET name = $2, description = $3, type = $4, path_type = $5, settings = $6, is_active = $7,
    created_by = $8
WHERE id = $1
RETURNING id;

-- name: upsert_email_steps
-- The template's email steps, keyed by (step_number, a_b_variant): a step
-- kept by a replacement keeps its id; an unchanged one is not even touched.
INSERT INTO email_sequences
    (template_id, step_number, a_b_variant, subject, body_template, delay_hours, is_active)
SELECT $1, *
FROM unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::int[], $7::boolean[])
ON CONFLICT ON CONSTRAINT uq_email_sequences_step DO UPDATE
    SET subject = EXCLUDED.subject, body_template = EXCLUDED.body_template,
        delay_hours = EXCLUDED.delay_hours, is_active = EXCLUDED.is_active
    WHERE (email_sequences.subject, email_sequences.body_template, email_sequences.delay_hours,
           email_sequences.is_active)
          IS DISTINCT FROM
          (EXCLUDED.subject, EXCLUDED.body_template, EXCLUDED.delay_hours, EXCLUDED.is_active);

-- name: delete_other_email_steps
-- The template's email steps that a replacement does not list.
DELETE FROM email_sequences s
WHERE s.template_id = $1
  AND NOT EXISTS (
      SELECT 1
      FROM unnest($2::int[], $3::text[]) AS k (step_number, a_b_variant)
      WHERE k.step_number = s.step_number AND k.a_b_variant IS NOT DISTINCT FROM s.a_b_variant);

-- name: upsert_linkedin_steps
-- The template's LinkedIn steps, keyed by step_number, as upsert_email_steps.
INSERT INTO linkedin_sequences
    (template_id, step_number, action_type, message_template, delay_hours, fallback_channel)
SELECT $1, *
FROM unnest($2::int[], $3::text[], $4::text[], $5::int[], $6::text[])
ON CONFLICT ON CONSTRAINT uq_linkedin_sequences_step DO UPDATE
    SET action_type = EXCLUDED.action_type, message_template = EXCLUDED.message_template,
        delay_hours = EXCLUDED.delay_hours, fallback_channel = EXCLUDED.fallback_channel
    WHERE (linkedin_sequences.action_type, linkedin_sequences.message_template,
           linkedin_sequences.delay_hours, linkedin_sequences.fallback_channel)
          IS DISTINCT FROM
          (EXCLUDED.action_type, EXCLUDED.message_template, EXCLUDED.delay_hours,
           EXCLUDED.fallback_channel);

-- name: delete_other_linkedin_steps
DELETE FROM linkedin_sequences s
WHERE s.template_id = $1 AND s.step_number <> ALL ($2::int[]);

-- name: lock_template
-- The template's row lock, taken first by every write to the template.
SELECT id FROM campaign_templates WHERE id = $1 FOR UPDATE;

-- name: lock_template_instances
-- Before deleting a template: its instances, locked in id order (the order
-- ingestion locks instances in), so that the cascade does not deadlock with
-- a webhook batch counting into one of them.
SELECT id, name, status
FROM campaign_instances
WHERE template_id = $1
ORDER BY id
FOR UPDATE;

-- name: delete_template
-- Cascades to the sequences, instances, enrollments and events.
DELETE FROM campaign_templates WHERE id = $1;

-- name: lock_template_key
-- A template an instance is being made from, kept from being deleted meanwhile.
SELECT id FROM campaign_templates WHERE id = $1 FOR KEY SHARE;

-- name: lock_mappings
-- Serializes the writes that change which instance a campaign key maps to,
-- so that two concurrent requests cannot both find a key free.
SELECT pg_advisory_xact_lock(hashtextextended('gateway: campaign key mappings', 0));

-- name: mapping_conflict
-- The oldest active or paused instance, other than $1, that maps one of the
-- (provider, key) pairs, single or listed: instance_keys holds them as
-- ingestion resolves them (migration 0007).
SELECT i.id, i.name, k.provider, k.campaign_key AS key
FROM unnest($2::text[], $3::text[]) AS w (provider, key)
JOIN instance_keys k ON k.provider = w.provider AND k.campaign_key = w.key
JOIN campaign_instances i ON i.id = k.instance_id
WHERE i.status IN ('active', 'paused')
  AND i.id IS DISTINCT FROM $1::uuid
ORDER BY i.created_at, i.id
LIMIT 1;

-- name: insert_instance
-- Counters start at their defaults (zero); `active` starts the instance now.
INSERT INTO campaign_instances (template_id, name, status, provider_config, settings, started_at)
VALUES ($1, $2, $3, $4, $5, CASE WHEN $3 = 'active' THEN now() END)
RETURNING id;

-- name: lock_instance
-- The instance row, locked as ingestion locks it (FOR NO KEY UPDATE) to count
-- into it: a status or mapping change then waits for the webhooks being
-- counted, or they wait for it.
SELECT id, status, provider_config, settings
FROM campaign_instances
WHERE id = $1
FOR NO KEY UPDATE;

-- name: update_instance
-- The instance's new name (NULL: unchanged), status and configuration. The
-- status times move when the status does: started_at when first active,
-- paused_at while paused (cleared on resuming), completed_at when completed.
UPDATE campaign_instances
SET name = coalesce($2, name),
    status = $3,
    provider_config = $4,
    settings = $5,
    started_at = CASE
        WHEN $3 = 'active' AND status <> 'active' THEN coalesce(started_at, now())
        ELSE started_at END,
    paused_at = CASE
        WHEN $3 = 'paused' AND status <> 'paused' THEN now()
        WHEN $3 = 'active' AND status <> 'active' THEN NULL
        ELSE paused_at END,
    completed_at = CASE
        WHEN $3 = 'completed' AND status <> 'completed' THEN now()
        ELSE completed_at END
WHERE id = $1;

-- name: instance_status
-- Whether the instance takes contacts; the key-share lock keeps it from
-- being deleted meanwhile, without waiting for the webhooks counting into it.
SELECT status FROM campaign_instances WHERE id = $1 FOR KEY SHARE;

-- name: count_enrolled
-- Enrollments made through the API count like those ingestion makes: added
-- to the instance as its transaction's last step.
SELECT apply_counter_deltas(ARRAY[$1::uuid], ARRAY[$2::integer], '{0}', '{0}', '{0}', '{0}');

-- name: enroll_contacts
-- New enrollments for contacts not enrolled yet: a contact whose email (any
-- case) or LinkedIn profile (linkedin_key) is enrolled already, in the
-- database or earlier in this list, is skipped by the unique indexes. Each
-- copies the instance's provider_config: a later provider switch applies to
-- new enrollments only.
INSERT INTO campaign_enrollments
    (instance_id, contact_email, linkedin_url, contact_id, metadata, provider_config, status)
SELECT i.id, c.email, c.url, c.contact_id, c.metadata, i.provider_config, 'enrolled'
FROM unnest($2::text[], $3::text[], $4::text[], $5::jsonb[]) WITH ORDINALITY
    AS c (email, url, contact_id, metadata, n)
JOIN campaign_instances i ON i.id = $1
ORDER BY c.n
ON CONFLICT DO NOTHING
RETURNING id;

-- name: find_contacts
-- The enrollment of each contact, in the list's order: by email (any case),
-- else by LinkedIn profile, each one probe of its unique index.
SELECT coalesce(by_email.id, by_url.id) AS id,
       coalesce(by_email.contact_email, by_url.contact_email) AS contact_email,
       coalesce(by_email.linkedin_url, by_url.linkedin_url) AS linkedin_url
FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS c (email, url, n)
LEFT JOIN LATERAL (
    SELECT e.id, e.contact_email, e.linkedin_url
    FROM campaign_enrollments e
    WHERE e.instance_id = $1
      AND e.contact_email IS NOT NULL
      AND lower(e.contact_email) = lower(c.email)
) by_email ON true
LEFT JOIN LATERAL (
    SELECT e.id, e.contact_email, e.linkedin_url
    FROM campaign_enrollments e
    WHERE by_email.id IS NULL
      AND e.instance_id = $1
      AND e.linkedin_key IS NOT NULL
      AND e.linkedin_key = linkedin_key(c.url)
) by_url ON true
ORDER BY c.n;

-- name: unmatched_deliveries
-- The raw deliveries that own events still without a campaign instance and
-- carrying one of the keys, in (received_at, id) order after a keyset
-- cursor, with the columns reprocessing reads: one probe of
-- idx_campaign_events_unmatched_key per provider and key.
SELECT w.id, w.provider, w.received_at, w.body, w.body_size, w.headers, w.query, w.status,
       w.cause, w.events_written, w.duplicates, w.fetched_body, w.fetched_from
FROM webhook_deliveries w
WHERE w.id IN (
        SELECT e.delivery_id
        FROM campaign_events e
        WHERE e.enrollment_id IS NULL
          AND e.instance_id IS NULL
          AND ((e.provider = 'lemlist' AND e.campaign_key = ANY ($1::text[]))
            OR (e.provider = 'postmark' AND e.campaign_key = ANY ($2::text[]))
            OR (e.provider = 'phantombuster' AND e.campaign_key = ANY ($3::text[]))))
  AND (w.received_at, w.id) > (coalesce($4::timestamptz, '-infinity'),
                               coalesce($5::uuid, '00000000-0000-0000-0000-000000000000'))
ORDER BY w.received_at, w.id
LIMIT $6;

-- name: count_unmatched
-- Events with one of the keys still without a campaign instance.
SELECT count(*)
FROM campaign_events e
WHERE e.enrollment_id IS NULL
  AND e.instance_id IS NULL
  AND ((e.provider = 'lemlist' AND e.campaign_key = ANY ($1::text[]))
    OR (e.provider = 'postmark' AND e.campaign_key = ANY ($2::text[]))
    OR (e.provider = 'phantombuster' AND e.campaign_key = ANY ($3::text[])));

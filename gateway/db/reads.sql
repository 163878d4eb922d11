-- Named SQL of the dashboards' read API (gateway/api), loaded by
-- gateway/db/reads.py. Optional filters are written `$n IS NULL OR …`
-- only where the table is small or an index already narrows the rows; the
-- event list, which must stay fast over millions of rows, is composed from
-- fixed fragments in gateway/db/reads.py so that each filter can use its index.

-- name: list_templates
SELECT t.id, t.name, t.description, t.type, t.path_type, t.settings, t.is_active,
       t.created_by, t.created_at, t.updated_at,
       (SELECT count(DISTINCT s.step_number) FROM email_sequences s WHERE s.template_id = t.id)
           AS email_steps,
       (SELECT count(*) FROM linkedin_sequences s WHERE s.template_id = t.id) AS linkedin_steps
FROM campaign_templates t
WHERE ($1::text[] IS NULL OR t.type = ANY ($1))
  AND ($2::text[] IS NULL OR t.path_type = ANY ($2))
  AND ($3::boolean IS NULL OR t.is_active = $3)
ORDER BY t.created_at, t.id;

-- name: get_template
-- One template with its sequences in step order, in one statement (one snapshot).
SELECT t.id, t.name, t.description, t.type, t.path_type, t.settings, t.is_active,
       t.created_by, t.created_at, t.updated_at,
       (SELECT count(DISTINCT s.step_number) FROM email_sequences s WHERE s.template_id = t.id)
           AS email_steps,
       (SELECT count(*) FROM linkedin_sequences s WHERE s.template_id = t.id) AS linkedin_steps,
       coalesce((
           SELECT json_agg(json_build_object(
                      'id', s.id, 'step_number', s.step_number, 'subject', s.subject,
                      'body_template', s.body_template, 'delay_hours', s.delay_hours,
                      'a_b_variant', s.a_b_variant, 'is_active', s.is_active)
                  ORDER BY s.step_number, s.a_b_variant NULLS FIRST)
           FROM email_sequences s WHERE s.template_id = t.id), '[]') AS email_sequences,
       coalesce((
           SELECT json_agg(json_build_object(
                      'id', s.id, 'step_number', s.step_number, 'action_type', s.action_type,
                      'message_template', s.message_template, 'delay_hours', s.delay_hours,
                      'fallback_channel', s.fallback_channel)
                  ORDER BY s.step_number)
           FROM linkedin_sequences s WHERE s.template_id = t.id), '[]') AS linkedin_sequences
FROM campaign_templates t
WHERE t.id = $1;

-- name: list_instances
-- A page of instances, newest first: (created_at, id) descending after a
-- keyset cursor ($3, $4; NULL: the first page). Instances are hundreds, not
-- millions: no index is needed beyond the table itself.
SELECT i.id, i.template_id, i.name, i.status, i.provider_config, i.settings,
       i.total_enrolled, i.total_sent, i.total_opened, i.total_clicked, i.total_replied,
       i.started_at, i.paused_at, i.completed_at, i.created_at, i.updated_at
FROM campaign_instances i
WHERE ($1::text[] IS NULL OR i.status = ANY ($1))
  AND ($2::uuid[] IS NULL OR i.template_id = ANY ($2))
  AND (i.created_at, i.id) < (coalesce($3::timestamptz, 'infinity'),
                              coalesce($4::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
ORDER BY i.created_at DESC, i.id DESC
LIMIT $5;

-- name: get_instance
SELECT i.id, i.template_id, i.name, i.status, i.provider_config, i.settings,
       i.total_enrolled, i.total_sent, i.total_opened, i.total_clicked, i.total_replied,
       i.started_at, i.paused_at, i.completed_at, i.created_at, i.updated_at
FROM campaign_instances i
WHERE i.id = $1;

-- name: performance_enrolled
-- The instance's enrollments enrolled in [$2, $3) (NULL: unbounded); no row
-- when the instance does not exist.
SELECT (SELECT count(*)
        FROM campaign_enrollments e
        WHERE e.instance_id = i.id
          AND e.enrolled_at >= coalesce($2::timestamptz, '-infinity')
          AND e.enrolled_at < coalesce($3::timestamptz, 'infinity')) AS enrolled
FROM campaign_instances i
WHERE i.id = $1;

-- name: instance_timezone
-- The instance's own time zone (settings.timezone), the default of `daily`;
-- no row when the instance does not exist.
SELECT CASE WHEN jsonb_typeof(settings -> 'timezone') = 'string'
            THEN settings ->> 'timezone' END AS timezone
FROM campaign_instances
WHERE id = $1;

-- name: performance_human
-- Human engagement (contract §8) and the e-mail reach (the denominator of every
-- e-mail rate), among the instance's e-mail events in [$2, $3): overall, per
-- step, per day in time zone $4 and per provider. Reach: enrollments with an
-- e-mail sent, delivered or bounced event.
-- Human clicks: without metadata.machine. Human opens: without it, or any open
-- of an enrollment that clicked unflagged or replied (by e-mail) in the range.
-- The events come from the covering index; which opens and clicks carry a
-- machine flag is a second range over the same instance, read from the partial
-- index on flagged opens and clicks where it exists (index-only, like the
-- rest), else from the rows. grouping_id (a bit set for each of step 4, day 2,
-- provider 1 NOT grouped on): 7 overall, 3 per step, 5 per day, 6 per provider.
WITH e AS (
    SELECT id, enrollment_id, event_type, step_number, provider,
           (timestamp AT TIME ZONE $4::text)::date AS day
    FROM campaign_events
    WHERE instance_id = $1
      AND channel = 'email'
      AND event_type IN ('sent', 'delivered', 'bounced', 'opened', 'clicked', 'replied')
      AND timestamp >= coalesce($2::timestamptz, '-infinity')
      AND timestamp < coalesce($3::timestamptz, 'infinity')
),
flagged AS (
    SELECT id
    FROM campaign_events
    WHERE instance_id = $1
      AND event_type IN ('opened', 'clicked')
      AND metadata ? 'machine'
      AND timestamp >= coalesce($2::timestamptz, '-infinity')
      AND timestamp < coalesce($3::timestamptz, 'infinity')
),
marked AS (
    SELECT e.enrollment_id, e.event_type, e.step_number, e.provider, e.day,
           f.id IS NOT NULL AS machine
    FROM e
    LEFT JOIN flagged f ON f.id = e.id
),
vouched AS (
    SELECT DISTINCT enrollment_id
    FROM marked
    WHERE event_type = 'replied' OR (event_type = 'clicked' AND NOT machine)
),
counted AS (
    SELECT m.enrollment_id, m.step_number, m.day, m.provider,
           CASE WHEN m.event_type IN ('sent', 'delivered', 'bounced') THEN 'reach'
                ELSE m.event_type END AS measure
    FROM marked m
    LEFT JOIN vouched v ON v.enrollment_id = m.enrollment_id
    WHERE m.event_type IN ('sent', 'delivered', 'bounced')
       OR (m.event_type = 'clicked' AND NOT m.machine)
       OR (m.event_type = 'opened' AND (NOT m.machine OR v.enrollment_id IS NOT NULL))
)
SELECT grouping(step_number, day, provider) AS grouping_id, step_number, day, provider,
       measure, count(DISTINCT enrollment_id) AS enrollments
FROM counted
GROUP BY GROUPING SETS ((measure), (step_number, measure), (day, measure), (provider, measure));

-- name: performance_funnel
-- Events of one instance in [$2, $3) (NULL: unbounded), counted, and counted
-- by distinct enrollment, overall, per channel, per channel and step, per
-- provider, and per provider and channel. grouping_id tells the sets apart (a
-- bit is set for each of channel 4, step 2, provider 1 that is NOT grouped
-- on): 7 overall, 3 per channel, 1 per step, 6 per provider, 2 per provider
-- and channel. Reads only
-- idx_campaign_events_instance_time, which INCLUDEs every column.
SELECT grouping(e.channel, e.step_number, e.provider) AS grouping_id,
       e.channel, e.step_number, e.provider, e.event_type,
       count(*) AS total,
       count(DISTINCT e.enrollment_id) AS enrollments
FROM campaign_events e
WHERE e.instance_id = $1
  AND e.timestamp >= coalesce($2::timestamptz, '-infinity')
  AND e.timestamp < coalesce($3::timestamptz, 'infinity')
GROUP BY GROUPING SETS (
    (e.event_type),
    (e.channel, e.event_type),
    (e.channel, e.step_number, e.event_type),
    (e.provider, e.event_type),
    (e.provider, e.channel, e.event_type)
);

-- name: performance_totals
-- The same events counted per day in time zone $4 (a hash aggregate: no
-- distinct count here, so no sort).
SELECT (timestamp AT TIME ZONE $4::text)::date AS day, event_type, count(*) AS total
FROM campaign_events
WHERE instance_id = $1
  AND timestamp >= coalesce($2::timestamptz, '-infinity')
  AND timestamp < coalesce($3::timestamptz, 'infinity')
GROUP BY 1, 2;

-- name: list_events
-- A page of events; gateway/db/reads.py appends the filters and the keyset
-- (`AND …` fragments), then `ORDER BY e.timestamp, e.id LIMIT n`.
SELECT e.id, e.instance_id, e.enrollment_id, e.delivery_id, e.event_type, e.channel,
       e.provider, e.provider_event_id, e.campaign_key, e.step_number, e.timestamp, e.metadata,
       e.created_at
FROM campaign_events e
WHERE true

-- name: list_deliveries
-- A page of raw deliveries in (received_at, id) order, never their body bytes.
-- One ordered walk of idx_webhook_deliveries_status_received per wanted
-- status ($1), each stopping after $7 rows, then merged: a page costs the
-- same on the first page and the millionth, for one status or all of them.
-- NULL bounds ($3, $4) and a NULL cursor ($5, $6) mean unbounded; written with
-- coalesce() they stay index conditions in a generic plan.
SELECT d.*
FROM unnest($1::text[]) AS s (status)
CROSS JOIN LATERAL (
    SELECT w.id, w.provider, w.received_at, w.processed_at, w.status, w.cause,
           w.events_written, w.duplicates, w.body_size, w.headers, w.query, w.fetched_from
    FROM webhook_deliveries w
    WHERE w.status = s.status
      AND ($2::text[] IS NULL OR w.provider = ANY ($2))
      AND w.received_at >= coalesce($3::timestamptz, '-infinity')
      AND w.received_at < coalesce($4::timestamptz, 'infinity')
      AND (w.received_at, w.id) > (coalesce($5::timestamptz, '-infinity'),
                                   coalesce($6::uuid, '00000000-0000-0000-0000-000000000000'))
    ORDER BY w.received_at, w.id
    LIMIT $7
) d
ORDER BY d.received_at, d.id
LIMIT $7;

-- name: list_enrollments
-- A page of one instance's enrollments in (enrolled_at, id) order after a
-- keyset cursor ($3, $4; NULL: the first page), optionally of one status:
-- a range of idx_campaign_enrollments_instance_enrolled.
SELECT e.id, e.instance_id, e.contact_id, e.contact_email, e.linkedin_url, e.status,
       e.current_step, e.next_action_at, e.metadata, e.provider_config, e.enrolled_at,
       e.completed_at, e.created_at, e.updated_at
FROM campaign_enrollments e
WHERE e.instance_id = $1
  AND ($2::text[] IS NULL OR e.status = ANY ($2))
  AND (e.enrolled_at, e.id) > (coalesce($3::timestamptz, '-infinity'),
                               coalesce($4::uuid, '00000000-0000-0000-0000-000000000000'))
ORDER BY e.enrolled_at, e.id
LIMIT $5;

-- name: search_keys
-- What a business key ($1) names, each list cut at $2 entries: the deliveries
-- that wrote an event with it as provider event id (the dedup key
-- uq_campaign_events_provider_event, one probe per provider), as campaign key
-- (migration 0010's (campaign_key, delivery_id): an index-only range), or for
-- a lead with it as e-mail (migration 0010's (lower(contact_email)), then the
-- enrollments' events); and those enrollments. gateway/db/reads.py decides
-- from the sizes how to page the deliveries (search_deliveries).
SELECT array(SELECT e.delivery_id
             FROM campaign_events e
             WHERE e.provider = ANY ('{lemlist,postmark,phantombuster}'::text[])
               AND e.provider_event_id = $1::text) AS by_event_id,
       array(SELECT e.delivery_id
             FROM campaign_events e
             WHERE e.campaign_key = $1::text
             LIMIT $2) AS by_campaign_key,
       array(SELECT e.delivery_id
             FROM campaign_enrollments n
             JOIN campaign_events e ON e.enrollment_id = n.id
             WHERE lower(n.contact_email) = lower($1::text)
             LIMIT $2) AS by_email,
       array(SELECT n.id
             FROM campaign_enrollments n
             WHERE lower(n.contact_email) = lower($1::text)) AS enrollments;

-- name: search_deliveries
-- A page of searched deliveries; gateway/db/reads.py appends which ones
-- (`AND w.id = ANY (…)`, or an EXISTS over each delivery's own events), the
-- keyset and the order. The filters are those of list_deliveries.
SELECT w.id, w.provider, w.received_at, w.processed_at, w.status, w.cause,
       w.events_written, w.duplicates, w.body_size, w.headers, w.query, w.fetched_from
FROM webhook_deliveries w
WHERE w.status = ANY ($1::text[])
  AND ($2::text[] IS NULL OR w.provider = ANY ($2))
  AND w.received_at >= coalesce($3::timestamptz, '-infinity')
  AND w.received_at < coalesce($4::timestamptz, 'infinity')

-- name: list_deliveries_newest
-- list_deliveries newest first, for a log view: the same walks of
-- idx_webhook_deliveries_status_received, backwards, and a page starts
-- strictly before the cursor ($5, $6).
SELECT d.*
FROM unnest($1::text[]) AS s (status)
CROSS JOIN LATERAL (
    SELECT w.id, w.provider, w.received_at, w.processed_at, w.status, w.cause,
           w.events_written, w.duplicates, w.body_size, w.headers, w.query, w.fetched_from
    FROM webhook_deliveries w
    WHERE w.status = s.status
      AND ($2::text[] IS NULL OR w.provider = ANY ($2))
      AND w.received_at >= coalesce($3::timestamptz, '-infinity')
      AND w.received_at < coalesce($4::timestamptz, 'infinity')
      AND (w.received_at, w.id) < (coalesce($5::timestamptz, 'infinity'),
                                   coalesce($6::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
    ORDER BY w.received_at DESC, w.id DESC
    LIMIT $7
) d
ORDER BY d.received_at DESC, d.id DESC
LIMIT $7;

-- name: get_delivery
-- One stored delivery with everything reprocessing reads (body, fetched result).
SELECT w.id, w.provider, w.received_at, w.processed_at, w.status, w.cause,
       w.events_written, w.duplicates, w.body_size, w.headers, w.query, w.fetched_from,
       w.body, w.fetched_body
FROM webhook_deliveries w
WHERE w.id = $1;

-- name: count_delivery_events
SELECT count(*) FROM campaign_events WHERE delivery_id = $1;

-- name: list_unmatched
-- The provider campaign keys whose events no campaign instance claims (the
-- definition `POST …/attach` uses: no enrollment and no instance), with how
-- many events each has and when the first and last happened. Reads the
-- partial index of unmatched events (provider, campaign_key), so the cost
-- follows the unmatched events, not the whole table. A NULL key is events
-- whose provider named no campaign (a Postmark message without a Tag).
SELECT e.provider, e.campaign_key, count(*) AS events,
       count(DISTINCT e.delivery_id) AS deliveries,
       min(e.timestamp) AS first_event_at, max(e.timestamp) AS last_event_at
FROM campaign_events e
WHERE e.enrollment_id IS NULL
  AND e.instance_id IS NULL
  AND ($1::text[] IS NULL OR e.provider = ANY ($1))
GROUP BY e.provider, e.campaign_key
ORDER BY max(e.timestamp) DESC, e.provider, e.campaign_key;

-- name: provider_last_delivery
-- Freshness for /metrics: per provider, when its newest stored delivery that was
-- not rejected arrived (NULL: none). One backward step of
-- idx_webhook_deliveries_provider_received per provider (status checked on the
-- rows it passes), whatever the table's size.
SELECT p.provider,
       (SELECT w.received_at
        FROM webhook_deliveries w
        WHERE w.provider = p.provider AND w.status <> 'rejected'
        ORDER BY w.received_at DESC, w.id DESC
        LIMIT 1) AS last_at
FROM unnest($1::text[]) AS p (provider);

-- name: delivery_backlog
-- Stored deliveries per status (pending, rejected, unmatched) for /metrics: an
-- index-only count over idx_webhook_deliveries_status_received per status, so
-- it costs in proportion to the rows in those statuses, not to the table.
SELECT s.status,
       (SELECT count(*) FROM webhook_deliveries w WHERE w.status = s.status) AS deliveries
FROM unnest($1::text[]) AS s (status);

-- name: silent_instances
-- GET /api/alerts: active instances whose providers have sent no event for
-- longer than the instance's settings.silence_after_hours (default 24; a value
-- that is not a positive number counts as the default). One row per instance
-- and provider it uses (a campaign key for it, or email_provider /
-- linkedin_provider naming it); silent since its last event, or since the
-- instance started when none came yet. A provider's last event is a backward
-- walk of idx_campaign_events_instance_time (provider is INCLUDEd there).
WITH active AS (
    SELECT i.id, i.name, coalesce(i.started_at, i.created_at) AS started_at, i.provider_config AS pc,
           CASE WHEN jsonb_typeof(i.settings -> 'silence_after_hours') = 'number'
                     AND (i.settings ->> 'silence_after_hours')::float8 > 0
                THEN least((i.settings ->> 'silence_after_hours')::float8, 876000)
                ELSE 24 END AS hours
    FROM campaign_instances i
    WHERE i.status = 'active'
),
used AS (
    SELECT a.id, a.name, a.started_at, a.hours, p.provider
    FROM active a
    CROSS JOIN LATERAL (VALUES
        ('lemlist', a.pc ?| ARRAY['lemlist_campaign_id', 'lemlist_campaign_ids']),
        ('postmark', a.pc ?| ARRAY['postmark_tag', 'postmark_tags']),
        ('phantombuster', a.pc ?| ARRAY['phantombuster_agent_id', 'phantombuster_agent_ids'])
    ) AS p (provider, keyed)
    WHERE p.keyed
       OR a.pc ->> 'email_provider' = p.provider
       OR a.pc ->> 'linkedin_provider' = p.provider
),
last AS (
    SELECT u.*,
           (SELECT e.timestamp
            FROM campaign_events e
            WHERE e.instance_id = u.id AND e.provider = u.provider
            ORDER BY e.timestamp DESC
            LIMIT 1) AS last_event_at
    FROM used u
)
SELECT id AS instance_id, name AS instance_name, provider, last_event_at,
       coalesce(last_event_at, started_at) AS silent_since, hours AS silence_after_hours
FROM last
WHERE coalesce(last_event_at, started_at) < now() - make_interval(secs => hours * 3600)
ORDER BY silent_since, instance_name, provider;

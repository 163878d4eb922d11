-- depends: 0004_read_api_indexes
-- Group commit in one round trip. A batch of deliveries (and their events) is
-- written by ONE statement, `SELECT * FROM ingest_batch(...)`, which runs in
-- its own implicit transaction: resolve instances and enrollments, lock the
-- instances the counter triggers will update (in id order, so concurrent
-- batches queue instead of deadlocking), enroll unknown contacts, insert the
-- events with ON CONFLICT (provider, provider_event_id), then store the raw
-- deliveries with their outcomes. No lock is held while the client is busy
-- elsewhere, and the gateway pays one round trip per batch, not seven.

-- For each event (in array order): its instance and, when the contact is
-- known, its enrollment. Metadata.enrollment_id wins; then the instance named
-- by Metadata.instance_id or by the provider's campaign key (active instances
-- first, newest first); then the contact by e-mail (case-insensitive), else by
-- one of its LinkedIn URLs (newline-separated, compared through linkedin_key()).
-- Each contact lookup is one probe of its unique index. PL/pgSQL rather than
-- SQL: its plan is cached per connection instead of made again on every call.
CREATE FUNCTION resolve_targets(
    p_provider text[], p_campaign_key text[], p_instance_hint uuid[],
    p_enrollment_hint uuid[], p_email text[], p_urls text[]
) RETURNS TABLE (idx bigint, instance_id uuid, enrollment_id uuid)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
RETURN QUERY
WITH ev AS (
    SELECT *
    FROM unnest(p_provider, p_campaign_key, p_instance_hint, p_enrollment_hint, p_email, p_urls)
        WITH ORDINALITY AS t (provider, campaign_key, instance_hint, enrollment_hint, email, urls, idx)
)
SELECT ev.idx,
       coalesce(hinted.instance_id, inst.id),
       coalesce(hinted.id, by_email.id, by_url.id)
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
) by_url ON true
ORDER BY ev.idx;
END
$$;

-- Write a batch. Events come as parallel arrays (deduplicated by the caller,
-- each with the delivery that owns it), deliveries as parallel arrays too.
-- A delivery's status is given (no events: rejected, ignored, pending) or
-- decided here from what its events did: duplicate when none was new,
-- unmatched when a new one has no enrollment, processed otherwise. With
-- p_store false the deliveries are not stored (reprocess updates its own).
-- Returns one row per delivery: its status, new events and duplicates.
CREATE FUNCTION ingest_batch(
    e_provider text[], e_event_id text[], e_campaign_key text[], e_instance_hint uuid[],
    e_enrollment_hint uuid[], e_email text[], e_urls text[], e_delivery uuid[],
    e_event_type text[], e_channel text[], e_step int[], e_timestamp timestamptz[],
    e_metadata jsonb[],
    d_id uuid[], d_provider text[], d_received_at timestamptz[], d_body bytea[],
    d_body_size int[], d_headers jsonb[], d_query jsonb[], d_status text[], d_cause text[],
    d_events int[], d_fetched_body bytea[], d_fetched_from text[],
    p_store boolean
) RETURNS TABLE (delivery_id uuid, status text, written int, duplicates int, cause text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    t_instance uuid[] := '{}';
    t_enrollment uuid[] := '{}';
BEGIN
    IF cardinality(e_provider) > 0 THEN
        SELECT array_agg(r.instance_id ORDER BY r.idx), array_agg(r.enrollment_id ORDER BY r.idx)
        INTO t_instance, t_enrollment
        FROM resolve_targets(e_provider, e_campaign_key, e_instance_hint, e_enrollment_hint,
                             e_email, e_urls) AS r;

        PERFORM 1 FROM campaign_instances
        WHERE id = ANY (t_instance) ORDER BY id FOR NO KEY UPDATE;

        -- Contacts seen for a known instance but not enrolled yet. A contact
        -- enrolled meanwhile by another batch is left alone (ON CONFLICT) and
        -- found by the second lookup. The instance's provider_config is
        -- copied: switching providers applies to new enrollments only.
        IF EXISTS (
            SELECT 1 FROM unnest(t_instance, t_enrollment, e_email, e_urls) AS u (i, e, m, l)
            WHERE u.i IS NOT NULL AND u.e IS NULL AND (u.m IS NOT NULL OR u.l IS NOT NULL)
        ) THEN
            INSERT INTO campaign_enrollments (instance_id, contact_email, linkedin_url, status,
                                              provider_config)
            SELECT u.i, u.m, split_part(u.l, E'\n', 1), 'active', ci.provider_config
            FROM unnest(t_instance, t_enrollment, e_email, e_urls) WITH ORDINALITY AS u (i, e, m, l, n)
            JOIN campaign_instances ci ON ci.id = u.i
            WHERE u.e IS NULL AND (u.m IS NOT NULL OR u.l IS NOT NULL)
            ORDER BY u.i, lower(u.m), linkedin_key(split_part(u.l, E'\n', 1)), u.n
            ON CONFLICT DO NOTHING;

            SELECT array_agg(r.instance_id ORDER BY r.idx), array_agg(r.enrollment_id ORDER BY r.idx)
            INTO t_instance, t_enrollment
            FROM resolve_targets(e_provider, e_campaign_key, e_instance_hint, e_enrollment_hint,
                                 e_email, e_urls) AS r;
        END IF;
    END IF;

    RETURN QUERY
    WITH written AS (
        -- Deduplication: a redelivered event is not written again; one that
        -- was unmatched is attached when it now resolves.
        INSERT INTO campaign_events AS ce (
            enrollment_id, instance_id, delivery_id, event_type, channel, provider,
            provider_event_id, step_number, timestamp, metadata)
        SELECT *
        FROM unnest(t_enrollment, t_instance, e_delivery, e_event_type, e_channel, e_provider,
                    e_event_id, e_step, e_timestamp, e_metadata)
        ON CONFLICT (provider, provider_event_id) DO UPDATE
            SET enrollment_id = EXCLUDED.enrollment_id, instance_id = EXCLUDED.instance_id
            WHERE ce.enrollment_id IS NULL
              AND (EXCLUDED.enrollment_id IS NOT NULL
                   OR (ce.instance_id IS NULL AND EXCLUDED.instance_id IS NOT NULL))
        RETURNING ce.delivery_id AS owner, ce.enrollment_id AS enrolled, (xmax = 0) AS inserted
    ),
    per_delivery AS (
        SELECT w.owner,
               count(*) FILTER (WHERE w.inserted)::int AS new_events,
               bool_or(w.inserted AND w.enrolled IS NULL) AS some_unmatched
        FROM written w
        GROUP BY w.owner
    ),
    outcomes AS (
        SELECT d.*,
               coalesce(d.given_status,
                        CASE WHEN coalesce(p.new_events, 0) = 0 THEN 'duplicate'
                             WHEN p.some_unmatched THEN 'unmatched'
                             ELSE 'processed' END) AS final_status,
               coalesce(p.new_events, 0) AS new_events
        FROM unnest(d_id, d_provider, d_received_at, d_body, d_body_size, d_headers, d_query,
                    d_status, d_cause, d_events, d_fetched_body, d_fetched_from)
            AS d (id, provider, received_at, body, body_size, headers, query, given_status,
                  given_cause, events, fetched_body, fetched_from)
        LEFT JOIN per_delivery p ON p.owner = d.id
    ),
    stored AS (
        INSERT INTO webhook_deliveries (
            id, provider, received_at, body, body_size, headers, query, status, cause,
            events_written, duplicates, fetched_body, fetched_from)
        SELECT o.id, o.provider, o.received_at, o.body, o.body_size, o.headers, o.query,
               o.final_status,
               CASE WHEN o.final_status = 'unmatched' AND o.given_status IS NULL
                    THEN 'no campaign instance matches' ELSE o.given_cause END,
               o.new_events, o.events - o.new_events, o.fetched_body, o.fetched_from
        FROM outcomes o
        WHERE p_store
    )
    SELECT o.id, o.final_status, o.new_events, o.events - o.new_events,
           CASE WHEN o.final_status = 'unmatched' AND o.given_status IS NULL
                THEN 'no campaign instance matches' ELSE o.given_cause END
    FROM outcomes o;
END
$$;

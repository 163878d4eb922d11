-- Back to migration 0006: the counter triggers and ingest_batch() of 0003 and
-- 0006 return; the counters keep their values, the firsts are rebuilt.
DROP TRIGGER campaign_instances_keys ON campaign_instances;
DROP TABLE instance_keys;
ALTER TABLE campaign_enrollments
    DROP COLUMN event_mask,
    DROP COLUMN replied_at,
    DROP COLUMN merged_from;

-- Migration 0003's rollup and triggers, without counting again: the firsts are
-- rebuilt from the events before the triggers exist.
CREATE TABLE enrollment_event_firsts (
    enrollment_id uuid NOT NULL REFERENCES campaign_enrollments (id) ON DELETE CASCADE,
    event_type    text NOT NULL,
    instance_id   uuid NOT NULL,
    first_at      timestamptz NOT NULL,
    PRIMARY KEY (enrollment_id, event_type)
);
CREATE INDEX idx_enrollment_event_firsts_instance ON enrollment_event_firsts (instance_id, event_type);

INSERT INTO enrollment_event_firsts (enrollment_id, event_type, instance_id, first_at)
SELECT ev.enrollment_id, ev.event_type, ev.instance_id, min(ev.timestamp)
FROM campaign_events ev
WHERE ev.enrollment_id IS NOT NULL
GROUP BY ev.enrollment_id, ev.event_type, ev.instance_id;

CREATE FUNCTION record_event_firsts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO enrollment_event_firsts (enrollment_id, event_type, instance_id, first_at)
    SELECT n.enrollment_id, n.event_type, e.instance_id, min(n.timestamp)
    FROM new_events n
    JOIN campaign_enrollments e ON e.id = n.enrollment_id
    GROUP BY n.enrollment_id, n.event_type, e.instance_id
    ORDER BY n.enrollment_id, n.event_type
    ON CONFLICT (enrollment_id, event_type) DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER campaign_events_firsts_insert AFTER INSERT ON campaign_events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION record_event_firsts();
CREATE TRIGGER campaign_events_firsts_update AFTER UPDATE ON campaign_events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION record_event_firsts();

-- Inserted firsts add to the counters; deleted ones (an enrollment deleted,
-- cascading) take away. The same function serves both through TG_OP.
CREATE FUNCTION count_event_firsts() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    sign integer := CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END;
BEGIN
    UPDATE campaign_instances i SET
        total_sent = greatest(i.total_sent + sign * c.sent, 0),
        total_opened = greatest(i.total_opened + sign * c.opened, 0),
        total_clicked = greatest(i.total_clicked + sign * c.clicked, 0),
        total_replied = greatest(i.total_replied + sign * c.replied, 0)
    FROM (
        SELECT instance_id,
               count(*) FILTER (WHERE event_type = 'sent') AS sent,
               count(*) FILTER (WHERE event_type = 'opened') AS opened,
               count(*) FILTER (WHERE event_type = 'clicked') AS clicked,
               count(*) FILTER (WHERE event_type = 'replied') AS replied
        FROM changed_firsts
        WHERE event_type IN ('sent', 'opened', 'clicked', 'replied')
        GROUP BY instance_id
    ) c
    WHERE i.id = c.instance_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER enrollment_event_firsts_count_insert AFTER INSERT ON enrollment_event_firsts
    REFERENCING NEW TABLE AS changed_firsts
    FOR EACH STATEMENT EXECUTE FUNCTION count_event_firsts();
CREATE TRIGGER enrollment_event_firsts_count_delete AFTER DELETE ON enrollment_event_firsts
    REFERENCING OLD TABLE AS changed_firsts
    FOR EACH STATEMENT EXECUTE FUNCTION count_event_firsts();

CREATE FUNCTION count_enrollments() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    sign integer := CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END;
BEGIN
    UPDATE campaign_instances i
    SET total_enrolled = greatest(i.total_enrolled + sign * c.n, 0)
    FROM (SELECT instance_id, count(*) AS n FROM changed_enrollments GROUP BY instance_id) c
    WHERE i.id = c.instance_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER campaign_enrollments_count_insert AFTER INSERT ON campaign_enrollments
    REFERENCING NEW TABLE AS changed_enrollments
    FOR EACH STATEMENT EXECUTE FUNCTION count_enrollments();
CREATE TRIGGER campaign_enrollments_count_delete AFTER DELETE ON campaign_enrollments
    REFERENCING OLD TABLE AS changed_enrollments
    FOR EACH STATEMENT EXECUTE FUNCTION count_enrollments();

-- Migration 0006's ingest_batch() and migration 0005's resolve_targets().
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

CREATE OR REPLACE FUNCTION ingest_batch(
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
            provider_event_id, step_number, timestamp, metadata, campaign_key)
        SELECT *
        FROM unnest(t_enrollment, t_instance, e_delivery, e_event_type, e_channel, e_provider,
                    e_event_id, e_step, e_timestamp, e_metadata, e_campaign_key)
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

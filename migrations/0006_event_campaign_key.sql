-- depends: 0005_ingest_function
-- The provider's own campaign key (lemlist campaignId, Postmark Tag,
-- PhantomBuster agentId) on every event, so that unmatched events can be
-- listed and attached by key without reading each provider's metadata.

ALTER TABLE campaign_events ADD COLUMN campaign_key text;

UPDATE campaign_events SET campaign_key = CASE provider
    WHEN 'lemlist' THEN metadata ->> 'campaign_id'
    WHEN 'postmark' THEN metadata ->> 'tag'
    WHEN 'phantombuster' THEN nullif(split_part(provider_event_id, ':', 1), '')
END;

-- What needs attention: unmatched events by provider and campaign key.
CREATE INDEX idx_campaign_events_unmatched_key ON campaign_events (provider, campaign_key)
    WHERE enrollment_id IS NULL;

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

-- depends: 0007_identity_progression
-- Databases written before migration 0007 may hold one person as two
-- enrollments of one instance (one found by e-mail, one by LinkedIn profile),
-- or an enrollment that never got the identifier a later event carried. The
-- proof is in the raw deliveries: a lemlist activity names both the lead's
-- e-mail and LinkedIn URL. For each such pair of an instance, the identifier
-- an enrollment lacks is filled in, and two enrollments are merged into the
-- older (merge_enrollments(): events, state and counters follow).

CREATE FUNCTION pg_temp.body_json(body bytea) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN convert_from(body, 'UTF8')::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

DO $$
DECLARE
    pair record;
    found uuid[];
    merged record;
BEGIN
    FOR pair IN
        SELECT DISTINCT ev.instance_id, j.email, j.url, linkedin_key(j.url) AS key
        FROM campaign_events ev
        JOIN webhook_deliveries w ON w.id = ev.delivery_id
        CROSS JOIN LATERAL pg_temp.body_json(w.body) AS b (body)
        CROSS JOIN LATERAL (
            SELECT nullif(btrim(coalesce(b.body ->> 'leadEmail', b.body ->> 'email')), '') AS email,
                   nullif(btrim(b.body ->> 'linkedinUrl'), '') AS url
        ) j
        WHERE ev.provider = 'lemlist'
          AND ev.enrollment_id IS NOT NULL
          AND jsonb_typeof(b.body) = 'object'
          AND j.email IS NOT NULL
          AND linkedin_key(j.url) IS NOT NULL
        ORDER BY ev.instance_id, j.email, j.url
    LOOP
        SELECT coalesce(array_agg(e.id ORDER BY e.created_at, e.id), '{}') INTO found
        FROM campaign_enrollments e
        WHERE e.instance_id = pair.instance_id
          AND ((e.contact_email IS NOT NULL AND lower(e.contact_email) = lower(pair.email))
               OR e.linkedin_key = pair.key);
        CONTINUE WHEN cardinality(found) = 0;
        IF cardinality(found) > 1 THEN
            merged := merge_enrollments(found[1], found[2:]);
            PERFORM apply_counter_deltas(ARRAY[merged.instance_id], ARRAY[merged.enrolled],
                                         ARRAY[merged.sent], ARRAY[merged.opened],
                                         ARRAY[merged.clicked], ARRAY[merged.replied]);
        END IF;
        UPDATE campaign_enrollments e SET
            contact_email = coalesce(e.contact_email, pair.email),
            linkedin_url = coalesce(e.linkedin_url, pair.url)
        WHERE e.id = found[1] AND (e.contact_email IS NULL OR e.linkedin_url IS NULL);
    END LOOP;
END
$$;

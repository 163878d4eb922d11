-- depends: 0002_webhook_deliveries
-- Exact instance counters, kept in the transaction that writes the events.
--
-- total_enrolled counts enrollments; total_sent/opened/clicked/replied count
-- enrollments with at least one such event. enrollment_event_firsts holds one
-- row per (enrollment, event type) seen: its primary key makes "first event of
-- this type for this enrollment" race-free under concurrent writers, and only
-- rows it really inserts move the counters. Statement-level triggers with
-- transition tables do the work once per statement, for every writer
-- (ingestion, reprocess, seed, API), so no write path can forget it.

CREATE TABLE enrollment_event_firsts (
    enrollment_id uuid NOT NULL REFERENCES campaign_enrollments (id) ON DELETE CASCADE,
    event_type    text NOT NULL,
    instance_id   uuid NOT NULL,
    first_at      timestamptz NOT NULL,
    PRIMARY KEY (enrollment_id, event_type)
);
CREATE INDEX idx_enrollment_event_firsts_instance ON enrollment_event_firsts (instance_id, event_type);

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

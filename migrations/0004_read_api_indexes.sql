-- depends: 0003_instance_counters
-- Indexes for the dashboards' read API (gateway/api), sized for millions of events.
--
-- Events are paged by the keyset (timestamp, id), so every index a page walks
-- ends with those two columns. The per-instance index also carries what the
-- performance endpoint aggregates (INCLUDE), so that endpoint reads the index
-- alone (an index-only scan once autovacuum has marked the pages all-visible)
-- instead of visiting one heap page per event.

DROP INDEX idx_campaign_events_instance_time;
CREATE INDEX idx_campaign_events_instance_time ON campaign_events (instance_id, timestamp, id)
    INCLUDE (enrollment_id, event_type, channel, provider, step_number);

DROP INDEX idx_campaign_events_timestamp;
CREATE INDEX idx_campaign_events_timestamp ON campaign_events (timestamp, id);

-- What needs attention: unmatched events, paged in event time.
CREATE INDEX idx_campaign_events_unmatched_time ON campaign_events (timestamp, id)
    WHERE enrollment_id IS NULL;

-- `enrolled` of the performance endpoint, with or without a range: an
-- index-only count instead of one heap page per enrollment.
CREATE INDEX idx_campaign_enrollments_instance_enrolled
    ON campaign_enrollments (instance_id, enrolled_at);

DROP INDEX idx_campaign_enrollments_instance_enrolled;
DROP INDEX idx_campaign_events_unmatched_time;
DROP INDEX idx_campaign_events_timestamp;
CREATE INDEX idx_campaign_events_timestamp ON campaign_events (timestamp);
DROP INDEX idx_campaign_events_instance_time;
CREATE INDEX idx_campaign_events_instance_time ON campaign_events (instance_id, timestamp);

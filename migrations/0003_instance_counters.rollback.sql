DROP TRIGGER campaign_enrollments_count_delete ON campaign_enrollments;
DROP TRIGGER campaign_enrollments_count_insert ON campaign_enrollments;
DROP FUNCTION count_enrollments();
DROP TABLE enrollment_event_firsts;
DROP FUNCTION count_event_firsts();
DROP TRIGGER campaign_events_firsts_update ON campaign_events;
DROP TRIGGER campaign_events_firsts_insert ON campaign_events;
DROP FUNCTION record_event_firsts();

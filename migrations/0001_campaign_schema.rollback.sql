DROP TABLE campaign_events;
DROP TABLE campaign_enrollments;
DROP TABLE campaign_instances;
DROP TABLE linkedin_sequences;
DROP TABLE email_sequences;
DROP TABLE campaign_templates;
DROP FUNCTION linkedin_key(text);
DROP FUNCTION set_updated_at();

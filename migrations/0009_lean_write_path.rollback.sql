DROP INDEX idx_campaign_events_machine;
CREATE INDEX idx_webhook_deliveries_provider_received ON webhook_deliveries (provider, received_at, id);
CREATE INDEX idx_campaign_events_type ON campaign_events (event_type, timestamp);
DROP TRIGGER campaign_instances_updated_at ON campaign_instances;
CREATE TRIGGER campaign_instances_updated_at BEFORE UPDATE ON campaign_instances
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
DROP TRIGGER campaign_enrollments_updated_at ON campaign_enrollments;
CREATE TRIGGER campaign_enrollments_updated_at BEFORE UPDATE ON campaign_enrollments
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
DROP TRIGGER campaign_instances_delete_data ON campaign_instances;
-- Orphans the trigger-era could not leave, but a hand-made row could.
DELETE FROM campaign_enrollments e
WHERE NOT EXISTS (SELECT 1 FROM campaign_instances i WHERE i.id = e.instance_id);
DELETE FROM campaign_events e
WHERE e.instance_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM campaign_instances i WHERE i.id = e.instance_id);
ALTER TABLE campaign_enrollments ADD CONSTRAINT campaign_enrollments_instance_id_fkey
    FOREIGN KEY (instance_id) REFERENCES campaign_instances (id) ON DELETE CASCADE;
ALTER TABLE campaign_events ADD CONSTRAINT campaign_events_instance_id_fkey
    FOREIGN KEY (instance_id) REFERENCES campaign_instances (id) ON DELETE CASCADE;

-- depends: 0008_merge_split_people
-- What each webhook's write costs (issue 12), measured: every foreign key
-- check on an instance locked the hot instance row (FOR KEY SHARE, a
-- MultiXact once two batches held it), and every index and row trigger is
-- paid per event.
--
-- - Events and enrollments no longer hold foreign keys to campaign_instances.
--   Deleting instances still takes their enrollments and events with them
--   (an AFTER DELETE trigger does what ON DELETE CASCADE did), and a batch
--   that counted into an instance deleted meanwhile is refused and retried
--   (apply_counter_deltas()). Events keep their foreign key to enrollments:
--   an event is never attached to an enrollment that is gone.
-- - The updated_at triggers of enrollments and instances run only when a
--   writer did not set updated_at itself; the write path sets it.
-- - idx_campaign_events_type and idx_webhook_deliveries_provider_received go:
--   the read API filters on type within the instance's covering index or the
--   time index, and on provider within the status index.
-- - Flagged opens and clicks (metadata.machine) get a small partial index, so
--   counting what people did reads no heap page.

ALTER TABLE campaign_events DROP CONSTRAINT campaign_events_instance_id_fkey;
ALTER TABLE campaign_enrollments DROP CONSTRAINT campaign_enrollments_instance_id_fkey;
CREATE TRIGGER campaign_instances_delete_data AFTER DELETE ON campaign_instances
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION delete_instance_data();

DROP TRIGGER campaign_enrollments_updated_at ON campaign_enrollments;
CREATE TRIGGER campaign_enrollments_updated_at BEFORE UPDATE ON campaign_enrollments
    FOR EACH ROW WHEN (OLD.updated_at IS NOT DISTINCT FROM NEW.updated_at)
    EXECUTE FUNCTION set_updated_at();
DROP TRIGGER campaign_instances_updated_at ON campaign_instances;
CREATE TRIGGER campaign_instances_updated_at BEFORE UPDATE ON campaign_instances
    FOR EACH ROW WHEN (OLD.updated_at IS NOT DISTINCT FROM NEW.updated_at)
    EXECUTE FUNCTION set_updated_at();

DROP INDEX idx_campaign_events_type;
DROP INDEX idx_webhook_deliveries_provider_received;

CREATE INDEX idx_campaign_events_machine ON campaign_events (instance_id, timestamp, id)
    WHERE event_type IN ('opened', 'clicked') AND metadata ? 'machine';

-- depends: 0006_event_campaign_key
-- One person, one enrollment; enrollment state from events; counters without
-- triggers (contract §4). The functions this relies on are in
-- gateway/db/functions.sql, applied before and after the migrations.
--
-- - campaign_enrollments.event_mask: one bit per event type the enrollment has
--   (event_bit()), plus one for a hard bounce; status, current_step and
--   completed_at follow from it, from the highest step and from replied_at,
--   the first reply. merged_from records enrollments merged into this one.
-- - instance_keys: every campaign key of every instance's provider_config,
--   single or listed, kept by a trigger, so a key resolves with one probe.
-- - The counter triggers of migration 0003 go: every writer now adds the
--   deltas of what it changed as the last step of its transaction
--   (apply_counter_deltas()), so the instance row is held only for the commit.

ALTER TABLE campaign_enrollments
    ADD COLUMN event_mask integer NOT NULL DEFAULT 0,
    ADD COLUMN replied_at timestamptz,
    ADD COLUMN merged_from jsonb NOT NULL DEFAULT '[]'::jsonb
        CHECK (jsonb_typeof(merged_from) = 'array');

CREATE TABLE instance_keys (
    provider     text NOT NULL CHECK (provider IN ('lemlist', 'postmark', 'phantombuster')),
    campaign_key text NOT NULL,
    instance_id  uuid NOT NULL REFERENCES campaign_instances (id) ON DELETE CASCADE,
    PRIMARY KEY (provider, campaign_key, instance_id)
);
CREATE INDEX idx_instance_keys_instance ON instance_keys (instance_id);

INSERT INTO instance_keys (provider, campaign_key, instance_id)
SELECT k.provider, k.campaign_key, i.id
FROM campaign_instances i
CROSS JOIN LATERAL config_campaign_keys(i.provider_config) k
ON CONFLICT DO NOTHING;

CREATE TRIGGER campaign_instances_keys AFTER INSERT OR UPDATE OF provider_config
    ON campaign_instances FOR EACH ROW EXECUTE FUNCTION sync_instance_keys();

DROP TRIGGER campaign_events_firsts_insert ON campaign_events;
DROP TRIGGER campaign_events_firsts_update ON campaign_events;
DROP TRIGGER campaign_enrollments_count_insert ON campaign_enrollments;
DROP TRIGGER campaign_enrollments_count_delete ON campaign_enrollments;
DROP TABLE enrollment_event_firsts;
DROP FUNCTION record_event_firsts();
DROP FUNCTION count_event_firsts();
DROP FUNCTION count_enrollments();

DROP FUNCTION ingest_batch(
    text[], text[], text[], uuid[], uuid[], text[], text[], uuid[], text[], text[], integer[],
    timestamptz[], jsonb[], uuid[], text[], timestamptz[], bytea[], integer[], jsonb[], jsonb[],
    text[], text[], integer[], bytea[], text[], boolean);
DROP FUNCTION resolve_targets(text[], text[], uuid[], uuid[], text[], text[]);

-- Every enrollment's state from the events it has now (PERFORM: a SELECT's
-- result would be printed by yoyo on every fresh migrate).
DO $$ BEGIN PERFORM refresh_enrollments(NULL); END $$;

-- depends: 0010_search_indexes
-- Events no longer check their enrollment through a foreign key: that check
-- ran a query and locked the enrollment once per event written. write_batch()
-- now locks each enrollment its events touch once per batch, in id order,
-- and refuses the batch (which is then retried) when one has gone meanwhile,
-- merged into another or erased; deleting enrollments still deletes their
-- events (an AFTER DELETE trigger, as ON DELETE CASCADE did). contact_keys
-- likewise: its rows are written with their enrollment, in the same
-- statement, and go with it.

ALTER TABLE campaign_events DROP CONSTRAINT campaign_events_enrollment_id_fkey;
ALTER TABLE contact_keys DROP CONSTRAINT contact_keys_enrollment_id_fkey;
CREATE TRIGGER campaign_enrollments_delete_events AFTER DELETE ON campaign_enrollments
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION delete_enrollment_events();

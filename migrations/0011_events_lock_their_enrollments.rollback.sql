DROP TRIGGER campaign_enrollments_delete_events ON campaign_enrollments;
DELETE FROM campaign_events e
WHERE e.enrollment_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM campaign_enrollments n WHERE n.id = e.enrollment_id);
ALTER TABLE campaign_events ADD CONSTRAINT campaign_events_enrollment_id_fkey
    FOREIGN KEY (enrollment_id) REFERENCES campaign_enrollments (id) ON DELETE CASCADE;
DELETE FROM contact_keys k
WHERE NOT EXISTS (SELECT 1 FROM campaign_enrollments n WHERE n.id = k.enrollment_id);
ALTER TABLE contact_keys ADD CONSTRAINT contact_keys_enrollment_id_fkey
    FOREIGN KEY (enrollment_id) REFERENCES campaign_enrollments (id) ON DELETE CASCADE;

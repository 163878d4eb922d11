-- depends: 0009_lean_write_path
-- What `GET /api/deliveries?q=` resolves a business key through (the lead
-- e-mail, the provider campaign key, the provider event id), so that a
-- search costs what it finds, not a scan of millions of rows. The provider
-- event id needs nothing new: UNIQUE (provider, provider_event_id) serves it.

-- The deliveries of a provider campaign key (migration 0006 added the column;
-- its partial index holds unmatched events only), read from the index alone:
-- 50,000 delivery ids in tens of milliseconds, where (campaign_key) alone
-- would visit one heap page per event. One more index entry per event
-- written: the price ingestion pays for it (see the README).
CREATE INDEX idx_campaign_events_campaign_key ON campaign_events (campaign_key, delivery_id);

-- Enrollments by e-mail in any instance (uq_campaign_enrollments_email leads
-- with instance_id, so it cannot answer "which instances hold this lead").
-- Not partial: the planner uses an expression index's statistics only when
-- it is not, and without them it guessed 1,000 rows and scanned the table.
-- Written once per enrollment, never per event.
CREATE INDEX idx_campaign_enrollments_email ON campaign_enrollments (lower(contact_email));

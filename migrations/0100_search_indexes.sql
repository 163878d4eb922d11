-- depends: 0006_event_campaign_key
-- What `GET /api/deliveries?q=` resolves a business key through (the lead
-- e-mail, the provider campaign key, the provider event id), so that a
-- search costs what it finds, not a scan of millions of rows. The provider
-- event id needs nothing new: UNIQUE (provider, provider_event_id) serves it.

-- The provider campaign key of every event (migration 0006 added the
-- column; its partial index holds unmatched events only). One more index
-- entry per event written: the price of finding a campaign's deliveries.
CREATE INDEX idx_campaign_events_campaign_key ON campaign_events (campaign_key);

-- Enrollments by e-mail in any instance (uq_campaign_enrollments_email leads
-- with instance_id, so it cannot answer "which instances hold this lead").
-- Written once per enrollment, never per event.
CREATE INDEX idx_campaign_enrollments_email ON campaign_enrollments (lower(contact_email))
    WHERE contact_email IS NOT NULL;

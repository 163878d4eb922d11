-- The pgbench reference's schema (shared/peers/schema.sql): every delivery
-- stored raw, one normalized event per provider event id.
CREATE TABLE raw_deliveries (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    provider    text NOT NULL,
    headers     jsonb NOT NULL,
    body        text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE campaign_events (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    provider          text NOT NULL,
    provider_event_id text NOT NULL,
    event_type        text NOT NULL,
    channel           text NOT NULL,
    "timestamp"       timestamptz NOT NULL,
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT campaign_events_provider_event_key UNIQUE (provider, provider_event_id)
);

CREATE INDEX campaign_events_timestamp_idx ON campaign_events ("timestamp");

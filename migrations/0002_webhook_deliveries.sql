-- depends: 0001_campaign_schema
-- Every authenticated delivery, stored raw before anything is made of it, so
-- that nothing acknowledged or rejected is ever lost and every delivery can be
-- re-normalized later (gateway reprocess) or exported as a capture.

CREATE TABLE webhook_deliveries (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    provider       text NOT NULL CHECK (provider IN ('lemlist', 'postmark', 'phantombuster')),
    received_at    timestamptz NOT NULL DEFAULT now(),
    -- Exact body bytes as received (a prefix only when over the size limit).
    body           bytea NOT NULL,
    body_size      integer NOT NULL CHECK (body_size >= 0),
    -- Request headers and query, secrets redacted.
    headers        jsonb NOT NULL DEFAULT '{}'::jsonb,
    query          jsonb NOT NULL DEFAULT '{}'::jsonb,
    status         text NOT NULL CHECK (status IN (
        'processed', 'duplicate', 'unmatched', 'ignored', 'rejected',
        -- PhantomBuster result object still to fetch (fetch failed or no API key).
        'pending',
        -- The gateway itself failed on this delivery; reprocess retries it.
        'failed')),
    cause          text,
    events_written integer NOT NULL DEFAULT 0 CHECK (events_written >= 0),
    duplicates     integer NOT NULL DEFAULT 0 CHECK (duplicates >= 0),
    -- A PhantomBuster result object fetched from the API or a result file,
    -- kept so that reprocessing never has to fetch it again.
    fetched_body   bytea,
    fetched_from   text,
    processed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_webhook_deliveries_received ON webhook_deliveries (received_at, id);
CREATE INDEX idx_webhook_deliveries_provider_received ON webhook_deliveries (provider, received_at, id);
CREATE INDEX idx_webhook_deliveries_status_received ON webhook_deliveries (status, received_at, id);

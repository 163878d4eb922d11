-- The campaign database of the original design (seed/000_caab0d8d36ab637f.txt):
-- six tables with UUID keys, JSONB settings, cascades, updated_at triggers and
-- CHECK constraints for every vocabulary, plus what the webhook contract needs
-- (contact columns, unmatched events, UNIQUE (provider, provider_event_id)).

CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

-- The comparison key of a LinkedIn profile URL: lower case, no white space,
-- scheme, query, fragment, "www." or trailing slash. Matching always goes
-- through this one function, for stored and incoming URLs alike.
CREATE FUNCTION linkedin_key(url text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN nullif(
    rtrim(
        regexp_replace(
            split_part(
                split_part(
                    regexp_replace(regexp_replace(lower(url), '\s', '', 'g'), '^[a-z][a-z0-9+.-]*://', ''),
                    '#', 1),
                '?', 1),
            '^www\.', ''),
        '/'),
    '');

CREATE TABLE campaign_templates (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(btrim(name)) > 0),
    description text,
    type        text NOT NULL CHECK (type IN ('email', 'linkedin', 'multi_channel')),
    path_type   text NOT NULL DEFAULT 'structured' CHECK (path_type IN ('structured', 'dynamic_ai')),
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(settings) = 'object'),
    is_active   boolean NOT NULL DEFAULT true,
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_campaign_templates_type ON campaign_templates (type);
CREATE INDEX idx_campaign_templates_path_type ON campaign_templates (path_type);
CREATE INDEX idx_campaign_templates_is_active ON campaign_templates (is_active);
CREATE TRIGGER campaign_templates_updated_at BEFORE UPDATE ON campaign_templates
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE email_sequences (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    template_id   uuid NOT NULL REFERENCES campaign_templates (id) ON DELETE CASCADE,
    step_number   integer NOT NULL CHECK (step_number >= 1),
    subject       text NOT NULL,
    body_template text NOT NULL,
    delay_hours   integer NOT NULL DEFAULT 0 CHECK (delay_hours >= 0),
    a_b_variant   text CHECK (a_b_variant IS NULL OR a_b_variant ~ '^[A-Z]$'),
    is_active     boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_email_sequences_step UNIQUE NULLS NOT DISTINCT (template_id, step_number, a_b_variant)
);
CREATE INDEX idx_email_sequences_template_step ON email_sequences (template_id, step_number);
CREATE TRIGGER email_sequences_updated_at BEFORE UPDATE ON email_sequences
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE linkedin_sequences (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    template_id      uuid NOT NULL REFERENCES campaign_templates (id) ON DELETE CASCADE,
    step_number      integer NOT NULL CHECK (step_number >= 1),
    action_type      text NOT NULL
        CHECK (action_type IN ('profile_visit', 'connection_request', 'message', 'voice_message')),
    message_template text,
    delay_hours      integer NOT NULL DEFAULT 0 CHECK (delay_hours >= 0),
    fallback_channel text CHECK (fallback_channel IS NULL OR fallback_channel IN ('email', 'linkedin')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_linkedin_sequences_step UNIQUE (template_id, step_number)
);
CREATE INDEX idx_linkedin_sequences_template_step ON linkedin_sequences (template_id, step_number);
CREATE TRIGGER linkedin_sequences_updated_at BEFORE UPDATE ON linkedin_sequences
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE campaign_instances (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    template_id     uuid NOT NULL REFERENCES campaign_templates (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(btrim(name)) > 0),
    status          text NOT NULL DEFAULT 'draft'
        CHECK (status IN ('draft', 'active', 'paused', 'completed', 'failed')),
    -- Which providers the instance uses and their campaign keys:
    -- email_provider, linkedin_provider, lemlist_campaign_id, postmark_tag,
    -- phantombuster_agent_id or phantombuster_agent_ids.
    provider_config jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(provider_config) = 'object'),
    settings        jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(settings) = 'object'),
    total_enrolled  integer NOT NULL DEFAULT 0 CHECK (total_enrolled >= 0),
    total_sent      integer NOT NULL DEFAULT 0 CHECK (total_sent >= 0),
    total_opened    integer NOT NULL DEFAULT 0 CHECK (total_opened >= 0),
    total_clicked   integer NOT NULL DEFAULT 0 CHECK (total_clicked >= 0),
    total_replied   integer NOT NULL DEFAULT 0 CHECK (total_replied >= 0),
    started_at      timestamptz,
    paused_at       timestamptz,
    completed_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_campaign_instances_template ON campaign_instances (template_id);
CREATE INDEX idx_campaign_instances_status ON campaign_instances (status);
-- Webhook attachment looks instances up by the provider's campaign key.
CREATE INDEX idx_campaign_instances_lemlist_campaign
    ON campaign_instances ((provider_config ->> 'lemlist_campaign_id'));
CREATE INDEX idx_campaign_instances_postmark_tag
    ON campaign_instances ((provider_config ->> 'postmark_tag'));
CREATE INDEX idx_campaign_instances_phantombuster_agent
    ON campaign_instances ((provider_config ->> 'phantombuster_agent_id'));
CREATE INDEX idx_campaign_instances_provider_config
    ON campaign_instances USING gin (provider_config jsonb_path_ops);
CREATE TRIGGER campaign_instances_updated_at BEFORE UPDATE ON campaign_instances
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE campaign_enrollments (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    instance_id     uuid NOT NULL REFERENCES campaign_instances (id) ON DELETE CASCADE,
    contact_id      text,
    contact_email   text,
    linkedin_url    text,
    linkedin_key    text GENERATED ALWAYS AS (linkedin_key(linkedin_url)) STORED,
    status          text NOT NULL DEFAULT 'enrolled'
        CHECK (status IN ('enrolled', 'active', 'paused', 'completed', 'unsubscribed', 'bounced', 'failed')),
    current_step    integer NOT NULL DEFAULT 0 CHECK (current_step >= 0),
    next_action_at  timestamptz,
    -- Personalization variables (first_name, company, ...).
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    -- The instance's providers when the contact was enrolled: switching an
    -- instance's provider applies to new enrollments only.
    provider_config jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(provider_config) = 'object'),
    enrolled_at     timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_campaign_enrollments_contact
        CHECK (contact_email IS NOT NULL OR linkedin_url IS NOT NULL OR contact_id IS NOT NULL)
);
CREATE INDEX idx_campaign_enrollments_instance_status ON campaign_enrollments (instance_id, status);
CREATE INDEX idx_campaign_enrollments_status ON campaign_enrollments (status);
-- The automation's hot query: who is due for their next step.
CREATE INDEX idx_campaign_enrollments_next_action ON campaign_enrollments (next_action_at)
    WHERE status IN ('enrolled', 'active') AND next_action_at IS NOT NULL;
CREATE UNIQUE INDEX uq_campaign_enrollments_email
    ON campaign_enrollments (instance_id, lower(contact_email)) WHERE contact_email IS NOT NULL;
CREATE UNIQUE INDEX uq_campaign_enrollments_linkedin
    ON campaign_enrollments (instance_id, linkedin_key) WHERE linkedin_key IS NOT NULL;
CREATE TRIGGER campaign_enrollments_updated_at BEFORE UPDATE ON campaign_enrollments
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE campaign_events (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- NULL while unmatched: no instance maps the provider's campaign key yet.
    enrollment_id     uuid REFERENCES campaign_enrollments (id) ON DELETE CASCADE,
    instance_id       uuid REFERENCES campaign_instances (id) ON DELETE CASCADE,
    -- The raw delivery the event came from; no foreign key, so that purging
    -- old raw deliveries never touches events.
    delivery_id       uuid,
    event_type        text NOT NULL,
    channel           text NOT NULL CHECK (channel IN ('email', 'linkedin')),
    provider          text NOT NULL CHECK (provider IN ('lemlist', 'postmark', 'phantombuster')),
    provider_event_id text NOT NULL CHECK (length(provider_event_id) BETWEEN 1 AND 1024),
    step_number       integer,
    timestamp         timestamptz NOT NULL,
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    created_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_campaign_events_type CHECK (
        (channel = 'email' AND event_type IN (
            'sent', 'delivered', 'opened', 'clicked', 'replied', 'bounced',
            'unsubscribed', 'spam_complaint', 'failed'))
        OR (channel = 'linkedin' AND event_type IN (
            'profile_visited', 'connection_requested', 'connection_accepted',
            'message_sent', 'voice_message_sent', 'replied', 'failed'))
    ),
    CONSTRAINT ck_campaign_events_matched CHECK (enrollment_id IS NULL OR instance_id IS NOT NULL),
    -- Deduplication: a redelivered event never becomes a second row.
    CONSTRAINT uq_campaign_events_provider_event UNIQUE (provider, provider_event_id)
);
CREATE INDEX idx_campaign_events_enrollment ON campaign_events (enrollment_id, timestamp);
CREATE INDEX idx_campaign_events_instance_time ON campaign_events (instance_id, timestamp);
CREATE INDEX idx_campaign_events_timestamp ON campaign_events (timestamp);
CREATE INDEX idx_campaign_events_type ON campaign_events (event_type, timestamp);
CREATE INDEX idx_campaign_events_unmatched ON campaign_events (created_at) WHERE enrollment_id IS NULL;
CREATE INDEX idx_campaign_events_delivery ON campaign_events (delivery_id);

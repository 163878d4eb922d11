-- History for the benchmark's databases: past campaigns with their enrollments,
-- events and raw deliveries, written straight into the contract's tables with
-- generate_series (bench/ingest.py runs each step with psycopg parameters;
-- `%%` is a literal `%`). The schema's own triggers, whatever they are, see
-- ordinary inserts. Ids and keys grow with n (kind-prefixed uuids, zero-padded
-- keys), so that loading a million rows appends to each index instead of
-- touching random pages of it: minutes instead of tens of minutes on a busy
-- machine. Everything is deterministic in the enrollment number n:
-- enrollment n belongs to past instance n % instances, is the person
-- lead<n>@northwind-example.com / linkedin.com/in/lead-<n>-example (the
-- same people the load generator uses, as in real life: the same prospects
-- appear in several campaigns) and has 5 events, each from its own raw
-- delivery. Past rows are dated in 2024 so that the verification, which
-- looks at rows created since its run started, never mixes them up.

-- step: instances
INSERT INTO campaign_instances (id, template_id, name, status, provider_config, started_at,
                                completed_at, created_at, updated_at)
SELECT ('00000004-0000-4000-8000-' || lpad(to_hex(k), 12, '0'))::uuid, %(template)s,
       'past campaign ' || k, 'completed',
       jsonb_build_object('lemlist_campaign_id', 'cam_past_' || k,
                          'postmark_tag', 'past-' || k,
                          'phantombuster_agent_id', (7318204650000000 + k)::text),
       '2024-01-01T00:00:00Z', '2024-12-31T00:00:00Z', '2024-01-01T00:00:00Z',
       '2024-01-01T00:00:00Z'
FROM generate_series(0, %(instances)s - 1) AS k;

-- step: enrollments
INSERT INTO campaign_enrollments (id, instance_id, contact_email, linkedin_url, status,
                                  current_step, enrolled_at, completed_at, created_at, updated_at)
SELECT ('00000001-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid,
       ('00000004-0000-4000-8000-' || lpad(to_hex(n %% %(instances)s), 12, '0'))::uuid,
       'lead' || n || '@northwind-example.com',
       'https://www.linkedin.com/in/lead-' || n || '-example',
       CASE WHEN n %% 10 = 0 THEN 'completed' ELSE 'active' END,
       CASE WHEN n %% 10 = 0 THEN 2 ELSE 1 END,
       at, CASE WHEN n %% 10 = 0 THEN at + interval '4 days' END, at, at
FROM generate_series(%(lo)s, %(hi)s - 1) AS n,
     LATERAL (SELECT timestamptz '2024-01-01T00:00:00Z' + n * interval '127 seconds' AS at) t;

-- step: deliveries
-- One raw delivery per event, with a short lemlist- or Postmark-like body.
INSERT INTO webhook_deliveries (id, provider, received_at, body, body_size, headers, query,
                                status, events_written, processed_at)
SELECT ('00000003-0000-4000-8000-' || lpad(to_hex(n * 5 + j), 12, '0'))::uuid, e.provider, e.at,
       convert_to(e.body, 'UTF8'), octet_length(e.body),
       '{"content-type": "application/json", "user-agent": "bench-preload"}'::jsonb,
       '{"token": "[redacted]"}'::jsonb, 'processed', 1, e.at
FROM generate_series(%(lo)s, %(hi)s - 1) AS n, generate_series(0, 4) AS j,
     LATERAL (
         SELECT CASE WHEN j = 1 THEN 'postmark'
                     WHEN j = 4 AND n %% 10 <> 0 THEN 'phantombuster'
                     ELSE 'lemlist' END AS provider,
                timestamptz '2024-01-01T00:00:00Z' + n * interval '127 seconds'
                    + j * interval '1 day' AS at,
                format('{"_id":"past_%%s_%%s","campaignId":"cam_past_%%s",'
                       '"leadEmail":"lead%%s@northwind-example.com","type":"bench-preload"}',
                       n, j, n %% %(instances)s, n) AS body
     ) e;

-- step: events
-- Per enrollment: sent, delivered (Postmark), opened, clicked or opened
-- again, and replied (every tenth) or a LinkedIn invitation (PhantomBuster).
INSERT INTO campaign_events (id, enrollment_id, instance_id, delivery_id, event_type, channel,
                             provider, provider_event_id, step_number, "timestamp", metadata,
                             created_at /* campaign_key column */)
SELECT ('00000002-0000-4000-8000-' || lpad(to_hex(n * 5 + j), 12, '0'))::uuid,
       ('00000001-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid,
       ('00000004-0000-4000-8000-' || lpad(to_hex(n %% %(instances)s), 12, '0'))::uuid,
       ('00000003-0000-4000-8000-' || lpad(to_hex(n * 5 + j), 12, '0'))::uuid,
       e.event_type, e.channel, e.provider,
       CASE e.provider WHEN 'phantombuster' THEN (7318204650000000 + n %% %(instances)s)::text
                           || ':connect:linkedin.com/in/lead-' || n || '-example'
                       ELSE 'past_' || lpad(n::text, 9, '0') || '_' || j END,
       e.step, e.at, jsonb_build_object('step', e.step, 'source', 'bench-preload'), e.at
       /* campaign_key value */
FROM generate_series(%(lo)s, %(hi)s - 1) AS n, generate_series(0, 4) AS j,
     LATERAL (
         SELECT CASE j WHEN 0 THEN 'sent' WHEN 1 THEN 'delivered' WHEN 2 THEN 'opened'
                       WHEN 3 THEN CASE WHEN n %% 3 = 0 THEN 'clicked' ELSE 'opened' END
                       ELSE CASE WHEN n %% 10 = 0 THEN 'replied' ELSE 'connection_requested' END
                END AS event_type,
                CASE WHEN j = 4 AND n %% 10 <> 0 THEN 'linkedin' ELSE 'email' END AS channel,
                CASE WHEN j = 1 THEN 'postmark'
                     WHEN j = 4 AND n %% 10 <> 0 THEN 'phantombuster'
                     ELSE 'lemlist' END AS provider,
                CASE WHEN j = 4 THEN 2 ELSE 1 END AS step,
                timestamptz '2024-01-01T00:00:00Z' + n * interval '127 seconds'
                    + j * interval '1 day' AS at
     ) e;

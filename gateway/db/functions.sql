-- The write path's SQL: every function ingestion, reprocess, the management
-- API and the seed call to change campaign data. This file is the one current
-- source of these functions: `gateway migrate` (gateway/db/migrate.py) applies
-- it, with CREATE OR REPLACE, before and after the yoyo migrations, so a
-- migration can call them and a new version replaces the old in place.
-- Tables, indexes and the trigger that keeps instance_keys current live in the
-- migrations; only functions live here.
--
-- Every function is PL/pgSQL or plain SQL and names no table in its
-- signature, so this file applies to an empty database as well as to a full
-- one. The ones on the write path run with sequential and bitmap scans, hash
-- and merge joins off: their plans are cached per connection, a plan chosen
-- while a table was nearly empty must stay a nested loop of index probes when
-- it holds millions of rows, and every lookup they make has exactly one index
-- that answers it (the batch, a few hundred rows at most, is the outer side).
--
-- Enrollment state is a function of the enrollment's events. `event_mask`
-- holds one bit per event type the enrollment has (and one for a hard
-- bounce); status, current_step and completed_at follow from it, from the
-- highest step and from the first reply, so the same events give the same
-- state in any order. Instance counters count enrollments per bit; every
-- writer adds the deltas of what it changed, once, at the end of its
-- transaction's work, so the hot instance row is locked only for the commit.

SET check_function_bodies = off;

-- The bit of an event in campaign_enrollments.event_mask. A bounce is also a
-- hard bounce unless the provider classed it otherwise (Postmark's temporary
-- bounce types carry bounce_class 'soft'; lemlist's bounces are hard).
CREATE OR REPLACE FUNCTION event_bit(event_type text, metadata jsonb) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE event_type
    WHEN 'sent' THEN 1
    WHEN 'delivered' THEN 2
    WHEN 'opened' THEN 4
    WHEN 'clicked' THEN 8
    WHEN 'replied' THEN 16
    WHEN 'bounced' THEN 32 | CASE WHEN coalesce(metadata ->> 'bounce_class', 'hard') = 'hard'
                                  THEN 16384 ELSE 0 END
    WHEN 'unsubscribed' THEN 64
    WHEN 'spam_complaint' THEN 128
    WHEN 'failed' THEN 256
    WHEN 'profile_visited' THEN 512
    WHEN 'connection_requested' THEN 1024
    WHEN 'connection_accepted' THEN 2048
    WHEN 'message_sent' THEN 4096
    WHEN 'voice_message_sent' THEN 8192
    ELSE 0
END;

-- An enrollment's status from its events (contract §4, "Enrollment
-- progression"): unsubscribed (unsubscribe or spam complaint), else bounced
-- (hard bounce), else completed (a reply), else active (any event), else as
-- it was. Statuses the API sets (paused, failed) stay until the API moves them.
CREATE OR REPLACE FUNCTION enrollment_status(status text, mask integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN status IN ('paused', 'failed') THEN status
    WHEN mask & (64 | 128) <> 0 THEN 'unsubscribed'
    WHEN mask & 16384 <> 0 THEN 'bounced'
    WHEN mask & 16 <> 0 THEN 'completed'
    WHEN mask <> 0 THEN 'active'
    ELSE status
END;

-- completed_at: the first reply while the status is completed; NULL once
-- the events say otherwise; what it was while no event speaks (or the API's
-- status holds).
CREATE OR REPLACE FUNCTION enrollment_completed_at(
    status text, mask integer, replied_at timestamptz, completed_at timestamptz
) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN status IN ('paused', 'failed') OR mask = 0 THEN completed_at
    WHEN enrollment_status(status, mask) = 'completed' THEN replied_at
END;

-- A contact's lookup keys in contact_keys (migration 0009): 'e:' and the
-- e-mail in lower case, 'l:' and the LinkedIn comparison key (linkedin_key()
-- of migration 0001). `urls` holds the event's LinkedIn URLs, one per line.
-- Plain SQL: inlined where it is used.
CREATE OR REPLACE FUNCTION contact_lookup_keys(email text, urls text)
RETURNS TABLE (key text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT 'e:' || lower(email) WHERE email IS NOT NULL
    UNION ALL
    SELECT 'l:' || k
    FROM unnest(string_to_array(urls, E'\n')) AS u (url)
    CROSS JOIN LATERAL linkedin_key(u.url) AS k
    WHERE k IS NOT NULL
$$;

-- The keys an enrollment is known by (its e-mail, its LinkedIn profile).
CREATE OR REPLACE FUNCTION enrollment_contact_keys(email text, linkedin_key text)
RETURNS TABLE (key text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT 'e:' || lower(email) WHERE email IS NOT NULL
    UNION ALL
    SELECT 'l:' || linkedin_key WHERE linkedin_key IS NOT NULL
$$;

-- contact_keys follows the enrollments' identifiers: added with new
-- enrollments (once per statement), changed when an identifier is filled in
-- or an enrollment merged (rare: a row trigger), gone with them (cascade).
CREATE OR REPLACE FUNCTION add_contact_keys() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO contact_keys (instance_id, key, enrollment_id)
    SELECT a.instance_id, k.key, a.id
    FROM added a
    CROSS JOIN LATERAL enrollment_contact_keys(a.contact_email, a.linkedin_key) AS k
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION change_contact_keys() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM contact_keys c WHERE c.enrollment_id = OLD.id;
    INSERT INTO contact_keys (instance_id, key, enrollment_id)
    SELECT NEW.instance_id, k.key, NEW.id
    FROM enrollment_contact_keys(NEW.contact_email, NEW.linkedin_key) AS k
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

-- The campaign keys of a provider_config: each provider's key given alone or
-- as a list (`lemlist_campaign_id` / `lemlist_campaign_ids`, `postmark_tag` /
-- `postmark_tags`, `phantombuster_agent_id` / `phantombuster_agent_ids`).
-- Numbers count as their text; anything else is not a key.
CREATE OR REPLACE FUNCTION config_campaign_keys(config jsonb)
RETURNS TABLE (provider text, campaign_key text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT DISTINCT f.provider, v #>> '{}'
    FROM (VALUES ('lemlist', 'lemlist_campaign_id', 'lemlist_campaign_ids'),
                 ('postmark', 'postmark_tag', 'postmark_tags'),
                 ('phantombuster', 'phantombuster_agent_id', 'phantombuster_agent_ids'))
        AS f (provider, one, many)
    CROSS JOIN LATERAL (
        SELECT config -> f.one
        UNION ALL
        SELECT jsonb_array_elements(CASE WHEN jsonb_typeof(config -> f.many) = 'array'
                                         THEN config -> f.many END)
    ) AS k (v)
    WHERE jsonb_typeof(v) IN ('string', 'number') AND length(v #>> '{}') > 0
$$;

-- Recompute the state of enrollments (all of them when `ids` is NULL) from
-- the events they have: for data written without write_batch() (the seed,
-- migrations). Counters are not touched: they hold the seed's baseline.
CREATE OR REPLACE FUNCTION refresh_enrollments(ids uuid[]) RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    changed integer;
BEGIN
    UPDATE campaign_enrollments e SET
        event_mask = a.mask,
        current_step = greatest(e.current_step, a.step),
        replied_at = a.replied_at,
        status = enrollment_status(e.status, a.mask),
        completed_at = enrollment_completed_at(e.status, a.mask, a.replied_at, e.completed_at)
    FROM (
        SELECT ev.enrollment_id,
               bit_or(event_bit(ev.event_type, ev.metadata)) AS mask,
               coalesce(max(ev.step_number), 0) AS step,
               min(ev.timestamp) FILTER (WHERE ev.event_type = 'replied') AS replied_at
        FROM campaign_events ev
        WHERE ev.enrollment_id IS NOT NULL AND (ids IS NULL OR ev.enrollment_id = ANY (ids))
        GROUP BY ev.enrollment_id
    ) a
    WHERE e.id = a.enrollment_id;
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END
$$;

-- instance_keys follows campaign_instances.provider_config (trigger of
-- migration 0007), so that resolving a campaign key is one index probe
-- whatever the key's form.
CREATE OR REPLACE FUNCTION sync_instance_keys() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM instance_keys k
        WHERE k.instance_id = NEW.id
          AND (k.provider, k.campaign_key) NOT IN (
              SELECT c.provider, c.campaign_key FROM config_campaign_keys(NEW.provider_config) c);
    END IF;
    INSERT INTO instance_keys (provider, campaign_key, instance_id)
    SELECT c.provider, c.campaign_key, NEW.id FROM config_campaign_keys(NEW.provider_config) c
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

-- Deleting instances takes their enrollments and events with them (what ON
-- DELETE CASCADE did before migration 0009 dropped those foreign keys, which
-- locked the hot instance row on every webhook).
CREATE OR REPLACE FUNCTION delete_instance_data() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM campaign_events e USING gone g WHERE e.instance_id = g.id;
    DELETE FROM campaign_enrollments e USING gone g WHERE e.instance_id = g.id;
    RETURN NULL;
END
$$;

-- Deleting enrollments takes their events and contact keys with them
-- (migration 0011: neither holds a foreign key to its enrollment, whose check
-- cost a query per row written; write_batch() locks what it attaches to).
CREATE OR REPLACE FUNCTION delete_enrollment_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM campaign_events e USING gone g WHERE e.enrollment_id = g.id;
    DELETE FROM contact_keys k USING gone g WHERE k.enrollment_id = g.id;
    RETURN NULL;
END
$$;

-- For each event (in array order): its instance and its hinted enrollment.
-- Postmark's Metadata.enrollment_id names the enrollment (and so its
-- instance); else Metadata.instance_id names the instance; else the
-- provider's campaign key does, through instance_keys: an active instance
-- first, then the newest. Each distinct key is resolved once.
CREATE OR REPLACE FUNCTION resolve_instances(
    p_provider text[], p_campaign_key text[], p_instance_hint uuid[], p_enrollment_hint uuid[],
    OUT instance_ids uuid[], OUT enrollment_ids uuid[]
)
LANGUAGE plpgsql STABLE
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off
SET enable_mergejoin = off SET jit = off
AS $$
#variable_conflict use_column
BEGIN
    WITH ev AS (
        SELECT *
        FROM unnest(p_provider, p_campaign_key, p_instance_hint, p_enrollment_hint)
            WITH ORDINALITY AS t (provider, campaign_key, instance_hint, enrollment_hint, n)
    ),
    keyed AS (
        SELECT d.provider, d.campaign_key, (
            SELECT k.instance_id
            FROM instance_keys k
            JOIN campaign_instances i ON i.id = k.instance_id
            WHERE k.provider = d.provider AND k.campaign_key = d.campaign_key
            ORDER BY i.status = 'active' DESC, i.created_at DESC, i.id
            LIMIT 1) AS instance_id
        FROM (SELECT DISTINCT provider, campaign_key FROM ev WHERE campaign_key IS NOT NULL) d
    )
    SELECT array_agg(coalesce(h.instance_id, hi.id, kd.instance_id) ORDER BY ev.n),
           array_agg(h.id ORDER BY ev.n)
    INTO instance_ids, enrollment_ids
    FROM ev
    LEFT JOIN LATERAL (
        SELECT e.id, e.instance_id FROM campaign_enrollments e
        WHERE e.id = ev.enrollment_hint OFFSET 0
    ) h ON true
    LEFT JOIN LATERAL (
        SELECT i.id FROM campaign_instances i WHERE i.id = ev.instance_hint OFFSET 0
    ) hi ON true
    LEFT JOIN keyed kd ON kd.provider = ev.provider AND kd.campaign_key = ev.campaign_key;
END
$$;

-- The enrollments of one instance that a contact's identifiers name, oldest
-- first, with whether each has an e-mail and a LinkedIn profile already: one
-- probe of contact_keys per identifier, then of the enrollment by id.
CREATE OR REPLACE FUNCTION contact_matches(p_instance uuid, p_email text, p_urls text)
RETURNS TABLE (id uuid, created_at timestamptz, has_email boolean, has_key boolean)
LANGUAGE sql STABLE
AS $$
    SELECT e.id, e.created_at, e.contact_email IS NOT NULL, e.linkedin_key IS NOT NULL
    FROM campaign_enrollments e
    WHERE e.id IN (
        SELECT c.enrollment_id
        FROM contact_lookup_keys(p_email, p_urls) AS k
        JOIN contact_keys c ON c.instance_id = p_instance AND c.key = k.key)
$$;

-- A mask of `total` booleans, true at the given positions: which events a
-- second look concerns (an array lookup per event, where `= ANY` would scan
-- the list for each of thousands of events).
CREATE OR REPLACE FUNCTION picked(positions integer[], total integer) RETURNS boolean[]
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    mask boolean[] := array_fill(false, ARRAY[total]);
    k integer;
BEGIN
    FOREACH k IN ARRAY positions LOOP
        mask[k] := true;
    END LOOP;
    RETURN mask;
END
$$;

-- What the identifiers of each event (or of the events `p_pick` marks true)
-- name: `found` one enrollment that has every kind of identifier the event
-- carries (or the enrollment the provider named); `unknown` none; `unsettled`
-- several, or one lacking an identifier the event carries; `none` when the
-- event has no instance or no identifier. `enrollment_id` is the oldest match.
-- Everything is looked up per event (LATERAL, fenced with OFFSET 0 so the
-- planner keeps it a probe per event): linear in the batch.
CREATE OR REPLACE FUNCTION classify_contacts(
    p_instance uuid[], p_hinted uuid[], p_email text[], p_urls text[], p_pick boolean[]
) RETURNS TABLE (n integer, kind text, enrollment_id uuid)
LANGUAGE sql STABLE
AS $$
    SELECT ev.n::integer,
           CASE
               WHEN ev.hinted IS NOT NULL THEN 'found'
               WHEN ev.instance_id IS NULL OR cardinality(k.keys) = 0 THEN 'none'
               WHEN f.ids IS NULL THEN 'unknown'
               WHEN cardinality(f.ids) > 1
                    OR (k.by_email AND NOT f.all_email)
                    OR (k.by_key AND NOT f.all_key) THEN 'unsettled'
               ELSE 'found'
           END,
           coalesce(ev.hinted, f.ids[1])
    FROM unnest(p_instance, p_hinted, p_email, p_urls)
        WITH ORDINALITY AS ev (instance_id, hinted, email, urls, n)
    CROSS JOIN LATERAL (
        SELECT coalesce(array_agg(c.key), '{}') AS keys,
               coalesce(bool_or(c.key LIKE 'e:%'), false) AS by_email,
               coalesce(bool_or(c.key LIKE 'l:%'), false) AS by_key
        FROM contact_lookup_keys(ev.email, ev.urls) AS c
    ) k
    LEFT JOIN LATERAL (
        SELECT array_agg(e.id ORDER BY e.created_at, e.id) AS ids,
               bool_and(e.contact_email IS NOT NULL) AS all_email,
               bool_and(e.linkedin_key IS NOT NULL) AS all_key
        FROM (
            SELECT DISTINCT c.enrollment_id
            FROM unnest(k.keys) AS w (key)
            CROSS JOIN LATERAL (
                SELECT c.enrollment_id FROM contact_keys c
                WHERE c.instance_id = ev.instance_id AND c.key = w.key OFFSET 0
            ) c
        ) m
        CROSS JOIN LATERAL (
            SELECT e.id, e.created_at, e.contact_email, e.linkedin_key
            FROM campaign_enrollments e WHERE e.id = m.enrollment_id OFFSET 0
        ) e
        WHERE ev.hinted IS NULL AND ev.instance_id IS NOT NULL
    ) f ON true
    WHERE p_pick IS NULL OR p_pick[ev.n]
$$;

-- Merge enrollments of one instance that are one person into `survivor`
-- (the oldest): events move, state and identifiers combine, each loser is
-- recorded in the survivor's merged_from, then deleted. Rows are locked in id
-- order first, so an event being attached to a loser concurrently is either
-- moved here or refused by its foreign key (and its batch retried), never
-- deleted with it. Returns the counter deltas for the caller to apply:
-- enrollments, and enrollments with sent, opened, clicked and replied.
CREATE OR REPLACE FUNCTION merge_enrollments(
    survivor uuid, losers uuid[],
    OUT instance_id uuid, OUT enrolled integer, OUT sent integer, OUT opened integer,
    OUT clicked integer, OUT replied integer
)
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off
SET enable_mergejoin = off SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    kept_mask integer;
    gone record;
BEGIN
    enrolled := 0; sent := 0; opened := 0; clicked := 0; replied := 0;
    -- One ANY, not `id = survivor OR id = ANY (losers)`: an OR of the two
    -- cannot be one index probe without a bitmap scan, and would walk the
    -- whole primary key (tests/integration/test_plans.py).
    PERFORM 1 FROM campaign_enrollments e
    WHERE e.id = ANY (array_prepend(survivor, losers))
    ORDER BY e.id
    FOR UPDATE;
    SELECT e.instance_id, e.event_mask INTO instance_id, kept_mask
    FROM campaign_enrollments e WHERE e.id = survivor;
    IF NOT FOUND THEN
        RETURN;
    END IF;

    UPDATE campaign_events ev SET enrollment_id = survivor
    WHERE ev.enrollment_id = ANY (losers) AND ev.enrollment_id <> survivor;

    WITH deleted AS (
        DELETE FROM campaign_enrollments e
        WHERE e.id = ANY (losers) AND e.id <> survivor
          AND e.instance_id = merge_enrollments.instance_id
        RETURNING e.*
    )
    SELECT count(*)::integer AS n,
           coalesce(bit_or(d.event_mask), 0) AS mask,
           count(*) FILTER (WHERE d.event_mask & 1 <> 0)::integer AS sent,
           count(*) FILTER (WHERE d.event_mask & 4 <> 0)::integer AS opened,
           count(*) FILTER (WHERE d.event_mask & 8 <> 0)::integer AS clicked,
           count(*) FILTER (WHERE d.event_mask & 16 <> 0)::integer AS replied,
           coalesce(max(d.current_step), 0) AS step,
           min(d.replied_at) AS replied_at,
           (array_agg(d.contact_email ORDER BY d.created_at, d.id)
               FILTER (WHERE d.contact_email IS NOT NULL))[1] AS email,
           (array_agg(d.linkedin_url ORDER BY d.created_at, d.id)
               FILTER (WHERE d.linkedin_url IS NOT NULL))[1] AS url,
           (array_agg(d.contact_id ORDER BY d.created_at, d.id)
               FILTER (WHERE d.contact_id IS NOT NULL))[1] AS contact_id,
           -- Personalization variables: the older enrollment's value wins.
           (SELECT coalesce(jsonb_object_agg(kv.key, kv.value ORDER BY x.created_at DESC, x.id DESC),
                            '{}')
            FROM deleted x CROSS JOIN LATERAL jsonb_each(x.metadata) kv) AS metadata,
           jsonb_agg(jsonb_build_object(
               'enrollment_id', d.id, 'contact_email', d.contact_email,
               'linkedin_url', d.linkedin_url, 'contact_id', d.contact_id,
               'enrolled_at', d.enrolled_at, 'merged_at', now())
               ORDER BY d.created_at, d.id) AS records
    INTO gone
    FROM deleted d;

    IF gone.n = 0 THEN
        RETURN;
    END IF;

    UPDATE campaign_enrollments e SET
        event_mask = e.event_mask | gone.mask,
        current_step = greatest(e.current_step, gone.step),
        replied_at = least(e.replied_at, gone.replied_at),
        status = enrollment_status(e.status, e.event_mask | gone.mask),
        completed_at = enrollment_completed_at(e.status, e.event_mask | gone.mask,
                                               least(e.replied_at, gone.replied_at),
                                               e.completed_at),
        contact_email = coalesce(e.contact_email, gone.email),
        linkedin_url = coalesce(e.linkedin_url, gone.url),
        contact_id = coalesce(e.contact_id, gone.contact_id),
        metadata = gone.metadata || e.metadata,
        merged_from = e.merged_from || gone.records
    WHERE e.id = survivor;

    -- Before: the survivor's bit plus each loser's; after: one bit if any had it.
    enrolled := -gone.n;
    sent := ((kept_mask | gone.mask) & 1 <> 0)::integer - (kept_mask & 1 <> 0)::integer
            - gone.sent;
    opened := ((kept_mask | gone.mask) & 4 <> 0)::integer - (kept_mask & 4 <> 0)::integer
              - gone.opened;
    clicked := ((kept_mask | gone.mask) & 8 <> 0)::integer - (kept_mask & 8 <> 0)::integer
               - gone.clicked;
    replied := ((kept_mask | gone.mask) & 16 <> 0)::integer - (kept_mask & 16 <> 0)::integer
               - gone.replied;
END
$$;

-- The enrollment of each event (in array order), one per person and instance
-- (contract §4, "One person, one enrollment per instance"), creating,
-- completing and merging enrollments as the events prove who is who. Events
-- without an instance, or without any contact identifier, get none.
--
-- Most events name exactly one enrollment that already has every kind of
-- identifier they carry: one set-based pass finds them. Contacts that no
-- enrollment knows are enrolled set-based too, the richest rows (e-mail and
-- LinkedIn) first, so that a batch's rows about one new person make one
-- enrollment; a concurrent batch enrolling the same person meets the unique
-- indexes, and a second pass finds its enrollment. What is left (an
-- identifier to fill in, several enrollments to merge) is settled event by
-- event. Only the events that enroll or settle someone take locks on their
-- identifiers: batches that only attach events to known people never wait
-- for each other here. Counter deltas (enrollments made, and the merges' deltas) are
-- returned as parallel arrays, one element per change, for the caller.
CREATE OR REPLACE FUNCTION resolve_contacts(
    p_instance uuid[], p_hinted uuid[], p_email text[], p_urls text[],
    OUT enrollment_ids uuid[],
    OUT delta_instance uuid[], OUT delta_enrolled integer[], OUT delta_sent integer[],
    OUT delta_opened integer[], OUT delta_clicked integer[], OUT delta_replied integer[]
)
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off
SET enable_mergejoin = off SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    unknown integer[];
    unsettled integer[];
    again integer[];
    i integer;
    found uuid[];
    made uuid;
    merged record;
    people bigint[];
    instances bigint[];
    made_in uuid[];
    -- At most this many person locks in one transaction (the lock table holds
    -- max_locks_per_transaction, 64 by default, per connection on average).
    PERSON_LOCKS_MAX CONSTANT integer := 256;
    total CONSTANT integer := cardinality(p_instance);
    -- Which events a step concerns, as a mask: computed into a variable
    -- before the query (inlined, classify_contacts would evaluate an
    -- expression argument once per event), and read by position, where a
    -- subscript into the text arrays would walk them from the start.
    mask boolean[];
BEGIN
    delta_instance := '{}'; delta_enrolled := '{}'; delta_sent := '{}';
    delta_opened := '{}'; delta_clicked := '{}'; delta_replied := '{}';

    SELECT array_agg(CASE WHEN c.kind = 'found' THEN c.enrollment_id END ORDER BY c.n),
           coalesce(array_agg(c.n) FILTER (WHERE c.kind = 'unknown'), '{}'),
           coalesce(array_agg(c.n) FILTER (WHERE c.kind = 'unsettled'), '{}')
    INTO enrollment_ids, unknown, unsettled
    FROM classify_contacts(p_instance, p_hinted, p_email, p_urls, NULL::boolean[]) c;

    -- Whoever enrolls, completes or merges a person holds that person's
    -- identifiers (transaction advisory locks, taken in one order before any
    -- other lock of this transaction, so no deadlock), then looks again. A
    -- batch naming more people than the lock table should hold for one
    -- transaction (a PhantomBuster run of thousands of rows) takes its
    -- instances' locks exclusively instead; the others take them shared.
    IF cardinality(unknown) + cardinality(unsettled) > 0 THEN
        again := unknown || unsettled;
        mask := picked(again, total);
        SELECT coalesce(array_agg(DISTINCT l.person ORDER BY l.person), '{}'),
               coalesce(array_agg(DISTINCT l.instance ORDER BY l.instance), '{}')
        INTO people, instances
        FROM unnest(p_instance, p_email, p_urls) WITH ORDINALITY AS v (instance_id, email, urls, n)
        CROSS JOIN LATERAL contact_lookup_keys(v.email, v.urls) AS c
        CROSS JOIN LATERAL (
            SELECT hashtextextended(v.instance_id::text || ' ' || c.key, 0) AS person,
                   hashtextextended(v.instance_id::text, 0) AS instance
        ) l
        WHERE mask[v.n] AND v.instance_id IS NOT NULL;
        IF cardinality(people) > PERSON_LOCKS_MAX THEN
            PERFORM pg_advisory_xact_lock(h) FROM unnest(instances) AS h;
        ELSE
            PERFORM pg_advisory_xact_lock_shared(h) FROM unnest(instances) AS h;
            PERFORM pg_advisory_xact_lock(h) FROM unnest(people) AS h;
        END IF;
    END IF;

    -- New people, enrolled together, each with an id chosen here, so that the
    -- rows that made it tell which events they belong to. An event whose
    -- person another row of the batch (or a concurrent batch, before the
    -- locks) enrolled meanwhile looks again below.
    IF cardinality(unknown) > 0 THEN
        mask := picked(unknown, total);
        -- Joining the batch's candidates with what was inserted: both are the
        -- batch, never a table, so a hash join is right whatever the sizes.
        PERFORM set_config('enable_hashjoin', 'on', true);
        WITH candidate AS (
            SELECT v.n::integer AS n, gen_random_uuid() AS id, v.instance_id, v.email,
                   nullif(split_part(v.urls, E'\n', 1), '') AS url,
                   (SELECT ci.provider_config FROM campaign_instances ci
                    WHERE ci.id = v.instance_id) AS config
            FROM unnest(p_instance, p_email, p_urls)
                WITH ORDINALITY AS v (instance_id, email, urls, n)
            WHERE mask[v.n]
        ),
        made AS (
            INSERT INTO campaign_enrollments (id, instance_id, contact_email, linkedin_url,
                                              status, provider_config)
            SELECT c.id, c.instance_id, c.email, c.url, 'active', c.config
            FROM candidate c
            WHERE c.config IS NOT NULL
            ORDER BY (c.email IS NOT NULL AND c.url IS NOT NULL) DESC, c.instance_id,
                     lower(c.email), c.url, c.n
            ON CONFLICT DO NOTHING
            RETURNING id, instance_id
        )
        SELECT coalesce(array_agg(c.n) FILTER (WHERE m.id IS NOT NULL), '{}'),
               coalesce(array_agg(c.id) FILTER (WHERE m.id IS NOT NULL), '{}'),
               coalesce(array_agg(m.instance_id) FILTER (WHERE m.id IS NOT NULL), '{}'),
               coalesce(array_agg(c.n) FILTER (WHERE m.id IS NULL), '{}')
        INTO unknown, found, made_in, again
        FROM candidate c
        LEFT JOIN made m ON m.id = c.id;
        PERFORM set_config('enable_hashjoin', 'off', true);
        FOR k IN 1..cardinality(unknown) LOOP
            enrollment_ids[unknown[k]] := found[k];
        END LOOP;
        delta_instance := delta_instance || made_in;
        delta_enrolled := delta_enrolled || array_fill(1, ARRAY[cardinality(made_in)]);
        delta_sent := delta_sent || array_fill(0, ARRAY[cardinality(made_in)]);
        delta_opened := delta_opened || array_fill(0, ARRAY[cardinality(made_in)]);
        delta_clicked := delta_clicked || array_fill(0, ARRAY[cardinality(made_in)]);
        delta_replied := delta_replied || array_fill(0, ARRAY[cardinality(made_in)]);
        unsettled := unsettled || again;
    END IF;

    -- What the others name now (a person enrolled meanwhile, an identifier
    -- to fill in, enrollments to merge): those still not simply found are
    -- settled one at a time.
    IF cardinality(unsettled) > 0 THEN
        mask := picked(unsettled, total);
        SELECT coalesce(array_agg(c.n) FILTER (WHERE c.kind = 'found'), '{}'),
               coalesce(array_agg(c.enrollment_id) FILTER (WHERE c.kind = 'found'), '{}'),
               coalesce(array_agg(c.n ORDER BY c.n) FILTER (WHERE c.kind <> 'found'), '{}')
        INTO again, found, unsettled
        FROM classify_contacts(p_instance, p_hinted, p_email, p_urls, mask) c;
        FOR k IN 1..cardinality(again) LOOP
            enrollment_ids[again[k]] := found[k];
        END LOOP;
    END IF;

    -- The rest, one event at a time, in array order.
    FOREACH i IN ARRAY unsettled LOOP
        found := '{}';
        FOR attempt IN 1..3 LOOP
            SELECT coalesce(array_agg(m.id ORDER BY m.created_at, m.id), '{}') INTO found
            FROM contact_matches(p_instance[i], p_email[i], p_urls[i]) m;
            EXIT WHEN cardinality(found) > 0;
            made := NULL;
            INSERT INTO campaign_enrollments (instance_id, contact_email, linkedin_url, status,
                                              provider_config)
            SELECT ci.id, p_email[i], nullif(split_part(p_urls[i], E'\n', 1), ''), 'active',
                   ci.provider_config
            FROM campaign_instances ci WHERE ci.id = p_instance[i]
            ON CONFLICT DO NOTHING
            RETURNING id INTO made;
            IF made IS NOT NULL THEN
                delta_instance := delta_instance || p_instance[i];
                delta_enrolled := delta_enrolled || 1;
                delta_sent := delta_sent || 0;
                delta_opened := delta_opened || 0;
                delta_clicked := delta_clicked || 0;
                delta_replied := delta_replied || 0;
                found := ARRAY[made];
                EXIT;
            END IF;
        END LOOP;
        IF cardinality(found) = 0 THEN
            -- Enrolled and gone again meanwhile (erased): the caller retries the batch.
            RAISE EXCEPTION 'no enrollment found or made for event %', i
                USING ERRCODE = 'serialization_failure';
        END IF;
        IF cardinality(found) > 1 THEN
            merged := merge_enrollments(found[1], found[2:]);
            -- Events of this batch already resolved to a merged enrollment follow it.
            enrollment_ids := ARRAY(
                SELECT CASE WHEN x.id = ANY (found) THEN found[1] ELSE x.id END
                FROM unnest(enrollment_ids) WITH ORDINALITY AS x (id, n)
                ORDER BY x.n);
            delta_instance := delta_instance || merged.instance_id;
            delta_enrolled := delta_enrolled || merged.enrolled;
            delta_sent := delta_sent || merged.sent;
            delta_opened := delta_opened || merged.opened;
            delta_clicked := delta_clicked || merged.clicked;
            delta_replied := delta_replied || merged.replied;
        END IF;
        -- The identifiers the survivor lacks. One held by a concurrent batch's
        -- uncommitted enrollment is a unique violation: the caller retries.
        UPDATE campaign_enrollments e SET
            contact_email = coalesce(e.contact_email, p_email[i]),
            linkedin_url = coalesce(e.linkedin_url,
                                    nullif(split_part(p_urls[i], E'\n', 1), ''))
        WHERE e.id = found[1]
          AND ((e.contact_email IS NULL AND p_email[i] IS NOT NULL)
               OR (e.linkedin_url IS NULL
                   AND linkedin_key(split_part(p_urls[i], E'\n', 1)) IS NOT NULL));
        enrollment_ids[i] := found[1];
    END LOOP;
END
$$;

-- Add counter deltas to their instances, in id order (the last lock a
-- writer takes, so the hot instance row is held only while it commits).
CREATE OR REPLACE FUNCTION apply_counter_deltas(
    p_instance uuid[], p_enrolled integer[], p_sent integer[], p_opened integer[],
    p_clicked integer[], p_replied integer[]
) RETURNS void
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off
SET enable_mergejoin = off SET jit = off
AS $$
DECLARE
    wanted integer;
    counted integer;
BEGIN
    WITH d AS (
        SELECT t.instance_id, sum(t.enrolled) AS enrolled, sum(t.sent) AS sent,
               sum(t.opened) AS opened, sum(t.clicked) AS clicked, sum(t.replied) AS replied
        FROM unnest(p_instance, p_enrolled, p_sent, p_opened, p_clicked, p_replied)
            AS t (instance_id, enrolled, sent, opened, clicked, replied)
        WHERE t.instance_id IS NOT NULL
        GROUP BY t.instance_id
        HAVING sum(t.enrolled) <> 0 OR sum(t.sent) <> 0 OR sum(t.opened) <> 0
            OR sum(t.clicked) <> 0 OR sum(t.replied) <> 0
    ),
    locked AS (
        SELECT i.id FROM campaign_instances i
        WHERE i.id IN (SELECT d.instance_id FROM d)
        ORDER BY i.id
        FOR NO KEY UPDATE
    ),
    counted AS (
        UPDATE campaign_instances i SET
            total_enrolled = greatest(i.total_enrolled + d.enrolled, 0),
            total_sent = greatest(i.total_sent + d.sent, 0),
            total_opened = greatest(i.total_opened + d.opened, 0),
            total_clicked = greatest(i.total_clicked + d.clicked, 0),
            total_replied = greatest(i.total_replied + d.replied, 0),
            updated_at = now()
        FROM d JOIN locked l ON l.id = d.instance_id
        WHERE i.id = d.instance_id
        RETURNING i.id
    )
    SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM counted) INTO wanted, counted;
    -- An instance deleted since the batch resolved it: what was written for it
    -- is gone with it, or must not stay. The caller retries the whole batch.
    IF counted < wanted THEN
        RAISE EXCEPTION 'a campaign instance was deleted while a batch counted into it'
            USING ERRCODE = 'serialization_failure';
    END IF;
END
$$;

-- Whether a stored event given again is attached now (write_batch's ON
-- CONFLICT): it has no enrollment, and it resolves to one now, or to an
-- instance where it had none.
CREATE OR REPLACE FUNCTION event_attaches(
    stored_enrollment uuid, stored_instance uuid, enrollment uuid, instance uuid
) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN stored_enrollment IS NULL
       AND (enrollment IS NOT NULL OR (stored_instance IS NULL AND instance IS NOT NULL));

-- Machine opens and clicks (docs/providers.md, "Human engagement"): the dynamic rules of
-- gateway/engagement.py, applied where events are written. `classify()` there
-- is their one definition; tests hold this SQL against it, and the rule list
-- and windows below against RULES and the *_WINDOW constants.

-- Every rule of gateway/engagement.py's RULES: its id, its version (written
-- into each flag it makes) and whether it reads one event alone (static:
-- applied in Python at normalization, kept here) or its neighbours (dynamic:
-- applied here).
CREATE OR REPLACE FUNCTION machine_rules()
RETURNS TABLE (rule text, version integer, static boolean)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    VALUES ('apple_mpp_network', 1, true),
           ('apple_mpp_user_agent', 1, true),
           ('scanner_user_agent', 1, true),
           ('scanner_network', 1, true),
           ('soon_after_send', 1, false),
           ('click_after_machine_open', 1, false),
           ('links_at_once', 1, false),
           ('click_burst', 1, false)
$$;

-- The dynamic rules' windows (SEND_WINDOW, MACHINE_OPEN_WINDOW, LINKS_WINDOW,
-- BURST_WINDOW). Called with a constant, so the planner folds it.
CREATE OR REPLACE FUNCTION machine_window(name text) RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE name
    WHEN 'send' THEN interval '5 seconds'
    WHEN 'machine_open' THEN interval '9 seconds'
    WHEN 'links' THEN interval '1 second'
    WHEN 'burst' THEN interval '2 seconds'
END;

-- BURST_LINKS: distinct links within the burst window that make a burst.
CREATE OR REPLACE FUNCTION machine_burst_links() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN 3;

-- metadata.machine of a dynamic rule's flag (folded to a constant too).
CREATE OR REPLACE FUNCTION machine_flag(p_kind text, p_rule text) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN jsonb_build_object(
    'kind', p_kind, 'rule', p_rule,
    'rule_version', (SELECT r.version FROM machine_rules() r WHERE r.rule = p_rule));

CREATE OR REPLACE FUNCTION machine_static_rules() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ARRAY(SELECT r.rule FROM machine_rules() r WHERE r.static ORDER BY r.rule);

-- Whether a stored metadata.machine is a static rule's flag (`static_flag()`
-- in Python): those are written at normalization and never recomputed here.
CREATE OR REPLACE FUNCTION machine_is_static(machine jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN coalesce(machine ->> 'rule' = ANY (machine_static_rules())
                AND machine ->> 'kind' IN ('privacy_proxy', 'scanner')
                AND jsonb_typeof(machine -> 'rule_version') = 'number', false);

-- The message an event names: Postmark's MessageID, else lemlist's emailId.
CREATE OR REPLACE FUNCTION machine_message(metadata jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN coalesce(nullif(metadata ->> 'message_id', ''), metadata ->> 'email_id');

-- "The same message": both name one and it is the same; else the same step.
CREATE OR REPLACE FUNCTION machine_same_message(
    a_message text, a_step integer, b_message text, b_step integer
) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN a_message IS NOT NULL AND b_message IS NOT NULL THEN a_message = b_message
            ELSE a_step IS NOT DISTINCT FROM b_step END;

-- The metadata of a stored event given again (replay, reprocess) when the
-- static flag it comes with now differs, else NULL: the incoming flag
-- replaces the stored one; without one, a stored static flag is removed (a
-- dynamic one is flag_machine_events' to keep or change).
CREATE OR REPLACE FUNCTION machine_restated(event_type text, stored jsonb, incoming jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN event_type NOT IN ('opened', 'clicked') THEN NULL
    WHEN incoming ? 'machine' THEN
        CASE WHEN stored -> 'machine' IS DISTINCT FROM incoming -> 'machine'
             THEN jsonb_set(stored, '{machine}', incoming -> 'machine') END
    WHEN machine_is_static(stored -> 'machine') THEN stored - 'machine'
END;

-- The e-mail opens and clicks of these enrollments whose metadata.machine is
-- not what the rules give (`wanted`, NULL: no flag), by physical address.
-- A static flag is kept; every other open and click takes the first dynamic
-- rule that matches, in classify()'s order, over the enrollment's e-mail
-- events. Each rule is a range probe of idx_campaign_events_enrollment
-- (enrollment_id, timestamp) around the event, fenced with OFFSET 0 as the
-- rest of the write path, so the work is linear in the opens and clicks read.
--
-- Which opens and clicks are read: all of the enrollment's when `p_at` is
-- NULL (reprocess); else, for each (p_enrollments[i], p_at[i]), a written
-- event's enrollment and time, only those within 14 s of it. That is all
-- that event can change: a send or delivery flags opens and clicks within
-- 5 s, a flagged open clicks up to 9 s after it (so a send reaches 14 s),
-- a click the clicks within 2 s; everything farther keeps the flag it had,
-- which was exact (every write recomputes around what it wrote).
CREATE OR REPLACE FUNCTION machine_flag_changes(
    p_enrollments uuid[], p_at timestamptz[] DEFAULT NULL
) RETURNS TABLE (tid tid, enrollment_id uuid, wanted jsonb)
LANGUAGE plpgsql STABLE
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off
SET enable_mergejoin = off SET jit = off
AS $$
#variable_conflict use_column
BEGIN
    -- PL/pgSQL, not SQL, so that the plan is made once per connection.
    RETURN QUERY
    SELECT e.tid, e.enrollment_id, f.wanted
    FROM (
        SELECT DISTINCT ON (r.id) r.*
        FROM (SELECT DISTINCT u.id, u.at FROM unnest(p_enrollments, p_at) AS u (id, at)
              WHERE u.id IS NOT NULL) w
        CROSS JOIN LATERAL (
            SELECT c.ctid AS tid, c.id, c.enrollment_id, c.event_type, c.timestamp AS at,
                   c.step_number AS step, machine_message(c.metadata) AS msg,
                   c.metadata ->> 'url' AS url, c.metadata -> 'machine' AS stored
            FROM campaign_events c
            WHERE c.enrollment_id = w.id
              AND c.timestamp BETWEEN coalesce(w.at - machine_window('send')
                                                    - machine_window('machine_open'),
                                               '-infinity')
                                  AND coalesce(w.at + machine_window('send')
                                                    + machine_window('machine_open'),
                                               'infinity')
              AND c.channel = 'email' AND c.event_type IN ('opened', 'clicked')
            OFFSET 0
        ) r
        ORDER BY r.id
    ) e
    CROSS JOIN LATERAL (
        SELECT CASE
            WHEN machine_is_static(e.stored) THEN e.stored
            -- soon_after_send: within 5 s of a send or delivery of the same message.
            WHEN EXISTS (
                SELECT 1 FROM campaign_events a
                WHERE a.enrollment_id = e.enrollment_id
                  AND a.timestamp BETWEEN e.at - machine_window('send')
                                      AND e.at + machine_window('send')
                  AND a.channel = 'email' AND a.event_type IN ('sent', 'delivered')
                  AND machine_same_message(machine_message(a.metadata), a.step_number,
                                           e.msg, e.step))
            THEN CASE e.event_type WHEN 'opened'
                                   THEN machine_flag('privacy_proxy', 'soon_after_send')
                                   ELSE machine_flag('scanner', 'soon_after_send') END
            WHEN e.event_type = 'opened' THEN NULL
            -- click_after_machine_open: 0 to 9 s after a flagged open of the same
            -- message (flagged by a static rule, or by soon_after_send).
            WHEN EXISTS (
                SELECT 1 FROM campaign_events o
                WHERE o.enrollment_id = e.enrollment_id
                  AND o.timestamp BETWEEN e.at - machine_window('machine_open') AND e.at
                  AND o.channel = 'email' AND o.event_type = 'opened'
                  AND machine_same_message(machine_message(o.metadata), o.step_number,
                                           e.msg, e.step)
                  AND (machine_is_static(o.metadata -> 'machine') OR EXISTS (
                      SELECT 1 FROM campaign_events a
                      WHERE a.enrollment_id = o.enrollment_id
                        AND a.timestamp BETWEEN o.timestamp - machine_window('send')
                                            AND o.timestamp + machine_window('send')
                        AND a.channel = 'email' AND a.event_type IN ('sent', 'delivered')
                        AND machine_same_message(machine_message(a.metadata), a.step_number,
                                                 machine_message(o.metadata), o.step_number))))
            THEN machine_flag('scanner', 'click_after_machine_open')
            -- links_at_once: within 1 s of a click on another link of the same message.
            WHEN EXISTS (
                SELECT 1 FROM campaign_events o
                WHERE o.enrollment_id = e.enrollment_id
                  AND o.timestamp BETWEEN e.at - machine_window('links')
                                      AND e.at + machine_window('links')
                  AND o.channel = 'email' AND o.event_type = 'clicked' AND o.id <> e.id
                  AND o.metadata ->> 'url' IS DISTINCT FROM e.url
                  AND machine_same_message(machine_message(o.metadata), o.step_number,
                                           e.msg, e.step))
            THEN machine_flag('scanner', 'links_at_once')
            -- click_burst: 3 distinct links (message, url; a missing one is a value
            -- of its own) clicked by the enrollment within 2 s, this one included.
            WHEN (
                SELECT count(DISTINCT jsonb_build_array(machine_message(o.metadata),
                                                        o.metadata ->> 'url'))
                FROM campaign_events o
                WHERE o.enrollment_id = e.enrollment_id
                  AND o.timestamp BETWEEN e.at - machine_window('burst')
                                      AND e.at + machine_window('burst')
                  AND o.channel = 'email' AND o.event_type = 'clicked'
            ) >= machine_burst_links()
            THEN machine_flag('scanner', 'click_burst')
        END AS wanted
        OFFSET 0
    ) f
    WHERE e.stored IS DISTINCT FROM f.wanted;
END
$$;

-- Recompute the machine flags of enrollments (machine_flag_changes: around
-- the times `p_at` when given, else all of them) and write the rows that
-- differ; returns how many. write_batch calls it with every e-mail send,
-- delivery, open and click it wrote (inserted, attached, or restated);
-- reprocess calls it without times to re-apply a newer rule version.
--
-- Two batches writing events of one enrollment at once (a scanner's clicks
-- arrive as separate webhooks, maybe to different workers) must not each
-- compute from a view lacking the other's events. So each enrollment is
-- locked first (a transaction advisory lock, two-key form: class 16 per
-- enrollment, never meeting resolve_contacts' person locks), in key order,
-- after the events are written and before the counters; the recomputation
-- is a later statement of this VOLATILE function, with a fresh snapshot, so
-- whoever locks second sees the first's events. A batch naming more than
-- MACHINE_LOCKS_MAX enrollments takes one exclusive lock for all (class 15)
-- instead; the others take that one shared.
CREATE OR REPLACE FUNCTION flag_machine_events(
    p_enrollments uuid[], p_at timestamptz[] DEFAULT NULL
) RETURNS integer
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off
SET enable_mergejoin = off SET jit = off
AS $$
DECLARE
    keys integer[];
    changed integer;
    MACHINE_LOCKS_MAX CONSTANT integer := 256;
BEGIN
    SELECT coalesce(array_agg(DISTINCT hashtext(u.id::text) ORDER BY hashtext(u.id::text)), '{}')
    INTO keys
    FROM unnest(p_enrollments) AS u (id)
    WHERE u.id IS NOT NULL;
    IF cardinality(keys) = 0 THEN
        RETURN 0;
    END IF;
    IF cardinality(keys) > MACHINE_LOCKS_MAX THEN
        PERFORM pg_advisory_xact_lock(15, 0);
    ELSE
        PERFORM pg_advisory_xact_lock_shared(15, 0);
        PERFORM pg_advisory_xact_lock(16, k) FROM unnest(keys) AS k;
    END IF;

    UPDATE campaign_events c SET
        metadata = CASE WHEN f.wanted IS NULL THEN c.metadata - 'machine'
                        ELSE jsonb_set(c.metadata, '{machine}', f.wanted) END
    FROM machine_flag_changes(p_enrollments, p_at) f
    WHERE c.ctid = f.tid;
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END
$$;

-- Write a batch in one statement and one implicit transaction (group
-- commit): resolve every event's instance and enrollment, insert the events
-- (a redelivered one is not written again; one that was unmatched is attached
-- when it resolves now), move the enrollments they touch, store the raw
-- deliveries with their outcomes, and add the counter deltas last.
-- Events come as parallel arrays, distinct and sorted by key, each naming the
-- delivery that owns it; deliveries too. A delivery's status is given (no
-- events: rejected, ignored, pending) or decided here: duplicate when none of
-- its events was new, unmatched when a new one has no enrollment, processed
-- otherwise. With store false the deliveries are not stored (reprocess
-- updates its own rows). One row per delivery comes back.
CREATE OR REPLACE FUNCTION write_batch(
    ev_id uuid[], ev_provider text[], ev_key text[], ev_campaign_key text[], ev_instance_hint uuid[],
    ev_enrollment_hint uuid[], ev_email text[], ev_urls text[], ev_delivery uuid[],
    ev_type text[], ev_channel text[], ev_step integer[], ev_at timestamptz[],
    ev_metadata jsonb[],
    d_id uuid[], d_provider text[], d_received_at timestamptz[], d_body bytea[],
    d_body_size integer[], d_headers jsonb[], d_query jsonb[], d_status text[], d_cause text[],
    d_events integer[], d_fetched_body bytea[], d_fetched_from text[],
    store boolean
) RETURNS TABLE (delivery_id uuid, status text, written integer, duplicates integer, cause text)
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off
SET enable_mergejoin = off SET jit = off
-- A PhantomBuster run's batch sorts and hashes thousands of rows in memory.
SET work_mem = '64MB'
AS $$
#variable_conflict use_column
DECLARE
    t_instance uuid[] := '{}';
    t_enrollment uuid[] := '{}';
    t_hinted uuid[];
    t_email text[];
    t_urls text[];
    contacts record;
    owners uuid[] := '{}';
    owner_new integer[] := '{}';
    owner_unmatched boolean[] := '{}';
    d_new integer[] := array_fill(0, ARRAY[cardinality(d_id)]);
    d_unmatched boolean[] := array_fill(false, ARRAY[cardinality(d_id)]);
    pos integer;
    held integer;
    touched integer;
    m_tid tid[];
    m_mask integer[];
    m_bits integer[];
    m_step integer[];
    m_reply timestamptz[];
    LARGE_BATCH CONSTANT integer := 256;
    c_instance uuid[] := '{}';
    c_enrolled integer[] := '{}';
    c_sent integer[] := '{}';
    c_opened integer[] := '{}';
    c_clicked integer[] := '{}';
    c_replied integer[] := '{}';
    machine_enrollments uuid[] := '{}';
    machine_at timestamptz[] := '{}';
BEGIN
    IF cardinality(ev_key) > 0 THEN
        SELECT r.instance_ids, r.enrollment_ids INTO t_instance, t_hinted
        FROM resolve_instances(ev_provider, ev_campaign_key, ev_instance_hint,
                               ev_enrollment_hint) r;
        -- In a large batch (a cumulative PhantomBuster result, which repeats
        -- the rows of earlier runs), an event stored and attached already
        -- changes nothing, and its contact is not resolved: a probe of the
        -- event key saves two of contacts. Batches of webhooks are mostly new
        -- events, where the probe would only cost.
        t_email := ev_email;
        t_urls := ev_urls;
        IF cardinality(ev_key) > LARGE_BATCH THEN
            SELECT array_agg(CASE WHEN s.attached THEN NULL ELSE v.email END ORDER BY v.n),
                   array_agg(CASE WHEN s.attached THEN NULL ELSE v.urls END ORDER BY v.n)
            INTO t_email, t_urls
            FROM unnest(ev_provider, ev_key, ev_email, ev_urls)
                WITH ORDINALITY AS v (provider, key, email, urls, n)
            CROSS JOIN LATERAL (
                SELECT EXISTS (
                    SELECT 1 FROM campaign_events c
                    WHERE c.provider = v.provider AND c.provider_event_id = v.key
                      AND c.enrollment_id IS NOT NULL) AS attached
            ) s;
        END IF;
        SELECT * INTO contacts FROM resolve_contacts(t_instance, t_hinted, t_email, t_urls);
        t_enrollment := contacts.enrollment_ids;

        WITH written AS (
            INSERT INTO campaign_events AS ce (
                id, enrollment_id, instance_id, delivery_id, event_type, channel, provider,
                provider_event_id, campaign_key, step_number, timestamp, metadata)
            SELECT *
            FROM unnest(ev_id, t_enrollment, t_instance, ev_delivery, ev_type, ev_channel,
                        ev_provider, ev_key, ev_campaign_key, ev_step, ev_at, ev_metadata)
            -- A stored event is attached when it resolves now; (machine flags) it
            -- also takes the static flag it comes with when that differs, and a
            -- row updated for that alone keeps its enrollment and instance. Such a
            -- row comes back with `inserted` false and an enrollment whose state
            -- already holds it: it counts nowhere.
            ON CONFLICT (provider, provider_event_id) DO UPDATE
                SET enrollment_id = CASE WHEN event_attaches(ce.enrollment_id, ce.instance_id,
                                                             EXCLUDED.enrollment_id,
                                                             EXCLUDED.instance_id)
                                         THEN EXCLUDED.enrollment_id
                                         ELSE ce.enrollment_id END,
                    instance_id = CASE WHEN event_attaches(ce.enrollment_id, ce.instance_id,
                                                           EXCLUDED.enrollment_id,
                                                           EXCLUDED.instance_id)
                                       THEN EXCLUDED.instance_id
                                       ELSE ce.instance_id END,
                    metadata = coalesce(machine_restated(ce.event_type, ce.metadata,
                                                         EXCLUDED.metadata),
                                        ce.metadata)
                WHERE event_attaches(ce.enrollment_id, ce.instance_id, EXCLUDED.enrollment_id,
                                     EXCLUDED.instance_id)
                   OR machine_restated(ce.event_type, ce.metadata, EXCLUDED.metadata) IS NOT NULL
            RETURNING ce.delivery_id AS owner, ce.enrollment_id, ce.event_type, ce.metadata,
                      ce.step_number, ce.timestamp, (xmax = 0) AS inserted, ce.channel
        ),
        per_delivery AS (
            SELECT w.owner,
                   count(*) FILTER (WHERE w.inserted)::int AS new_events,
                   coalesce(bool_or(w.inserted AND w.enrollment_id IS NULL), false) AS unmatched
            FROM written w
            GROUP BY w.owner
        ),
        touched AS (
            SELECT w.enrollment_id, bit_or(event_bit(w.event_type, w.metadata)) AS bits,
                   coalesce(max(w.step_number), 0) AS step,
                   min(w.timestamp) FILTER (WHERE w.event_type = 'replied') AS replied_at
            FROM written w
            WHERE w.enrollment_id IS NOT NULL
            GROUP BY w.enrollment_id
        ),
        -- Every enrollment the events were attached to is locked, in id
        -- order (what a foreign key check did per event, once per
        -- enrollment): one merged away or erased meanwhile is missing here,
        -- and the batch is refused and retried. Those whose state moves are
        -- kept for the next statement: state only grows (bits, step, first
        -- reply), so it is compared on the row as locked.
        held AS (
            SELECT x.*
            FROM (SELECT * FROM touched ORDER BY enrollment_id) t
            CROSS JOIN LATERAL (
                SELECT e.ctid AS tid, e.event_mask, e.current_step, e.replied_at,
                       t.bits, t.step, t.replied_at AS first_reply
                FROM campaign_enrollments e
                WHERE e.id = t.enrollment_id
                FOR NO KEY UPDATE
            ) x
        ),
        moving AS (
            SELECT h.tid, h.event_mask, h.bits, h.step, h.first_reply
            FROM held h
            WHERE h.event_mask | h.bits <> h.event_mask
               OR h.step > h.current_step
               OR h.first_reply < coalesce(h.replied_at, 'infinity')
        ),
        -- (machine flags) Where flags may change: each e-mail send, delivery,
        -- open or click written, by enrollment and time.
        machine AS (
            SELECT coalesce(array_agg(w.enrollment_id), '{}') AS enrollments,
                   coalesce(array_agg(w.timestamp), '{}') AS at
            FROM written w
            WHERE w.channel = 'email' AND w.enrollment_id IS NOT NULL
              AND w.event_type IN ('sent', 'delivered', 'opened', 'clicked')
        )
        SELECT coalesce((SELECT array_agg(p.owner) FROM per_delivery p), '{}'),
               coalesce((SELECT array_agg(p.new_events) FROM per_delivery p), '{}'),
               coalesce((SELECT array_agg(p.unmatched) FROM per_delivery p), '{}'),
               coalesce((SELECT array_agg(m.tid) FROM moving m), '{}'),
               coalesce((SELECT array_agg(m.event_mask) FROM moving m), '{}'),
               coalesce((SELECT array_agg(m.bits) FROM moving m), '{}'),
               coalesce((SELECT array_agg(m.step) FROM moving m), '{}'),
               coalesce((SELECT array_agg(m.first_reply) FROM moving m), '{}'),
               (SELECT count(*) FROM held), (SELECT count(*) FROM touched),
               (SELECT m.enrollments FROM machine m), (SELECT m.at FROM machine m)
        INTO owners, owner_new, owner_unmatched, m_tid, m_mask, m_bits, m_step, m_reply,
             held, touched, machine_enrollments, machine_at;
        IF held < touched THEN
            RAISE EXCEPTION 'an enrollment was merged or erased while a batch attached events to it'
                USING ERRCODE = 'serialization_failure';
        END IF;

        -- The locked rows move, found by their physical address: a TID scan,
        -- with no plan to choose. A statement of its own, so that its
        -- snapshot sees the versions the locks were granted on (a row another
        -- batch had moved meanwhile is a newer version than the previous
        -- statement could see).
        WITH moved AS (
            UPDATE campaign_enrollments e SET
                event_mask = e.event_mask | b.bits,
                current_step = greatest(e.current_step, b.step),
                replied_at = least(e.replied_at, b.first_reply),
                status = enrollment_status(e.status, e.event_mask | b.bits),
                completed_at = enrollment_completed_at(e.status, e.event_mask | b.bits,
                                                       least(e.replied_at, b.first_reply),
                                                       e.completed_at),
                updated_at = now()
            FROM unnest(m_tid, m_mask, m_bits, m_step, m_reply)
                AS b (tid, old_mask, bits, step, first_reply)
            WHERE e.ctid = b.tid
            RETURNING e.instance_id, b.old_mask, e.event_mask AS new_mask
        ),
        counted AS (
            SELECT v.instance_id,
                   count(*) FILTER (WHERE v.new_mask & ~v.old_mask & 1 <> 0)::int AS sent,
                   count(*) FILTER (WHERE v.new_mask & ~v.old_mask & 4 <> 0)::int AS opened,
                   count(*) FILTER (WHERE v.new_mask & ~v.old_mask & 8 <> 0)::int AS clicked,
                   count(*) FILTER (WHERE v.new_mask & ~v.old_mask & 16 <> 0)::int AS replied
            FROM moved v
            GROUP BY v.instance_id
        )
        SELECT contacts.delta_instance
                   || coalesce((SELECT array_agg(c.instance_id) FROM counted c), '{}'),
               contacts.delta_enrolled
                   || coalesce((SELECT array_agg(0) FROM counted c), '{}'),
               contacts.delta_sent || coalesce((SELECT array_agg(c.sent) FROM counted c), '{}'),
               contacts.delta_opened
                   || coalesce((SELECT array_agg(c.opened) FROM counted c), '{}'),
               contacts.delta_clicked
                   || coalesce((SELECT array_agg(c.clicked) FROM counted c), '{}'),
               contacts.delta_replied
                   || coalesce((SELECT array_agg(c.replied) FROM counted c), '{}')
        INTO c_instance, c_enrolled, c_sent, c_opened, c_clicked, c_replied;
        -- (machine flags) After the events are written, before the counters.
        IF cardinality(machine_enrollments) > 0 THEN
            PERFORM flag_machine_events(machine_enrollments, machine_at);
        END IF;
        -- What each delivery's events did, in the deliveries' order. An event
        -- attached now keeps the delivery that first stored it, which may be
        -- of an earlier batch: this batch's delivery of it is a duplicate.
        FOR k IN 1..cardinality(owners) LOOP
            pos := array_position(d_id, owners[k]);
            CONTINUE WHEN pos IS NULL;
            d_new[pos] := owner_new[k];
            d_unmatched[pos] := owner_unmatched[k];
        END LOOP;
    END IF;

    RETURN QUERY
    WITH outcomes AS (
        SELECT d.*,
               coalesce(d.given_status,
                        CASE WHEN d.new_events = 0 THEN 'duplicate'
                             WHEN d.unmatched THEN 'unmatched'
                             ELSE 'processed' END) AS final_status
        FROM unnest(d_id, d_provider, d_received_at, d_body, d_body_size, d_headers, d_query,
                    d_status, d_cause, d_events, d_fetched_body, d_fetched_from, d_new,
                    d_unmatched)
            AS d (id, provider, received_at, body, body_size, headers, query, given_status,
                  given_cause, events, fetched_body, fetched_from, new_events, unmatched)
    ),
    final AS (
        SELECT o.*,
               CASE WHEN o.final_status = 'unmatched' AND o.given_status IS NULL
                    THEN 'no campaign instance matches' ELSE o.given_cause END AS final_cause
        FROM outcomes o
    ),
    stored AS (
        INSERT INTO webhook_deliveries (
            id, provider, received_at, body, body_size, headers, query, status, cause,
            events_written, duplicates, fetched_body, fetched_from)
        SELECT f.id, f.provider, f.received_at, f.body, f.body_size, f.headers, f.query,
               f.final_status, f.final_cause, f.new_events, f.events - f.new_events,
               f.fetched_body, f.fetched_from
        FROM final f
        WHERE store
    )
    SELECT f.id, f.final_status, f.new_events, f.events - f.new_events, f.final_cause
    FROM final f;

    IF cardinality(c_instance) > 0 THEN
        PERFORM apply_counter_deltas(c_instance, c_enrolled, c_sent, c_opened, c_clicked,
                                     c_replied);
    END IF;
END
$$;

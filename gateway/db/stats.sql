-- Named SQL of `gateway db check` and `gateway db stats`, loaded by
-- gateway/db/stats.py.

-- name: server_facts
-- Which database this is, the server's clock and its version.
SELECT current_database() AS database, now() AS server_time, version() AS version;

-- name: database_size
SELECT pg_size_pretty(pg_database_size(current_database()));

-- name: table_rows
-- Exact row counts of the campaign tables and the raw deliveries, in this order.
SELECT 1 AS position, 'campaign_templates' AS table_name, count(*) AS rows FROM campaign_templates
UNION ALL SELECT 2, 'email_sequences', count(*) FROM email_sequences
UNION ALL SELECT 3, 'linkedin_sequences', count(*) FROM linkedin_sequences
UNION ALL SELECT 4, 'campaign_instances', count(*) FROM campaign_instances
UNION ALL SELECT 5, 'campaign_enrollments', count(*) FROM campaign_enrollments
UNION ALL SELECT 6, 'campaign_events', count(*) FROM campaign_events
UNION ALL SELECT 7, 'webhook_deliveries', count(*) FROM webhook_deliveries
ORDER BY position;

-- name: connections
-- Client connections to this database, to the whole server, and the most it takes.
SELECT count(*) FILTER (WHERE datname = current_database()) AS database,
       count(*) AS server,
       current_setting('max_connections')::int AS max
FROM pg_stat_activity
WHERE backend_type = 'client backend';

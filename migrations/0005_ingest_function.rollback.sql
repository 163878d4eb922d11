DROP FUNCTION ingest_batch;
DROP FUNCTION resolve_targets;

"""The schema as the migrations leave it, named once for every test that checks it.

When a migration adds, renames or drops a migration or an index, update it
here: the tests then prove the exact set, so an index lost on the way (or one
left behind by a rollback) fails them.
"""

from __future__ import annotations

#: Every migration, in the order `gateway migrate` applies them.
MIGRATIONS: tuple[str, ...] = (
    "0001_campaign_schema",
    "0002_webhook_deliveries",
    "0003_instance_counters",
    "0004_read_api_indexes",
    "0005_ingest_function",
    "0006_event_campaign_key",
    "0007_identity_progression",
    "0008_merge_split_people",
    "0009_lean_write_path",
    "0010_search_indexes",
    "0011_events_lock_their_enrollments",
)

#: Every index of the gateway's tables (primary keys and unique constraints included).
INDEXES: dict[str, frozenset[str]] = {
    "campaign_templates": frozenset(
        {
            "campaign_templates_pkey",
            "idx_campaign_templates_type",
            "idx_campaign_templates_path_type",
            "idx_campaign_templates_is_active",
        }
    ),
    "email_sequences": frozenset(
        {
            "email_sequences_pkey",
            "idx_email_sequences_template_step",
            "uq_email_sequences_step",
        }
    ),
    "linkedin_sequences": frozenset(
        {
            "linkedin_sequences_pkey",
            "idx_linkedin_sequences_template_step",
            "uq_linkedin_sequences_step",
        }
    ),
    "campaign_instances": frozenset(
        {
            "campaign_instances_pkey",
            "idx_campaign_instances_template",
            "idx_campaign_instances_status",
            "idx_campaign_instances_lemlist_campaign",
            "idx_campaign_instances_postmark_tag",
            "idx_campaign_instances_phantombuster_agent",
            "idx_campaign_instances_provider_config",
        }
    ),
    "campaign_enrollments": frozenset(
        {
            "campaign_enrollments_pkey",
            "idx_campaign_enrollments_email",
            "idx_campaign_enrollments_instance_enrolled",
            "idx_campaign_enrollments_instance_status",
            "idx_campaign_enrollments_next_action",
            "idx_campaign_enrollments_status",
            "uq_campaign_enrollments_email",
            "uq_campaign_enrollments_linkedin",
        }
    ),
    "campaign_events": frozenset(
        {
            "campaign_events_pkey",
            "idx_campaign_events_campaign_key",
            "idx_campaign_events_delivery",
            "idx_campaign_events_enrollment",
            "idx_campaign_events_instance_time",
            "idx_campaign_events_machine",
            "idx_campaign_events_timestamp",
            "idx_campaign_events_unmatched",
            "idx_campaign_events_unmatched_key",
            "idx_campaign_events_unmatched_time",
            "uq_campaign_events_provider_event",
        }
    ),
    "instance_keys": frozenset({"instance_keys_pkey", "idx_instance_keys_instance"}),
    "contact_keys": frozenset({"contact_keys_pkey", "idx_contact_keys_enrollment"}),
    "webhook_deliveries": frozenset(
        {
            "webhook_deliveries_pkey",
            "idx_webhook_deliveries_received",
            "idx_webhook_deliveries_status_received",
        }
    ),
}

#: The indexes of the tables and their names, as PostgreSQL lists them (yoyo's own left out).
INDEXES_QUERY = (
    "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = current_schema()"
    " AND tablename NOT LIKE '\\_yoyo%' AND tablename NOT LIKE 'yoyo%'"
)


def by_table(rows: list[tuple[str, str]]) -> dict[str, frozenset[str]]:
    """(table, index) rows grouped as INDEXES is."""
    grouped: dict[str, set[str]] = {}
    for table, index in rows:
        grouped.setdefault(table, set()).add(index)
    return {table: frozenset(names) for table, names in grouped.items()}

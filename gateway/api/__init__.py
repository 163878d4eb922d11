"""The JSON API under `/api`: the dashboards' reads and the campaign management writes.

Read handlers go through a `ReadDb` dependency (`db`), writes through a
`ManageDb` (`writer`), one transaction each. Bad parameters or bodies,
unknown ids and refused changes raise `gateway.errors.BadRequest` /
`NotFound` / `Conflict`, which become problem JSON in `gateway.app`, the one
place errors meet HTTP. One guard checks the API key (`gateway.api.auth`).
"""

from __future__ import annotations

from litestar import Router
from litestar.di import NamedDependency, Provide

from gateway.api import (
    alerts,
    campaigns,
    deliveries,
    enrollments,
    events,
    manage,
    performance,
)
from gateway.api.auth import API_KEY, api_key_guard
from gateway.api.deps import ManageDb, ReadDb
from gateway.api.query import QueryRules
from gateway.db.pool import Pool
from gateway.fetch import ResultFetcher
from gateway.secrets import ApiKeys, SecretMask
from gateway.settings import Settings


def api_router(
    settings: Settings, api_keys: ApiKeys, mask: SecretMask, query_rules: QueryRules
) -> Router:
    """Every API endpoint, wired to the pool and fetcher the app injects (`gateway.app`).

    `query_rules` must learn the app's routes once it is built (`create_app`).
    """

    def provide_db(pool: NamedDependency[Pool]) -> ReadDb:
        return ReadDb(pool, settings)

    def provide_writer(
        pool: NamedDependency[Pool], fetcher: NamedDependency[ResultFetcher]
    ) -> ManageDb:
        return ManageDb(pool, settings, fetcher)

    return Router(
        path="/api",
        route_handlers=[
            campaigns.list_templates,
            campaigns.get_template,
            manage.create_template,
            manage.replace_template,
            manage.delete_template,
            campaigns.list_instances,
            campaigns.get_instance,
            manage.create_instance,
            manage.update_instance,
            manage.attach_unmatched,
            performance.instance_performance,
            enrollments.enroll_contacts,
            enrollments.list_enrollments,
            events.list_events,
            events.list_unmatched,
            deliveries.list_deliveries,
            deliveries.get_delivery,
            deliveries.reprocess_delivery,
            alerts.list_alerts,
        ],
        dependencies={
            "db": Provide(provide_db, sync_to_thread=False),
            "writer": Provide(provide_writer, sync_to_thread=False),
            "mask": Provide(lambda: mask, sync_to_thread=False, use_cache=True),
        },
        guards=[
            api_key_guard(api_keys, reads_open=settings.api_reads_open),
            query_rules.guard(),
        ],
        security=None if settings.api_reads_open else API_KEY,
    )

"""The dashboards' read API under `/api`: campaigns, performance, events, deliveries.

Handlers only read, each through a `ReadDb` dependency. Bad parameters and
unknown ids raise `gateway.errors.BadRequest` / `NotFound`, which become
problem JSON in `gateway.app`, the one place errors meet HTTP.
"""

from __future__ import annotations

from litestar import Router
from litestar.datastructures import State
from litestar.di import Provide

from gateway.api import campaigns, deliveries, events, performance
from gateway.api.deps import ReadDb
from gateway.settings import Settings


def api_router(settings: Settings) -> Router:
    """Every read endpoint, wired to the pool the lifespan puts on `app.state.pool`."""

    def provide_db(state: State) -> ReadDb:
        return ReadDb(state.pool, settings)

    return Router(
        path="/api",
        route_handlers=[
            campaigns.list_templates,
            campaigns.get_template,
            campaigns.list_instances,
            campaigns.get_instance,
            performance.instance_performance,
            events.list_events,
            deliveries.list_deliveries,
        ],
        dependencies={"db": Provide(provide_db, sync_to_thread=False)},
    )

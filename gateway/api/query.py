"""Strict query strings on `/api`: nothing a client sends is silently ignored.

A misspelt filter (`?type=opened` on `/api/events`, whose filter is
`event_type`) would otherwise answer everything, unfiltered, as if it were
the filtered answer; a single-valued parameter given twice would silently
keep one value. Both are a 400 naming the parameter. What each route takes is
read from the route table Litestar builds from the handlers' signatures, so
it cannot drift from them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.enums import ParamType
from litestar.handlers import BaseRouteHandler
from litestar.routes import HTTPRoute
from litestar.types import Guard

from gateway.errors import BadRequest


class QueryRules:
    """Per route handler: the query parameters it takes, and which of them may repeat."""

    def __init__(self) -> None:
        self._rules: dict[int, tuple[frozenset[str], frozenset[str]]] = {}

    def learn(self, app: Litestar) -> None:
        """Read every HTTP handler's query parameters from the app's route table."""
        for route in app.routes:
            if not isinstance(route, HTTPRoute):
                continue
            for handler, model in route.route_handler_map.values():
                params = [p for p in model.expected_query_params if p.param_type is ParamType.QUERY]
                self._rules[id(handler)] = (
                    frozenset(p.field_alias for p in params),
                    frozenset(p.field_alias for p in params if p.is_sequence),
                )

    def guard(self) -> Guard:
        """A guard refusing unknown or wrongly repeated query parameters with a 400."""

        def strict_query(
            connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
        ) -> None:
            # Guards get a copy of the handler; the scope holds the routed one.
            routed = connection.route_handler
            rules = self._rules.get(id(routed))
            if rules is None:
                raise RuntimeError(f"no query rules for {routed}: QueryRules.learn was not called")
            known, repeatable = rules
            given = Counter(name for name, _ in connection.query_params.multi_items())
            for name, times in given.items():
                if name not in known:
                    takes = ", ".join(f"`{n}`" for n in sorted(known)) or "none"
                    raise BadRequest(
                        f"unknown query parameter `{name}`; this endpoint takes: {takes}",
                        field=name,
                    )
                if times > 1 and name not in repeatable:
                    raise BadRequest(
                        f"`{name}` is given {times} times; it takes one value", field=name
                    )

        return strict_query

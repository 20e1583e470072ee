"""The stub's route table: every Execution API route, as one explicit tuple of ``Route``s.

Each ``Route`` names its method, its path pattern (relative to ``/execution/``; a regex whose
named groups become the handler's ``req.params``) and its handler, a plain function taking the
store and the parsed request. The tuple keeps Airflow's registration order, which decides two
things as in Starlette: the first route whose pattern and method match serves the request, and
a path that matches only with other methods gets 405 with the method of the first route whose
pattern matched as ``Allow``.

``RouteTable`` compiles the tuple once: routes are grouped by their first path segment, and
consecutive routes with the same pattern share one compiled regex (matched once per request).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from ..store import StubStore
from . import _assets, _data, _runs, _stores, _ti
from ._http import HTTPError, Response, json_response
from ._request import Request
from ._versions import BASELINE_VERSION

__all__ = ["ROUTES", "Route", "RouteTable"]

Handler = Callable[[StubStore, Request], Response]


class Route(NamedTuple):
    method: str
    pattern: str
    handler: Handler
    #: Needs a valid bearer token (every route but health, when the stub has a TokenIssuer).
    auth: bool = True
    #: Also accepts workload tokens (``PATCH /run``); others take execution tokens only.
    workload_ok: bool = False
    #: The token's subject must be the path's ``task_instance_id``.
    ti_self: bool = False
    #: Takes a JSON body, decoded (422 on bad JSON) before authentication, as FastAPI does.
    body: bool = False
    #: The first API version serving the route (Cadwyn ``endpoint(...).didnt_exist``); older
    #: versions have no such route.
    since: str = BASELINE_VERSION


def health(store: StubStore, req: Request) -> Response:
    req.validated()  # only the version header can be wrong
    return json_response(200, {"status": "healthy"})


_TI = r"task-instances/(?P<task_instance_id>[^/]+)"
_RUN = r"dag-runs/(?P<dag_id>[^/]+)/(?P<run_id>[^/]+)"
_XCOM = r"xcoms/(?P<dag_id>[^/]+)/(?P<run_id>[^/]+)/(?P<task_id>[^/]+)/(?P<key>.*)"
_TI_STORE = r"store/ti/(?P<task_instance_id>[^/]+)"
_ASSET_STORE = r"store/asset/by-(?P<by>name|uri)/(?P<op>"
_V2026_04 = "2026-04-06"
_V2026_06 = "2026-06-30"

#: Airflow 3.3's Execution API, in registration order.
ROUTES: tuple[Route, ...] = (
    # Cadwyn versions every route of the app, health included (422 / 404 on a bad header).
    # checked against real Airflow 3.3.2 by a one-off probe, not in the parity sequence
    Route("GET", "health", health, auth=False),
    # a TI's lifecycle
    Route("PATCH", _TI + "/run", _ti.ti_run, workload_ok=True, ti_self=True, body=True),
    Route("PATCH", _TI + "/state", _ti.ti_state, ti_self=True, body=True),
    Route("PATCH", _TI + "/skip-downstream", _ti.ti_skip_downstream, ti_self=True, body=True),
    Route("PUT", _TI + "/heartbeat", _ti.ti_heartbeat, ti_self=True, body=True),
    Route("PUT", _TI + "/rtif", _ti.ti_rtif, ti_self=True, body=True),
    Route("PATCH", _TI + "/rendered-map-index", _ti.ti_rendered_map_index, ti_self=True, body=True),
    # task-instance queries
    Route("GET", "task-instances/count", _runs.ti_count),
    Route(
        "GET", r"task-instances/previous/(?P<dag_id>[^/]+)/(?P<task_id>[^/]+)", _runs.ti_previous
    ),
    Route("GET", "task-instances/states", _runs.ti_states),
    Route("GET", "task-instances/breadcrumbs", _runs.ti_breadcrumbs),
    Route("GET", _TI + "/previous-successful-dagrun", _runs.ti_prev_successful, ti_self=True),
    Route("GET", _TI + "/validate-inlets-and-outlets", _runs.ti_validate_assets, ti_self=True),
    Route(
        "GET",
        r"task-reschedules/(?P<task_instance_id>[^/]+)/start_date",
        _runs.reschedule_start,
        ti_self=True,
    ),
    # DAG runs and DAGs
    Route("GET", _RUN, _runs.dag_run_get),
    Route("POST", _RUN, _runs.dag_run_trigger, body=True),
    Route("POST", _RUN + "/clear", _runs.dag_run_clear),
    Route("GET", _RUN + "/state", _runs.dag_run_state),
    Route("GET", "dag-runs/count", _runs.dag_run_count),
    Route("GET", "dag-runs/previous", _runs.dag_run_previous, since=_V2026_04),
    Route("GET", r"dags/(?P<dag_id>[^/]+)", _runs.dag_get, since=_V2026_04),
    # assets and their events
    Route("GET", "assets/by-name", _assets.asset_by_name),
    Route("GET", "assets/by-uri", _assets.asset_by_uri),
    Route("GET", "assets/by-alias", _assets.assets_by_alias, since=_V2026_06),
    Route("GET", "asset-events/by-asset", _assets.asset_events_by_asset),
    Route("GET", "asset-events/by-asset-alias", _assets.asset_events_by_alias),
    # Human in the loop
    Route(
        "POST",
        r"hitlDetails/(?P<task_instance_id>[^/]+)",
        _stores.hitl_create,
        ti_self=True,
        body=True,
    ),
    Route(
        "PATCH",
        r"hitlDetails/(?P<task_instance_id>[^/]+)",
        _stores.hitl_update,
        ti_self=True,
        body=True,
    ),
    Route("GET", r"hitlDetails/(?P<task_instance_id>[^/]+)", _stores.hitl_get, ti_self=True),
    # state stores
    Route("GET", _TI_STORE + "/(?P<key>.*)", _stores.ti_store_get, ti_self=True, since=_V2026_06),
    Route(
        "PUT",
        _TI_STORE + "/(?P<key>.*)",
        _stores.ti_store_put,
        ti_self=True,
        body=True,
        since=_V2026_06,
    ),
    Route(
        "DELETE", _TI_STORE + "/(?P<key>.*)", _stores.ti_store_delete, ti_self=True, since=_V2026_06
    ),
    Route("DELETE", _TI_STORE, _stores.ti_store_clear, ti_self=True, since=_V2026_06),
    Route("GET", _ASSET_STORE + "value)", _assets.asset_store_get, since=_V2026_06),
    Route("PUT", _ASSET_STORE + "value)", _assets.asset_store_put, body=True, since=_V2026_06),
    Route("DELETE", _ASSET_STORE + "value)", _assets.asset_store_delete, since=_V2026_06),
    Route("DELETE", _ASSET_STORE + "clear)", _assets.asset_store_delete, since=_V2026_06),
    # connections, variables, XComs
    Route("GET", r"connections/(?P<connection_id>[^/]+)", _data.get_connection),
    Route("GET", "variables/keys", _data.variable_keys, since=_V2026_06),
    Route("GET", "variables/(?P<variable_key>.*)", _data.get_variable),
    Route("PUT", "variables/(?P<variable_key>.*)", _data.put_variable, body=True),
    Route("DELETE", "variables/(?P<variable_key>.*)", _data.delete_variable),
    Route("GET", _XCOM + r"/item/(?P<offset>[^/]+)", _data.xcom_item),
    Route("GET", _XCOM + "/slice", _data.xcom_slice),
    Route("HEAD", _XCOM, _data.xcom_head),
    Route("GET", _XCOM, _data.xcom_get),
    Route("POST", _XCOM, _data.xcom_set, body=True),
    Route("DELETE", _XCOM, _data.xcom_delete),
)


class _Pattern(NamedTuple):
    """Consecutive routes with one pattern and one ``since``: one regex, a route per method."""

    regex: re.Pattern[str]
    since: str
    methods: dict[str, Route]
    first: str  # the method of the first of them (Allow of a 405)


class RouteTable:
    """``ROUTES`` compiled for matching."""

    def __init__(self, routes: tuple[Route, ...] = ROUTES) -> None:
        by_segment: dict[str, list[_Pattern]] = {}
        for route in routes:
            group = by_segment.setdefault(route.pattern.partition("/")[0], [])
            last = group[-1] if group else None
            if (
                last is not None
                and last.regex.pattern == route.pattern
                and last.since == route.since
            ):
                last.methods.setdefault(route.method, route)
            else:
                group.append(
                    _Pattern(
                        re.compile(route.pattern), route.since, {route.method: route}, route.method
                    )
                )
        self._by_segment = {segment: tuple(group) for segment, group in by_segment.items()}

    def match(self, method: str, rest: str, version: str) -> tuple[Route, dict[str, str]]:
        """The route serving ``method`` on ``rest`` (the path after ``/execution/``) in
        ``version``, and the path parameters; ``HTTPError`` 404 or 405 when there is none."""
        partial: _Pattern | None = None
        for pattern in self._by_segment.get(rest.partition("/")[0], ()):
            if version < pattern.since:
                continue  # Cadwyn: the route does not exist in that version
            match = pattern.regex.fullmatch(rest)
            if match is None:
                continue
            # FastAPI's routes serve only their declared method: no HEAD for a GET route.
            route = pattern.methods.get(method)
            if route is not None:
                return route, match.groupdict()
            partial = partial or pattern
        if partial is not None:
            # FastAPI registers one route per method; Starlette answers 405 from the first one
            # whose path matched, so ``Allow`` names that single method.
            # checked against real Airflow 3.3.2 by a one-off probe, not in the parity sequence
            raise HTTPError(405, "Method Not Allowed", {"allow": partial.first})
        raise HTTPError(404, "Not Found")

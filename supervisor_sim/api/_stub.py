"""An httpx transport that answers like Airflow 3.3's Execution API, from a ``StubStore``.

Supervisor code talks to it through a normal ``httpx.AsyncClient`` (``base_url=
"http://stub.invalid/execution/"``) and cannot tell it from the real server: same paths, status
codes, JSON bodies and headers (execution-api.md §2-§7, real-airflow-peers.md Q2). The order of
checks follows FastAPI + Cadwyn: routing (404/405), request-body JSON decoding (422), auth
(401/403), then validation of the version header, path, query and body together (422), then
the route's own logic.

No web framework: requests are routed by their first path segment and one anchored regex, and
SQLite calls run inline, so a request costs tens of microseconds. The route handlers (``_h_*``)
live in mixins, one module per area: ``_stub_routes_ti`` (a TI's lifecycle), ``_stub_routes_data``
(connections, variables, XComs), ``_stub_routes_runs`` (DAG runs, DAGs, TI queries),
``_stub_routes_assets`` (assets, events, asset state store) and ``_stub_routes_stores`` (task
state store, HITL); request validation is in ``_validation``.
"""

from __future__ import annotations

import functools
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from http import HTTPStatus
from typing import Any, NamedTuple

import httpx
import jwt
import trio

from ._store import StubStore, utcnow
from ._stub_base import _HTTPError, _json, _Request, _Response
from ._stub_routes_assets import AssetRoutes
from ._stub_routes_data import DataRoutes
from ._stub_routes_runs import RunRoutes
from ._stub_routes_stores import StoreRoutes
from ._stub_routes_ti import TaskInstanceRoutes
from ._tokens import TokenIssuer
from ._validation import _MISSING, _Errors

__all__ = ["API_VERSIONS", "Fault", "StubReply", "StubRequest", "StubTransport"]

#: Every Execution API version of Airflow 3.3 (Cadwyn bundle), oldest first.
API_VERSIONS = (
    "2025-04-11",
    "2025-04-28",
    "2025-05-20",
    "2025-08-10",
    "2025-09-23",
    "2025-10-27",
    "2025-11-05",
    "2026-04-06",
    "2026-06-30",
)
LATEST_VERSION = API_VERSIONS[-1]
PREFIX = "/execution/"
#: Well-formed ``Airflow-API-Version`` values seen -> the version Cadwyn routes them to.
_VERSION_PICKS: dict[str, str] = {}


@dataclass
class Fault:
    """An injected failure for requests whose method and path match.

    The path is searched (``re.search``) in the full request path, e.g. ``/heartbeat$``. When it
    matches, first ``delay_s`` passes, then ``raise_exc`` is raised (e.g. ``httpx.ConnectError``)
    or, with ``status``, that response is returned (``body``: JSON-able, or bytes/str sent as
    is; by default ``{"detail": "<reason phrase>"}``). With neither, the request then proceeds
    normally (a pure delay). Each match uses one of ``times``.
    """

    method: str | None
    path_regex: str
    status: int | None = None
    body: Any = None
    times: int = 1
    delay_s: float = 0.0
    raise_exc: type[Exception] | None = None
    content_type: str = "application/json"
    _pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def matches(self, method: str, path: str) -> bool:
        if self.times <= 0 or (self.method is not None and self.method.upper() != method):
            return False
        if self._pattern is None:
            self._pattern = re.compile(self.path_regex)
        return self._pattern.search(path) is not None


class StubRequest:
    """A request as the stub serves it: what an ``httpx.Request`` carries, without the objects.

    Building an ``httpx.Request`` and ``httpx.Response`` costs more than the stub's own work, so
    the in-process client hands these fields straight to ``StubTransport.serve``.
    """

    __slots__ = ("content", "headers", "method", "path", "query")

    def __init__(
        self,
        method: str,
        path: str,
        query: str,
        headers: list[tuple[str, str]],
        content: bytes,
    ) -> None:
        self.method = method
        self.path = path  # decoded, as Starlette routes it
        self.query = query  # encoded
        self.headers = headers  # lower-case names, in the order sent
        self.content = content

    @classmethod
    def of(cls, request: httpx.Request) -> StubRequest:
        return cls(
            request.method,
            request.url.path,
            request.url.query.decode("ascii"),
            request.headers.multi_items(),
            request.content,
        )

    def header(self, name: str) -> str | None:
        """The first value sent for ``name`` (lower case), as Starlette reads a header."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


class StubReply(NamedTuple):
    """The stub's answer: status, lower-case header pairs in order, body."""

    status: int
    headers: list[tuple[str, str]]
    content: bytes


_NO_QUERY = httpx.QueryParams()


@functools.lru_cache(maxsize=256)
def _uuid_or_none(text: str) -> uuid.UUID | None:
    """``text`` parsed as a UUID (remembered: every request repeats the same ids), or None."""
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _to_httpx(reply: StubReply, request: httpx.Request) -> httpx.Response:
    # Raw byte pairs and a ready stream: httpx.Response's own header normalisation and body
    # encoding cost ~4x more than this.
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
    return httpx.Response(
        reply.status, headers=raw, stream=httpx.ByteStream(reply.content), request=request
    )


# -- routing -----------------------------------------------------------------------------------


class _Route(NamedTuple):
    pattern: re.Pattern[str]
    methods: dict[str, str]  # HTTP method -> handler method name, in Airflow's route order
    auth: bool = True
    workload_ok: bool = False  # PATCH /run also accepts workload tokens
    ti_self: bool = False  # the token's sub must be the path's task_instance_id
    body: frozenset[str] = frozenset()  # methods with a JSON body (decoded before auth)
    #: The first API version serving the route (Cadwyn ``endpoint(...).didnt_exist``); older
    #: versions see no such route. Only for routes added after the baseline.
    since: str = "2025-04-11"


def _get(pattern: str, handler: str, **kw: Any) -> _Route:
    return _Route(re.compile(pattern), {"GET": handler}, **kw)


def _ti(suffix: str, method: str, handler: str, **kw: Any) -> _Route:
    return _Route(
        re.compile(rf"task-instances/(?P<task_instance_id>[^/]+)/{suffix}"),
        {method: handler},
        ti_self=True,
        body=frozenset({method}),
        **kw,
    )


_TI_ID = r"task-instances/(?P<task_instance_id>[^/]+)"
_RUN = r"dag-runs/(?P<dag_id>[^/]+)/(?P<run_id>[^/]+)"
_XCOM = r"xcoms/(?P<dag_id>[^/]+)/(?P<run_id>[^/]+)/(?P<task_id>[^/]+)/(?P<key>.*)"
#: First path segment -> routes in Airflow's registration order (first full match wins).
_ROUTES: dict[str, tuple[_Route, ...]] = {
    # Cadwyn versions every route of the app, health included (422 / 404 on a bad header).
    # checked against real Airflow 3.3.2 by a one-off probe, not in the parity sequence
    "health": (_Route(re.compile("health"), {"GET": "health"}, auth=False),),
    "task-instances": (
        _ti("run", "PATCH", "ti_run", workload_ok=True),
        _ti("state", "PATCH", "ti_state"),
        _ti("skip-downstream", "PATCH", "ti_skip_downstream"),
        _ti("heartbeat", "PUT", "ti_heartbeat"),
        _ti("rtif", "PUT", "ti_rtif"),
        _ti("rendered-map-index", "PATCH", "ti_rendered_map_index"),
        _get("task-instances/count", "ti_count"),
        _get(r"task-instances/previous/(?P<dag_id>[^/]+)/(?P<task_id>[^/]+)", "ti_previous"),
        _get("task-instances/states", "ti_states"),
        _get("task-instances/breadcrumbs", "ti_breadcrumbs"),
        _get(_TI_ID + "/previous-successful-dagrun", "ti_prev_successful", ti_self=True),
        _get(_TI_ID + "/validate-inlets-and-outlets", "ti_validate_assets", ti_self=True),
    ),
    "task-reschedules": (
        _get(
            r"task-reschedules/(?P<task_instance_id>[^/]+)/start_date",
            "reschedule_start",
            ti_self=True,
        ),
    ),
    "dag-runs": (
        _Route(
            re.compile(_RUN),
            {"GET": "dag_run_get", "POST": "dag_run_trigger"},
            body=frozenset({"POST"}),
        ),
        _Route(re.compile(_RUN + "/clear"), {"POST": "dag_run_clear"}),
        _get(_RUN + "/state", "dag_run_state"),
        _get("dag-runs/count", "dag_run_count"),
        _get("dag-runs/previous", "dag_run_previous", since="2026-04-06"),
    ),
    "dags": (_get(r"dags/(?P<dag_id>[^/]+)", "dag_get", since="2026-04-06"),),
    "assets": (
        _get("assets/by-name", "asset_by_name"),
        _get("assets/by-uri", "asset_by_uri"),
        _get("assets/by-alias", "assets_by_alias", since="2026-06-30"),
    ),
    "asset-events": (
        _get("asset-events/by-asset", "asset_events_by_asset"),
        _get("asset-events/by-asset-alias", "asset_events_by_alias"),
    ),
    "hitlDetails": (
        _Route(
            re.compile(r"hitlDetails/(?P<task_instance_id>[^/]+)"),
            {"POST": "hitl_create", "PATCH": "hitl_update", "GET": "hitl_get"},
            ti_self=True,
            body=frozenset({"POST", "PATCH"}),
        ),
    ),
    "store": (
        _Route(
            re.compile(r"store/ti/(?P<task_instance_id>[^/]+)/(?P<key>.*)"),
            {"GET": "ti_store_get", "PUT": "ti_store_put", "DELETE": "ti_store_delete"},
            ti_self=True,
            body=frozenset({"PUT"}),
            since="2026-06-30",
        ),
        _Route(
            re.compile(r"store/ti/(?P<task_instance_id>[^/]+)"),
            {"DELETE": "ti_store_clear"},
            ti_self=True,
            since="2026-06-30",
        ),
        _Route(
            re.compile(r"store/asset/by-(?P<by>name|uri)/(?P<op>value)"),
            {"GET": "asset_store_get", "PUT": "asset_store_put", "DELETE": "asset_store_delete"},
            body=frozenset({"PUT"}),
            since="2026-06-30",
        ),
        _Route(
            re.compile(r"store/asset/by-(?P<by>name|uri)/(?P<op>clear)"),
            {"DELETE": "asset_store_delete"},
            since="2026-06-30",
        ),
    ),
    "connections": (
        _Route(re.compile(r"connections/(?P<connection_id>[^/]+)"), {"GET": "get_connection"}),
    ),
    "variables": (
        _Route(re.compile("variables/keys"), {"GET": "variable_keys"}, since="2026-06-30"),
        _Route(
            re.compile("variables/(?P<variable_key>.*)"),
            {"GET": "get_variable", "PUT": "put_variable", "DELETE": "delete_variable"},
            body=frozenset({"PUT"}),
        ),
    ),
    "xcoms": (
        _Route(re.compile(_XCOM + r"/item/(?P<offset>[^/]+)"), {"GET": "xcom_item"}),
        _Route(re.compile(_XCOM + "/slice"), {"GET": "xcom_slice"}),
        _Route(
            re.compile(_XCOM),
            {"HEAD": "xcom_head", "GET": "xcom_get", "POST": "xcom_set", "DELETE": "xcom_delete"},
            body=frozenset({"POST"}),
        ),
    ),
}


class StubTransport(
    TaskInstanceRoutes,
    DataRoutes,
    RunRoutes,
    AssetRoutes,
    StoreRoutes,
    httpx.AsyncBaseTransport,
    httpx.BaseTransport,
):
    """Airflow 3.3's Execution API, answered from a ``StubStore`` inside the process.

    With ``tokens`` every route but health needs a valid bearer JWT, as on a real server; with
    None everything is accepted, like Airflow's ``InProcessExecutionAPI``. ``clock`` returns an
    aware UTC datetime and stands in for the server's "now" (timestamps, token refresh).
    """

    #: Served inside this process: ExecutionAPIClient calls it without AsyncClient.
    in_process = True

    def __init__(
        self,
        store: StubStore,
        *,
        tokens: TokenIssuer | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.clock = clock or utcnow
        self.faults: list[Fault] = []

    # -- entry points ------------------------------------------------------------------------

    def serve(
        self,
        method: str,
        path: str,
        query: str,
        headers: list[tuple[str, str]],
        content: bytes,
    ) -> StubReply:
        """Answer one request without httpx objects: the in-process fast path.

        ``path`` is the decoded path (``/execution/...``), ``query`` the encoded query string,
        ``headers`` lower-case name/value pairs in the order sent. Injected faults are not
        applied here: a client with faults pending goes through ``handle_async_request``.
        """
        return self._serve(StubRequest(method, path, query, headers, content))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        fault = self._take_fault(request)
        if fault is not None:
            if fault.delay_s:
                time.sleep(fault.delay_s)
            injected = self._apply_fault(fault, request)
            if injected is not None:
                return injected
        return _to_httpx(self._serve(StubRequest.of(request)), request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        fault = self._take_fault(request)
        if fault is not None:
            if fault.delay_s:
                await trio.sleep(fault.delay_s)
            injected = self._apply_fault(fault, request)
            if injected is not None:
                return injected
        return _to_httpx(self._serve(StubRequest.of(request)), request)

    def _take_fault(self, request: httpx.Request) -> Fault | None:
        for fault in self.faults:
            if fault.matches(request.method, request.url.path):
                fault.times -= 1
                return fault
        return None

    def _apply_fault(self, fault: Fault, request: httpx.Request) -> httpx.Response | None:
        if fault.raise_exc is not None:
            try:
                exc = fault.raise_exc("injected fault", request=request)  # type: ignore[call-arg]
            except TypeError:
                exc = fault.raise_exc("injected fault")
            raise exc
        if fault.status is None:
            return None
        body = fault.body
        if body is None:
            body = {"detail": HTTPStatus(fault.status).phrase}
        if isinstance(body, str):
            body = body.encode()
        content = body if isinstance(body, bytes) else _json(fault.status, body).content
        response = _Response(fault.status, content, fault.content_type)
        lean = StubRequest.of(request)
        return _to_httpx(self._finish(lean, response, self._claims(lean)), request)

    # -- the core ----------------------------------------------------------------------------

    def _serve(self, request: StubRequest) -> StubReply:
        version, version_error = self._version(request)
        claims = self._claims(request)
        try:
            response = self._dispatch(request, version, version_error, claims)
        except _HTTPError as exc:
            response = _json(exc.status, {"detail": exc.detail}, exc.headers)
        return self._finish(request, response, claims)

    def _claims(self, request: StubRequest) -> dict[str, Any] | None:
        """The claims of the request's bearer token, or None (no tokens, none sent, invalid)."""
        scheme, _, credentials = (request.header("authorization") or "").partition(" ")
        if self.tokens is None or scheme.lower() != "bearer" or not credentials.strip():
            return None
        try:
            return self.tokens.validate(credentials.strip())
        except jwt.InvalidTokenError:
            return None

    def _dispatch(
        self,
        request: StubRequest,
        version: str | None,
        version_error: _Errors,
        claims: dict[str, Any] | None,
    ) -> _Response:
        if version is None:
            # Cadwyn: a version older than the first one has no routes at all, so even a known
            # path with the wrong method is 404, not 405.
            # checked against real Airflow 3.3.2 by a one-off probe, not in the parity sequence
            raise _HTTPError(404, "Not Found")
        route, params, handler_name = self._route(request.method, request.path, version)
        body = self._decode_body(request) if request.method in route.body else _MISSING
        if body is None:
            # FastAPI takes a JSON null for a required body as no body: 422 ``missing`` on
            # ["body"]. (The one body with a default, an XCom's value, treats both as null.)
            # checked against real Airflow 3.3.2 by a one-off probe, not in the parity sequence
            body = _MISSING
        claims = self._authenticate(request, route, params, claims)
        errors = _Errors(version_error)
        query = httpx.QueryParams(request.query) if request.query else _NO_QUERY
        req = _Request(request.method, params, query, body, claims, self.clock(), errors)
        return getattr(self, "_h_" + handler_name)(req)

    def _route(
        self, method: str, path: str, version: str | None = LATEST_VERSION
    ) -> tuple[_Route, dict[str, str], str]:
        if not path.startswith(PREFIX):
            raise _HTTPError(404, "Not Found")
        rest = path[len(PREFIX) :]
        partial: _Route | None = None
        for route in _ROUTES.get(rest.partition("/")[0], ()):
            if version is not None and version < route.since:
                continue  # Cadwyn: the route does not exist in that version
            match = route.pattern.fullmatch(rest)
            if match is None:
                continue
            # FastAPI's routes serve only their declared method: no HEAD for a GET route.
            handler = route.methods.get(method)
            if handler is not None:
                return route, match.groupdict(), handler
            partial = partial or route
        if partial is not None:
            # FastAPI registers one route per method; Starlette answers 405 from the first one
            # whose path matched, so ``Allow`` names that single method (``methods`` keeps
            # Airflow's registration order).
            # checked against real Airflow 3.3.2 by a one-off probe, not in the parity sequence
            allow = next(iter(partial.methods))
            raise _HTTPError(405, "Method Not Allowed", {"allow": allow})
        raise _HTTPError(404, "Not Found")

    @staticmethod
    def _version_header(request: StubRequest) -> str | None:
        """The request's ``Airflow-API-Version`` as Starlette reads it: the first one sent."""
        return request.header("airflow-api-version")

    @classmethod
    def _version(cls, request: StubRequest) -> tuple[str | None, _Errors]:
        """Cadwyn's version pick: the closest version not newer than the requested date."""
        errors = _Errors()
        raw = cls._version_header(request)
        if raw is None:
            return LATEST_VERSION, errors
        picked = _VERSION_PICKS.get(raw)
        if picked is not None:
            return picked, errors
        try:
            valid = bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw)) and date.fromisoformat(raw)
        except ValueError:
            valid = False
        if not valid:
            # shape verified against real Airflow in the differential test tier (issue 6)
            reason = "input is too short" if len(raw) < 10 else "invalid date format"
            errors.add(
                "date_from_datetime_parsing",
                ("header", "Airflow-API-Version"),  # FastAPI names the declared alias
                f"Input should be a valid date or datetime, {reason}",
                raw,
                {"error": reason},
            )
        matched = None
        for known in API_VERSIONS:  # text order is date order for YYYY-MM-DD
            if known <= raw:
                matched = known
        if valid and matched is not None and len(_VERSION_PICKS) < 64:
            _VERSION_PICKS[raw] = matched  # every request sends the same header
        return matched, errors

    @staticmethod
    def _decode_body(request: StubRequest) -> Any:
        raw = request.content
        if not raw:
            return _MISSING
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            pos = getattr(exc, "pos", 0)
            msg = getattr(exc, "msg", str(exc))
            raise _HTTPError(
                422,
                [
                    {
                        "type": "json_invalid",
                        "loc": ["body", pos],
                        "msg": "JSON decode error",
                        "input": {},
                        "ctx": {"error": msg},
                    }
                ],
            ) from None

    def _authenticate(
        self,
        request: StubRequest,
        route: _Route,
        params: dict[str, str],
        claims: dict[str, Any] | None,
    ) -> dict[str, Any] | None:
        if self.tokens is None or not route.auth:
            return None
        scheme, _, credentials = (request.header("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise _HTTPError(401, "Missing auth token")
        if claims is None:
            raise _HTTPError(403, "Invalid auth token")
        scope = claims.get("scope", "execution")
        subject = _uuid_or_none(str(claims.get("sub")))
        if subject is None:
            # shape verified against real Airflow in the differential test tier (issue 6)
            raise _HTTPError(403, "Invalid auth token: sub is not a valid UUID")
        allowed = ("execution", "workload") if route.workload_ok else ("execution",)
        if scope not in allowed:
            raise _HTTPError(
                403,
                f"Token type '{scope}' not allowed for this endpoint. "
                f"Allowed types: {', '.join(allowed)}",
            )
        if route.ti_self and _uuid_or_none(params["task_instance_id"]) != subject:
            raise _HTTPError(403, "Token subject does not match task instance ID")
        return claims

    def _finish(
        self,
        request: StubRequest,
        response: _Response,
        claims: dict[str, Any] | None,
    ) -> StubReply:
        pairs: list[tuple[str, str]] = []
        if response.content_type is not None:
            pairs.append(("content-type", response.content_type))
        extra = response.headers
        if extra:
            pairs += [(k.lower(), v) for k, v in extra.items()]
        # Cadwyn's middleware echoes the header exactly as sent (a future date, a date before
        # the first version, even text that fails validation), not the version it routed to;
        # without one it sends its default, the latest version.
        # shape verified against real Airflow in the differential test tier (issue 6)
        sent = self._version_header(request)
        pairs.append(("airflow-api-version", LATEST_VERSION if sent is None else sent))
        correlation = request.header("correlation-id")
        if correlation is not None:
            pairs.append(("correlation-id", correlation))
        refreshed = self._sliding_refresh(claims)
        if refreshed is not None and not (extra and "Refreshed-API-Token" in extra):
            pairs.append(("refreshed-api-token", refreshed))
        # The server sends no body on any HEAD response, errors included (only the headers).
        # shape verified against real Airflow in the differential test tier (issue 6)
        content = b"" if request.method == "HEAD" else response.content
        if content:  # as httpx does: no Content-Length for an empty body
            pairs.append(("content-length", str(len(content))))
        return StubReply(response.status, pairs, content)

    def _sliding_refresh(self, claims: dict[str, Any] | None) -> str | None:
        """Airflow's ``JWTReissueMiddleware``: renew a valid execution token close to expiry."""
        if self.tokens is None or claims is None or claims.get("scope") == "workload":
            return None
        if not self.tokens.needs_refresh(claims, self.clock().timestamp()):
            return None
        return self.tokens.reissue(claims)

    # -- handlers: health --------------------------------------------------------------------

    def _h_health(self, req: _Request) -> _Response:
        req.validated()  # only the version header can be wrong
        return _json(200, {"status": "healthy"})

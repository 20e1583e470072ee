"""An httpx transport that answers like Airflow 3.3's Execution API, from a ``StubStore``.

Supervisor code talks to it through a normal ``httpx.AsyncClient`` (``base_url=
"http://stub.invalid/execution/"``) and cannot tell it from the real server: same paths, status
codes, JSON bodies and headers (execution-api.md §2-§7, real-airflow-peers.md Q2). The order of
checks follows FastAPI + Cadwyn: routing (404/405), request-body JSON decoding (422), auth
(401/403), then validation of the version header, path, query and body together (422), then
the route's own logic.

No web framework: requests are routed by their first path segment and one anchored regex, and
SQLite calls run inline, so a request costs tens of microseconds.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http import HTTPStatus
from typing import Any, NamedTuple

import httpx
import jwt
import trio

from ._store import StubStore, api_time, db_time, utcnow
from ._tokens import TokenIssuer

__all__ = ["API_VERSIONS", "Fault", "StubTransport"]

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
MAX_MAP_LENGTH = 1024  # [core] max_map_length
PREFIX = "/execution/"

_MISSING: Any = object()  # no request body at all
_BAD: Any = object()  # a value that failed validation (its error is already recorded)


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


class _HTTPError(Exception):
    """Raised by handlers: becomes ``{"detail": detail}`` with this status."""

    def __init__(self, status: int, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


class _Response(NamedTuple):
    status: int
    content: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] | None = None


def _json(status: int, obj: Any, headers: dict[str, str] | None = None) -> _Response:
    # FastAPI's JSONResponse rendering, byte for byte.
    body = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return _Response(status, body.encode(), "application/json", headers)


def _not_found_ti() -> _HTTPError:
    return _HTTPError(404, {"reason": "not_found", "message": "Task Instance not found"})


def _gone_ti() -> _HTTPError:
    return _HTTPError(
        410,
        {
            "reason": "not_found",
            "message": "Task Instance not found, it may have been moved to the Task Instance "
            "History table",
        },
    )


# -- validation, shaped like pydantic v2 errors as FastAPI returns them ------------------------


class _Errors(list[dict[str, Any]]):
    def add(self, type_: str, loc: tuple[Any, ...], msg: str, value: Any, ctx: Any = None) -> Any:
        error: dict[str, Any] = {"type": type_, "loc": list(loc), "msg": msg, "input": value}
        if ctx is not None:
            error["ctx"] = ctx
        self.append(error)
        return _BAD


Check = Callable[[Any, tuple[Any, ...], _Errors], Any]


def _str(nullable: bool = False, min_length: int = 0) -> Check:
    def check(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
        if v is None and nullable:
            return None
        if not isinstance(v, str):
            return errs.add("string_type", loc, "Input should be a valid string", v)
        if len(v) < min_length:
            return errs.add(
                "string_too_short",
                loc,
                f"String should have at least {min_length} character",
                v,
                {"min_length": min_length},
            )
        return v

    return check


def _int(nullable: bool = False) -> Check:
    def check(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
        if v is None and nullable:
            return None
        if isinstance(v, bool):
            return errs.add("int_type", loc, "Input should be a valid integer", v)
        if isinstance(v, int):
            return v
        if isinstance(v, float):
            if v.is_integer():
                return int(v)
            return errs.add(
                "int_from_float",
                loc,
                "Input should be a valid integer, got a number with a fractional part",
                v,
            )
        if isinstance(v, str):
            if re.fullmatch(r"\s*[+-]?\d+\s*", v):
                return int(v)
            return errs.add(
                "int_parsing",
                loc,
                "Input should be a valid integer, unable to parse string as an integer",
                v,
            )
        return errs.add("int_type", loc, "Input should be a valid integer", v)

    return check


def _float(nullable: bool = False) -> Check:
    def check(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
        if v is None and nullable:
            return None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                return errs.add(
                    "float_parsing",
                    loc,
                    "Input should be a valid number, unable to parse string as a number",
                    v,
                )
        return errs.add("float_type", loc, "Input should be a valid number", v)

    return check


def _bool_query(v: str, loc: tuple[Any, ...], errs: _Errors) -> Any:
    lowered = v.strip().lower()
    if lowered in ("1", "on", "t", "true", "y", "yes"):
        return True
    if lowered in ("0", "off", "f", "false", "n", "no"):
        return False
    return errs.add(
        "bool_parsing", loc, "Input should be a valid boolean, unable to interpret input", v
    )


def _datetime(nullable: bool = False) -> Check:
    """Airflow's ``UtcDateTime``: an aware datetime (ISO 8601 text or epoch number) -> UTC."""

    def check(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
        if v is None and nullable:
            return None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return datetime.fromtimestamp(v, UTC)
        if not isinstance(v, str):
            return errs.add("datetime_type", loc, "Input should be a valid datetime", v)
        try:
            parsed = datetime.fromisoformat(v)
        except ValueError:
            # shape verified against real Airflow in the differential test tier (issue 6)
            reason = "input is too short" if len(v) < 10 else "invalid datetime format"
            return errs.add(
                "datetime_from_date_parsing",
                loc,
                f"Input should be a valid datetime or date, {reason}",
                v,
                {"error": reason},
            )
        if parsed.tzinfo is None:
            return errs.add("timezone_aware", loc, "Input should have timezone info", v)
        return parsed.astimezone(UTC)

    return check


_DURATION = re.compile(r"[-+]?P(?!$)(\d+(\.\d+)?[YMWD])*(T(?!$)(\d+(\.\d+)?[HMS])*)?")


def _duration(nullable: bool = False) -> Check:
    """A timedelta: seconds as a number, or ISO 8601 text (``PT30S``) as the SDK sends it."""

    def check(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
        if v is None and nullable:
            return None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return v
        if isinstance(v, str) and (_DURATION.fullmatch(v) or re.fullmatch(r"[-+]?\d+(\.\d+)?", v)):
            return v
        if isinstance(v, str):
            return errs.add(
                "time_delta_parsing",
                loc,
                "Input should be a valid timedelta, invalid duration format",
                v,
                {"error": "invalid duration format"},
            )
        return errs.add("time_delta_type", loc, "Input should be a valid timedelta", v)

    return check


def _expected(values: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _literal(*values: str) -> Check:
    def check(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
        if v in values and isinstance(v, str):
            return v
        expected = _expected(values)
        return errs.add(
            "literal_error", loc, f"Input should be {expected}", v, {"expected": expected}
        )

    return check


def _enum(*values: str) -> Check:
    def check(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
        if v in values and isinstance(v, str):
            return v
        expected = _expected(values)
        return errs.add("enum", loc, f"Input should be {expected}", v, {"expected": expected})

    return check


def _dict(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
    if isinstance(v, dict):
        return v
    return errs.add("dict_type", loc, "Input should be a valid dictionary", v)


def _opt_dict(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
    return None if v is None else _dict(v, loc, errs)


def _dict_or_str(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
    # ``dict | str`` (plain or encrypted kwargs); None accepted as the SDK may send null.
    # shape verified against real Airflow in the differential test tier (issue 6)
    if v is None or isinstance(v, (dict, str)):
        return v
    return errs.add("dict_type", loc, "Input should be a valid dictionary", v)


def _list_of_dicts(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
    # The SDK may send null for an empty list (``model_dump_json`` keeps None keys).
    if v is None:
        return []
    if not isinstance(v, list):
        return errs.add("list_type", loc, "Input should be a valid list", v)
    bad = [_dict(item, (*loc, i), errs) is _BAD for i, item in enumerate(v)]
    return _BAD if any(bad) else v


def _any(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
    return v


def _skip_tasks(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
    """``list[str | tuple[str, int]]``: bare task ids or ``[task_id, map_index]`` pairs."""
    if not isinstance(v, list):
        return errs.add("list_type", loc, "Input should be a valid list", v)
    out: list[tuple[str, int]] = []
    for i, item in enumerate(v):
        if isinstance(item, str):
            out.append((item, -1))
        elif (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], int)
            and not isinstance(item[1], bool)
        ):
            out.append((item[0], item[1]))
        else:
            # pydantic reports one error per union member.
            # shape verified against real Airflow in the differential test tier (issue 6)
            errs.add("string_type", (*loc, i, "str"), "Input should be a valid string", item)
            errs.add(
                "tuple_type", (*loc, i, "tuple[str,int]"), "Input should be a valid tuple", item
            )
    return out


class _Field(NamedTuple):
    name: str
    check: Check
    required: bool = False


def _model(
    body: Any, fields: tuple[_Field, ...], loc: tuple[Any, ...], errs: _Errors
) -> dict[str, Any]:
    """Validate a JSON object against a StrictBaseModel (extra keys forbidden).

    Returns only the keys present and valid, so ``"k" in result`` mirrors pydantic's
    ``exclude_unset``.
    """
    if body is _MISSING:
        errs.add("missing", loc, "Field required", None)
        return {}
    if not isinstance(body, dict):
        errs.add(
            "model_attributes_type",
            loc,
            "Input should be a valid dictionary or object to extract fields from",
            body,
        )
        return {}
    out: dict[str, Any] = {}
    names = set()
    for f in fields:
        names.add(f.name)
        if f.name not in body:
            if f.required:
                errs.add("missing", (*loc, f.name), "Field required", body)
            continue
        value = f.check(body[f.name], (*loc, f.name), errs)
        if value is not _BAD:
            out[f.name] = value
    for key, value in body.items():
        if key not in names:
            errs.add("extra_forbidden", (*loc, key), "Extra inputs are not permitted", value)
    return out


_RUN_FIELDS = (
    _Field("state", _literal("running"), True),
    _Field("hostname", _str(), True),
    _Field("unixname", _str(), True),
    _Field("pid", _int(), True),
    _Field("start_date", _datetime(), True),
)
_HEARTBEAT_FIELDS = (_Field("hostname", _str(), True), _Field("pid", _int(), True))
_SKIP_FIELDS = (_Field("tasks", _skip_tasks, True),)
_VARIABLE_FIELDS = (_Field("val", _str(nullable=True), True), _Field("description", _str(True)))

_TERMINAL = ("failed", "skipped", "removed", "upstream_failed")
_INTERMEDIATE = (
    "scheduled",
    "queued",
    "restarting",
    "up_for_retry",
    "up_for_reschedule",
    "deferred",
    "awaiting_input",
)
_RMI = _Field("rendered_map_index", _str(nullable=True))
#: The ``TIStateUpdate`` discriminated union: tag -> payload model.
_STATE_PAYLOADS: dict[str, tuple[_Field, ...]] = {
    "success": (
        _Field("state", _literal("success"), True),
        _Field("end_date", _datetime(), True),
        _Field("task_outlets", _list_of_dicts),
        _Field("outlet_events", _list_of_dicts),
        _RMI,
    ),
    "_terminal_": (
        _Field("state", _enum(*_TERMINAL), True),
        _Field("end_date", _datetime(), True),
        _RMI,
    ),
    "up_for_retry": (
        _Field("state", _literal("up_for_retry"), True),
        _Field("end_date", _datetime(), True),
        _RMI,
        _Field("retry_delay_seconds", _float(nullable=True)),
        _Field("retry_reason", _str(nullable=True)),
    ),
    "deferred": (
        _Field("state", _literal("deferred"), True),
        _Field("classpath", _str(), True),
        _Field("trigger_kwargs", _dict_or_str),
        _Field("trigger_timeout", _duration(nullable=True)),
        _Field("queue", _str(nullable=True)),
        _Field("next_method", _str(), True),
        _Field("next_kwargs", _dict_or_str),
        _RMI,
    ),
    "up_for_reschedule": (
        _Field("state", _literal("up_for_reschedule"), True),
        _Field("reschedule_date", _datetime(), True),
        _Field("end_date", _datetime(), True),
    ),
    "awaiting_input": (
        _Field("state", _literal("awaiting_input"), True),
        _Field("timeout", _duration(nullable=True)),
        _Field("next_method", _str(), True),
        _Field("next_kwargs", _opt_dict),
        _RMI,
    ),
    "_other_": (_Field("state", _enum(*_INTERMEDIATE), True),),
}


def _state_tag(body: Any) -> str:
    """Airflow's ``ti_state_discriminator``."""
    state = body.get("state") if isinstance(body, dict) else None
    if state == "success":
        return "success"
    if state in _TERMINAL:
        return "_terminal_"
    if state in ("deferred", "up_for_reschedule", "up_for_retry", "awaiting_input"):
        return state
    return "_other_"


# -- routing -----------------------------------------------------------------------------------


class _Route(NamedTuple):
    pattern: re.Pattern[str]
    methods: dict[str, str]  # HTTP method -> handler method name
    auth: bool = True
    workload_ok: bool = False  # PATCH /run also accepts workload tokens
    ti_self: bool = False  # the token's sub must be the path's task_instance_id
    body: frozenset[str] = frozenset()  # methods with a JSON body (decoded before auth)
    versioned: bool = True


def _ti(suffix: str, method: str, handler: str, **kw: Any) -> _Route:
    return _Route(
        re.compile(rf"task-instances/(?P<task_instance_id>[^/]+)/{suffix}"),
        {method: handler},
        ti_self=True,
        body=frozenset({method}),
        **kw,
    )


_XCOM = r"xcoms/(?P<dag_id>[^/]+)/(?P<run_id>[^/]+)/(?P<task_id>[^/]+)/(?P<key>.*)"
#: First path segment -> routes in Airflow's registration order (first full match wins).
_ROUTES: dict[str, tuple[_Route, ...]] = {
    "health": (_Route(re.compile("health"), {"GET": "health"}, auth=False, versioned=False),),
    "task-instances": (
        _ti("run", "PATCH", "ti_run", workload_ok=True),
        _ti("state", "PATCH", "ti_state"),
        _ti("skip-downstream", "PATCH", "ti_skip_downstream"),
        _ti("heartbeat", "PUT", "ti_heartbeat"),
        _ti("rtif", "PUT", "ti_rtif"),
        _ti("rendered-map-index", "PATCH", "ti_rendered_map_index"),
    ),
    "connections": (
        _Route(re.compile(r"connections/(?P<connection_id>[^/]+)"), {"GET": "get_connection"}),
    ),
    "variables": (
        _Route(re.compile("variables/keys"), {"GET": "variable_keys"}),
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


@dataclass
class _Request:
    """One request, as the handlers see it."""

    method: str
    params: dict[str, str]
    query: httpx.QueryParams
    body: Any
    claims: dict[str, Any] | None
    now: datetime
    errors: _Errors

    def query_value(self, name: str) -> str | None:
        # Starlette (so FastAPI) takes the last of repeated scalar query parameters.
        values = self.query.get_list(name)
        return values[-1] if values else None

    def q_int(self, name: str, default: int | None) -> int | None:
        raw = self.query_value(name)
        if raw is None:
            return default
        value = _int()(raw, ("query", name), self.errors)
        return None if value is _BAD else value

    def q_bool(self, name: str) -> bool:
        raw = self.query_value(name)
        return raw is not None and _bool_query(raw, ("query", name), self.errors) is True

    def ti_id(self) -> str:
        raw = self.params["task_instance_id"]
        try:
            return str(uuid.UUID(raw))
        except ValueError:
            # shape verified against real Airflow in the differential test tier (issue 6)
            self.errors.add(
                "uuid_parsing",
                ("path", "task_instance_id"),
                "Input should be a valid UUID, invalid group count: expected 5 groups",
                raw,
                {"error": "invalid group count: expected 5 groups"},
            )
            return raw

    def path_str(self, name: str) -> str:
        return _str(min_length=1)(self.params[name], ("path", name), self.errors)

    def validated(self) -> None:
        if self.errors:
            raise _HTTPError(422, list(self.errors))


class StubTransport(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """Airflow 3.3's Execution API, answered from a ``StubStore`` inside the process.

    With ``tokens`` every route but health needs a valid bearer JWT, as on a real server; with
    None everything is accepted, like Airflow's ``InProcessExecutionAPI``. ``clock`` returns an
    aware UTC datetime and stands in for the server's "now" (timestamps, token refresh).
    """

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

    # -- httpx entry points ------------------------------------------------------------------

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        fault = self._take_fault(request)
        if fault is not None:
            if fault.delay_s:
                time.sleep(fault.delay_s)
            injected = self._apply_fault(fault, request)
            if injected is not None:
                return injected
        return self._serve(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        fault = self._take_fault(request)
        if fault is not None:
            if fault.delay_s:
                await trio.sleep(fault.delay_s)
            injected = self._apply_fault(fault, request)
            if injected is not None:
                return injected
        return self._serve(request)

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
        return self._finish(request, response, self._version(request)[0], self._claims(request))

    # -- the core ----------------------------------------------------------------------------

    def _serve(self, request: httpx.Request) -> httpx.Response:
        version, version_error = self._version(request)
        claims = self._claims(request)
        try:
            response = self._dispatch(request, version, version_error, claims)
        except _HTTPError as exc:
            response = _json(exc.status, {"detail": exc.detail}, exc.headers)
        return self._finish(request, response, version, claims)

    def _claims(self, request: httpx.Request) -> dict[str, Any] | None:
        """The claims of the request's bearer token, or None (no tokens, none sent, invalid)."""
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if self.tokens is None or scheme.lower() != "bearer" or not credentials.strip():
            return None
        try:
            return self.tokens.validate(credentials.strip())
        except jwt.InvalidTokenError:
            return None

    def _dispatch(
        self,
        request: httpx.Request,
        version: str | None,
        version_error: _Errors,
        claims: dict[str, Any] | None,
    ) -> _Response:
        route, params, handler_name = self._route(request.method, request.url.path)
        if route.versioned and version is None:
            # Cadwyn: a version older than the first one matches no route at all.
            raise _HTTPError(404, "Not Found")
        body = self._decode_body(request) if request.method in route.body else _MISSING
        claims = self._authenticate(request, route, params, claims)
        errors = _Errors(version_error if route.versioned else ())
        req = _Request(
            request.method, params, request.url.params, body, claims, self.clock(), errors
        )
        head_via_get = request.method == "HEAD" and "HEAD" not in route.methods
        response = getattr(self, "_h_" + handler_name)(req)
        if head_via_get:
            response = response._replace(content=b"")
        return response

    def _route(self, method: str, path: str) -> tuple[_Route, dict[str, str], str]:
        if not path.startswith(PREFIX):
            raise _HTTPError(404, "Not Found")
        rest = path[len(PREFIX) :]
        partial: _Route | None = None
        for route in _ROUTES.get(rest.partition("/")[0], ()):
            match = route.pattern.fullmatch(rest)
            if match is None:
                continue
            handler = route.methods.get(method)
            if handler is None and method == "HEAD":
                handler = route.methods.get("GET")  # Starlette serves HEAD on GET routes
            if handler is not None:
                return route, match.groupdict(), handler
            partial = partial or route
        if partial is not None:
            allow = set(partial.methods) | ({"HEAD"} if "GET" in partial.methods else set())
            raise _HTTPError(405, "Method Not Allowed", {"allow": ", ".join(sorted(allow))})
        raise _HTTPError(404, "Not Found")

    @staticmethod
    def _version(request: httpx.Request) -> tuple[str | None, _Errors]:
        """Cadwyn's version pick: the closest version not newer than the requested date."""
        errors = _Errors()
        raw = request.headers.get("airflow-api-version")
        if raw is None:
            return LATEST_VERSION, errors
        try:
            valid = bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw)) and date.fromisoformat(raw)
        except ValueError:
            valid = False
        if not valid:
            # shape verified against real Airflow in the differential test tier (issue 6)
            reason = "input is too short" if len(raw) < 10 else "invalid date format"
            errors.add(
                "date_from_datetime_parsing",
                ("header", "airflow-api-version"),
                f"Input should be a valid date or datetime, {reason}",
                raw,
                {"error": reason},
            )
        matched = None
        for known in API_VERSIONS:  # text order is date order for YYYY-MM-DD
            if known <= raw:
                matched = known
        return matched, errors

    @staticmethod
    def _decode_body(request: httpx.Request) -> Any:
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
        request: httpx.Request,
        route: _Route,
        params: dict[str, str],
        claims: dict[str, Any] | None,
    ) -> dict[str, Any] | None:
        if self.tokens is None or not route.auth:
            return None
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise _HTTPError(401, "Missing auth token")
        if claims is None:
            raise _HTTPError(403, "Invalid auth token")
        scope = claims.get("scope", "execution")
        try:
            subject = uuid.UUID(str(claims.get("sub")))
        except ValueError:
            # shape verified against real Airflow in the differential test tier (issue 6)
            raise _HTTPError(403, "Invalid auth token: sub is not a valid UUID") from None
        allowed = ("execution", "workload") if route.workload_ok else ("execution",)
        if scope not in allowed:
            raise _HTTPError(
                403,
                f"Token type '{scope}' not allowed for this endpoint. "
                f"Allowed types: {', '.join(allowed)}",
            )
        if route.ti_self:
            try:
                same = uuid.UUID(params["task_instance_id"]) == subject
            except ValueError:
                same = False
            if not same:
                raise _HTTPError(403, "Token subject does not match task instance ID")
        return claims

    def _finish(
        self,
        request: httpx.Request,
        response: _Response,
        version: str | None,
        claims: dict[str, Any] | None,
    ) -> httpx.Response:
        headers: dict[str, str] = {}
        if response.content_type is not None:
            headers["content-type"] = response.content_type
        if response.headers:
            headers.update(response.headers)
        if version is not None:
            headers["airflow-api-version"] = version
        correlation = request.headers.get("correlation-id")
        if correlation is not None:
            headers["correlation-id"] = correlation
        refreshed = self._sliding_refresh(claims)
        if refreshed is not None and "Refreshed-API-Token" not in headers:
            headers["Refreshed-API-Token"] = refreshed
        return httpx.Response(
            response.status, headers=headers, content=response.content, request=request
        )

    def _sliding_refresh(self, claims: dict[str, Any] | None) -> str | None:
        """Airflow's ``JWTReissueMiddleware``: renew a valid execution token close to expiry."""
        if self.tokens is None or claims is None or claims.get("scope") == "workload":
            return None
        if not self.tokens.needs_refresh(claims, self.clock().timestamp()):
            return None
        return self.tokens.reissue(claims)

    # -- handlers: health --------------------------------------------------------------------

    def _h_health(self, req: _Request) -> _Response:
        return _json(200, {"status": "healthy"})

    # -- handlers: task instances ------------------------------------------------------------

    def _h_ti_run(self, req: _Request) -> _Response:
        ti_id = req.ti_id()
        body = _model(req.body, _RUN_FIELDS, ("body",), req.errors)
        req.validated()
        ti = self.store.get_ti(ti_id)
        run = ti and self.store.get_dag_run(ti["dag_id"], ti["run_id"])
        if ti is None or run is None:
            raise _not_found_ti()
        previous = ti["state"]
        here = (body["hostname"], body["unixname"], body["pid"])
        duplicate = previous == "running" and (ti["hostname"], ti["unixname"], ti["pid"]) == here
        if not duplicate and previous not in ("queued", "restarting"):
            raise _HTTPError(
                409,
                {
                    "reason": "invalid_state",
                    "message": "TI was not in a state where it could be marked as running",
                    "previous_state": previous,
                },
            )
        resuming = bool(ti["next_kwargs"])
        columns: dict[str, Any] = {
            "state": "running",
            "hostname": body["hostname"],
            "unixname": body["unixname"],
            "pid": body["pid"],
            "end_date": None,
            "last_heartbeat_at": db_time(req.now),
            "retry_delay_seconds": None,
            "retry_reason": None,
        }
        if not resuming:  # a task resuming from deferral keeps its original start date
            columns["start_date"] = db_time(body["start_date"])
        self.store.update_ti(ti_id, **columns)
        context: dict[str, Any] = {
            "dag_run": _dag_run_body(run),
            "task_reschedule_count": self.store.count_reschedules(ti_id),
            "max_tries": ti["max_tries"],
            "variables": [],
            "connections": [],
        }
        if ti["next_method"]:
            context["next_method"] = ti["next_method"]
            context["next_kwargs"] = _loads(ti["next_kwargs"])
            context["xcom_keys_to_clear"] = []  # XComs are kept across a deferral
        else:
            context["xcom_keys_to_clear"] = self.store.xcom_keys_for(
                ti["dag_id"], ti["run_id"], ti["task_id"], ti["map_index"]
            )
        context["should_retry"] = previous == "restarting" or (
            ti["max_tries"] != 0 and ti["try_number"] <= ti["max_tries"]
        )
        if ti["next_method"]:
            context["start_date"] = api_time(ti["start_date"])
        headers = {}
        if req.claims is not None and req.claims.get("scope") == "workload" and self.tokens:
            # The workload -> execution exchange (the middleware never refreshes workload).
            headers["Refreshed-API-Token"] = self.tokens.issue(ti_id, scope="execution")
        return _json(200, context, headers)

    def _h_ti_state(self, req: _Request) -> _Response:
        ti_id = req.ti_id()
        tag = _state_tag(req.body)
        body = _model(req.body, _STATE_PAYLOADS[tag], ("body", tag), req.errors)
        req.validated()
        if tag == "success":
            _check_partition_keys(body.get("outlet_events") or [])
        ti = self.store.get_ti(ti_id)
        if ti is None:
            raise _not_found_ti()
        if body["state"] == ti["state"]:
            return _Response(200)  # a duplicate update: an empty 200, no content type
        if ti["state"] != "running":
            raise _HTTPError(
                409,
                {
                    "reason": "invalid_state",
                    "message": "TI was not in the running state so it cannot be updated",
                    "previous_state": ti["state"],
                },
            )
        self._apply_state(ti, tag, body, req.now)
        return _Response(204)

    def _apply_state(
        self, ti: dict[str, Any], tag: str, body: dict[str, Any], now: datetime
    ) -> None:
        ti_id = ti["id"]
        end = db_time(body["end_date"]) if "end_date" in body else None
        # Terminal states and retries clear the deferral fields, as Airflow's update does.
        finished = {
            "state": body["state"],
            "end_date": end,
            "next_method": None,
            "next_kwargs": None,
        }
        if "rendered_map_index" in body:
            finished["rendered_map_index"] = body["rendered_map_index"]
        if tag in ("success", "_terminal_"):
            self.store.update_ti(ti_id, **finished)
        elif tag == "up_for_retry":
            reason = body.get("retry_reason")
            self.store.retry_ti(
                ti_id,
                **finished,
                retry_delay_seconds=body.get("retry_delay_seconds"),
                retry_reason=reason[:500] if reason else None,
            )
        elif tag == "deferred":
            self.store.update_ti(
                ti_id,
                state="deferred",
                next_method=body["next_method"],
                next_kwargs=json.dumps(body.get("next_kwargs", {}), separators=(",", ":")),
                trigger_classpath=body["classpath"],
                trigger_kwargs=json.dumps(body.get("trigger_kwargs", {}), separators=(",", ":")),
                trigger_timeout=_opt_text(body.get("trigger_timeout")),
            )
        elif tag == "up_for_reschedule":
            self.store.reschedule_ti(
                ti_id,
                try_number=ti["try_number"],
                start=now,
                end=end or db_time(now),
                reschedule=db_time(body["reschedule_date"]),
            )
        elif tag == "awaiting_input":
            kwargs = body.get("next_kwargs")
            self.store.update_ti(
                ti_id,
                state="awaiting_input",
                next_method=body["next_method"],
                next_kwargs=None if kwargs is None else json.dumps(kwargs, separators=(",", ":")),
                trigger_timeout=_opt_text(body.get("timeout")),
            )
        else:
            # ``_other_`` (scheduled/queued/restarting): Airflow's transition builder raises on
            # this payload type and its catch-all marks the TI failed, still answering 204.
            self.store.update_ti(ti_id, state="failed", end_date=db_time(now))

    def _h_ti_heartbeat(self, req: _Request) -> _Response:
        ti_id = req.ti_id()
        body = _model(req.body, _HEARTBEAT_FIELDS, ("body",), req.errors)
        req.validated()
        if self.store.heartbeat(ti_id, body["hostname"], body["pid"], req.now):
            return _Response(204)
        ti = self.store.get_ti(ti_id)
        if ti is None:
            raise _gone_ti() if self.store.in_history(ti_id) else _not_found_ti()
        if ti["hostname"] != body["hostname"] or ti["pid"] != body["pid"]:
            raise _HTTPError(
                409,
                {
                    "reason": "running_elsewhere",
                    "message": "TI is already running elsewhere",
                    "current_hostname": ti["hostname"],
                    "current_pid": ti["pid"],
                },
            )
        raise _HTTPError(
            409,
            {
                "reason": "not_running",
                "message": "TI is no longer in the running state and task should terminate",
                "current_state": ti["state"],
            },
        )

    def _h_ti_rtif(self, req: _Request) -> _Response:
        ti_id = req.ti_id()
        if req.body is _MISSING:
            req.errors.add("missing", ("body",), "Field required", None)
        else:
            _dict(req.body, ("body",), req.errors)
        req.validated()
        if self.store.get_ti(ti_id) is None:
            # shape verified against real Airflow in the differential test tier (issue 6)
            raise _gone_ti() if self.store.in_history(ti_id) else _not_found_ti()
        self.store.set_rtif(ti_id, req.body)
        return _json(201, {"message": "Rendered task instance fields successfully set"})

    def _h_ti_rendered_map_index(self, req: _Request) -> _Response:
        ti_id = req.ti_id()
        if req.body is _MISSING:
            req.errors.add("missing", ("body",), "Field required", None)
        else:
            _str()(req.body, ("body",), req.errors)
        req.validated()
        if not req.body:
            raise _HTTPError(422, "rendered_map_index cannot be empty")
        if not self.store.update_ti(ti_id, rendered_map_index=req.body):
            raise _HTTPError(404, "Task Instance not found")
        return _Response(204)

    def _h_ti_skip_downstream(self, req: _Request) -> _Response:
        ti_id = req.ti_id()
        body = _model(req.body, _SKIP_FIELDS, ("body",), req.errors)
        req.validated()
        ti = self.store.get_ti(ti_id)
        if ti is None:
            raise _not_found_ti()
        self.store.skip_tasks(ti["dag_id"], ti["run_id"], body["tasks"], req.now)
        return _Response(204)

    # -- handlers: connections and variables ------------------------------------------------

    def _h_get_connection(self, req: _Request) -> _Response:
        conn_id = req.params["connection_id"]
        req.validated()
        conn = self.store.get_connection(conn_id)
        if conn is None:
            raise _HTTPError(
                404, {"reason": "not_found", "message": f"Connection with ID {conn_id} not found"}
            )
        return _json(200, conn)

    def _h_variable_keys(self, req: _Request) -> _Response:
        prefix = req.query_value("prefix")
        limit = req.q_int("limit", 1000)
        offset = req.q_int("offset", 0)
        if limit is not None and not 1 <= limit <= 10_000:
            bound, op, word = (1, "ge", "greater") if limit < 1 else (10_000, "le", "less")
            req.errors.add(
                f"{word}_than_equal",
                ("query", "limit"),
                f"Input should be {word} than or equal to {bound}",
                req.query_value("limit"),
                {op: bound},
            )
        if offset is not None and offset < 0:
            req.errors.add(
                "greater_than_equal",
                ("query", "offset"),
                "Input should be greater than or equal to 0",
                req.query_value("offset"),
                {"ge": 0},
            )
        req.validated()
        keys, total = self.store.variable_keys(prefix, limit or 1000, offset or 0)
        return _json(200, {"keys": keys, "total_entries": total})

    def _h_get_variable(self, req: _Request) -> _Response:
        key = req.path_str("variable_key")
        req.validated()
        if not self.store.has_variable(key):
            raise _HTTPError(
                404, {"reason": "not_found", "message": f"Variable with key '{key}' not found"}
            )
        return _json(200, {"key": key, "value": self.store.get_variable(key)})

    def _h_put_variable(self, req: _Request) -> _Response:
        key = req.path_str("variable_key")
        body = _model(req.body, _VARIABLE_FIELDS, ("body",), req.errors)
        req.validated()
        value = body["val"]
        # Variable.set stores str(value) when not serialising JSON, so None becomes "None".
        # shape verified against real Airflow in the differential test tier (issue 6)
        self.store.set_variable(key, str(value), body.get("description"))
        return _json(201, {"message": "Variable successfully set"})

    def _h_delete_variable(self, req: _Request) -> _Response:
        key = req.path_str("variable_key")
        req.validated()
        self.store.delete_variable(key)
        return _Response(204)

    # -- handlers: XComs --------------------------------------------------------------------

    def _xcom_path(self, req: _Request) -> tuple[str, str, str, str]:
        p = req.params
        return p["dag_id"], p["run_id"], p["task_id"], req.path_str("key")

    def _h_xcom_get(self, req: _Request) -> _Response:
        dag_id, run_id, task_id, key = self._xcom_path(req)
        map_index = req.q_int("map_index", -1)
        prior = req.q_bool("include_prior_dates")
        offset = req.q_int("offset", None)
        req.validated()
        if offset is None:
            rows = self.store.xcom_rows(
                dag_id, run_id, task_id, key, map_index=map_index, include_prior_dates=prior
            )
            found = rows[0] if rows else None
            where = f"map_index={map_index}"
        else:
            rows = self.store.xcom_rows(dag_id, run_id, task_id, key, include_prior_dates=prior)
            found = _at([r for r in rows if r[1] is not None], offset)
            where = f"offset={offset}"
        if found is None:
            raise _HTTPError(
                404,
                {
                    "reason": "not_found",
                    "message": f"XCom with key={key!r} {where} not found for task {task_id!r} "
                    f"in DAG run {run_id!r} of {dag_id!r}",
                },
            )
        return _json(200, {"key": key, "value": _loads(found[1])})

    def _h_xcom_head(self, req: _Request) -> _Response:
        dag_id, run_id, task_id, key = self._xcom_path(req)
        map_index = req.q_int("map_index", None)
        req.validated()
        if map_index is not None:
            raise _HTTPError(
                400,
                {
                    "reason": "invalid_request",
                    "message": "Cannot specify map_index in a HEAD request",
                },
            )
        count = len(self.store.xcom_rows(dag_id, run_id, task_id, key))
        return _Response(200, b"", "application/json", {"content-range": f"map_indexes {count}"})

    def _h_xcom_set(self, req: _Request) -> _Response:
        dag_id, run_id, task_id, key = self._xcom_path(req)
        map_index = req.q_int("map_index", -1)
        mapped_length = req.q_int("mapped_length", None)
        req.validated()
        if mapped_length is not None and mapped_length > MAX_MAP_LENGTH:
            raise _HTTPError(
                400,
                {
                    "reason": "unmappable_return_value_length",
                    "message": "pushed value is too large to map as a downstream's dependency",
                },
            )
        if self.store.get_dag_run(dag_id, run_id) is None:
            raise _HTTPError(404, f"DAG run not found on DAG {dag_id!r} with ID {run_id!r}")
        value = None if req.body is _MISSING else req.body
        try:
            text = json.dumps(value, separators=(",", ":"), allow_nan=False)
        except ValueError as exc:  # NaN/Infinity parse as JSON in Python but are not JSON
            raise _HTTPError(
                400,
                {"reason": "invalid_format", "message": f"XCom value is not a valid JSON: {exc}"},
            ) from None
        self.store.set_xcom(dag_id, run_id, task_id, key, text, _int_or(map_index, -1), req.now)
        return _json(201, {"message": "XCom successfully set"})

    def _h_xcom_delete(self, req: _Request) -> _Response:
        dag_id, run_id, task_id, key = self._xcom_path(req)
        map_index = req.q_int("map_index", -1)
        req.validated()
        self.store.delete_xcom(dag_id, run_id, task_id, key, _int_or(map_index, -1))
        return _json(200, {"message": f"XCom with key: {key} successfully deleted."})

    def _h_xcom_item(self, req: _Request) -> _Response:
        dag_id, run_id, task_id, key = self._xcom_path(req)
        offset = _int()(req.params["offset"], ("path", "offset"), req.errors)
        req.validated()
        found = _at(self.store.xcom_rows(dag_id, run_id, task_id, key), offset)
        if found is None:
            raise _HTTPError(
                404,
                {
                    "reason": "not_found",
                    "message": f"XCom with key={key!r} offset={offset} not found for task "
                    f"{task_id!r} in DAG run {run_id!r} of {dag_id!r}",
                },
            )
        return _json(200, _loads(found[1]))

    def _h_xcom_slice(self, req: _Request) -> _Response:
        dag_id, run_id, task_id, key = self._xcom_path(req)
        start = req.q_int("start", None)
        stop = req.q_int("stop", None)
        step = req.q_int("step", None)
        prior = req.q_bool("include_prior_dates")
        req.validated()
        rows = self.store.xcom_rows(dag_id, run_id, task_id, key, include_prior_dates=prior)
        values = [_loads(text) for _, text in rows]
        # Airflow treats a step of 0 (or none) as 1; otherwise Python slice semantics.
        return _json(200, values[start : stop : step or 1])


# -- helpers -----------------------------------------------------------------------------------


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _int_or(value: int | None, default: int) -> int:
    return default if value is None else value


def _opt_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _at(rows: list[tuple[int, str | None]], offset: int) -> tuple[int, str | None] | None:
    """Row ``offset`` of rows ordered by map index; negative offsets count from the end."""
    try:
        return rows[offset]
    except IndexError:
        return None


def _check_partition_keys(outlet_events: list[dict[str, Any]]) -> None:
    for event in outlet_events:
        key = event.get("partition_key")
        if key is None:
            continue
        if not isinstance(key, str) or not key.strip():
            message = (
                f"partition_key in outlet event must not be empty or whitespace-only; got {key!r}."
            )
        elif len(key) > 250:  # ID_LEN
            message = (
                f"partition_key in outlet event must be at most 250 characters; got {len(key)}."
            )
        else:
            continue
        raise _HTTPError(422, {"reason": "invalid_partition_key", "message": message})


def _dag_run_body(run: dict[str, Any]) -> dict[str, Any]:
    """The ``DagRun`` model of version 2026-06-30, every key present (extra keys are fatal)."""
    return {
        "dag_id": run["dag_id"],
        "run_id": run["run_id"],
        "logical_date": api_time(run["logical_date"]),
        "data_interval_start": api_time(run["data_interval_start"]),
        "data_interval_end": api_time(run["data_interval_end"]),
        "run_after": api_time(run["run_after"]),
        "start_date": api_time(run["start_date"]),
        "end_date": api_time(run["end_date"]),
        "clear_number": run["clear_number"],
        "run_type": run["run_type"],
        "state": run["state"],
        "conf": _loads(run["conf"]),
        "triggering_user_name": run["triggering_user_name"],
        "consumed_asset_events": [],
        "partition_key": run["partition_key"],
        "partition_date": None,
        "note": run["note"],
        "team_name": None,
    }

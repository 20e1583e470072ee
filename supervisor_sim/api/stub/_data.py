"""Routes for connections, variables and XComs (Airflow 3.3's ``connections.py``,
``variables.py`` and ``xcoms.py``)."""

from __future__ import annotations

import json

from ..store import StubStore
from ._bodies import loads
from ._http import HTTPError, Response, json_response, no_content
from ._request import Request
from ._validation import INT, MISSING, Field, model, text

__all__ = [
    "delete_variable",
    "get_connection",
    "get_variable",
    "put_variable",
    "variable_keys",
    "xcom_delete",
    "xcom_get",
    "xcom_head",
    "xcom_item",
    "xcom_set",
    "xcom_slice",
]

MAX_MAP_LENGTH = 1024  # [core] max_map_length

_VARIABLE_FIELDS = (
    Field("val", text(nullable=True), True),
    Field("description", text(nullable=True)),
)


# -- connections and variables -----------------------------------------------------------------


def get_connection(store: StubStore, req: Request) -> Response:
    conn_id = req.params["connection_id"]
    req.validated()
    conn = store.connections.get(conn_id)
    if conn is None:
        raise HTTPError(
            404, {"reason": "not_found", "message": f"Connection with ID {conn_id} not found"}
        )
    return json_response(200, conn)


def variable_keys(store: StubStore, req: Request) -> Response:
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
    keys, total = store.variables.keys(prefix, limit or 1000, offset or 0)
    return json_response(200, {"keys": keys, "total_entries": total})


def get_variable(store: StubStore, req: Request) -> Response:
    key = req.path_str("variable_key")
    req.validated()
    found, value = store.variables.lookup(key)
    if not found:
        raise HTTPError(
            404, {"reason": "not_found", "message": f"Variable with key '{key}' not found"}
        )
    return json_response(200, {"key": key, "value": value})


def put_variable(store: StubStore, req: Request) -> Response:
    key = req.path_str("variable_key")
    body = model(req.body, _VARIABLE_FIELDS, ("body",), req.errors)
    req.validated()
    value = body["val"]
    # Variable.set stores str(value) when not serialising JSON, so None becomes "None".
    # shape verified against real Airflow in the differential test tier
    store.variables.set(key, str(value), body.get("description"))
    return json_response(201, {"message": "Variable successfully set"})


def delete_variable(store: StubStore, req: Request) -> Response:
    key = req.path_str("variable_key")
    req.validated()
    store.variables.delete(key)
    return no_content()


# -- XComs -------------------------------------------------------------------------------------


def _xcom_path(req: Request) -> tuple[str, str, str, str]:
    p = req.params
    return p["dag_id"], p["run_id"], p["task_id"], req.path_str("key")


def xcom_get(store: StubStore, req: Request) -> Response:
    dag_id, run_id, task_id, key = _xcom_path(req)
    map_index = req.q_int("map_index", -1)
    prior = req.q_bool("include_prior_dates")
    offset = req.q_int("offset", None)
    req.validated()
    if offset is None:
        rows = store.xcoms.rows(
            dag_id, run_id, task_id, key, map_index=map_index, include_prior_dates=prior
        )
        found = rows[0] if rows else None
        where = f"map_index={map_index}"
    else:
        rows = store.xcoms.rows(dag_id, run_id, task_id, key, include_prior_dates=prior)
        found = _at([r for r in rows if r[1] is not None], offset)
        where = f"offset={offset}"
    if found is None:
        raise HTTPError(
            404,
            {
                "reason": "not_found",
                "message": f"XCom with key={key!r} {where} not found for task {task_id!r} "
                f"in DAG run {run_id!r} of {dag_id!r}",
            },
        )
    return json_response(200, {"key": key, "value": loads(found[1])})


def xcom_head(store: StubStore, req: Request) -> Response:
    dag_id, run_id, task_id, key = _xcom_path(req)
    map_index = req.q_int("map_index", None)
    req.validated()
    if map_index is not None:
        raise HTTPError(
            400,
            {"reason": "invalid_request", "message": "Cannot specify map_index in a HEAD request"},
        )
    count = len(store.xcoms.rows(dag_id, run_id, task_id, key))
    return Response(200, b"", "application/json", {"content-range": f"map_indexes {count}"})


def xcom_set(store: StubStore, req: Request) -> Response:
    dag_id, run_id, task_id, key = _xcom_path(req)
    map_index = req.q_int("map_index", -1)
    mapped_length = req.q_int("mapped_length", None)
    req.validated()
    if mapped_length is not None and mapped_length > MAX_MAP_LENGTH:
        raise HTTPError(
            400,
            {
                "reason": "unmappable_return_value_length",
                "message": "pushed value is too large to map as a downstream's dependency",
            },
        )
    if store.dag_runs.get(dag_id, run_id) is None:
        raise HTTPError(404, f"DAG run not found on DAG {dag_id!r} with ID {run_id!r}")
    value = None if req.body is MISSING else req.body
    try:
        encoded = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:  # NaN/Infinity parse as JSON in Python but are not JSON
        raise HTTPError(
            400,
            {"reason": "invalid_format", "message": f"XCom value is not a valid JSON: {exc}"},
        ) from None
    store.xcoms.set(dag_id, run_id, task_id, key, encoded, _int_or(map_index, -1), req.now)
    return json_response(201, {"message": "XCom successfully set"})


def xcom_delete(store: StubStore, req: Request) -> Response:
    dag_id, run_id, task_id, key = _xcom_path(req)
    map_index = req.q_int("map_index", -1)
    req.validated()
    store.xcoms.delete(dag_id, run_id, task_id, key, _int_or(map_index, -1))
    return json_response(200, {"message": f"XCom with key: {key} successfully deleted."})


def xcom_item(store: StubStore, req: Request) -> Response:
    dag_id, run_id, task_id, key = _xcom_path(req)
    offset = INT(req.params["offset"], ("path", "offset"), req.errors)
    req.validated()
    found = _at(store.xcoms.rows(dag_id, run_id, task_id, key), offset)
    if found is None:
        raise HTTPError(
            404,
            {
                "reason": "not_found",
                "message": f"XCom with key={key!r} offset={offset} not found for task "
                f"{task_id!r} in DAG run {run_id!r} of {dag_id!r}",
            },
        )
    return json_response(200, loads(found[1]))


def xcom_slice(store: StubStore, req: Request) -> Response:
    dag_id, run_id, task_id, key = _xcom_path(req)
    start = req.q_int("start", None)
    stop = req.q_int("stop", None)
    step = req.q_int("step", None)
    prior = req.q_bool("include_prior_dates")
    req.validated()
    rows = store.xcoms.rows(dag_id, run_id, task_id, key, include_prior_dates=prior)
    values = [loads(raw) for _, raw in rows]
    # Airflow treats a step of 0 (or none) as 1; otherwise Python slice semantics.
    return json_response(200, values[start : stop : step or 1])


def _int_or(value: int | None, default: int) -> int:
    return default if value is None else value


def _at(rows: list[tuple[int, str | None]], offset: int) -> tuple[int, str | None] | None:
    """Row ``offset`` of rows ordered by map index; negative offsets count from the end."""
    try:
        return rows[offset]
    except IndexError:
        return None

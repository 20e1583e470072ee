"""Stub routes for connections, variables and XComs (execution-api.md §7)."""

from __future__ import annotations

import json

from ._store import StubStore
from ._stub_base import _HTTPError, _json, _loads, _no_content, _Request, _Response
from ._validation import _MISSING, _Field, _int, _model, _str

MAX_MAP_LENGTH = 1024  # [core] max_map_length

_VARIABLE_FIELDS = (_Field("val", _str(nullable=True), True), _Field("description", _str(True)))


class DataRoutes:
    """Handlers (``_h_*``) for connections, variables and XComs; mixed into ``StubTransport``."""

    store: StubStore

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
        found, value = self.store.lookup_variable(key)
        if not found:
            raise _HTTPError(
                404, {"reason": "not_found", "message": f"Variable with key '{key}' not found"}
            )
        return _json(200, {"key": key, "value": value})

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
        return _no_content()

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


def _int_or(value: int | None, default: int) -> int:
    return default if value is None else value


def _at(rows: list[tuple[int, str | None]], offset: int) -> tuple[int, str | None] | None:
    """Row ``offset`` of rows ordered by map index; negative offsets count from the end."""
    try:
        return rows[offset]
    except IndexError:
        return None

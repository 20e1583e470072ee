"""Answering runtime requests the way Airflow's supervisor does (docs/requests.md).

Each handler makes the HTTP call Airflow's ``ActivitySubprocess._handle_request`` makes (through
the SDK client's methods in ``airflow/sdk/api/client.py``: same path, query parameters in the
same order, same JSON body) and returns ``(body, error)`` for the reply frame. Expected "not
found" outcomes go in the body slot as an ``ErrorResponse``; API and transport failures go in the
error slot.

Reply values are what the runtime receives from Airflow: a reply Airflow dumps in full has every
field, defaults included (``_full``); one it builds with ``exclude_defaults`` and dumps with
``exclude_unset`` lacks the keys equal to their defaults, at every depth (``_unset``). Either
way datetimes from the API's JSON become aware datetimes (msgpack timestamps on the wire).

The terminal messages (``SucceedTask``, ``TaskState``, ...) are the task workload's: it
registers their handlers (``Dispatcher.register``), since they change the try's state.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote as _quote

from ..api import APIStatusError, ExecutionAPIClient, ServerResponseError
from ..protocol import (
    CATALOGUE,
    DEFINITIONS,
    AnyOf,
    ListOf,
    MapOf,
    Model,
    Ref,
    Type,
    format_duration_json,
    materialize,
    parse_datetime,
)

__all__ = ["Dispatcher", "Handler", "Reply", "error_response", "json_default", "jsonify"]

#: A reply frame's body and error slots.
Reply = tuple[dict[str, Any] | None, dict[str, Any] | None]
#: Answers one request type: ``(body, cause)`` -> reply; ``cause`` names the HTTP calls made.
Handler = Callable[[dict[str, Any], Any], Awaitable[Reply]]


@functools.lru_cache(maxsize=1024)
def _quoted(text: str, safe: str) -> str:
    return _quote(text, safe=safe)


def quote(text: Any, safe: str = "/") -> str:
    """``urllib.parse.quote``, remembered for short strings: a task asks for the same keys
    again and again, and quoting one costs ~1 us. Anything else goes to ``quote`` itself."""
    if type(text) is str and len(text) <= 256:
        return _quoted(text, safe)
    return _quote(text, safe=safe)


def json_default(value: Any) -> Any:
    """JSON for HTTP bodies: aware datetimes as ISO with Z, timedeltas as ISO durations."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        return format_duration_json(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def jsonify(value: Any) -> Any:
    """``value`` as the JSON an HTTP body carries (``json_default``'s conversions)."""
    return json.loads(json.dumps(value, default=json_default))


def error_response(error: str, detail: dict[str, Any] | None) -> dict[str, Any]:
    return {"error": error, "detail": detail, "type": "ErrorResponse"}


def _full(body: dict[str, Any], name: str) -> dict[str, Any]:
    """A reply Airflow dumps in full: every field, defaults filled, datetimes aware."""
    return materialize({**body, "type": name}, name)


def _unset(body: dict[str, Any], name: str) -> dict[str, Any]:
    """A reply built with ``exclude_defaults`` and dumped with ``exclude_unset``: keys equal to
    their default are missing, at every depth."""
    return _prune(materialize({**body, "type": name}, name), DEFINITIONS[name])


def _prune(value: Any, t: Type) -> Any:
    if isinstance(t, Ref):
        return _prune(value, DEFINITIONS[t.name])
    if isinstance(t, Model) and isinstance(value, dict):
        out: dict[str, Any] = {}
        for f in t.fields:
            if f.name not in value:
                continue
            v = value[f.name]
            # ``type`` is passed explicitly by Airflow's constructors, so it is always set.
            if f.name != "type" and not f.required and v == f.default:
                continue
            out[f.name] = _prune(v, f.type)
        return out | {k: v for k, v in value.items() if k not in out and k not in t.by_name}
    if isinstance(t, AnyOf) and value is not None:
        for option in t.options:
            if isinstance(option, Ref | Model) and isinstance(value, dict):
                return _prune(value, option)
            if isinstance(option, ListOf) and isinstance(value, list):
                return _prune(value, option)
        return value
    if isinstance(t, ListOf) and isinstance(value, list):
        return [_prune(v, t.item) for v in value]
    if isinstance(t, MapOf) and isinstance(value, dict):
        return {k: _prune(v, t.value) for k, v in value.items()}
    return value


def _when(value: Any) -> datetime | None:
    """A request's datetime (a msgpack timestamp or ISO text) as the aware datetime pydantic
    makes of it."""
    if value is None or isinstance(value, datetime):
        return value
    return parse_datetime(str(value))


def _iso(value: Any) -> str | None:
    """A datetime query parameter as the SDK client writes it: ``datetime.isoformat()``."""
    when = _when(value)
    return None if when is None else when.isoformat()


def _isos(values: Any) -> list[str] | None:
    return None if values is None else [_iso(v) or "" for v in values]


def _params(*pairs: tuple[str, Any]) -> list[tuple[str, Any]]:
    """Query parameters in order, None values left out, lists as repeated parameters."""
    out: list[tuple[str, Any]] = []
    for name, value in pairs:
        if value is None:
            continue
        if isinstance(value, list):
            out.extend((name, v) for v in value)
        elif isinstance(value, bool):
            out.append((name, "true" if value else "false"))
        else:
            out.append((name, value))
    return out


def _q(value: Any) -> str:
    """A parameter httpx would encode from None as empty (``params={"name": None}``)."""
    return "" if value is None else str(value)


def _ok() -> dict[str, Any]:
    return {"ok": True, "type": "OKResponse"}


_RESEND_LOGGING_FD_ERROR = {
    "status_code": None,
    "message": "ResendLoggingFD needs an AF_UNIX comm socket (fork mode); this runtime is "
    "connected over TCP",
    "exception_type": "OSError",
}


class Dispatcher:
    """Maps each request type to the Execution API call that answers it, for the task instance
    ``ti_id`` (the calls about "this task instance" name it)."""

    def __init__(self, api: ExecutionAPIClient, ti_id: str) -> None:
        self.api = api
        self.ti_id = ti_id
        self._handlers: dict[str, Handler] = {
            "GetConnection": self._get_connection,
            "GetVariable": self._get_variable,
            "GetVariableKeys": self._get_variable_keys,
            "PutVariable": self._put_variable,
            "DeleteVariable": self._delete_variable,
            "GetXCom": self._get_xcom,
            "GetXComCount": self._get_xcom_count,
            "GetXComSequenceItem": self._get_xcom_item,
            "GetXComSequenceSlice": self._get_xcom_slice,
            "SetXCom": self._set_xcom,
            "DeleteXCom": self._delete_xcom,
            "SetRenderedFields": self._set_rendered_fields,
            "SetRenderedMapIndex": self._set_rendered_map_index,
            "SkipDownstreamTasks": self._skip_downstream,
            "MaskSecret": self._mask_secret,
            # DAG runs and DAGs
            "GetDagRun": self._get_dag_run,
            "GetDagRunState": self._get_dag_run_state,
            "GetDRCount": self._get_dr_count,
            "GetPreviousDagRun": self._get_previous_dag_run,
            "TriggerDagRun": self._trigger_dag_run,
            "GetDag": self._get_dag,
            # task instances
            "GetTICount": self._get_ti_count,
            "GetTaskStates": self._get_task_states,
            "GetTaskBreadcrumbs": self._get_task_breadcrumbs,
            "GetPreviousTI": self._get_previous_ti,
            "GetPrevSuccessfulDagRun": self._get_prev_successful_dag_run,
            "GetTaskRescheduleStartDate": self._get_reschedule_start_date,
            "ValidateInletsAndOutlets": self._validate_inlets_and_outlets,
            # assets
            "GetAssetByName": self._get_asset,
            "GetAssetByUri": self._get_asset,
            "GetAssetsByAlias": self._get_assets_by_alias,
            "GetAssetEventByAsset": self._get_asset_events,
            "GetAssetEventByAssetAlias": self._get_asset_events,
            # state stores
            "GetTaskStateStore": self._get_task_store,
            "SetTaskStateStore": self._set_task_store,
            "DeleteTaskStateStore": self._delete_task_store,
            "ClearTaskStateStore": self._clear_task_store,
            "GetAssetStateStoreByName": self._get_asset_store,
            "GetAssetStateStoreByUri": self._get_asset_store,
            "SetAssetStateStoreByName": self._set_asset_store,
            "SetAssetStateStoreByUri": self._set_asset_store,
            "DeleteAssetStateStoreByName": self._delete_asset_store,
            "DeleteAssetStateStoreByUri": self._delete_asset_store,
            "ClearAssetStateStoreByName": self._clear_asset_store,
            "ClearAssetStateStoreByUri": self._clear_asset_store,
            # Human in the loop (UpdateHITLDetail / GetHITLDetailResponse: triggerer only)
            "CreateHITLDetailPayload": self._create_hitl_detail,
            "ResendLoggingFD": self._resend_logging_fd,
        }

    def register(self, handlers: Mapping[str, Handler]) -> None:
        """Answer these request types with these handlers (their failures become error-slot
        replies like every other handler's)."""
        self._handlers.update(handlers)

    def handles(self, type_name: str) -> bool:
        return type_name in self._handlers

    async def dispatch(self, body: dict[str, Any], cause: Any = None) -> Reply:
        """Answer one valid request; every exception becomes an error-slot reply, as in Airflow."""
        handler = self._handlers.get(body["type"])
        if handler is None:
            return None, error_response(
                "API_SERVER_ERROR", {"status_code": 400, "message": "Unhandled request"}
            )
        try:
            return await handler(body, cause)
        except ServerResponseError as exc:
            return None, error_response(
                "API_SERVER_ERROR",
                {"status_code": exc.status_code, "message": exc.message, "detail": exc.detail},
            )
        except Exception as exc:  # Airflow turns any other failure into an error frame too.
            return None, error_response(
                "API_SERVER_ERROR",
                {"status_code": None, "message": str(exc), "exception_type": type(exc).__name__},
            )

    # --- variables and connections ------------------------------------------------------------

    async def _get_connection(self, body: dict[str, Any], cause: Any) -> Reply:
        conn_id = body["conn_id"]
        try:
            resp = await self.api.request(
                "GET", f"connections/{quote(conn_id, safe='')}", cause=cause
            )
        except APIStatusError as exc:
            if exc.status_code == 404 and isinstance(exc, ServerResponseError):
                return error_response("CONNECTION_NOT_FOUND", {"conn_id": conn_id}), None
            if exc.status_code in (401, 403) and isinstance(exc, ServerResponseError):
                return error_response(
                    "PERMISSION_DENIED", {"conn_id": conn_id, "status_code": exc.status_code}
                ), None
            raise
        data = resp.json()
        # Its password and extra are learnt from the exchange (supervision/_secrets.py).
        # Nullable keys stay present: the runtime's ConnectionResult requires them.
        return {**data, "type": "ConnectionResult"}, None

    async def _get_variable(self, body: dict[str, Any], cause: Any) -> Reply:
        key = body["key"]
        try:
            resp = await self.api.request("GET", f"variables/{quote(key, safe='/')}", cause=cause)
        except ServerResponseError as exc:
            if exc.status_code == 404:
                return error_response("VARIABLE_NOT_FOUND", {"key": key}), None
            if exc.status_code in (401, 403):
                return error_response(
                    "PERMISSION_DENIED", {"key": key, "status_code": exc.status_code}
                ), None
            raise
        data = resp.json()
        return {
            "key": data.get("key", key),
            "value": data.get("value"),
            "type": "VariableResult",
        }, None

    async def _get_variable_keys(self, body: dict[str, Any], cause: Any) -> Reply:
        params: dict[str, Any] = {"limit": body.get("limit", 1000), "offset": body.get("offset", 0)}
        if body.get("prefix") is not None:
            params["prefix"] = body["prefix"]
        resp = await self.api.request("GET", "variables/keys", params=params, cause=cause)
        data = resp.json()
        return {
            "keys": data["keys"],
            "total_entries": data["total_entries"],
            "type": "VariableKeysResult",
        }, None

    async def _put_variable(self, body: dict[str, Any], cause: Any) -> Reply:
        await self.api.request(
            "PUT",
            f"variables/{quote(body['key'], safe='/')}",
            json_body={"val": body.get("value"), "description": body.get("description")},
            cause=cause,
        )
        return None, None

    async def _delete_variable(self, body: dict[str, Any], cause: Any) -> Reply:
        await self.api.request("DELETE", f"variables/{quote(body['key'], safe='/')}", cause=cause)
        return {"ok": True, "type": "OKResponse"}, None

    # --- XComs -----------------------------------------------------------------------------------

    @staticmethod
    def _xcom_path(body: dict[str, Any]) -> str:
        parts = (body["dag_id"], body["run_id"], body["task_id"])
        return (
            "xcoms/"
            + "/".join(quote(str(p), safe="") for p in parts)
            + "/"
            + quote(str(body["key"]), safe="/")
        )

    async def _get_xcom(self, body: dict[str, Any], cause: Any) -> Reply:
        params: dict[str, Any] = {}
        map_index = body.get("map_index")
        if map_index is not None and int(map_index) >= 0:
            params["map_index"] = int(map_index)
        if body.get("include_prior_dates"):
            params["include_prior_dates"] = "true"
        try:
            resp = await self.api.request("GET", self._xcom_path(body), params=params, cause=cause)
        except ServerResponseError as exc:
            if exc.status_code == 404:
                # Airflow 2 compatibility: a missing XCom reads as None, not as an error.
                return {"key": body["key"], "value": None, "type": "XComResult"}, None
            raise
        data = resp.json()
        return {
            "key": data.get("key", body["key"]),
            "value": data.get("value"),
            "type": "XComResult",
        }, None

    async def _get_xcom_count(self, body: dict[str, Any], cause: Any) -> Reply:
        resp = await self.api.request("HEAD", self._xcom_path(body), cause=cause)
        header = resp.headers.get("content-range", "")
        if not header.startswith("map_indexes "):
            raise RuntimeError(f"Unable to parse Content-Range header from HEAD {header!r}")
        return {"len": int(header.split(" ", 1)[1]), "type": "XComCountResponse"}, None

    async def _get_xcom_item(self, body: dict[str, Any], cause: Any) -> Reply:
        try:
            resp = await self.api.request(
                "GET", f"{self._xcom_path(body)}/item/{int(body['offset'])}", cause=cause
            )
        except ServerResponseError as exc:
            if exc.status_code == 404:
                detail = {k: body[k] for k in ("dag_id", "run_id", "task_id", "key", "offset")}
                return error_response("XCOM_NOT_FOUND", detail), None
            raise
        return {"root": resp.json(), "type": "XComSequenceIndexResult"}, None

    async def _get_xcom_slice(self, body: dict[str, Any], cause: Any) -> Reply:
        params = {k: body[k] for k in ("start", "stop", "step") if body.get(k) is not None}
        if body.get("include_prior_dates"):
            params["include_prior_dates"] = "true"
        resp = await self.api.request(
            "GET", f"{self._xcom_path(body)}/slice", params=params, cause=cause
        )
        return {"root": resp.json(), "type": "XComSequenceSliceResult"}, None

    async def _set_xcom(self, body: dict[str, Any], cause: Any) -> Reply:
        params: dict[str, Any] = {}
        if body.get("map_index") is not None and int(body["map_index"]) >= 0:
            params["map_index"] = int(body["map_index"])
        if body.get("mapped_length") is not None and int(body["mapped_length"]) >= 0:
            params["mapped_length"] = int(body["mapped_length"])
        if body.get("dag_result"):
            params["dag_result"] = "true"
        content = json.dumps(body["value"], default=json_default).encode()
        await self.api.request(
            "POST", self._xcom_path(body), params=params, content=content, cause=cause
        )
        return None, None

    async def _delete_xcom(self, body: dict[str, Any], cause: Any) -> Reply:
        params: dict[str, Any] = {}
        if body.get("map_index") is not None and int(body["map_index"]) >= 0:
            params["map_index"] = int(body["map_index"])
        await self.api.request("DELETE", self._xcom_path(body), params=params, cause=cause)
        return None, None

    # --- task instance ---------------------------------------------------------------------------

    def _ti(self, suffix: str) -> str:
        return f"task-instances/{self.ti_id}/{suffix}"

    async def _set_rendered_fields(self, body: dict[str, Any], cause: Any) -> Reply:
        try:
            await self.api.request(
                "PUT", self._ti("rtif"), json_body=jsonify(body["rendered_fields"]), cause=cause
            )
        except ServerResponseError as exc:
            if exc.status_code != 410:  # a late write after a retry gave the TI a new id
                raise
        return None, None

    async def _set_rendered_map_index(self, body: dict[str, Any], cause: Any) -> Reply:
        await self.api.request(
            "PATCH",
            self._ti("rendered-map-index"),
            json_body=body["rendered_map_index"],
            cause=cause,
        )
        return None, None

    async def _skip_downstream(self, body: dict[str, Any], cause: Any) -> Reply:
        await self.api.request(
            "PATCH", self._ti("skip-downstream"), json_body={"tasks": body["tasks"]}, cause=cause
        )
        return None, None

    async def _mask_secret(self, body: dict[str, Any], cause: Any) -> Reply:
        # The session learnt the value before recording the request (supervision/_secrets.py).
        return None, None

    # --- DAG runs and DAGs -----------------------------------------------------------------------

    async def _get_dag_run(self, body: dict[str, Any], cause: Any) -> Reply:
        # A 404 is not special-cased: it reaches the runtime as an error frame.
        resp = await self.api.request(
            "GET", f"dag-runs/{body['dag_id']}/{body['run_id']}", cause=cause
        )
        return _full(resp.json(), "DagRunResult"), None

    async def _get_dag_run_state(self, body: dict[str, Any], cause: Any) -> Reply:
        resp = await self.api.request(
            "GET", f"dag-runs/{body['dag_id']}/{body['run_id']}/state", cause=cause
        )
        return _full(resp.json(), "DagRunStateResult"), None

    async def _get_dr_count(self, body: dict[str, Any], cause: Any) -> Reply:
        params = _params(
            ("dag_id", body["dag_id"]),
            ("logical_dates", _isos(body.get("logical_dates"))),
            ("run_ids", body.get("run_ids")),
            ("states", body.get("states")),
        )
        resp = await self.api.request("GET", "dag-runs/count", params=params, cause=cause)
        return {"count": resp.json(), "type": "DRCount"}, None

    async def _get_previous_dag_run(self, body: dict[str, Any], cause: Any) -> Reply:
        params = _params(
            ("dag_id", body["dag_id"]),
            ("logical_date", _iso(body["logical_date"])),
            ("state", body.get("state") or None),
        )
        resp = await self.api.request("GET", "dag-runs/previous", params=params, cause=cause)
        return _full({"dag_run": resp.json()}, "PreviousDagRunResult"), None

    async def _trigger_dag_run(self, body: dict[str, Any], cause: Any) -> Reply:
        # TriggerDAGRunPayload(...).model_dump_json(exclude_defaults=True): ``conf`` is always
        # sent (``conf or {}``); ``partition_key`` is never forwarded.
        payload: dict[str, Any] = {}
        for key in ("logical_date", "run_after"):
            if body.get(key) is not None:
                payload[key] = _when(body[key])
        payload["conf"] = body.get("conf") or {}
        reset = body.get("reset_dag_run", False)
        if reset is not False:  # a nil goes out too, and the server refuses it (422)
            payload["reset_dag_run"] = reset
        if body.get("note") is not None:
            payload["note"] = body["note"]
        path = f"dag-runs/{body['dag_id']}/{body['run_id']}"
        try:
            await self.api.request("POST", path, json_body=jsonify(payload), cause=cause)
        except ServerResponseError as exc:
            if exc.status_code != 409:
                raise
            if not reset:
                return error_response("DAGRUN_ALREADY_EXISTS", None), None
            await self.api.request("POST", f"{path}/clear", cause=cause)
        return _ok(), None

    async def _get_dag(self, body: dict[str, Any], cause: Any) -> Reply:
        resp = await self.api.request("GET", f"dags/{quote(body['dag_id'], safe='')}", cause=cause)
        return _full(resp.json(), "DagResult"), None

    # --- task-instance queries -------------------------------------------------------------------

    @staticmethod
    def _ti_filters(body: dict[str, Any]) -> list[tuple[str, Any]]:
        return _params(
            ("dag_id", body["dag_id"]),
            ("task_ids", body.get("task_ids")),
            ("task_group_id", body.get("task_group_id")),
            ("logical_dates", _isos(body.get("logical_dates"))),
            ("run_ids", body.get("run_ids")),
        )

    @staticmethod
    def _map_index(body: dict[str, Any]) -> list[tuple[str, Any]]:
        map_index = body.get("map_index")
        return [("map_index", map_index)] if map_index is not None and map_index >= 0 else []

    async def _get_ti_count(self, body: dict[str, Any], cause: Any) -> Reply:
        params = (
            self._ti_filters(body) + _params(("states", body.get("states"))) + self._map_index(body)
        )
        resp = await self.api.request("GET", "task-instances/count", params=params, cause=cause)
        return {"count": resp.json(), "type": "TICount"}, None

    async def _get_task_states(self, body: dict[str, Any], cause: Any) -> Reply:
        params = self._ti_filters(body) + self._map_index(body)
        resp = await self.api.request("GET", "task-instances/states", params=params, cause=cause)
        return _full(resp.json(), "TaskStatesResult"), None

    async def _get_task_breadcrumbs(self, body: dict[str, Any], cause: Any) -> Reply:
        params = _params(("dag_id", body["dag_id"]), ("run_id", body["run_id"]))
        resp = await self.api.request(
            "GET", "task-instances/breadcrumbs", params=params, cause=cause
        )
        return _full(resp.json(), "TaskBreadcrumbsResult"), None

    async def _get_previous_ti(self, body: dict[str, Any], cause: Any) -> Reply:
        params = _params(
            ("map_index", body.get("map_index", -1)),
            ("logical_date", _iso(body.get("logical_date")) or None),
            ("state", body.get("state") or None),
        )
        resp = await self.api.request(
            "GET",
            f"task-instances/previous/{body['dag_id']}/{body['task_id']}",
            params=params,
            cause=cause,
        )
        return _full({"task_instance": resp.json()}, "PreviousTIResult"), None

    async def _get_prev_successful_dag_run(self, body: dict[str, Any], cause: Any) -> Reply:
        # Airflow asks about its own TI, whatever ti_id the runtime sent.
        resp = await self.api.request("GET", self._ti("previous-successful-dagrun"), cause=cause)
        return _unset(resp.json(), "PrevSuccessfulDagRunResult"), None

    async def _get_reschedule_start_date(self, body: dict[str, Any], cause: Any) -> Reply:
        resp = await self.api.request(
            "GET",
            f"task-reschedules/{body['ti_id']}/start_date",
            params=_params(("try_number", body.get("try_number", 1))),
            cause=cause,
        )
        return _full({"start_date": resp.json()}, "TaskRescheduleStartDate"), None

    async def _validate_inlets_and_outlets(self, body: dict[str, Any], cause: Any) -> Reply:
        resp = await self.api.request(
            "GET", f"task-instances/{body['ti_id']}/validate-inlets-and-outlets", cause=cause
        )
        return _unset(resp.json(), "InactiveAssetsResult"), None

    # --- assets ----------------------------------------------------------------------------------

    async def _get_asset(self, body: dict[str, Any], cause: Any) -> Reply:
        # AssetOperations.get: by name when one is given, else by URI, else a ValueError.
        if body.get("name"):
            path, params = "assets/by-name", {"name": body["name"]}
        elif body.get("uri"):
            path, params = "assets/by-uri", {"uri": body["uri"]}
        else:
            raise ValueError("Either `name` or `uri` must be provided")
        try:
            resp = await self.api.request("GET", path, params=params, cause=cause)
        except ServerResponseError as exc:
            if exc.status_code == 404:
                return error_response("ASSET_NOT_FOUND", params), None
            raise
        return _unset(resp.json(), "AssetResult"), None

    async def _get_assets_by_alias(self, body: dict[str, Any], cause: Any) -> Reply:
        resp = await self.api.request(
            "GET", "assets/by-alias", params={"alias_name": body["alias_name"]}, cause=cause
        )
        # Each asset is an AssetResult; the reply is dumped in full, so nil extras stay.
        assets = [_full(a, "AssetResult") for a in resp.json()]
        return {"assets": assets, "type": "AssetsByAliasResult"}, None

    async def _get_asset_events(self, body: dict[str, Any], cause: Any) -> Reply:
        common = _params(
            ("after", _iso(body.get("after")) or None),
            ("before", _iso(body.get("before")) or None),
            ("ascending", bool(body.get("ascending", True))),
            ("limit", body.get("limit") or None),
        )
        if body["type"] == "GetAssetEventByAsset" and (body.get("name") or body.get("uri")):
            path = "asset-events/by-asset"
            params = [("name", _q(body.get("name"))), ("uri", _q(body.get("uri"))), *common]
        elif body["type"] == "GetAssetEventByAssetAlias" and body.get("alias_name"):
            path, params = "asset-events/by-asset-alias", [("name", body["alias_name"]), *common]
        else:
            raise ValueError("Either `name`, `uri` or `alias_name` must be provided")
        resp = await self.api.request("GET", path, params=params, cause=cause)
        return _unset(resp.json(), "AssetEventsResult"), None

    # --- state stores ----------------------------------------------------------------------------

    @staticmethod
    def _task_store_path(body: dict[str, Any]) -> str:
        return f"store/ti/{body['ti_id']}/{quote(str(body['key']), safe='')}"

    async def _get_task_store(self, body: dict[str, Any], cause: Any) -> Reply:
        try:
            resp = await self.api.request("GET", self._task_store_path(body), cause=cause)
        except ServerResponseError as exc:
            if exc.status_code == 404:
                return error_response("TASK_STORE_NOT_FOUND", {"key": body["key"]}), None
            raise
        return _full(resp.json(), "TaskStateStoreResult"), None

    async def _set_task_store(self, body: dict[str, Any], cause: Any) -> Reply:
        payload = {"value": body["value"], "expires_at": _when(body.get("expires_at"))}
        await self.api.request(
            "PUT", self._task_store_path(body), json_body=jsonify(payload), cause=cause
        )
        return _ok(), None

    async def _delete_task_store(self, body: dict[str, Any], cause: Any) -> Reply:
        await self.api.request("DELETE", self._task_store_path(body), cause=cause)
        return _ok(), None

    async def _clear_task_store(self, body: dict[str, Any], cause: Any) -> Reply:
        await self.api.request("DELETE", f"store/ti/{body['ti_id']}", cause=cause)
        return _ok(), None

    @staticmethod
    def _asset_store(body: dict[str, Any], op: str) -> tuple[str, list[tuple[str, Any]]]:
        """AssetStateStoreOperations._resolve_endpoint: by name if given, else by URI."""
        if body.get("name"):
            by, ident = "name", body["name"]
        elif body.get("uri"):
            by, ident = "uri", body["uri"]
        else:
            raise ValueError("Either `name` or `uri` must be provided")
        params = [(by, ident)]
        if op == "value":
            params.append(("key", body["key"]))
        return f"store/asset/by-{by}/{op}", params

    async def _get_asset_store(self, body: dict[str, Any], cause: Any) -> Reply:
        path, params = self._asset_store(body, "value")
        try:
            resp = await self.api.request("GET", path, params=params, cause=cause)
        except ServerResponseError as exc:
            if exc.status_code == 404:
                return error_response("ASSET_STORE_NOT_FOUND", {"key": body["key"]}), None
            raise
        return _full(resp.json(), "AssetStateStoreResult"), None

    async def _set_asset_store(self, body: dict[str, Any], cause: Any) -> Reply:
        path, params = self._asset_store(body, "value")
        await self.api.request(
            "PUT", path, params=params, json_body=jsonify({"value": body["value"]}), cause=cause
        )
        return _ok(), None

    async def _delete_asset_store(self, body: dict[str, Any], cause: Any) -> Reply:
        path, params = self._asset_store(body, "value")
        await self.api.request("DELETE", path, params=params, cause=cause)
        return _ok(), None

    async def _clear_asset_store(self, body: dict[str, Any], cause: Any) -> Reply:
        path, params = self._asset_store(body, "clear")
        await self.api.request("DELETE", path, params=params, cause=cause)
        return _ok(), None

    # --- Human in the loop and logging -----------------------------------------------------------

    async def _create_hitl_detail(self, body: dict[str, Any], cause: Any) -> Reply:
        # HITLOperations.add_response: CreateHITLDetailPayload(...).model_dump_json(), so every
        # field goes out, nulls and ``type`` included.
        model = CATALOGUE["CreateHITLDetailPayload"].model
        payload = {f.name: body.get(f.name, f.default) for f in model.fields if f.name != "type"}
        payload["type"] = "CreateHITLDetailPayload"
        resp = await self.api.request(
            "POST", f"hitlDetails/{body['ti_id']}", json_body=jsonify(payload), cause=cause
        )
        return _unset(resp.json(), "HITLDetailRequestResult"), None

    async def _resend_logging_fd(self, body: dict[str, Any], cause: Any) -> Reply:
        # Airflow answers with socket.send_fds on the comm socket, which SCM_RIGHTS needs to be
        # AF_UNIX; on the coordinator's TCP socket that raises, and the runtime gets this.
        return None, error_response("API_SERVER_ERROR", dict(_RESEND_LOGGING_FD_ERROR))

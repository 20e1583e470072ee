"""Answering runtime requests the way Airflow's supervisor does (protocol.md §2.7, §3).

Each handler makes the HTTP call Airflow's ``ActivitySubprocess._handle_request`` makes and
returns ``(body, error)`` for the reply frame. Expected "not found" outcomes go in the body slot
as an ``ErrorResponse``; API and transport failures go in the error slot.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from ..api import APIStatusError, ExecutionAPIClient, ServerResponseError
from ..protocol import CATALOGUE, format_duration
from ._masking import SecretsMasker, is_sensitive_name

__all__ = ["Dispatcher", "Reply", "TaskState", "error_response", "json_default"]

Reply = tuple[dict[str, Any] | None, dict[str, Any] | None]

SERVER_TERMINATED = "server_terminated"
#: Final states Airflow never reports at exit: they were sent directly (supervisor.py).
STATES_SENT_DIRECTLY = frozenset(
    {"success", "up_for_retry", "deferred", "up_for_reschedule", "awaiting_input",
     SERVER_TERMINATED}
)  # fmt: skip


def json_default(value: Any) -> Any:
    """JSON for HTTP bodies: aware datetimes as ISO with Z, timedeltas as ISO durations."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def jsonify(value: Any) -> Any:
    return json.loads(json.dumps(value, default=json_default))


def error_response(error: str, detail: dict[str, Any] | None) -> dict[str, Any]:
    return {"error": error, "detail": detail, "type": "ErrorResponse"}


@dataclass
class TaskState:
    """What the supervisor knows about the try's outcome (Airflow's WatchedSubprocess fields)."""

    ti_id: str
    should_retry: bool = False
    terminal_state: str | None = None
    #: A terminal message whose state call failed; replayed once at exit.
    pending: tuple[str, dict[str, Any]] | None = None
    task_end_time: float | None = None
    rendered_map_index: str | None = None
    on_terminal: list[Callable[[str, bool], None]] = field(default_factory=list)


class Dispatcher:
    """Maps each request type to the Execution API call that answers it."""

    def __init__(
        self,
        api: ExecutionAPIClient,
        state: TaskState,
        masker: SecretsMasker,
        now: Callable[[], float],
    ) -> None:
        self.api = api
        self.state = state
        self.masker = masker
        self.now = now
        self._handlers: dict[str, Callable[[dict[str, Any], Any], Awaitable[Reply]]] = {
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
            "SucceedTask": self._terminal,
            "RetryTask": self._terminal,
            "DeferTask": self._terminal,
            "RescheduleTask": self._terminal,
            "AwaitInputTask": self._terminal,
            "TaskState": self._task_state,
        }

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
        self.masker.add(data.get("password"))
        self.masker.add(data.get("extra"))
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
        if data.get("value") and is_sensitive_name(key):
            self.masker.add(data["value"])
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
        return f"task-instances/{self.state.ti_id}/{suffix}"

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
        self.masker.add(body.get("value"))
        return None, None

    async def _task_state(self, body: dict[str, Any], cause: Any) -> Reply:
        # Reported with PATCH .../state only after the process exits (protocol.md §2.6).
        self.state.terminal_state = body["state"]
        self.state.task_end_time = self.now()
        self.state.rendered_map_index = body.get("rendered_map_index")
        self._notify(body["state"], True)
        return None, None

    async def _terminal(self, body: dict[str, Any], cause: Any) -> Reply:
        name = body["type"]
        payload = state_payload(body)
        state = payload["state"]
        if name in ("SucceedTask", "RetryTask"):
            self.state.task_end_time = self.now()
        if "rendered_map_index" in CATALOGUE[name].model.by_name:
            self.state.rendered_map_index = body.get("rendered_map_index")
        self.state.terminal_state = state
        self.state.pending = (name, payload)
        self._notify(state, name in ("SucceedTask", "RetryTask"))
        await self.api.request("PATCH", self._ti("state"), json_body=payload, cause=cause)
        self.state.pending = None
        return None, None

    def _notify(self, state: str, overtime: bool) -> None:
        for callback in self.state.on_terminal:
            callback(state, overtime)


def state_payload(body: dict[str, Any]) -> dict[str, Any]:
    """The PATCH .../state body for a terminal message: its fields with defaults, minus type."""
    model = CATALOGUE[body["type"]].model
    payload: dict[str, Any] = {}
    for f in model.fields:
        if f.name == "type":
            continue
        if f.name in body:
            payload[f.name] = body[f.name]
        elif not f.required:
            payload[f.name] = f.default
    if body["type"] == "SucceedTask":
        payload["task_outlets"] = payload.get("task_outlets") or []
        payload["outlet_events"] = payload.get("outlet_events") or []
    if body["type"] == "RetryTask" and isinstance(payload.get("retry_reason"), str):
        payload["retry_reason"] = payload["retry_reason"][:500]
    return jsonify(payload)

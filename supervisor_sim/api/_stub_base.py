"""What every route module of the stub shares: HTTP errors and responses, the request as
handlers see it, and the JSON renderings several routes return."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import httpx

from ._store_common import api_time
from ._validation import _BAD, _bool_query, _datetime, _enum, _Errors, _int, _str


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


#: FastAPI's JSONResponse rendering, byte for byte; one encoder (``json.dumps`` makes one a call).
_encode_json = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def _json(status: int, obj: Any, headers: dict[str, str] | None = None) -> _Response:
    return _Response(status, _encode_json(obj).encode(), "application/json", headers)


def _no_content() -> _Response:
    """An empty 204 from a route declared ``status_code=204`` that returns None: FastAPI still
    renders it through ``JSONResponse``, so it carries ``content-type: application/json``.
    (A route returning its own ``Response``, like the duplicate-state 200, has none.)"""
    # shape verified against real Airflow in the differential test tier (issue 6)
    return _Response(204, b"", "application/json")


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

    def q_str(self, name: str, *, required: bool = False, min_length: int = 0) -> str | None:
        raw = self.query_value(name)
        if raw is None:
            if required:
                self.errors.add("missing", ("query", name), "Field required", None)
            return None
        value = _str(min_length=min_length)(raw, ("query", name), self.errors)
        return None if value is _BAD else value

    def q_list(self, name: str) -> list[str] | None:
        """A ``list[str]`` query parameter (repeated), or None when absent."""
        return self.query.get_list(name) or None

    def q_datetime(self, name: str, *, required: bool = False) -> datetime | None:
        raw = self.query_value(name)
        if raw is None:
            if required:
                self.errors.add("missing", ("query", name), "Field required", None)
            return None
        value = _datetime()(raw, ("query", name), self.errors)
        return None if value is _BAD else value

    def q_datetimes(self, name: str) -> list[datetime] | None:
        out = []
        for i, raw in enumerate(self.query.get_list(name)):
            value = _datetime()(raw, ("query", name, i), self.errors)
            if value is not _BAD:
                out.append(value)
        return out or None

    def q_enum(self, name: str, values: tuple[str, ...]) -> str | None:
        raw = self.query_value(name)
        if raw is None:
            return None
        value = _enum(*values)(raw, ("query", name), self.errors)
        return None if value is _BAD else value

    def q_bool_default(self, name: str, default: bool) -> bool:
        raw = self.query_value(name)
        if raw is None:
            return default
        value = _bool_query(raw, ("query", name), self.errors)
        return default if value is _BAD else value

    def claims_ti(self) -> str | None:
        """The TI id the bearer token is for (``TIToken.id``), or None without auth."""
        sub = (self.claims or {}).get("sub")
        return None if sub is None else str(sub)

    def path_str(self, name: str) -> str:
        return _str(min_length=1)(self.params[name], ("path", name), self.errors)

    def validated(self) -> None:
        if self.errors:
            raise _HTTPError(422, list(self.errors))


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


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

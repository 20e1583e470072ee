"""A request as the route handlers see it: path parameters, query, decoded body, the bearer
token's claims, the server's "now", and the 422 errors found so far."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from ._http import HTTPError
from ._validation import BAD, BOOL, DATETIME, INT, STR, Check, Errors, one_of, text

__all__ = ["Request"]

_NON_EMPTY = text(min_length=1)


@functools.lru_cache(maxsize=16)
def _enum_check(values: tuple[str, ...]) -> Check:
    return one_of(*values)


@dataclass
class Request:
    """One request, parsed. The ``q_*`` readers validate a query parameter (recording any
    error) and ``validated()`` raises the 422 once every parameter has been read, so one answer
    lists every problem, as FastAPI's does."""

    method: str
    params: dict[str, str]
    query: httpx.QueryParams
    body: Any
    claims: dict[str, Any] | None
    now: datetime
    errors: Errors

    def query_value(self, name: str) -> str | None:
        # Starlette (so FastAPI) takes the last of repeated scalar query parameters.
        values = self.query.get_list(name)
        return values[-1] if values else None

    def q_int(self, name: str, default: int | None) -> int | None:
        raw = self.query_value(name)
        if raw is None:
            return default
        value = INT(raw, ("query", name), self.errors)
        return None if value is BAD else value

    def q_bool(self, name: str) -> bool:
        raw = self.query_value(name)
        return raw is not None and BOOL(raw, ("query", name), self.errors) is True

    def q_bool_default(self, name: str, default: bool) -> bool:
        raw = self.query_value(name)
        if raw is None:
            return default
        value = BOOL(raw, ("query", name), self.errors)
        return default if value is BAD else value

    def q_str(self, name: str, *, required: bool = False, min_length: int = 0) -> str | None:
        raw = self.query_value(name)
        if raw is None:
            if required:
                self.errors.add("missing", ("query", name), "Field required", None)
            return None
        check = (
            _NON_EMPTY
            if min_length == 1
            else STR
            if not min_length
            else text(min_length=min_length)
        )
        value = check(raw, ("query", name), self.errors)
        return None if value is BAD else value

    def q_list(self, name: str) -> list[str] | None:
        """A ``list[str]`` query parameter (repeated), or None when absent."""
        return self.query.get_list(name) or None

    def q_datetime(self, name: str, *, required: bool = False) -> datetime | None:
        raw = self.query_value(name)
        if raw is None:
            if required:
                self.errors.add("missing", ("query", name), "Field required", None)
            return None
        value = DATETIME(raw, ("query", name), self.errors)
        return None if value is BAD else value

    def q_datetimes(self, name: str) -> list[datetime] | None:
        out = []
        for i, raw in enumerate(self.query.get_list(name)):
            value = DATETIME(raw, ("query", name, i), self.errors)
            if value is not BAD:
                out.append(value)
        return out or None

    def q_enum(self, name: str, values: tuple[str, ...]) -> str | None:
        raw = self.query_value(name)
        if raw is None:
            return None
        value = _enum_check(values)(raw, ("query", name), self.errors)
        return None if value is BAD else value

    def ti_id(self) -> str:
        """The path's ``task_instance_id``, canonical (422 when it is not a UUID)."""
        raw = self.params["task_instance_id"]
        try:
            return str(uuid.UUID(raw))
        except ValueError:
            # shape verified against real Airflow in the differential test tier
            self.errors.add(
                "uuid_parsing",
                ("path", "task_instance_id"),
                "Input should be a valid UUID, invalid group count: expected 5 groups",
                raw,
                {"error": "invalid group count: expected 5 groups"},
            )
            return raw

    def path_str(self, name: str) -> str:
        value: str = _NON_EMPTY(self.params[name], ("path", name), self.errors)
        return value

    def claims_ti(self) -> str | None:
        """The TI id the bearer token is for (``TIToken.id``), or None without auth."""
        sub = (self.claims or {}).get("sub")
        return None if sub is None else str(sub)

    def validated(self) -> None:
        if self.errors:
            raise HTTPError(422, list(self.errors))

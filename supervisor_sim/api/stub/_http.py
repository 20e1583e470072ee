"""The HTTP side of a handler's answer: errors (``HTTPError``), responses and FastAPI's JSON
rendering, byte for byte."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

__all__ = [
    "HTTPError",
    "Response",
    "encode_json",
    "gone_ti",
    "json_response",
    "no_content",
    "not_found_ti",
]


class HTTPError(Exception):
    """Raised by handlers: becomes ``{"detail": detail}`` with this status."""

    def __init__(self, status: int, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


class Response(NamedTuple):
    """A handler's answer, before the transport adds the headers every response carries."""

    status: int
    content: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] | None = None
    #: The TI whose execution token this response hands out (``Refreshed-API-Token``): the
    #: workload -> execution exchange of ``/run``. The transport issues it; handlers hold no keys.
    issue_token_for: str | None = None


#: FastAPI's JSONResponse rendering, ``json.dumps(obj, ensure_ascii=False, allow_nan=False,
#: separators=(",", ":"))``.
_encode_json = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
if _c_make_encoder is not None:
    # The same C encoder, made once: ``JSONEncoder.encode`` makes one per call, which costs
    # three times what encoding a variable's answer does. No circular-reference check: what
    # the stub encodes is built from parsed JSON and SQLite rows, which cannot hold a cycle.
    # Arguments: markers, default, string encoder, indent, key and item separators, sort_keys,
    # skipkeys, allow_nan.
    _chunks = _c_make_encoder(
        None, json.JSONEncoder().default, json.encoder.encode_basestring, None, ":", ",",
        False, False, False,
    )  # fmt: skip
else:  # pragma: no cover - CPython always has the C encoder

    def _chunks(obj: Any, _level: int) -> tuple[str, ...]:
        return (_encode_json(obj),)


def encode_json(obj: Any) -> str:
    return "".join(_chunks(obj, 0))


def json_response(
    status: int,
    obj: Any,
    headers: dict[str, str] | None = None,
    *,
    issue_token_for: str | None = None,
) -> Response:
    return Response(status, encode_json(obj).encode(), "application/json", headers, issue_token_for)


def no_content() -> Response:
    """An empty 204 from a route declared ``status_code=204`` that returns None: FastAPI still
    renders it through ``JSONResponse``, so it carries ``content-type: application/json``.
    (A route returning its own ``Response``, like the duplicate-state 200, has none.)"""
    # shape verified against real Airflow in the differential test tier
    return Response(204, b"", "application/json")


def not_found_ti() -> HTTPError:
    return HTTPError(404, {"reason": "not_found", "message": "Task Instance not found"})


def gone_ti() -> HTTPError:
    return HTTPError(
        410,
        {
            "reason": "not_found",
            "message": "Task Instance not found, it may have been moved to the Task Instance "
            "History table",
        },
    )

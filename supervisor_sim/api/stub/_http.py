"""The HTTP side of a handler's answer: errors (``HTTPError``), responses and FastAPI's JSON
rendering, byte for byte."""

from __future__ import annotations

from typing import Any, NamedTuple

from ...protocol import json_encoder

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
#: separators=(",", ":"))``, with its C encoder made once.
encode_json = json_encoder(ensure_ascii=False, allow_nan=False)


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

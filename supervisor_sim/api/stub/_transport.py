"""``StubTransport``: an httpx transport that answers like Airflow 3.3's Execution API, from a
``StubStore``, and the same answers without httpx objects (``serve``).

The order of checks follows FastAPI + Cadwyn: routing (404/405), request-body JSON decoding
(422), auth (401/403), then validation of the version header, path, query and body together
(422, by the handler), then the route's own logic. Responses get what Airflow's middlewares
add: the echoed ``Airflow-API-Version``, the ``correlation-id``, a sliding
``Refreshed-API-Token``.
"""

from __future__ import annotations

import functools
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from typing import Any, NamedTuple

import httpx
import jwt
import trio

from .._tokens import TokenIssuer
from ..store import StubStore, utcnow
from ._http import HTTPError, Response, encode_json
from ._request import Request
from ._routes import Route, RouteTable
from ._validation import MISSING, Errors
from ._versions import LATEST_VERSION, pick_version

__all__ = ["PREFIX", "Fault", "StubReply", "StubRequest", "StubTransport"]

PREFIX = "/execution/"
_ROUTES = RouteTable()
_NO_QUERY = httpx.QueryParams()


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

    __slots__ = ("_first", "content", "headers", "method", "path", "query")

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
        self._first: dict[str, str] | None = None

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
        first = self._first
        if first is None:
            # Built once: a request's headers are read five times. Reversed, so that the
            # first of repeated names is the one kept.
            first = self._first = dict(reversed(self.headers))
        return first.get(name)


class StubReply(NamedTuple):
    """The stub's answer: status, lower-case header pairs in order, body."""

    status: int
    headers: list[tuple[str, str]]
    content: bytes


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


class StubTransport(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """Airflow 3.3's Execution API, answered from a ``StubStore`` inside the process.

    With ``tokens`` every route but health needs a valid bearer JWT, as on a real server; with
    None everything is accepted, like Airflow's ``InProcessExecutionAPI``. ``clock`` returns an
    aware UTC datetime and stands in for the server's "now" (timestamps, token refresh).
    ``faults`` are applied to requests that come through httpx (``handle_request``,
    ``handle_async_request``), not to ``serve``.
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
        #: A ``FaultPlan`` the client applies to this stub's calls (docs/unhappy-paths.md).
        self.fault_plan: Any = None

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

    # -- faults ------------------------------------------------------------------------------

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
        content = body if isinstance(body, bytes) else encode_json(body).encode()
        response = Response(fault.status, content, fault.content_type)
        lean = StubRequest.of(request)
        return _to_httpx(self._finish(lean, response, self._claims(lean)), request)

    # -- the pipeline ------------------------------------------------------------------------

    def _serve(self, request: StubRequest) -> StubReply:
        claims = self._claims(request)
        now = self.clock()  # the server's "now", one per request (handlers, token refresh)
        try:
            response = self._dispatch(request, claims, now)
        except HTTPError as exc:
            body = encode_json({"detail": exc.detail}).encode()
            response = Response(exc.status, body, "application/json", exc.headers)
        return self._finish(request, response, claims, now)

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
        self, request: StubRequest, claims: dict[str, Any] | None, now: datetime
    ) -> Response:
        version, version_errors = pick_version(request.header("airflow-api-version"))
        if version is None:
            # Cadwyn: a version older than the first one has no routes at all, so even a known
            # path with the wrong method is 404, not 405.
            # checked against real Airflow 3.3.2 by a one-off probe, not in the parity sequence
            raise HTTPError(404, "Not Found")
        path = request.path
        if not path.startswith(PREFIX):
            raise HTTPError(404, "Not Found")
        route, params = _ROUTES.match(request.method, path[len(PREFIX) :], version)
        body = _decode_body(request.content) if route.body else MISSING
        if body is None:
            # FastAPI takes a JSON null for a required body as no body: 422 ``missing`` on
            # ["body"]. (The one body with a default, an XCom's value, treats both as null.)
            # checked against real Airflow 3.3.2 by a one-off probe, not in the parity sequence
            body = MISSING
        claims = self._authenticate(request, route, params, claims)
        query = httpx.QueryParams(request.query) if request.query else _NO_QUERY
        errors = Errors(version_errors)
        req = Request(request.method, params, query, body, claims, now, errors)
        return route.handler(self.store, req)

    def _authenticate(
        self,
        request: StubRequest,
        route: Route,
        params: dict[str, str],
        claims: dict[str, Any] | None,
    ) -> dict[str, Any] | None:
        if self.tokens is None or not route.auth:
            return None
        scheme, _, credentials = (request.header("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise HTTPError(401, "Missing auth token")
        if claims is None:
            raise HTTPError(403, "Invalid auth token")
        scope = claims.get("scope", "execution")
        subject = _uuid_or_none(str(claims.get("sub")))
        if subject is None:
            # shape verified against real Airflow in the differential test tier
            raise HTTPError(403, "Invalid auth token: sub is not a valid UUID")
        allowed = ("execution", "workload") if route.workload_ok else ("execution",)
        if scope not in allowed:
            raise HTTPError(
                403,
                f"Token type '{scope}' not allowed for this endpoint. "
                f"Allowed types: {', '.join(allowed)}",
            )
        if route.ti_self and _uuid_or_none(params["task_instance_id"]) != subject:
            raise HTTPError(403, "Token subject does not match task instance ID")
        return claims

    def _finish(
        self,
        request: StubRequest,
        response: Response,
        claims: dict[str, Any] | None,
        now: datetime | None = None,
    ) -> StubReply:
        pairs: list[tuple[str, str]] = []
        if response.content_type is not None:
            pairs.append(("content-type", response.content_type))
        extra = response.headers
        if extra:
            pairs += [(k.lower(), v) for k, v in extra.items()]
        exchanged = False
        if response.issue_token_for is not None and self.tokens is not None:
            # /run's workload -> execution exchange (the middleware never refreshes workload).
            token = self.tokens.issue(response.issue_token_for, scope="execution")
            pairs.append(("refreshed-api-token", token))
            exchanged = True
        # Cadwyn's middleware echoes the header exactly as sent (a future date, a date before
        # the first version, even text that fails validation), not the version it routed to;
        # without one it sends its default, the latest version.
        # shape verified against real Airflow in the differential test tier
        sent = request.header("airflow-api-version")
        pairs.append(("airflow-api-version", LATEST_VERSION if sent is None else sent))
        correlation = request.header("correlation-id")
        if correlation is not None:
            pairs.append(("correlation-id", correlation))
        refreshed = None if exchanged else self._sliding_refresh(claims, now)
        if refreshed is not None:
            pairs.append(("refreshed-api-token", refreshed))
        # The server sends no body on any HEAD response, errors included (only the headers).
        # shape verified against real Airflow in the differential test tier
        content = b"" if request.method == "HEAD" else response.content
        if content:  # as httpx does: no Content-Length for an empty body
            pairs.append(("content-length", str(len(content))))
        return StubReply(response.status, pairs, content)

    def _sliding_refresh(
        self, claims: dict[str, Any] | None, now: datetime | None = None
    ) -> str | None:
        """Airflow's ``JWTReissueMiddleware``: renew a valid execution token close to expiry."""
        if self.tokens is None or claims is None or claims.get("scope") == "workload":
            return None
        if not self.tokens.needs_refresh(claims, (now or self.clock()).timestamp()):
            return None
        return self.tokens.reissue(claims)


def _decode_body(raw: bytes) -> Any:
    if not raw:
        return MISSING
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        pos = getattr(exc, "pos", 0)
        msg = getattr(exc, "msg", str(exc))
        raise HTTPError(
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

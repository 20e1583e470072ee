"""The Execution API client: Airflow's HTTP semantics over any httpx transport.

The stub, a real API server and a transcript replay are all ``httpx.AsyncClient`` transports, so
this one client serves them all: bearer token swapped for any ``Refreshed-API-Token``,
``Airflow-API-Version``, a fresh ``correlation-id`` per request, retries with random
exponential back-off on 5xx and transport errors only, a per-attempt timeout, and structured
errors only when the content type is exactly ``application/json``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import httpx
import trio

from ..protocol import json_encoder

if TYPE_CHECKING:
    from ._faults import FaultPlan

__all__ = [
    "API_VERSION",
    "APIResponse",
    "APIStatusError",
    "Exchange",
    "ExecutionAPIClient",
    "InProcessClient",
    "LeanServer",
    "RetryPolicy",
    "ServerResponseError",
]

#: The HTTP Execution API version task-sdk 1.3.2 sends (not the supervisor schema version).
API_VERSION = "2026-06-30"


class ResponseHeaders(dict[str, str]):
    """Response headers by lower-case name; ``get`` and ``in`` ignore case, as HTTP does."""

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())


#: ``json.dumps(value, separators=(",", ":"))``, the encoding of a request body.
_dumps = json_encoder(ensure_ascii=True, allow_nan=True)

_OPENERS = (b"{", b"[")
_scan_once = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


class APIResponse:
    """One Execution API response, whichever transport answered it.

    Only what the supervisor reads: the stub's in-process path builds it without any httpx
    objects, and a network response is copied into it once its body has been read.
    """

    __slots__ = ("content", "headers", "method", "path", "status_code")

    def __init__(
        self, method: str, path: str, status_code: int, headers: ResponseHeaders, content: bytes
    ) -> None:
        self.method = method
        self.path = path
        self.status_code = status_code
        self.headers = headers
        self.content = content

    def json(self) -> Any:
        """``json.loads(self.content)``, without its encoding sniffing and whitespace regexes for
        what the Execution API sends: bytes that start with "{" or "[" then a non-NUL byte, which
        json.loads decodes as UTF-8 ("surrogatepass") and scans from 0. Anything else, or text
        after the value, goes to json.loads itself (and its errors)."""
        raw = self.content
        if raw[:1] in _OPENERS and raw[1:2] != b"\x00":
            text = raw.decode("utf-8", "surrogatepass")
            try:
                value, end = _scan_once(text, 0)
            except StopIteration:
                pass
            else:
                if end == len(text):
                    return value
        return json.loads(raw)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"<APIResponse {self.method} {self.path} -> {self.status_code}>"


class APIStatusError(Exception):
    """An HTTP error whose body is not ``application/json`` (Airflow: plain ``HTTPStatusError``)."""

    def __init__(self, response: APIResponse) -> None:
        self.response = response
        self.status_code = response.status_code
        super().__init__(
            f"{response.method} {response.path} -> {response.status_code} "
            f"({response.headers.get('content-type') or 'no content type'})"
        )


class ServerResponseError(APIStatusError):
    """An HTTP error with a JSON body, as Airflow's client raises it; ``detail`` is the body.

    ``message`` is what Airflow's ``ServerResponseError.from_response`` makes its message, and so
    what its supervisor puts in an error frame's ``detail.message``: "Remote server returned
    validation error" for a list ``detail``, "Server returned error" for a map ``detail`` or a
    body of another shape, the ``detail`` itself when it is a non-empty string. ``reason`` is
    the server's own words, for supervisor-sim's diagnostics."""

    def __init__(self, response: APIResponse) -> None:
        super().__init__(response)
        try:
            self.detail: Any = response.json()
        except ValueError:
            self.detail = None
        inner = self.detail.get("detail") if isinstance(self.detail, dict) else None
        self.message = airflow_error_message(self.detail)
        self.reason = (
            f"Server returned error {response.status_code}" if inner is None else str(inner)
        )
        Exception.__init__(self, self.message)


def _is_validation_item(item: Any) -> bool:
    # pydantic's ValidationError model of the Execution API: loc, msg and type are required.
    return (
        isinstance(item, dict)
        and isinstance(item.get("loc"), list)
        and isinstance(item.get("msg"), str)
        and isinstance(item.get("type"), str)
    )


def airflow_error_message(body: Any) -> str:
    """The message Airflow's client gives an error response with this JSON ``body``."""
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        if isinstance(detail, list) and all(_is_validation_item(i) for i in detail):
            return "Remote server returned validation error"
        if isinstance(detail, dict):
            return "Server returned error"
        if isinstance(detail, str):
            return detail or "Un-parseable error"
    return "Server returned error"


def _airflow_setting(key: str, default: float) -> float:
    """``[workers] <key>`` as Airflow's client reads it from the environment
    (``AIRFLOW__WORKERS__<KEY>``), else Airflow's default; a value that is no number is
    ignored."""
    import os

    try:
        return float(os.environ.get(f"AIRFLOW__WORKERS__{key.upper()}", default))
    except ValueError:
        return default


@dataclass(frozen=True)
class RetryPolicy:
    """Airflow's client (task-sdk 1.3.2, tenacity): ``attempts`` tries, and after the Nth a
    wait random in [wait_min, max(wait_min, min(2**(N-1), wait_max))] s; ``timeout`` s per
    attempt. Defaults: Airflow's ``[workers] execution_api_retries`` (5),
    ``execution_api_retry_wait_min`` (1.0), ``..._wait_max`` (90.0) and
    ``execution_api_timeout`` (5.0), read from ``AIRFLOW__WORKERS__*`` as Airflow's are."""

    attempts: int = field(
        default_factory=lambda: max(1, int(_airflow_setting("execution_api_retries", 5)))
    )
    wait_min: float = field(
        default_factory=lambda: _airflow_setting("execution_api_retry_wait_min", 1.0)
    )
    wait_max: float = field(
        default_factory=lambda: _airflow_setting("execution_api_retry_wait_max", 90.0)
    )
    timeout: float = field(default_factory=lambda: _airflow_setting("execution_api_timeout", 5.0))

    def wait_bounds(self, attempt: int) -> tuple[float, float]:
        """The window the wait after ``attempt`` is drawn from (tenacity's
        ``wait_random_exponential(min, max)``: ``uniform(min, max(min, min(2**(n-1), max)))``)."""
        high = max(self.wait_min, min(2.0 ** min(attempt - 1, 64), self.wait_max))
        return self.wait_min, high

    def wait(self, attempt: int) -> float:
        return random.uniform(*self.wait_bounds(attempt))


@dataclass(slots=True)
class Exchange:
    """One HTTP call as it crossed the transport, for transcripts and the console."""

    method: str
    url: str
    path: str
    query: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""
    error: str | None = None
    attempt: int = 1
    duration_s: float = 0.0
    cause: Any = None  # what made the call: a frame sequence number or a supervisor duty


class ServedReply(Protocol):
    """What a ``LeanServer`` answers: status, lower-case header pairs, body."""

    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> list[tuple[str, str]]: ...
    @property
    def content(self) -> bytes: ...


@runtime_checkable
class LeanServer(Protocol):
    """An in-process transport that also answers without httpx objects (the stub's
    ``serve``), unless ``faults`` are pending."""

    faults: list[Any]

    def serve(
        self, method: str, path: str, query: str, headers: list[tuple[str, str]], content: bytes
    ) -> ServedReply: ...


class InProcessClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` whose transport answers inside this process (the stub, a
    transcript replay), and says so: ``in_process`` is that transport, which an
    ``ExecutionAPIClient`` on this client calls directly."""

    def __init__(self, transport: httpx.AsyncBaseTransport, *, base_url: str) -> None:
        super().__init__(base_url=base_url, transport=transport)
        self.in_process = transport


class ExecutionAPIClient:
    """Calls the Execution API as Airflow's supervisor does; one per task session.

    ``http`` carries the base URL (and, for a real server, the connection pool). ``in_process``
    is the transport behind ``http`` when that transport answers inside this process (the stub,
    a transcript replay; by default the one an ``InProcessClient`` declares): the client then
    calls it directly, since AsyncClient's machinery (URL merging, cookies, auth, redirects,
    hooks) costs more than the stub itself and none of it applies to a transport that never
    touches a network. A ``LeanServer`` (the stub) is called without any httpx objects at all.
    ``stub_client`` builds such a client over a ``StubStore``.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        in_process: httpx.AsyncBaseTransport | None = None,
        token: str = "",
        api_version: str = API_VERSION,
        retry: RetryPolicy | None = None,
        on_exchange: Callable[[Exchange], None] | None = None,
        user_agent: str = "supervisor-sim",
        faults: FaultPlan | None = None,
    ) -> None:
        if in_process is None and isinstance(http, InProcessClient):
            in_process = http.in_process
        # A fault plan (docs/unhappy-paths.md): given, or carried by the stub or the HTTP client.
        if faults is None:
            faults = getattr(in_process, "fault_plan", None) or getattr(http, "fault_plan", None)
        self.faults = faults or None
        self.http = http
        self.in_process = in_process
        self.token = token
        self.api_version = api_version
        self.retry = retry or RetryPolicy()
        self.on_exchange = on_exchange
        self.user_agent = user_agent
        # Event hooks are AsyncClient's to run: a client with hooks goes through it.
        plain = not http.event_hooks["request"] and not http.event_hooks["response"]
        self._direct = in_process if plain else None
        self._base = str(http.base_url)
        # The lean path is synchronous: nothing in such a call can block or be cancelled, so it
        # needs no timeout scope either.
        self._lean = self._direct if isinstance(self._direct, LeanServer) else None
        self._host = http.base_url.netloc.decode("ascii")
        self._urls: dict[str, tuple[str, str]] = {}  # path -> (URL, decoded path)

    async def aclose(self) -> None:
        """Close ``http`` (and so its transport)."""
        await self.http.aclose()

    async def __aenter__(self) -> ExecutionAPIClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def answers_inline(self) -> bool:
        """Whether a call completes without yielding: the stub's lean path, no faults pending."""
        return self._lean is not None and not self._lean.faults and self.faults is None

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | list[tuple[str, Any]] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        cause: Any = None,
    ) -> APIResponse:
        """Send one call with retries; return a < 400 response or raise like Airflow's client.

        Raises ``ServerResponseError`` (JSON error body), ``APIStatusError`` (other error body)
        or an ``httpx.TransportError`` once every attempt failed.
        """
        if json_body is not None and content is None:
            content = _dumps(json_body).encode()
        attempt = 0
        while True:
            attempt += 1
            lean = self._lean
            try:
                if lean is not None and self.faults is None and not lean.faults:
                    # The stub, no faults: answered in this call, no coroutine of its own.
                    response = self._serve_lean(lean, method, path, params, content, attempt, cause)
                else:
                    response = await self._send_once(method, path, params, content, attempt, cause)
            except httpx.TransportError as exc:
                if attempt >= self.retry.attempts:
                    if self.faults is not None:  # the plan says what came of a faulted call
                        self.faults.settled(
                            method, path, attempt, self.retry.attempts, cause=cause,
                            error=f"{type(exc).__name__}: {exc}",
                        )  # fmt: skip
                    raise
                await trio.sleep(self.retry.wait(attempt))
                continue
            if response.status_code >= 500 and attempt < self.retry.attempts:
                await trio.sleep(self.retry.wait(attempt))
                continue
            if self.faults is not None:
                self.faults.settled(
                    method, path, attempt, self.retry.attempts,
                    status=response.status_code, cause=cause,
                )  # fmt: skip
            return _checked(response)

    def request_now(
        self, method: str, path: str, *, json_body: Any = None, cause: Any = None
    ) -> APIResponse | None:
        """The call made and answered within this call, with no checkpoint, when the client
        can (``answers_inline``); ``None`` when it cannot, and nothing was sent: use ``request``.

        One attempt: the stub answers 5xx only through a planned fault, and with one planned
        nothing is answered here. Raises ``ServerResponseError`` or ``APIStatusError`` for an
        error status, as ``request`` does once its attempts are over."""
        lean = self._lean
        if lean is None or lean.faults or self.faults is not None:
            return None
        content = None if json_body is None else _dumps(json_body)
        body = None if content is None else content.encode()
        return _checked(self._serve_lean(lean, method, path, None, body, 1, cause))

    async def _send_once(
        self,
        method: str,
        path: str,
        params: Any,
        content: bytes | None,
        attempt: int,
        cause: Any,
    ) -> APIResponse:
        headers = {
            "airflow-api-version": self.api_version,
            "correlation-id": _uuid7(),
            "user-agent": self.user_agent,
            "accept": "application/json",
        }
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        if content is not None:
            headers["content-type"] = "application/json"
        if self.faults is not None:
            injected = await self._injected(method, path, params, content, headers, attempt, cause)
            if injected is not None:
                return injected
        lean = self._lean
        if lean is not None and not lean.faults:
            return self._serve_lean(
                lean, method, path, params, content, attempt, cause, headers["correlation-id"]
            )
        if self._direct is not None:
            url, _ = self._url(path)
            request = httpx.Request(method, url, params=params, content=content, headers=headers)
        else:
            request = self.http.build_request(
                method,
                path,
                params=params,
                content=content,
                headers=headers,
                timeout=self.retry.timeout,
            )
        started = time.perf_counter()
        exchange = Exchange(
            method=method,
            url=str(request.url),
            path=request.url.path,
            query=request.url.query.decode("ascii"),
            request_headers=dict(request.headers.items()),
            request_body=content or b"",
            attempt=attempt,
            cause=cause,
        )
        try:
            # The per-attempt timeout is enforced here too: httpx applies its own only to
            # network I/O, and an in-process transport (the stub, a replay) has none.
            with trio.fail_after(self.retry.timeout):
                if self._direct is not None:
                    response = await self._direct.handle_async_request(request)
                    response.request = request
                else:
                    response = await self.http.send(request)
                await response.aread()
        except trio.TooSlowError:
            exc = httpx.ReadTimeout(f"no response within {self.retry.timeout:g}s", request=request)
            exchange.error = f"ReadTimeout: {exc}"
            exchange.duration_s = time.perf_counter() - started
            self._emit(exchange)
            raise exc from None
        except httpx.TransportError as exc:
            exchange.error = f"{type(exc).__name__}: {exc}"
            exchange.duration_s = time.perf_counter() - started
            self._emit(exchange)
            raise
        # httpx's ``items()`` gives lower-case names, repeated headers joined with ", ".
        headers = ResponseHeaders(response.headers.items())
        return self._received(exchange, started, response.status_code, headers, response.content)

    async def _injected(
        self,
        method: str,
        path: str,
        params: Any,
        content: bytes | None,
        headers: dict[str, str],
        attempt: int,
        cause: Any,
    ) -> APIResponse | None:
        """Apply the fault plan before the call leaves: wait, fail as the network would, or
        answer as the server would; None to send the call."""
        assert self.faults is not None
        url = httpx.URL(self._base + path.lstrip("/"), params=params or None)
        action = self.faults.before(method, url.path, attempt, self.retry.attempts)
        if action is None:
            return None
        if action.kind == "delay":
            if action.delay_s < self.retry.timeout:
                await trio.sleep(action.delay_s)
                return None
            action = replace(action, kind="timeout")
        if action.kind == "status" or action.kind == "malformed":
            exchange = Exchange(
                method=method,
                url=str(url),
                path=url.path,
                query=url.query.decode("ascii"),
                request_headers=headers,
                request_body=content or b"",
                attempt=attempt,
                cause=cause,
            )
            reply = ResponseHeaders(
                {
                    "content-type": action.content_type,
                    "airflow-api-version": self.api_version,
                    "correlation-id": headers["correlation-id"],
                    "content-length": str(len(action.body)),
                }
            )
            assert action.status is not None
            return self._received(exchange, time.perf_counter(), action.status, reply, action.body)
        request = httpx.Request(method, url, content=content, headers=headers)
        exchange = Exchange(
            method=method,
            url=str(url),
            path=url.path,
            query=url.query.decode("ascii"),
            request_headers=dict(request.headers.items()),
            request_body=content or b"",
            attempt=attempt,
            cause=cause,
        )
        exc: httpx.TransportError
        if action.kind == "timeout":
            await trio.sleep(self.retry.timeout)
            exc = httpx.ReadTimeout(f"no response within {self.retry.timeout:g}s", request=request)
            exchange.duration_s = self.retry.timeout
        else:
            exc = httpx.ReadError("[Errno 104] Connection reset by peer", request=request)
        exchange.error = f"{type(exc).__name__}: {exc}"
        self._emit(exchange)
        raise exc

    def _serve_lean(
        self,
        stub: LeanServer,
        method: str,
        path: str,
        params: Any,
        content: bytes | None,
        attempt: int,
        cause: Any,
        correlation_id: str | None = None,
    ) -> APIResponse:
        """Call the stub's ``serve`` with exactly the fields httpx would have sent it: the
        headers of ``_send_once`` (``correlation_id`` when it made one already), in the order and
        with the additions of ``httpx.Request``."""
        if params:
            parsed = httpx.URL(self._base + path.lstrip("/"), params=params)
            url, decoded, query = str(parsed), parsed.path, parsed.query.decode("ascii")
        else:
            (url, decoded), query = self._url(path), ""
        body = content or b""
        # Host first, then an empty body's Content-Length for POST/PUT/PATCH, then the client's
        # own headers, and a body's Content-Length last.
        pairs = [("host", self._host)]
        if not body and method in ("POST", "PUT", "PATCH"):
            pairs.append(("content-length", "0"))
        pairs.append(("airflow-api-version", self.api_version))
        pairs.append(("correlation-id", correlation_id or _uuid7()))
        pairs.append(("user-agent", self.user_agent))
        pairs.append(("accept", "application/json"))
        if self.token:
            pairs.append(("authorization", f"Bearer {self.token}"))
        if content is not None:
            pairs.append(("content-type", "application/json"))
        if body:
            pairs.append(("content-length", str(len(body))))
        started = time.perf_counter()
        reply = stub.serve(method, decoded, query, pairs, body)
        # The stub's header names are lower case and never repeated.
        headers = ResponseHeaders(reply.headers)
        status = reply.status
        response_body = reply.content
        exchange = Exchange(
            method,
            url,
            decoded,
            query,
            dict(pairs),
            body,
            status,
            headers,
            response_body,
            None,
            attempt,
            time.perf_counter() - started,
            cause,
        )
        # Airflow swaps its bearer token for any refreshed one, on errors too.
        refreshed = dict.get(headers, "refreshed-api-token")
        if refreshed:
            self.token = refreshed
        if self.on_exchange is not None:
            self.on_exchange(exchange)
        return APIResponse(method, decoded, status, headers, response_body)

    def _received(
        self,
        exchange: Exchange,
        started: float,
        status: int,
        headers: ResponseHeaders,
        content: bytes,
    ) -> APIResponse:
        exchange.status = status
        exchange.response_headers = headers
        exchange.response_body = content
        exchange.duration_s = time.perf_counter() - started
        # Airflow swaps its bearer token for any refreshed one, on errors too.
        refreshed = dict.get(headers, "refreshed-api-token")
        if refreshed:
            self.token = refreshed
        self._emit(exchange)
        return APIResponse(exchange.method, exchange.path, status, headers, content)

    def _url(self, path: str) -> tuple[str, str]:
        """The absolute URL httpx makes of ``path`` and its decoded path (parsing is ~10 us)."""
        hit = self._urls.get(path)
        if hit is None:
            url = httpx.URL(self._base + path.lstrip("/"))
            hit = (str(url), url.path)
            if len(self._urls) < 1024:
                self._urls[path] = hit
        return hit

    def _emit(self, exchange: Exchange) -> None:
        if self.on_exchange is not None:
            self.on_exchange(exchange)


def _uuid7() -> str:
    """A time-ordered UUIDv7, as Airflow's client uses for correlation ids."""
    ms = time.time_ns() // 1_000_000
    rand = random.getrandbits(74)  # an id, not a secret: no system call needed
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64
    value |= 0b10 << 62 | (rand & ((1 << 62) - 1))
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _checked(response: APIResponse) -> APIResponse:
    """``response`` if its status is below 400, else the error Airflow's client raises for it."""
    if response.status_code >= 400:
        if response.headers.get("content-type", "") == "application/json":
            raise ServerResponseError(response)
        raise APIStatusError(response)
    return response

"""The Execution API client: Airflow's HTTP semantics over any httpx transport.

The stub, a real API server and a transcript replay are all ``httpx.AsyncClient`` transports, so
this one client serves them all (execution-api.md §2-5): bearer token swapped for any
``Refreshed-API-Token``, ``Airflow-API-Version``, a fresh ``correlation-id`` per request, retries
with random exponential back-off on 5xx and transport errors only, a per-attempt timeout, and
structured errors only when the content type is exactly ``application/json``.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

__all__ = [
    "API_VERSION",
    "APIStatusError",
    "Exchange",
    "ExecutionAPIClient",
    "RetryPolicy",
    "ServerResponseError",
]

#: The HTTP Execution API version task-sdk 1.3.2 sends (not the supervisor schema version).
API_VERSION = "2026-06-30"


class APIStatusError(Exception):
    """An HTTP error whose body is not ``application/json`` (Airflow: plain ``HTTPStatusError``)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.status_code = response.status_code
        super().__init__(
            f"{response.request.method} {response.request.url.path} -> {response.status_code} "
            f"({response.headers.get('content-type') or 'no content type'})"
        )


class ServerResponseError(APIStatusError):
    """An HTTP error with a JSON body, as Airflow's client raises it; ``detail`` is the body."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response)
        try:
            self.detail: Any = response.json()
        except ValueError:
            self.detail = None
        detail = self.detail.get("detail") if isinstance(self.detail, dict) else self.detail
        self.message = (
            f"Server returned error {response.status_code}" if detail is None else str(detail)
        )
        Exception.__init__(self, self.message)


@dataclass(frozen=True)
class RetryPolicy:
    """Airflow's defaults: 5 attempts, waits random in [1, min(2**(n-1), 90)] s, 5 s timeout."""

    attempts: int = 5
    wait_min: float = 1.0
    wait_max: float = 90.0
    timeout: float = 5.0

    def wait(self, attempt: int) -> float:
        upper = min(2.0 ** (attempt - 1), self.wait_max)
        return random.uniform(min(self.wait_min, upper), max(self.wait_min, upper))


@dataclass
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


class ExecutionAPIClient:
    """Calls the Execution API as Airflow's supervisor does; one per task session."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        token: str = "",
        api_version: str = API_VERSION,
        retry: RetryPolicy | None = None,
        on_exchange: Callable[[Exchange], None] | None = None,
        user_agent: str = "supervisor-sim",
    ) -> None:
        self.http = http
        self.token = token
        self.api_version = api_version
        self.retry = retry or RetryPolicy()
        self.on_exchange = on_exchange
        self.user_agent = user_agent
        # An in-process transport (the stub, a replay) is called directly: AsyncClient's
        # machinery (URL merging, cookies, auth, redirects, hooks) costs more than the stub
        # itself, and none of it applies to a transport that never touches a network.
        transport = getattr(http, "_transport", None)
        plain = not http.event_hooks["request"] and not http.event_hooks["response"]
        self._direct = transport if getattr(transport, "in_process", False) and plain else None
        self._base = str(http.base_url)
        # The stub also answers synchronously; without injected faults it cannot block.
        self._sync = self._direct if hasattr(self._direct, "handle_request") else None
        self._urls: dict[str, httpx.URL] = {}  # parsed URLs by path: parsing is ~10 us

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | list[tuple[str, Any]] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        cause: Any = None,
    ) -> httpx.Response:
        """Send one call with retries; return a < 400 response or raise like Airflow's client.

        Raises ``ServerResponseError`` (JSON error body), ``APIStatusError`` (other error body)
        or an ``httpx.TransportError`` once every attempt failed.
        """
        if json_body is not None and content is None:
            content = json.dumps(json_body, separators=(",", ":")).encode()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._send_once(method, path, params, content, attempt, cause)
            except httpx.TransportError:
                if attempt >= self.retry.attempts:
                    raise
                await trio.sleep(self.retry.wait(attempt))
                continue
            if response.status_code >= 500 and attempt < self.retry.attempts:
                await trio.sleep(self.retry.wait(attempt))
                continue
            if response.status_code >= 400:
                ctype = response.headers.get("content-type", "")
                if ctype == "application/json":
                    raise ServerResponseError(response)
                raise APIStatusError(response)
            return response

    async def _send_once(
        self,
        method: str,
        path: str,
        params: Any,
        content: bytes | None,
        attempt: int,
        cause: Any,
    ) -> httpx.Response:
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
        if self._direct is not None:
            url = self._urls.get(path)
            if url is None:
                url = httpx.URL(self._base + path.lstrip("/"))
                if len(self._urls) < 1024:
                    self._urls[path] = url
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
            query=request.url.query.decode()
            if isinstance(request.url.query, bytes)
            else str(request.url.query),
            request_headers=dict(request.headers.items()),
            request_body=content or b"",
            attempt=attempt,
            cause=cause,
        )
        try:
            if self._sync is not None and not getattr(self._sync, "faults", None):
                # Nothing in a synchronous stub call can block or be cancelled: no timeout
                # scope, no async iteration of a body that is already in memory.
                response = self._sync.handle_request(request)
                response.request = request
                response.read()
            else:
                # The per-attempt timeout is enforced here too: httpx applies its own only
                # to network I/O, and an in-process transport (the stub, a replay) has none.
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
        exchange.status = response.status_code
        exchange.response_headers = dict(response.headers.items())
        exchange.response_body = response.content
        exchange.duration_s = time.perf_counter() - started
        # Airflow swaps its bearer token for any refreshed one, on errors too.
        refreshed = response.headers.get("refreshed-api-token")
        if refreshed:
            self.token = refreshed
        self._emit(exchange)
        return response

    def _emit(self, exchange: Exchange) -> None:
        if self.on_exchange is not None:
            self.on_exchange(exchange)


def _uuid7() -> str:
    """A time-ordered UUIDv7, as Airflow's client uses for correlation ids."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62 | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))

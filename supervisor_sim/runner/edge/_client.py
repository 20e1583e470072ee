"""The Edge worker API over httpx: one signed call per request, retries, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx
import trio

from . import _protocol as p

__all__ = ["EdgeAPIError", "EdgeClient"]


class EdgeAPIError(Exception):
    """A call the edge API refused or could not be reached for; ``str()`` is one line."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
    detail = body.get("detail") if isinstance(body, dict) else body
    return detail if isinstance(detail, str) else json.dumps(detail)[:200]


class EdgeClient:
    """Calls ``/edge_worker/v1/...`` as ``api_client.py`` does: ``Authorization: <JWT>`` whose
    ``method`` claim is the path, JSON bodies; retries transport errors and 5xx/429 with
    back-off (``attempts`` in all), as the provider's ``retryhttp`` policy does."""

    def __init__(
        self,
        api_url: str,
        secret: str,
        *,
        attempts: int = 10,
        wait_min: float = 1.0,
        wait_max: float = 30.0,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base = p.edge_base_url(api_url)
        self._secret = secret
        self._attempts = max(1, attempts)
        self._wait = (wait_min, wait_max)
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(self, method: str, rest_path: str, body: bytes | None = None) -> Any:
        """One call; the decoded JSON reply (None for an empty one)."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        url = self.base + rest_path
        delay = self._wait[0]
        for attempt in range(1, self._attempts + 1):
            headers["Authorization"] = p.edge_token(self._secret, rest_path)
            retry_reason = None
            try:
                response = await self._http.request(method, url, content=body, headers=headers)
            except httpx.TransportError as exc:
                retry_reason = (
                    f"cannot reach the edge API at {self.base} ({type(exc).__name__}: {exc})"
                )
            else:
                status = response.status_code
                if status < 400:
                    if status == 204 or not response.content:
                        return None
                    return response.json()
                if status >= 500 or status == 429:
                    retry_reason = f"{method} {rest_path}: HTTP {status} {_detail(response)}"
                else:
                    raise self._refused(method, rest_path, response)
            if attempt == self._attempts:
                raise EdgeAPIError(retry_reason)
            await trio.sleep(delay)
            delay = min(delay * 2, self._wait[1])
        raise AssertionError("unreachable")  # pragma: no cover

    def _refused(self, method: str, rest_path: str, response: httpx.Response) -> EdgeAPIError:
        status = response.status_code
        detail = _detail(response)
        if status in (401, 403):
            return EdgeAPIError(
                f"the edge API at {self.base} refused the worker's token (HTTP {status}): is"
                " --jwt-secret the API server's [api_auth] jwt_secret?",
                status,
            )
        if status in (404, 405) and rest_path.startswith("worker/") and method == "POST":
            return EdgeAPIError(
                f"no edge worker API at {self.base} (HTTP {status}): set [edge] api_enabled ="
                " True on the API server and check --api-url",
                status,
            )
        return EdgeAPIError(f"{method} {rest_path}: HTTP {status} {detail}".rstrip(), status)

    # -- the calls of api_client.py ----------------------------------------------------------

    async def register(
        self, hostname: str, state: str, queues: Sequence[str] | None, info: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            reply = await self.call(
                "POST",
                p.worker_path(hostname),
                p.state_body(state, jobs_active=0, queues=queues, info=info, register=True),
            )
        except EdgeAPIError as exc:
            if exc.status == 409:
                raise EdgeAPIError(
                    f"a worker named {hostname!r} is already active on this Airflow: give each"
                    " worker its own --hostname, or stop the other one first",
                    409,
                ) from None
            if exc.status == 400:
                raise EdgeAPIError(
                    f"the edge API refused to register the worker: {exc}", 400
                ) from None
            raise
        return dict(reply or {})

    async def set_state(
        self,
        hostname: str,
        state: str,
        *,
        jobs_active: int,
        queues: Sequence[str] | None,
        info: dict[str, Any],
        maintenance_comments: str | None,
    ) -> dict[str, Any]:
        reply = await self.call(
            "PATCH",
            p.worker_path(hostname),
            p.state_body(
                state,
                jobs_active=jobs_active,
                queues=queues,
                info=info,
                maintenance_comments=maintenance_comments,
            ),
        )
        return dict(reply or {})

    async def fetch(
        self, hostname: str, queues: Sequence[str] | None, free_concurrency: int
    ) -> p.EdgeJob | None:
        reply = await self.call(
            "POST", p.fetch_path(hostname), p.fetch_body(queues, free_concurrency)
        )
        if not reply:
            return None
        try:
            return p.EdgeJob.from_json(reply)
        except ValueError as exc:
            raise EdgeAPIError(f"jobs/fetch: {exc}") from None

    async def set_job_state(self, job: p.EdgeJob, state: str) -> None:
        await self.call("PATCH", p.job_state_path(job, state), p.job_state_body(job))

    async def push_logs(self, job: p.EdgeJob, data: str) -> None:
        await self.call("POST", p.logs_push_path(job), p.logs_push_body(job, data))

"""ExecutionAPIClient's retry policy and token handling against a mocked real server (respx).

The client is built as ``run-task --api-url`` builds it (``real_api_client``: httpx's network
transport), and respx answers in place of the network: Airflow's policy is 5 attempts on 5xx
and transport errors with random exponential waits, none on 4xx, and the bearer token swapped
for any ``Refreshed-API-Token``, on errors too. Waits run on trio's virtual clock.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import respx
import trio

from supervisor_sim.api import (
    APIStatusError,
    ExecutionAPIClient,
    RetryPolicy,
    ServerResponseError,
    real_api_client,
)

BASE = "http://airflow.test/execution/"
VARIABLE = f"{BASE}variables/v"


@pytest.fixture
def server() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


def client(token: str = "t0", retry: RetryPolicy | None = None) -> ExecutionAPIClient:
    return ExecutionAPIClient(real_api_client(BASE), token=token, retry=retry or RetryPolicy())


def ok() -> httpx.Response:
    return httpx.Response(200, json={"key": "v", "value": "x"})


async def test_5xx_is_retried_until_the_fifth_attempt_then_raised(
    server: respx.MockRouter, autojump_clock: trio.abc.Clock
) -> None:
    """A server answering 503 every time gets exactly 5 attempts; the last error is raised,
    after waits of 1, [1, 2], [1, 4] and [1, 8] seconds."""
    route = server.get(VARIABLE).mock(return_value=httpx.Response(503, json={"detail": "down"}))
    started = trio.current_time()
    async with client() as api:
        with pytest.raises(ServerResponseError) as raised:
            await api.request("GET", "variables/v")
    assert route.call_count == 5
    assert raised.value.status_code == 503 and raised.value.message == "down"
    assert 4.0 <= trio.current_time() - started <= 15.0


async def test_a_5xx_then_a_success_returns_the_success(
    server: respx.MockRouter, autojump_clock: trio.abc.Clock
) -> None:
    """A 500 and a 502 are retried; the third attempt's 200 is the answer."""
    route = server.get(VARIABLE).mock(
        side_effect=[httpx.Response(500), httpx.Response(502, text="bad gateway"), ok()]
    )
    async with client() as api:
        response = await api.request("GET", "variables/v")
    assert route.call_count == 3
    assert response.status_code == 200 and response.json() == {"key": "v", "value": "x"}


async def test_transport_errors_are_retried_then_raised(
    server: respx.MockRouter, autojump_clock: trio.abc.Clock
) -> None:
    """A connection that keeps failing gets 5 attempts, then the transport error is raised;
    one that recovers answers normally."""
    failing = server.get(VARIABLE).mock(side_effect=httpx.ConnectError("refused"))
    async with client() as api:
        with pytest.raises(httpx.ConnectError):
            await api.request("GET", "variables/v")
    assert failing.call_count == 5
    server.routes.clear()
    flaky = server.get(VARIABLE).mock(side_effect=[httpx.ReadError("reset"), ok()])
    async with client() as api:
        assert (await api.request("GET", "variables/v")).status_code == 200
    assert flaky.call_count == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
async def test_4xx_is_never_retried(
    server: respx.MockRouter, autojump_clock: trio.abc.Clock, status: int
) -> None:
    """Every 4xx is answered at once: one attempt, a ServerResponseError with its detail."""
    route = server.get(VARIABLE).mock(return_value=httpx.Response(status, json={"detail": "no"}))
    async with client() as api:
        with pytest.raises(ServerResponseError) as raised:
            await api.request("GET", "variables/v")
    assert route.call_count == 1
    assert raised.value.status_code == status and raised.value.detail == {"detail": "no"}


async def test_an_error_body_that_is_not_exactly_json_is_a_plain_status_error(
    server: respx.MockRouter,
) -> None:
    """Only ``application/json`` error bodies are structured: another content type (even a
    JSON one with parameters) raises APIStatusError, not ServerResponseError."""
    server.get(VARIABLE).mock(
        return_value=httpx.Response(
            404, content=b'{"detail": "x"}', headers={"content-type": "application/json; x=1"}
        )
    )
    async with client() as api:
        with pytest.raises(APIStatusError) as raised:
            await api.request("GET", "variables/v")
    assert type(raised.value) is APIStatusError and raised.value.status_code == 404


async def test_refreshed_token_replaces_the_bearer_token_on_success_and_on_error(
    server: respx.MockRouter,
) -> None:
    """Each request carries the latest token: a Refreshed-API-Token header on a 200 and on a
    409 replaces it; a response without one keeps it."""
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        step = len(seen)
        if step == 1:
            return httpx.Response(200, json={}, headers={"Refreshed-API-Token": "t1"})
        if step == 2:
            return httpx.Response(409, json={"detail": "x"}, headers={"refreshed-api-token": "t2"})
        return httpx.Response(200, json={})

    server.route(url__startswith=BASE).mock(side_effect=answer)
    async with client("t0") as api:
        await api.request("PATCH", "task-instances/x/run", json_body={})
        with pytest.raises(ServerResponseError):
            await api.request("PUT", "task-instances/x/heartbeat", json_body={})
        await api.request("GET", "variables/v")
        await api.request("GET", "variables/v")
        assert api.token == "t2"
    assert seen == ["Bearer t0", "Bearer t1", "Bearer t2", "Bearer t2"]


async def test_requests_carry_airflows_headers(server: respx.MockRouter) -> None:
    """Every attempt sends the API version, a fresh correlation id and a JSON content type
    for a body; retries send a new correlation id each."""
    route = server.put(f"{BASE}variables/v").mock(side_effect=[httpx.Response(500), ok()])
    async with client(retry=RetryPolicy(attempts=2, wait_min=0.0, wait_max=0.0)) as api:
        await api.request("PUT", "variables/v", json_body={"val": "1"})
    first, second = (call.request for call in route.calls)
    for request in (first, second):
        assert request.headers["airflow-api-version"] == "2026-06-30"
        assert request.headers["content-type"] == "application/json"
        assert request.content == b'{"val":"1"}'
    assert first.headers["correlation-id"] != second.headers["correlation-id"]

"""The client's in-process path into the stub (``StubTransport.serve``, no httpx objects) must be
indistinguishable from the httpx path: same statuses, bodies, headers and exchange records."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import trio

from supervisor_sim.api import (
    APIStatusError,
    Exchange,
    ExecutionAPIClient,
    Fault,
    RetryPolicy,
    ServerResponseError,
    StubStore,
    StubTransport,
    TokenIssuer,
    stub_client,
    stub_http,
)

BASE = "http://stub.invalid/execution/"

#: (method, path, params, json body): every shape the dispatcher sends (bodies, none, HEAD,
#: query parameters, quoted and unusual path characters), successes and errors.
CALLS: list[tuple[str, str, Any, Any]] = [
    ("GET", "variables/" + quote("a b/ç?", safe="/"), None, None),
    ("GET", "variables/missing", None, None),
    ("PUT", "variables/new", None, {"val": "1"}),
    ("PUT", "variables/bad", None, {"value": "1"}),
    ("DELETE", "variables/new", None, None),
    ("GET", "connections/" + quote("my conn", safe=""), None, None),
    ("GET", "xcoms/d/r/t/k", {"map_index": -1, "include_prior_dates": False}, None),
    ("HEAD", "xcoms/d/r/t/k", None, None),
    ("POST", "xcoms/d/r/t/k", {"map_index": -1}, "value"),
    ("POST", "dag-runs/d/r/clear", None, None),
    ("GET", "task-instances/count", {"dag_id": "d", "task_ids": ["a", "b"]}, None),
    ("GET", "dag-runs/count", [("dag_id", "d"), ("states", "success"), ("states", "failed")], None),
    ("GET", "nowhere", None, None),
    ("PATCH", "variables/x", None, None),
]


@pytest.fixture
def store(tmp_path: Any) -> Iterator[StubStore]:
    s = StubStore(str(tmp_path / "state.sqlite"))
    s.set_variable("a b/ç?", "v1")
    yield s
    s.close()


def run_calls(store: StubStore, *, lean: bool) -> tuple[list[Exchange], list[Any]]:
    """Make every call of ``CALLS`` through a fresh client; return its exchanges and results."""
    tokens = TokenIssuer(secret="s" * 64)
    record = store.prepare_task_instance("d", "t", run_id="r")
    stub = StubTransport(store, tokens=tokens)
    if not lean:
        # A pending fault (that never matches) sends every call through httpx objects.
        stub.faults.append(Fault("NONE", "^$", status=500, times=0))
    exchanges: list[Exchange] = []
    results: list[Any] = []

    async def main() -> None:
        async with httpx.AsyncClient(base_url=BASE, transport=stub) as http:
            api = ExecutionAPIClient(
                http,
                in_process=stub,
                token=tokens.issue(record.id, scope="execution"),
                retry=RetryPolicy(attempts=1),
                on_exchange=exchanges.append,
            )
            assert api.answers_inline is lean
            for method, path, params, body in CALLS:
                try:
                    response = await api.request(method, path, params=params, json_body=body)
                except APIStatusError as exc:
                    detail = exc.detail if isinstance(exc, ServerResponseError) else None
                    results.append(("error", type(exc).__name__, exc.status_code, detail))
                else:
                    results.append(("ok", response.status_code, response.content))

    trio.run(main)
    return exchanges, results


def comparable(exchange: Exchange) -> dict[str, Any]:
    """An exchange without what differs on every call (ids, tokens, timings)."""
    skip = {"correlation-id", "authorization", "refreshed-api-token"}
    return {
        "method": exchange.method,
        "url": exchange.url,
        "path": exchange.path,
        "query": exchange.query,
        "request_headers": [(k, v) for k, v in exchange.request_headers.items() if k not in skip],
        "request_body": exchange.request_body,
        "status": exchange.status,
        "response_headers": [(k, v) for k, v in exchange.response_headers.items() if k not in skip],
        "response_body": exchange.response_body,
        "error": exchange.error,
    }


def test_lean_and_httpx_paths_record_identical_exchanges(tmp_path: Any) -> None:
    """Every call shape gives the same exchange record, header order included, on both paths
    (``serve`` without httpx objects, and ``handle_async_request``)."""
    a, b = StubStore(str(tmp_path / "a.sqlite")), StubStore(str(tmp_path / "b.sqlite"))
    for s in (a, b):
        s.set_variable("a b/ç?", "v1")
    lean, lean_results = run_calls(a, lean=True)
    slow, slow_results = run_calls(b, lean=False)
    assert len(lean) == len(slow) == len(CALLS)
    for fast_ex, slow_ex in zip(lean, slow, strict=True):
        assert comparable(fast_ex) == comparable(slow_ex)
    assert lean_results == slow_results
    statuses = {ex.status for ex in lean}
    assert {200, 201, 204, 404, 405, 422} <= statuses  # the list really covers errors


def test_correlation_id_is_echoed_and_headers_ignore_case(store: StubStore) -> None:
    """The lean response echoes the request's correlation id; ``headers.get`` ignores case."""
    exchanges, _ = run_calls(store, lean=True)
    first = exchanges[0]
    assert first.response_headers["correlation-id"] == first.request_headers["correlation-id"]
    assert next(iter(first.request_headers)) == "host"
    assert first.response_headers["content-length"] == str(len(first.response_body))


def test_head_and_bodyless_writes_get_httpx_content_lengths(store: StubStore) -> None:
    """HEAD sends no Content-Length; a POST without a body sends ``Content-Length: 0``."""
    exchanges, _ = run_calls(store, lean=True)
    by_call = {(ex.method, ex.path): ex for ex in exchanges}
    head = by_call[("HEAD", "/execution/xcoms/d/r/t/k")]
    assert "content-length" not in head.request_headers
    assert head.response_body == b""
    clear = by_call[("POST", "/execution/dag-runs/d/r/clear")]
    assert clear.request_headers["content-length"] == "0"


def test_response_headers_lookup_is_case_insensitive(store: StubStore) -> None:
    """``APIResponse.headers`` answers ``Content-Type`` and ``content-type`` alike."""
    tokens = TokenIssuer(secret="s" * 64)
    record = store.prepare_task_instance("d", "t", run_id="r")

    async def main() -> Any:
        token = tokens.issue(record.id, scope="execution")
        async with stub_client(store, tokens=tokens, token=token) as api:
            assert api.answers_inline
            return await api.request("GET", "variables/" + quote("a b/ç?", safe="/"))

    response = trio.run(main)
    assert response.headers.get("Content-Type") == "application/json"
    assert "CONTENT-TYPE" in response.headers
    assert response.json() == {"key": "a b/ç?", "value": "v1"}


def test_the_in_process_path_is_taken_only_when_declared(store: StubStore) -> None:
    """The client calls the stub directly only when told: ``in_process=`` or an
    ``InProcessClient`` (``stub_http``). A plain AsyncClient on the same transport, or one with
    event hooks (which AsyncClient must run), goes through httpx."""
    record = store.prepare_task_instance("d", "t", run_id="r")
    hooked: list[str] = []

    async def hook(request: httpx.Request) -> None:
        hooked.append(request.url.path)

    async def main() -> list[bool]:
        stub = StubTransport(store)
        inline = []
        async with httpx.AsyncClient(base_url=BASE, transport=stub) as plain:
            inline.append(ExecutionAPIClient(plain).answers_inline)
            inline.append(ExecutionAPIClient(plain, in_process=stub).answers_inline)
        async with stub_http(stub) as declared:
            inline.append(ExecutionAPIClient(declared).answers_inline)
        async with httpx.AsyncClient(
            base_url=BASE, transport=stub, event_hooks={"request": [hook]}
        ) as with_hooks:
            api = ExecutionAPIClient(with_hooks, in_process=stub)
            inline.append(api.answers_inline)
            response = await api.request("GET", f"dag-runs/d/{record.run_id}")
            assert response.status_code == 200
        return inline

    assert trio.run(main) == [False, True, True, False]
    assert hooked == ["/execution/dag-runs/d/r"]

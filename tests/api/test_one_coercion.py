"""The stub's request validation and the comm protocol's catalogue take the same scalar values:
both coerce through ``protocol``'s lax core, which follows pydantic 2 (whose verdicts
tests/protocol/test_lax_contract.py checks). Ints and floats may be surrounded by whitespace;
bools, datetimes and durations may not."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest

from supervisor_sim.api import StubStore, StubTransport
from supervisor_sim.protocol import validate_body

INTS = ["5", " 5 ", "-1", "5.0", "1_000", "5.5", "x", "", "0x10"]
BOOLS = ["true", "True", "yes", "0", "off", " true ", "true\n", "maybe", "2"]
DATETIMES = [
    "2026-01-01T00:00:00Z",
    "2026-01-01 00:00:00+01:00",
    "2026-01-01t00:00:00z",
    "1700000000",
    " 2026-01-01T00:00:00Z",
    "2026-01-01T00:00:00",
    "20260101T000000Z",
    "2026-13-01T00:00:00Z",
    "nope",
]
DURATIONS = ["PT30S", "P1DT2H", "-PT1S", "P1DT", 30, 1.5, "30", " PT30S", "P", "soon"]


@pytest.fixture
def stub() -> Any:
    store = StubStore()
    record = store.prepare_task_instance("d", "t", run_id="r")
    transport = StubTransport(store)  # no tokens: every request is authorised
    yield transport, record.id
    store.close()


def call(transport: StubTransport, method: str, path: str, query: str = "", body: Any = None):
    content = b"" if body is None else json.dumps(body).encode()
    headers = [("content-type", "application/json")] if body is not None else []
    reply = transport.serve(method, "/execution/" + path, query, headers, content)
    return reply.status, json.loads(reply.content) if reply.content else None


def refused_by_stub_on(status: int, body: Any, loc: list[Any]) -> bool:
    return status == 422 and any(e["loc"][-len(loc) :] == loc for e in body["detail"])


def accepted_by_catalogue(body: dict[str, Any]) -> bool:
    return not validate_body(body, body["type"])


@pytest.mark.parametrize("value", INTS)
def test_an_int_is_taken_by_both_or_neither(stub: Any, value: str) -> None:
    """GetXCom's ``map_index`` (an int) and the XCom route's ``map_index`` query parameter."""
    transport, _ = stub
    status, body = call(transport, "GET", "xcoms/d/r/t/k", urlencode({"map_index": value}))
    message = {"type": "GetXCom", "key": "k", "dag_id": "d", "run_id": "r", "task_id": "t"}
    catalogue = accepted_by_catalogue({**message, "map_index": value})
    assert catalogue is not refused_by_stub_on(status, body, ["query", "map_index"])


@pytest.mark.parametrize("value", BOOLS)
def test_a_bool_is_taken_by_both_or_neither(stub: Any, value: str) -> None:
    """GetXCom's ``include_prior_dates`` and the same query parameter of the XCom route."""
    transport, _ = stub
    query = urlencode({"include_prior_dates": value})
    status, body = call(transport, "GET", "xcoms/d/r/t/k", query)
    message = {"type": "GetXCom", "key": "k", "dag_id": "d", "run_id": "r", "task_id": "t"}
    catalogue = accepted_by_catalogue({**message, "include_prior_dates": value})
    assert catalogue is not refused_by_stub_on(status, body, ["query", "include_prior_dates"])


@pytest.mark.parametrize("value", DATETIMES)
def test_an_aware_datetime_is_taken_by_both_or_neither(stub: Any, value: str) -> None:
    """SucceedTask's ``end_date`` and the success payload's ``end_date`` of PATCH .../state."""
    transport, ti_id = stub
    body = {"state": "success", "end_date": value}
    status, answer = call(transport, "PATCH", f"task-instances/{ti_id}/state", body=body)
    catalogue = accepted_by_catalogue({"type": "SucceedTask", "end_date": value})
    assert catalogue is not refused_by_stub_on(status, answer, ["success", "end_date"])


@pytest.mark.parametrize("value", DURATIONS)
def test_a_duration_is_taken_by_both_or_neither(stub: Any, value: Any) -> None:
    """DeferTask's ``trigger_timeout`` and the deferred payload's, parsed by one ISO 8601
    duration parser (``protocol.parse_duration``)."""
    transport, ti_id = stub
    body = {
        "state": "deferred",
        "classpath": "c",
        "next_method": "m",
        "trigger_kwargs": {},
        "trigger_timeout": value,
    }
    status, answer = call(transport, "PATCH", f"task-instances/{ti_id}/state", body=body)
    message = {"type": "DeferTask", "classpath": "c", "next_method": "m", "trigger_timeout": value}
    catalogue = accepted_by_catalogue(message)
    assert catalogue is not refused_by_stub_on(status, answer, ["deferred", "trigger_timeout"])


def test_whitespace_is_forgiven_around_ints_only(stub: Any) -> None:
    """`` 5 `` is the int 5 for the stub (the XCom lookup runs and finds nothing: 404), while
    `` true `` is no bool (422 ``bool_parsing``), as pydantic has it."""
    transport, _ = stub
    assert call(transport, "GET", "xcoms/d/r/t/k", "map_index=+5+")[0] == 404
    status, body = call(transport, "GET", "xcoms/d/r/t/k", "include_prior_dates=+true+")
    assert status == 422
    assert body["detail"][0]["type"] == "bool_parsing"

"""Every ToSupervisor message gets the reply Airflow's supervisor gives it.

One explicit row per message type (a type missing from the table fails the suite): a valid
request goes through a task session's real ``Dispatcher`` (with the terminal messages the task
workload registers) wired to the real ``StubTransport`` over a seeded ``StubStore``, for a TI
that went through ``/run``, and the reply must be of the documented type and shape, both as a
Python value and after a msgpack round trip (docs/protocol.md, docs/requests.md).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from supervisor_sim.api import (
    ExecutionAPIClient,
    RetryPolicy,
    StubStore,
    StubTransport,
    TokenIssuer,
    load_fixtures,
)
from supervisor_sim.protocol import (
    ACK,
    CATALOGUE,
    TO_SUPERVISOR,
    TO_TASK,
    decode_response,
    encode_response,
    validate_body,
)
from supervisor_sim.supervision import TaskSession, TaskSpec
from supervisor_sim.supervision._dispatch import Dispatcher

ROOT = Path(__file__).resolve().parents[2]
BASE = "http://stub.invalid/execution/"
DAG, RUN = "example_dag", "run1"
ASSET = {"name": "orders", "uri": "s3://bucket/orders"}
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)

FIXTURES = f"""
[variables]
peer_var = "hello-from-var"
[connections.peer_conn]
conn_type = "http"
password = "s3cret"
[dag_runs.{DAG}]
logical_date = 2026-01-01T00:00:00Z
[[xcoms]]
dag_id = "{DAG}"
run_id = "{RUN}"
task_id = "up"
key = "return_value"
value = [1, 2, 3]
[dags.{DAG}]
tags = ["b", "a"]
task_groups = {{ grp = ["up", "t"] }}
[assets.orders]
uri = "{ASSET["uri"]}"
[asset_aliases]
all_orders = ["orders"]
[[asset_events]]
asset = "orders"
extra = {{ rows = 1 }}
aliases = ["all_orders"]
[[runs]]
dag_id = "{DAG}"
run_id = "earlier"
logical_date = 2025-12-31T00:00:00Z
[[runs.task_instances]]
task_id = "t"
state = "success"
"""

ERROR_SLOT = "error slot"
UNHANDLED = {"status_code": 400, "message": "Unhandled request"}


@dataclass
class Ctx:
    ti_id: str


Row = tuple[Callable[[Ctx], dict[str, Any]], str]


def _x(**kw: Any) -> dict[str, Any]:
    return {"dag_id": DAG, "run_id": RUN, "task_id": "up", "key": "return_value", **kw}


#: request type -> (a valid request for the seeded state, the reply type it must get).
TABLE: dict[str, Row] = {
    "AwaitInputTask": (
        lambda c: {"next_method": "resume", "timeout": "PT60S", "next_kwargs": {}},
        ACK,
    ),
    "ClearAssetStateStoreByName": (lambda c: {"name": ASSET["name"]}, "OKResponse"),
    "ClearAssetStateStoreByUri": (lambda c: {"uri": ASSET["uri"]}, "OKResponse"),
    "ClearTaskStateStore": (lambda c: {"ti_id": c.ti_id}, "OKResponse"),
    "DeferTask": (
        lambda c: {"classpath": "x.Trigger", "trigger_kwargs": {}, "next_method": "go"},
        ACK,
    ),
    "DeleteAssetStateStoreByName": (lambda c: {"name": ASSET["name"], "key": "k"}, "OKResponse"),
    "DeleteAssetStateStoreByUri": (lambda c: {"uri": ASSET["uri"], "key": "k"}, "OKResponse"),
    "DeleteTaskStateStore": (lambda c: {"ti_id": c.ti_id, "key": "k"}, "OKResponse"),
    "DeleteXCom": (lambda c: _x(key="gone"), ACK),
    "GetAssetByName": (lambda c: {"name": ASSET["name"]}, "AssetResult"),
    "GetAssetByUri": (lambda c: {"uri": ASSET["uri"]}, "AssetResult"),
    "GetAssetsByAlias": (lambda c: {"alias_name": "all_orders"}, "AssetsByAliasResult"),
    "GetAssetEventByAsset": (
        lambda c: {"name": ASSET["name"], "uri": None, "after": NOW - timedelta(days=9)},
        "AssetEventsResult",
    ),
    "GetAssetEventByAssetAlias": (
        lambda c: {"alias_name": "all_orders", "limit": 3, "ascending": False},
        "AssetEventsResult",
    ),
    "GetAssetStateStoreByName": (
        lambda c: {"name": ASSET["name"], "key": "seeded"},
        "AssetStateStoreResult",
    ),
    "GetAssetStateStoreByUri": (
        lambda c: {"uri": ASSET["uri"], "key": "seeded"},
        "AssetStateStoreResult",
    ),
    "GetConnection": (lambda c: {"conn_id": "peer_conn"}, "ConnectionResult"),
    "GetDagRun": (lambda c: {"dag_id": DAG, "run_id": RUN}, "DagRunResult"),
    "GetDagRunState": (lambda c: {"dag_id": DAG, "run_id": RUN}, "DagRunStateResult"),
    "GetDRCount": (
        lambda c: {"dag_id": DAG, "run_ids": [RUN, "earlier"], "states": ["running"]},
        "DRCount",
    ),
    "GetDag": (lambda c: {"dag_id": DAG}, "DagResult"),
    "GetPrevSuccessfulDagRun": (lambda c: {"ti_id": c.ti_id}, "PrevSuccessfulDagRunResult"),
    "GetPreviousDagRun": (
        lambda c: {"dag_id": DAG, "logical_date": NOW, "state": "success"},
        "PreviousDagRunResult",
    ),
    "GetPreviousTI": (
        lambda c: {"dag_id": DAG, "task_id": "t", "logical_date": NOW},
        "PreviousTIResult",
    ),
    "GetTaskRescheduleStartDate": (
        lambda c: {"ti_id": c.ti_id, "try_number": 1},
        "TaskRescheduleStartDate",
    ),
    "GetTaskStateStore": (lambda c: {"ti_id": c.ti_id, "key": "seeded"}, "TaskStateStoreResult"),
    "GetTICount": (
        lambda c: {"dag_id": DAG, "task_group_id": "grp", "states": ["running", "null"]},
        "TICount",
    ),
    "GetTaskBreadcrumbs": (
        lambda c: {"dag_id": DAG, "run_id": "earlier"},
        "TaskBreadcrumbsResult",
    ),
    "GetTaskStates": (
        lambda c: {"dag_id": DAG, "run_ids": [RUN], "map_index": -1},
        "TaskStatesResult",
    ),
    "GetVariable": (lambda c: {"key": "peer_var"}, "VariableResult"),
    "GetVariableKeys": (lambda c: {"prefix": "peer"}, "VariableKeysResult"),
    "GetXCom": (lambda c: _x(), "XComResult"),
    "GetXComCount": (lambda c: _x(), "XComCountResponse"),
    "GetXComSequenceItem": (lambda c: _x(offset=0), "XComSequenceIndexResult"),
    "GetXComSequenceSlice": (
        lambda c: _x(start=None, stop=None, step=None),
        "XComSequenceSliceResult",
    ),
    "PutVariable": (lambda c: {"key": "v", "value": "x", "description": None}, ACK),
    "RescheduleTask": (
        lambda c: {"reschedule_date": NOW + timedelta(minutes=5), "end_date": NOW},
        ACK,
    ),
    "RetryTask": (lambda c: {"end_date": NOW, "retry_reason": "flaky"}, ACK),
    "SetAssetStateStoreByName": (
        lambda c: {"name": ASSET["name"], "key": "k", "value": {"a": 1}},
        "OKResponse",
    ),
    "SetAssetStateStoreByUri": (
        lambda c: {"uri": ASSET["uri"], "key": "k", "value": [1]},
        "OKResponse",
    ),
    "SetRenderedFields": (lambda c: {"rendered_fields": {"cmd": "echo hi"}}, ACK),
    "SetRenderedMapIndex": (lambda c: {"rendered_map_index": "label"}, ACK),
    "SetTaskStateStore": (
        lambda c: {"ti_id": c.ti_id, "key": "k", "value": 3, "expires_at": None},
        "OKResponse",
    ),
    "SetXCom": (lambda c: _x(task_id="t", value={"a": 1}), ACK),
    "SkipDownstreamTasks": (lambda c: {"tasks": ["down", ["mapped", 0]]}, ACK),
    "SucceedTask": (
        lambda c: {"end_date": NOW, "task_outlets": [{**ASSET, "type": "Asset"}]},
        ACK,
    ),
    "ValidateInletsAndOutlets": (lambda c: {"ti_id": c.ti_id}, "InactiveAssetsResult"),
    "TaskState": (lambda c: {"state": "failed"}, ACK),
    "TriggerDagRun": (lambda c: {"dag_id": DAG, "run_id": "new", "conf": {"a": 1}}, "OKResponse"),
    "DeleteVariable": (lambda c: {"key": "peer_var"}, "OKResponse"),
    "ResendLoggingFD": (lambda c: {}, ERROR_SLOT),
    "CreateHITLDetailPayload": (
        lambda c: {
            "ti_id": c.ti_id,
            "options": ["yes", "no"],
            "subject": "Go?",
            "params": {},
            "assigned_users": [],
        },
        "HITLDetailRequestResult",
    ),
    "UpdateHITLDetail": (lambda c: {"ti_id": c.ti_id, "chosen_options": ["yes"]}, ERROR_SLOT),
    "GetHITLDetailResponse": (lambda c: {"ti_id": c.ti_id}, ERROR_SLOT),
    "MaskSecret": (lambda c: {"value": "hunter2-secret", "name": "pw"}, ACK),
}

TRIGGERER_ONLY = ("UpdateHITLDetail", "GetHITLDetailResponse")


@dataclass
class Wired:
    store: StubStore
    dispatcher: Dispatcher
    ctx: Ctx


@pytest.fixture
async def wired(tmp_path: Path):
    """A seeded stub, a running TI (``/run`` done with a workload token) and its Dispatcher."""
    path = tmp_path / "fixtures.toml"
    path.write_text(FIXTURES)
    store = StubStore()
    store.seed(load_fixtures(path))
    record = store.prepare_task_instance(DAG, "t", run_id=RUN)
    asset_id = store.assets.get(name=ASSET["name"])["id"]
    store.state_stores.set_asset(asset_id, "seeded", '"v"', NOW)
    store.state_stores.set_task((DAG, RUN, "t", -1), "seeded", '{"page": 1}', None, NOW)
    store.xcoms.set(DAG, RUN, "up", "return_value", "[1,2,3]", 0, NOW)
    tokens = TokenIssuer()
    transport = StubTransport(store, tokens=tokens)
    async with httpx.AsyncClient(base_url=BASE, transport=transport) as http:
        api = ExecutionAPIClient(
            http,
            in_process=transport,
            token=tokens.issue(record.id, scope="workload"),
            retry=RetryPolicy(attempts=1, timeout=5),
        )
        start = {
            "state": "running",
            "hostname": "h",
            "unixname": "u",
            "pid": 1,
            "start_date": "2026-01-01T00:00:00Z",
        }
        response = await api.request("PATCH", f"task-instances/{record.id}/run", json_body=start)
        assert response.status_code == 200
        session = TaskSession(TaskSpec(ti={"id": record.id}, runtime=["true"]), api)
        yield Wired(store, session.workload.dispatcher, Ctx(record.id))
    store.close()


def test_table_covers_all_55_request_types():
    """The table has exactly one row per ToSupervisor type, all 55 of them."""
    assert len(TO_SUPERVISOR) == 55
    assert sorted(TABLE) == sorted(TO_SUPERVISOR)


def test_dispatcher_handles_every_type_but_the_triggerer_only_ones():
    """A task session's dispatcher handles every request type except UpdateHITLDetail and
    GetHITLDetailResponse, which Airflow's task supervisor leaves to its default branch."""
    api = ExecutionAPIClient(httpx.AsyncClient())
    dispatcher = TaskSession(TaskSpec(ti={"id": "x"}, runtime=["true"]), api).workload.dispatcher
    unhandled = [t for t in TO_SUPERVISOR if not dispatcher.handles(t)]
    assert sorted(unhandled) == sorted(TRIGGERER_ONLY)


@pytest.mark.parametrize("type_name", TO_SUPERVISOR)
async def test_request_gets_the_documented_reply(wired: Wired, type_name: str):
    """The request is answered with its documented reply type, in a body valid as ToTask both
    before and after msgpack encoding (or with the documented error frame)."""
    build, expected = TABLE[type_name]
    request = {**build(wired.ctx), "type": type_name}
    assert validate_body(request, TO_SUPERVISOR) == [], "the table's request must be valid"

    body, error = await wired.dispatcher.dispatch(request)

    replies = CATALOGUE[type_name].replies
    if expected == ERROR_SLOT:
        assert body is None and error is not None
        assert validate_body(error, "ErrorResponse") == []
        assert error["error"] == "API_SERVER_ERROR"
        if type_name in TRIGGERER_ONLY:
            assert error["detail"] == UNHANDLED
            assert replies == ("error slot: Unhandled request",)
        else:
            assert error["detail"]["exception_type"] == "OSError"
        return
    assert error is None, error
    if expected == ACK:
        assert body is None and ACK in replies
        return
    assert body is not None and body["type"] == expected and expected in replies
    assert validate_body(body, TO_TASK) == []
    wire = decode_response(encode_response(7, body, None)[4:])
    assert wire.id == 7 and validate_body(wire.body, TO_TASK) == []


def _gen_requests_doc() -> Any:
    spec = importlib.util.spec_from_file_location(
        "gen_requests_doc", ROOT / "tools" / "gen_requests_doc.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_requests_doc_is_current():
    """docs/requests.md is exactly what tools/gen_requests_doc.py renders from the catalogue."""
    assert (ROOT / "docs" / "requests.md").read_text() == _gen_requests_doc().render(), (
        "docs/requests.md is stale: run `python tools/gen_requests_doc.py`"
    )


def test_requests_doc_lists_every_request_type_once():
    """The coverage table has one row for each of the 55 request types."""
    text = (ROOT / "docs" / "requests.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    names = [row.split("`")[1] for row in rows]
    assert sorted(names) == sorted(TO_SUPERVISOR)

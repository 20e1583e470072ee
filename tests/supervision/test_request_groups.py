"""A real reference-runtime child sends every group of requests through a real session.

``requests_dag.tour`` sends one request of each group (DAG runs, task instances, the DAG,
assets, the task and asset state stores, Human-in-the-loop, ResendLoggingFD) over loopback TCP;
the replies are read back from the frames the session recorded. ``produce_asset`` and
``consume_asset`` show an asset event flowing from one task to the next through the SQLite
state file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _session_helpers import SCRIPTED, run_task

from supervisor_sim.api import StubStore, load_fixtures
from supervisor_sim.protocol import TO_TASK, decode_response, validate_body

DAG = "requests_dag"
FIXTURES = """
[variables]
peer_var = "hello-from-var"
[dags.requests_dag]
owners = "data-team"
tags = ["assets"]
[dags.requests_dag.tasks.consume_asset]
inlets = ["tour_asset", { name = "retired_asset" }]
[assets.tour_asset]
uri = "s3://supervisor-sim/tour"
[assets.retired_asset]
uri = "s3://supervisor-sim/retired"
active = false
[asset_aliases]
tour_alias = ["tour_asset"]
[[asset_events]]
asset = "tour_asset"
extra = { rows = 7 }
timestamp = 2025-12-31T06:00:00Z
source_dag_id = "requests_dag"
source_run_id = "scheduled__2025-12-31"
source_task_id = "produce_asset"
aliases = ["tour_alias"]
[[runs]]
dag_id = "requests_dag"
run_id = "scheduled__2025-12-31"
state = "success"
logical_date = 2025-12-31T00:00:00Z
[[runs.task_instances]]
task_id = "tour"
state = "success"
"""

#: (request type, reply) in the order tour sends them; "error:X" is the error slot.
TOUR = [
    ("GetDagRun", "DagRunResult"),
    ("GetDagRunState", "DagRunStateResult"),
    ("GetDRCount", "DRCount"),
    ("GetPreviousDagRun", "PreviousDagRunResult"),
    ("TriggerDagRun", "OKResponse"),
    ("TriggerDagRun", "ErrorResponse"),
    ("TriggerDagRun", "OKResponse"),
    ("GetTICount", "TICount"),
    ("GetTaskStates", "TaskStatesResult"),
    ("GetTaskBreadcrumbs", "TaskBreadcrumbsResult"),
    ("GetPreviousTI", "PreviousTIResult"),
    ("GetPrevSuccessfulDagRun", "PrevSuccessfulDagRunResult"),
    ("GetTaskRescheduleStartDate", "TaskRescheduleStartDate"),
    ("ValidateInletsAndOutlets", "InactiveAssetsResult"),
    ("GetDag", "DagResult"),
    ("GetAssetByName", "AssetResult"),
    ("GetAssetByUri", "ErrorResponse"),
    ("GetAssetsByAlias", "AssetsByAliasResult"),
    ("GetAssetEventByAsset", "AssetEventsResult"),
    ("GetAssetEventByAssetAlias", "AssetEventsResult"),
    ("SetTaskStateStore", "OKResponse"),
    ("GetTaskStateStore", "TaskStateStoreResult"),
    ("DeleteTaskStateStore", "OKResponse"),
    ("GetTaskStateStore", "ErrorResponse"),
    ("ClearTaskStateStore", "OKResponse"),
    ("SetAssetStateStoreByName", "OKResponse"),
    ("GetAssetStateStoreByUri", "AssetStateStoreResult"),
    ("DeleteAssetStateStoreByUri", "OKResponse"),
    ("ClearAssetStateStoreByName", "OKResponse"),
    ("CreateHITLDetailPayload", "HITLDetailRequestResult"),
    ("UpdateHITLDetail", "error:API_SERVER_ERROR"),
    ("ResendLoggingFD", "error:API_SERVER_ERROR"),
]


@pytest.fixture
def store(tmp_path: Path) -> StubStore:
    path = tmp_path / "fixtures.toml"
    path.write_text(FIXTURES)
    s = StubStore(tmp_path / "state.sqlite")
    s.seed(load_fixtures(path))
    return s


def exchanges(run: Any) -> list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]:
    """(request type, reply body, reply error) per request, decoded from the wire bytes."""
    replies = {}
    for frame in run.events("frame", direction="out"):
        decoded = decode_response(frame["payload"])
        replies[decoded.id] = (decoded.body, decoded.error)
    return [
        (frame["type"], *replies[frame["id"]])
        for frame in run.events("frame", direction="in")
        if frame["id"] in replies
    ]


def kind(body: dict[str, Any] | None, error: dict[str, Any] | None) -> str:
    if error is not None:
        return f"error:{error['error']}"
    return "ack" if body is None else body["type"]


async def test_tour_gets_the_documented_reply_for_every_request_group(store: StubStore):
    """Each request tour sends is answered with its documented reply type, in a body valid as
    ToTask on the wire, and the task still succeeds."""
    run = await run_task(store, "tour", dag_id=DAG)

    seen = exchanges(run)
    assert [(t, kind(b, e)) for t, b, e in seen[: len(TOUR)]] == TOUR
    assert seen[len(TOUR)][0] == "SucceedTask"
    for _, body, error in seen:
        for value in (body, error):
            if value is not None:
                assert validate_body(value, TO_TASK) == [], value
    assert run.outcome.final_state == "success"
    assert sorted(v.rule for v in run.outcome.violations) == [
        "fork-mode-only-request",
        "triggerer-only-request",
    ]


async def test_tour_replies_carry_airflow_values_and_shapes(store: StubStore):
    """Reply values come from the seeded state, datetimes arrive as aware datetimes, and the
    exclude_unset replies leave out their nil keys."""
    run = await run_task(store, "tour", dag_id=DAG)
    replies = {t: (b, e) for t, b, e in reversed(exchanges(run))}  # first reply per type

    dag_run = replies["GetDagRun"][0]
    assert dag_run["run_id"] == run.ti.run_id and dag_run["run_after"].tzinfo is not None
    assert replies["GetPreviousDagRun"][0]["dag_run"]["run_id"] == "scheduled__2025-12-31"
    assert replies["GetDag"][0]["owners"] == "data-team"
    assert replies["GetAssetByName"][0] == {
        "name": "tour_asset",
        "uri": "s3://supervisor-sim/tour",
        "group": "asset",
        "extra": {},
        "type": "AssetResult",
    }
    assert replies["GetAssetByUri"][0]["error"] == "ASSET_NOT_FOUND"
    event = replies["GetAssetEventByAsset"][0]["asset_events"][0]
    assert event["extra"] == {"rows": 7} and "source_map_index" not in event
    assert event["timestamp"].tzinfo is not None
    assert replies["GetPrevSuccessfulDagRun"][0] == {"type": "PrevSuccessfulDagRunResult"}
    assert replies["TriggerDagRun"][0] == {"ok": True, "type": "OKResponse"}
    assert replies["GetTaskStateStore"][0] == {
        "value": {"page": 3},
        "type": "TaskStateStoreResult",
    }
    hitl = replies["CreateHITLDetailPayload"][0]
    assert hitl["ti_id"] == run.ti.id and "body" not in hitl and "multiple" not in hitl
    resend_error = replies["ResendLoggingFD"][1]
    assert resend_error["detail"]["exception_type"] == "OSError"
    triggered = store.get_dag_run(DAG, f"{run.ti.run_id}__triggered")
    assert triggered["run_type"] == "operator_triggered" and triggered["clear_number"] == 1


async def test_asset_event_flows_from_one_run_task_to_the_next(store: StubStore, tmp_path: Path):
    """produce_asset's SucceedTask outlet becomes an asset event in the state file, which
    consume_asset, a separate task run over a reopened store, reads back."""
    produced = await run_task(store, "produce_asset", dag_id=DAG, run_id="r1")
    assert produced.outcome.final_state == "success"
    assert produced.outcome.violations == []
    state_call = produced.http("PATCH", "/state")[0]
    assert b'"task_outlets":[{"name":"tour_asset"' in state_call["request_body"]
    store.close()

    reopened = StubStore(tmp_path / "state.sqlite")
    consumed = await run_task(reopened, "consume_asset", dag_id=DAG, run_id="r2")

    assert consumed.outcome.final_state == "success"
    result = reopened.get_xcom(DAG, "r2", "consume_asset", "return_value")
    assert result == {
        "count": 2,  # the seeded event and the one produce_asset reported
        "source": [DAG, "r1", "produce_asset"],
        "extra": {"rows": 42, "producer": "r1"},
    }
    reopened.close()


async def test_validate_inlets_and_outlets_names_the_declared_inactive_inlet(store: StubStore):
    """A task whose DAG fixture declares an inactive inlet gets it back, and only it, in
    InactiveAssetsResult (nil name/uri keys would be left out)."""
    record = store.prepare_task_instance(DAG, "consume_asset", run_id="r3")
    steps = [
        {"send": {"type": "ValidateInletsAndOutlets", "ti_id": record.id}},
        {"send": {"type": "SucceedTask", "end_date": "$now"}},
        {"exit": 0},
    ]
    run = await run_task(
        store, "consume_asset", dag_id=DAG, run_id="r3", runtime=SCRIPTED, steps=steps
    )

    assert run.ti.id == record.id
    (_, reply, error), _ = exchanges(run)
    assert error is None
    assert reply == {
        "inactive_assets": [
            {"name": "retired_asset", "uri": "s3://supervisor-sim/retired", "type": "Asset"}
        ],
        "type": "InactiveAssetsResult",
    }
    assert run.outcome.final_state == "success"

"""supervisor-sim behaves like Airflow's own supervisor towards the same child and the same API.

Each scenario runs one child twice against the real Execution API, each time on a fresh queued
task instance: once under Airflow's ``supervise_task`` (a ``SubprocessCoordinator`` subclass,
tools/airflow_peer/peer_coord.py, launches it with ``--comm/--logs``; tools/airflow_peer/
run_airflow_sup.py records every HTTP call), once under ``supervisor-sim run-task --api-url``
(its transcript records the calls). The child is either the reference runtime or
tools/airflow_peer/recorder.py, which follows a script and records every frame it receives,
with datetimes tagged so a string never passes for a msgpack timestamp.

Compared, with ids and timestamps normalised: the HTTP calls in order (method, path, query,
status and JSON body; heartbeats are counted, not matched, because their timing is the one
thing that legitimately differs), the frames the child received, and the task instance's
final state in Airflow's DB. The Airflow side runs in one background process while the
supervisor-sim side runs, so the module costs about as long as the slower of the two.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ._airflow import RealAirflow
from ._helpers import (  # noqa: F401 - CHILDREN, HEARTBEAT_INTERVAL...: names other tests import
    CHILDREN,
    HEARTBEAT_INTERVAL,
    SEND_TIMEOUT,
    SUCCEED,
    Run,
    Scenario,
    airflow_job,
    airflow_supervisor,
    child_env,
    coordinators,
    fill_steps,
    queue_of,
    run_ids,
    run_sim,
    send,
    take_airflow_result,
    task_state,
    xcom,
)

pytestmark = pytest.mark.real_airflow

SCENARIOS = [
    Scenario("every-request-answered", "hello", [
        {"sleep": 0.3},  # long enough for a first heartbeat under both supervisors
        send({"type": "GetVariable", "key": "peer_var"}),
        send({"type": "GetConnection", "conn_id": "peer_conn"}),
        send({"type": "MaskSecret", "value": "parity-secret", "name": None}),
        send({"type": "SetRenderedFields",
              "rendered_fields": {"op_args": "[]", "bash_command": "echo hi"}}),
        xcom("SetXCom", "parity", value={"a": [1, 2]}, map_index=-1, mapped_length=None,
             dag_result=False),
        xcom("GetXCom", "parity", map_index=-1, include_prior_dates=False),
        xcom("GetXComCount", "parity"),
        xcom("GetXComSequenceItem", "parity", offset=0),
        xcom("GetXComSequenceSlice", "parity", start=None, stop=None, step=None,
             include_prior_dates=False),
        xcom("DeleteXCom", "parity", map_index=-1),
        send({"type": "PutVariable", "key": "{var}", "value": "v", "description": "d"}),
        send({"type": "GetVariableKeys", "prefix": "{var}", "limit": 10, "offset": 0}),
        send({"type": "DeleteVariable", "key": "{var}"}),
        send({"type": "SetRenderedMapIndex", "rendered_map_index": "label"}),
        send({"type": "SkipDownstreamTasks", "tasks": ["pull_xcom"]}),
        SUCCEED,
    ]),
    Scenario("not-found", "hello", [
        send({"type": "GetVariable", "key": "parity_missing"}),
        send({"type": "GetConnection", "conn_id": "parity_missing"}),
        xcom("GetXCom", "parity_missing", map_index=-1, include_prior_dates=False),
        xcom("GetXComSequenceItem", "parity_missing", offset=0),
        xcom("GetXComCount", "parity_missing"),
        xcom("GetXComSequenceSlice", "parity_missing", start=None, stop=None, step=None,
             include_prior_dates=False),
        SUCCEED,
    ]),
    Scenario("task-state-failed-then-exit-1", "fail", [task_state("failed"), {"exit": 1}]),
    Scenario("task-state-failed-then-exit-0", "fail", [task_state("failed")]),
    Scenario("task-state-skipped", "skip", [task_state("skipped")]),
    Scenario("retry-task", "retry", [
        send({"type": "RetryTask", "state": "up_for_retry", "end_date": "$now",
              "rendered_map_index": None, "retry_delay_seconds": None,
              "retry_reason": "parity"}),
    ]),
    Scenario("exit-1-without-terminal-message", "hello", [{"exit": 1}]),
    Scenario("exit-0-without-terminal-message", "hello", [{"exit": 0}]),
    Scenario("invalid-request", "hello", [
        send({"type": "NoSuchMessage", "x": 1}, timeout=3),
        send({"type": "GetVariable", "key": 5}, timeout=3),  # fails validation
        SUCCEED,
    ], variants={"strict": ("--airflow-strict",), "default": ()}),
    Scenario("reference-hello", "hello"),
    Scenario("reference-read-var-conn", "read_var_conn"),
    Scenario("reference-fail", "fail"),
    Scenario("reference-retry", "retry"),
    Scenario("reference-skip", "skip"),
    Scenario("python-read-var-conn", "read_var_conn", child="python"),
    Scenario("python-fail", "fail", child="python"),
    Scenario("python-retry", "retry", child="python"),
    Scenario("log-line-not-json", "hello", [
        {"log": "not json at all"},
        {"log": {"timestamp": "2026-01-01T00:00:00Z", "level": "info", "event": "fine"}},
        SUCCEED,
    ]),
    # Last: Airflow's supervisor crashes on it and leaves its child to time out on its own.
    Scenario("log-line-without-level", "hello", [
        {"log": {"timestamp": "2026-01-01T00:00:00Z", "event": "a line without a level"}},
        {"sleep": 1},
        send(SUCCEED["send"], timeout=5),
    ]),
]  # fmt: skip
BY_NAME = {s.name: s for s in SCENARIOS}
RUNS = [(s.name, v) for s in SCENARIOS for v in s.variants]

_NO_LEVEL = (
    "a log line without 'level' crashes Airflow's supervisor (KeyError) and leaves the TI "
    "running; supervisor-sim keeps the line, records a violation and supervises on"
)
#: Scenarios whose frames differ on purpose (docs/fidelity.md).
FRAMES_DIFFER_ON_PURPOSE = {
    ("invalid-request", "default"): "supervisor-sim answers an invalid request with an error "
    "frame (and records a protocol violation); Airflow never answers it, so the runtime hangs",
    ("log-line-without-level", "sim"): _NO_LEVEL,
}
#: Scenarios whose HTTP calls and final state differ on purpose.
OUTCOME_DIFFERS_ON_PURPOSE = {("log-line-without-level", "sim"): _NO_LEVEL}


# The names these tests had before the harness moved to _helpers.py.
_fill, _ids, _child_env, _queue_of, _coordinators = (
    fill_steps,
    run_ids,
    child_env,
    queue_of,
    coordinators,
)


@pytest.fixture(scope="module")
def runs(
    airflow: RealAirflow, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], tuple[Run, Run]]:
    """(scenario, variant) -> (run under Airflow's supervisor, run under supervisor-sim)."""
    tmp = tmp_path_factory.mktemp("supervisor_parity")
    airflow_runs: dict[str, Run] = {}
    jobs = []
    for scenario in SCENARIOS:
        (ti,) = airflow.queue(scenario.task)
        run = airflow_runs[scenario.name] = Run(ti, var=f"supsim_{scenario.name}_airflow")
        out = tmp / f"{scenario.name}.airflow.frames.json"
        jobs.append(
            airflow_job(airflow, ti, queue_of(scenario), child_env(scenario, ti, run.var, out))
        )
    with airflow_supervisor(airflow, tmp, jobs, results="airflow-results.json") as results:
        sim_runs = _run_sim_side(airflow, tmp)
    for scenario, result in zip(SCENARIOS, results, strict=True):
        frames = tmp / f"{scenario.name}.airflow.frames.json"
        take_airflow_result(airflow, airflow_runs[scenario.name], result, frames)
    return {
        (name, variant): (airflow_runs[name], sim_runs[(name, variant)]) for name, variant in RUNS
    }


def _run_sim_side(airflow: RealAirflow, tmp: Path) -> dict[tuple[str, str], Run]:
    sim_runs = {}
    for name, variant in RUNS:
        scenario = BY_NAME[name]
        (ti,) = airflow.queue(scenario.task)
        run = sim_runs[(name, variant)] = Run(ti, var=f"supsim_{name}_{variant}")
        out = tmp / f"{name}.{variant}.frames.json"
        run_sim(airflow, scenario, run, tmp, out, f"{name}.{variant}", *scenario.variants[variant])
    return sim_runs


def _params(recorder_only: bool = False, known: dict[tuple[str, str], str] | None = None) -> list:
    params = []
    for name, variant in RUNS:
        if recorder_only and BY_NAME[name].steps is None:
            continue
        reason = (known or {}).get((name, variant))
        marks = (
            [pytest.mark.xfail(strict=True, reason=f"kept on purpose: {reason}")] if reason else []
        )
        params.append(pytest.param(name, variant, id=f"{name}-{variant}", marks=marks))
    return params


@pytest.mark.parametrize(("name", "variant"), _params(known=OUTCOME_DIFFERS_ON_PURPOSE))
def test_supervisor_sim_makes_the_http_calls_airflows_supervisor_makes(
    runs: dict[tuple[str, str], tuple[Run, Run]], name: str, variant: str
):
    """Same calls in the same order, same queries, bodies and statuses (heartbeats aside)."""
    theirs, ours = runs[(name, variant)]
    assert theirs.outcome["error"] is None, theirs.outcome
    assert ours.compared_calls() == theirs.compared_calls()


@pytest.mark.parametrize(
    ("name", "variant"), _params(recorder_only=True, known=FRAMES_DIFFER_ON_PURPOSE)
)
def test_the_child_receives_the_frames_airflows_supervisor_sends(
    runs: dict[tuple[str, str], tuple[Run, Run]], name: str, variant: str
):
    """StartupDetails and every reply reach the child with the same content, types and array
    length as under Airflow's supervisor."""
    theirs, ours = runs[(name, variant)]
    assert theirs.frames is not None and ours.frames is not None
    assert ours.compared_frames() == theirs.compared_frames()


@pytest.mark.parametrize(("name", "variant"), _params(known=OUTCOME_DIFFERS_ON_PURPOSE))
def test_the_task_instance_ends_in_the_state_airflows_supervisor_leaves(
    runs: dict[tuple[str, str], tuple[Run, Run]], name: str, variant: str
):
    """Airflow's DB holds the same state for the task instance after either supervisor."""
    theirs, ours = runs[(name, variant)]
    assert ours.state == theirs.state


def test_both_supervisors_heartbeat_a_running_child(
    runs: dict[tuple[str, str], tuple[Run, Run]],
):
    """While a child works, both supervisors heartbeat it and Airflow accepts every beat."""
    theirs, ours = runs[("every-request-answered", "sim")]
    assert theirs.heartbeats() and set(theirs.heartbeats()) == {204}
    assert ours.heartbeats() and set(ours.heartbeats()) == {204}


def test_airflow_never_answers_an_invalid_request_and_strict_mode_does_the_same(
    runs: dict[tuple[str, str], tuple[Run, Run]],
):
    """Airflow leaves an unknown or invalid request unanswered; --airflow-strict does too,
    while the default mode answers it with an error frame and records a violation."""
    theirs, strict = runs[("invalid-request", "strict")]
    _, default = runs[("invalid-request", "default")]
    assert [r.get("no_reply") for r in theirs.frames["replies"][:2]] == [3, 3]
    assert [r.get("no_reply") for r in strict.frames["replies"][:2]] == [3, 3]
    answered = default.frames["replies"][:2]
    assert [r["frame"][2]["type"] for r in answered] == ["ErrorResponse", "ErrorResponse"]
    rules = [v["rule"] for v in default.outcome["violations"]]
    assert len(rules) == 2 and all(r.startswith("invalid-request") for r in rules), rules
    assert default.state == theirs.state == "success"


def test_a_log_line_without_level_crashes_airflows_supervisor_but_not_supervisor_sim(
    runs: dict[tuple[str, str], tuple[Run, Run]],
):
    """Airflow's supervisor dies on a log record without 'level' and the TI stays running;
    supervisor-sim keeps supervising: the task succeeds and the line is a violation."""
    theirs, ours = runs[("log-line-without-level", "sim")]
    assert "KeyError" in (theirs.outcome["error"] or ""), theirs.outcome
    assert theirs.state == "running"
    # The child never gets an answer to SucceedTask: the channel closes (or stays silent).
    assert not [r for r in theirs.frames["replies"] if "frame" in r], theirs.frames
    assert ours.state == "success" and ours.outcome["final_state"] == "success"
    assert [v["rule"] for v in ours.outcome["violations"]], ours.outcome


def test_a_log_line_that_is_not_json_is_dropped_by_airflow_and_kept_by_supervisor_sim(
    runs: dict[tuple[str, str], tuple[Run, Run]],
):
    """Airflow survives a log line that is not JSON (it drops it); supervisor-sim keeps it
    and records a violation; both tasks succeed."""
    theirs, ours = runs[("log-line-not-json", "sim")]
    assert theirs.outcome["error"] is None and theirs.state == ours.state == "success"
    assert [v["rule"] for v in ours.outcome["violations"]] == ["log-not-json"]


def test_supervisor_sim_reports_the_hostname_airflows_supervisor_reports(
    runs: dict[tuple[str, str], tuple[Run, Run]],
):
    """The hostname in PATCH /run and every heartbeat is the one Airflow's supervisor sends."""
    theirs, ours = runs[("every-request-answered", "sim")]
    hosts = [
        {c["request_json"]["hostname"] for c in run.calls if c["method"] in ("PATCH", "PUT")
         and isinstance(c["request_json"], dict) and "hostname" in c["request_json"]}
        for run in (theirs, ours)
    ]  # fmt: skip
    assert hosts[1] == hosts[0]

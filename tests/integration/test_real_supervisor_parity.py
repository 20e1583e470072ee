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

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from supervisor_sim.api import mint_token

from ._airflow import PEER, RealAirflow
from ._helpers import (
    RECORDER,
    REFERENCE,
    SHIM,
    is_heartbeat,
    normalize,
    normalize_call,
    run_task,
    transcript_http,
)

pytestmark = pytest.mark.real_airflow

HEARTBEAT_INTERVAL = 1  # seconds, both supervisors
SEND_TIMEOUT = 10  # seconds the recorder waits for a reply; Airflow leaves some unanswered


def send(body: dict[str, Any], timeout: float = SEND_TIMEOUT) -> dict[str, Any]:
    return {"send": body, "timeout": timeout}


def xcom(type_: str, key: str, **fields: Any) -> dict[str, Any]:
    return send({"type": type_, "key": key, "dag_id": "{dag}", "run_id": "{run}",
                 "task_id": "{task}", **fields})  # fmt: skip


SUCCEED = send({"type": "SucceedTask", "state": "success", "end_date": "$now",
                "task_outlets": [], "outlet_events": [], "rendered_map_index": None})  # fmt: skip


def task_state(state: str) -> dict[str, Any]:
    return send({"type": "TaskState", "state": state, "end_date": "$now",
                 "rendered_map_index": None})  # fmt: skip


@dataclass(frozen=True)
class Scenario:
    """One child behaviour: the recorder following ``steps``, or (no steps) the runtime named
    by ``child``. ``variants``: supervisor-sim runs to make, by name, with their extra flags."""

    name: str
    task: str
    steps: list[dict[str, Any]] | None = None
    variants: dict[str, tuple[str, ...]] = field(default_factory=lambda: {"sim": ()})
    child: str = "reference"  # without steps: "reference" or "python" (Airflow's task runner)

    @property
    def kind(self) -> str:
        return "recorder" if self.steps is not None else self.child


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


def _fill(value: Any, ti: dict[str, Any], var: str) -> Any:
    if isinstance(value, str):
        return value.format(dag=ti["dag_id"], run=ti["run_id"], task=ti["task_id"], var=var)
    if isinstance(value, dict):
        return {k: _fill(v, ti, var) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ti, var) for v in value]
    return value


def _ids(ti: dict[str, Any], var: str) -> dict[str, str]:
    return {ti["ti_id"]: "<ti>", ti["run_id"]: "<run>", var: "<var>"}


@dataclass
class Run:
    """One supervised try of a scenario, as recorded."""

    ti: dict[str, Any]
    var: str
    calls: list[dict[str, Any]] = field(default_factory=list)
    frames: dict[str, Any] | None = None
    outcome: dict[str, Any] = field(default_factory=dict)
    state: str | None = None

    def compared_calls(self) -> list[dict[str, Any]]:
        ids = _ids(self.ti, self.var)
        return [normalize_call(c, ids) for c in self.calls if not is_heartbeat(c)]

    def heartbeats(self) -> list[Any]:
        return [c["status"] for c in self.calls if is_heartbeat(c)]

    def compared_frames(self) -> Any:
        return normalize(self.frames, _ids(self.ti, self.var))


def _child_env(scenario: Scenario, ti: dict[str, Any], var: str, out: Path) -> dict[str, str]:
    if scenario.steps is None:
        return {}
    steps = _fill(scenario.steps, ti, var)
    return {"RECORDER_STEPS": json.dumps(steps), "RECORDER_OUT": str(out)}


CHILDREN = {"recorder": RECORDER, "reference": REFERENCE, "python": SHIM}


def _queue_of(scenario: Scenario) -> str:
    return f"{scenario.kind}-queue"


def _coordinators(airflow: RealAirflow) -> dict[str, str]:
    def coordinator(script: Path) -> dict[str, Any]:
        return {
            "classpath": "peer_coord.CommandCoordinator",
            "kwargs": {"command": [airflow.python, str(script)], "schema_version": "2026-06-16"},
        }

    return {
        "PYTHONPATH": str(PEER),
        # Airflow's loop waits up to this long for the child's exit once its channels close;
        # supervisor-sim runs get the same interval (--heartbeat-interval).
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": str(HEARTBEAT_INTERVAL),
        "AIRFLOW__SDK__COORDINATORS": json.dumps(
            {kind: coordinator(script) for kind, script in CHILDREN.items()}
        ),
        "AIRFLOW__SDK__QUEUE_TO_COORDINATOR": json.dumps(
            {f"{kind}-queue": kind for kind in CHILDREN}
        ),
    }


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
        run = Run(ti, var=f"supsim_{scenario.name}_airflow")
        airflow_runs[scenario.name] = run
        out = tmp / f"{scenario.name}.airflow.frames.json"
        jobs.append(
            {
                "ti": {
                    "id": ti["ti_id"],
                    "task_id": ti["task_id"],
                    "dag_id": ti["dag_id"],
                    "run_id": ti["run_id"],
                    "try_number": ti["try_number"],
                    "dag_version_id": ti["dag_version_id"],
                    "map_index": ti["map_index"],
                    "queue": _queue_of(scenario),
                },
                "token": mint_token(airflow.secret, ti["ti_id"], scope="workload"),
                "server": airflow.api_url,
                "dag_rel_path": "example_dag.py",
                "env": _child_env(scenario, ti, run.var, out),
            }
        )
    (tmp / "jobs.json").write_text(json.dumps(jobs, indent=1))
    results_path = tmp / "airflow-results.json"
    with open(tmp / "airflow-supervisor.log", "w") as log:
        peer = subprocess.Popen(
            [airflow.python, str(PEER / "run_airflow_sup.py"), "jobs.json", results_path.name],
            cwd=tmp,
            env={**airflow.env, **_coordinators(airflow)},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        sim_runs = _run_sim_side(airflow, tmp)
        peer.wait(timeout=300)
    finally:
        if peer.poll() is None:
            peer.kill()
            peer.wait(timeout=30)
    assert peer.returncode == 0, (tmp / "airflow-supervisor.log").read_text()[-5000:]
    results = json.loads(results_path.read_text())
    for scenario, result in zip(SCENARIOS, results, strict=True):
        run = airflow_runs[scenario.name]
        run.calls = result["calls"]
        run.outcome = {"rc": result["rc"], "error": result["error"]}
        frames = tmp / f"{scenario.name}.airflow.frames.json"
        run.frames = json.loads(frames.read_text()) if frames.exists() else None
        run.state = airflow.ti_state(run.ti)[0]
    return {
        (name, variant): (airflow_runs[name], sim_runs[(name, variant)]) for name, variant in RUNS
    }


def _run_sim_side(airflow: RealAirflow, tmp: Path) -> dict[tuple[str, str], Run]:
    sim_runs = {}
    for name, variant in RUNS:
        scenario = BY_NAME[name]
        (ti,) = airflow.queue(scenario.task)
        run = Run(ti, var=f"supsim_{name}_{variant}")
        out = tmp / f"{name}.{variant}.frames.json"
        script = CHILDREN[scenario.kind]
        _, result, _, transcript = run_task(
            airflow,
            ti,
            tmp,
            "--queue",
            _queue_of(scenario),
            "--heartbeat-interval",
            str(HEARTBEAT_INTERVAL),
            "--no-redact",  # the transcript must hold the bodies as they crossed the wire
            *scenario.variants[variant],
            runtime=[airflow.python, str(script)],
            env=_child_env(scenario, ti, run.var, out),
            name=f"{name}.{variant}",
        )
        run.calls = transcript_http(transcript)
        run.outcome = result
        run.frames = json.loads(out.read_text()) if out.exists() else None
        run.state = airflow.ti_state(ti)[0]
        sim_runs[(name, variant)] = run
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

"""Running supervisor-sim against the real Airflow, and making two runs comparable."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _cli import cli

from supervisor_sim.api import mint_token

from ._airflow import PEER, ROOT, RealAirflow

RECORDER = PEER / "recorder.py"
REFERENCE = ROOT / "runtimes" / "reference" / "runtime.py"
SHIM = PEER / "py_comm_shim.py"  # Airflow's own Python task runner as a --comm/--logs child

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$")


def run_task(
    airflow: RealAirflow,
    ti: dict[str, Any],
    tmp: Path,
    *extra: str,
    runtime: list[str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    name: str | None = None,
) -> tuple[int, dict[str, Any], str, Path]:
    """``supervisor-sim run-task`` of a queued real TI; (exit status, --json result, stderr,
    transcript path). ``runtime`` overrides the config's reference runtime."""
    transcript = tmp / f"{name or ti['task_id']}.{ti['ti_id']}.jsonl"
    args = [
        "run-task",
        ti["dag_id"],
        ti["task_id"],
        "--api-url",
        airflow.api_url,
        "--ti-id",
        ti["ti_id"],
        "--run-id",
        ti["run_id"],
        "--try-number",
        str(ti["try_number"]),
        "--dag-version-id",
        ti["dag_version_id"],
        "--jwt-secret",
        airflow.secret,
        "--json",
        "-q",
        "--transcript",
        str(transcript),
    ]
    if runtime is not None:
        args += ["--runtime", shlex.join(runtime)]
    proc = cli(*args, *extra, cwd=tmp, env={**airflow.env, **(env or {})}, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON result (exit {proc.returncode}); stderr:\n{proc.stderr[-4000:]}"
    return proc.returncode, json.loads(lines[-1]), proc.stderr, transcript


def transcript_http(path: Path) -> list[dict[str, Any]]:
    """The HTTP calls of a transcript, in the shape run_airflow_sup.py records them."""
    calls = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record.get("record") != "http":
            continue
        request = record.get("request") or {}
        response = record.get("response") or {}
        calls.append(
            {
                "method": record["method"],
                "path": record["path"],
                "query": record.get("query") or "",
                "status": record["status"],
                "request_json": request.get("json"),
                "response_json": response.get("json"),
            }
        )
    return calls


def normalize(value: Any, ids: dict[str, str]) -> Any:
    """Replace known ids by names and timestamps by ``<ts>``; keep every type tag."""
    if isinstance(value, dict):
        if set(value) == {"$datetime"}:
            return {"$datetime": "<ts>"}
        return {k: normalize(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v, ids) for v in value]
    if isinstance(value, str):
        if _ISO.match(value):
            return "<ts>"
        for raw, name in ids.items():
            value = value.replace(raw, name)
        return value
    return value


def normalize_call(call: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """One HTTP call with ids, timestamps, our pid and hostname made comparable."""
    body = call.get("request_json")
    if isinstance(body, dict):
        body = {
            k: ("<pid>" if k == "pid" else "<host>" if k == "hostname" else v)
            for k, v in body.items()
        }
    return {
        "call": f"{call['method']} {normalize(call['path'], ids)}"
        + (f"?{normalize(call['query'], ids)}" if call.get("query") else ""),
        "status": call["status"],
        "body": normalize(body, ids),
    }


def is_heartbeat(call: dict[str, Any]) -> bool:
    return call["method"] == "PUT" and call["path"].endswith("/heartbeat")


# -- the same child under both supervisors --------------------------------------------------

HEARTBEAT_INTERVAL = 1  # seconds, both supervisors
SEND_TIMEOUT = 10  # seconds the recorder waits for a reply; Airflow leaves some unanswered


def send(body: dict[str, Any], timeout: float = SEND_TIMEOUT) -> dict[str, Any]:
    """A recorder step that sends ``body`` and waits up to ``timeout`` for the reply."""
    return {"send": body, "timeout": timeout}


def xcom(type_: str, key: str, **fields: Any) -> dict[str, Any]:
    """A recorder step sending an XCom request of the TI's own task."""
    return send({"type": type_, "key": key, "dag_id": "{dag}", "run_id": "{run}",
                 "task_id": "{task}", **fields})  # fmt: skip


SUCCEED = send({"type": "SucceedTask", "state": "success", "end_date": "$now",
                "task_outlets": [], "outlet_events": [], "rendered_map_index": None})  # fmt: skip


def task_state(state: str) -> dict[str, Any]:
    """A recorder step sending ``TaskState(state)``."""
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


def fill_steps(value: Any, ti: dict[str, Any], var: str) -> Any:
    """``value`` with ``{dag}``, ``{run}``, ``{task}`` and ``{var}`` filled in for ``ti``."""
    if isinstance(value, str):
        return value.format(dag=ti["dag_id"], run=ti["run_id"], task=ti["task_id"], var=var)
    if isinstance(value, dict):
        return {k: fill_steps(v, ti, var) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_steps(v, ti, var) for v in value]
    return value


def run_ids(ti: dict[str, Any], var: str) -> dict[str, str]:
    """The ids of one run, to be replaced by names when comparing."""
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
        ids = run_ids(self.ti, self.var)
        return [normalize_call(c, ids) for c in self.calls if not is_heartbeat(c)]

    def heartbeats(self) -> list[Any]:
        return [c["status"] for c in self.calls if is_heartbeat(c)]

    def compared_frames(self) -> Any:
        return normalize(self.frames, run_ids(self.ti, self.var))


def child_env(scenario: Scenario, ti: dict[str, Any], var: str, out: Path) -> dict[str, str]:
    """The recorder's environment for ``scenario`` on ``ti`` (frames written to ``out``)."""
    if scenario.steps is None:
        return {}
    steps = fill_steps(scenario.steps, ti, var)
    return {"RECORDER_STEPS": json.dumps(steps), "RECORDER_OUT": str(out)}


CHILDREN = {"recorder": RECORDER, "reference": REFERENCE, "python": SHIM}


def queue_of(scenario: Scenario) -> str:
    """The queue that makes Airflow's supervisor launch the scenario's child."""
    return f"{scenario.kind}-queue"


def coordinators(airflow: RealAirflow, children: dict[str, Path] | None = None) -> dict[str, str]:
    """Airflow's environment that maps ``<kind>-queue`` to a coordinator launching that child
    with ``--comm/--logs`` (``children``: kind -> script, default ``CHILDREN``)."""
    children = CHILDREN if children is None else children

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
            {kind: coordinator(script) for kind, script in children.items()}
        ),
        "AIRFLOW__SDK__QUEUE_TO_COORDINATOR": json.dumps(
            {f"{kind}-queue": kind for kind in children}
        ),
    }


def airflow_job(
    airflow: RealAirflow, ti: dict[str, Any], queue: str, env: dict[str, str]
) -> dict[str, Any]:
    """One job of tools/airflow_peer/run_airflow_sup.py: supervise ``ti`` on ``queue``."""
    return {
        "ti": {
            "id": ti["ti_id"], "task_id": ti["task_id"], "dag_id": ti["dag_id"],
            "run_id": ti["run_id"], "try_number": ti["try_number"],
            "dag_version_id": ti["dag_version_id"], "map_index": ti["map_index"],
            "queue": queue,
        },
        "token": mint_token(airflow.secret, ti["ti_id"], scope="workload"),
        "server": airflow.api_url,
        "dag_rel_path": "example_dag.py",
        "env": env,
    }  # fmt: skip


@contextmanager
def airflow_supervisor(
    airflow: RealAirflow,
    tmp: Path,
    jobs: list[dict[str, Any]],
    *,
    env: dict[str, str] | None = None,
    results: str = "results.json",
    timeout: float = 300,
) -> Iterator[list[dict[str, Any]]]:
    """Run ``jobs`` under Airflow's own supervisor in the background while the body runs;
    on the way out wait for it, then fill the yielded list with its results (one per job).

    ``env``: Airflow's environment on top of ``airflow.env`` (default: ``coordinators``)."""
    (tmp / "jobs.json").write_text(json.dumps(jobs, indent=1))
    found: list[dict[str, Any]] = []
    with open(tmp / "airflow-supervisor.log", "w") as log:
        peer = subprocess.Popen(
            [airflow.python, str(PEER / "run_airflow_sup.py"), "jobs.json", results],
            cwd=tmp,
            env={**airflow.env, **(coordinators(airflow) if env is None else env)},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield found
        peer.wait(timeout=timeout)
    finally:
        if peer.poll() is None:
            peer.kill()
            peer.wait(timeout=30)
    assert peer.returncode == 0, (tmp / "airflow-supervisor.log").read_text()[-5000:]
    found.extend(json.loads((tmp / results).read_text()))


def take_airflow_result(
    airflow: RealAirflow, run: Run, result: dict[str, Any], frames: Path
) -> None:
    """Fill ``run`` from one run_airflow_sup.py result and the frames file its child wrote."""
    run.calls = result["calls"]
    run.outcome = {"rc": result["rc"], "error": result["error"]}
    run.frames = json.loads(frames.read_text()) if frames.exists() else None
    run.state = airflow.ti_state(run.ti)[0]


def run_sim(
    airflow: RealAirflow,
    scenario: Scenario,
    run: Run,
    tmp: Path,
    out: Path,
    name: str,
    *extra: str,
    heartbeat_interval: float = HEARTBEAT_INTERVAL,
) -> None:
    """``supervisor-sim run-task --api-url`` of ``scenario``'s child on ``run.ti``; fills
    ``run`` from its transcript, --json result, the child's frames (``out``) and the DB."""
    _, result, _, transcript = run_task(
        airflow,
        run.ti,
        tmp,
        "--queue", queue_of(scenario),
        "--heartbeat-interval", str(heartbeat_interval),
        "--no-redact",  # the transcript must hold the bodies as they crossed the wire
        *extra,
        runtime=[airflow.python, str(CHILDREN[scenario.kind])],
        env=child_env(scenario, run.ti, run.var, out),
        name=name,
    )  # fmt: skip
    run.calls = transcript_http(transcript)
    run.outcome = result
    run.frames = json.loads(out.read_text()) if out.exists() else None
    run.state = airflow.ti_state(run.ti)[0]


def run_both(
    airflow: RealAirflow,
    tmp: Path,
    scenarios: Iterable[Scenario],
    *,
    prefix: str,
) -> dict[str, tuple[Run, Run]]:
    """Each scenario's child on a fresh TI under Airflow's supervisor (in the background, one
    after the other) and on another under supervisor-sim: name -> (theirs, ours). Variables
    the child names are ``{prefix}_{name}_airflow`` / ``_sim``."""
    scenarios = list(scenarios)
    theirs: dict[str, Run] = {}
    jobs = []
    for scenario in scenarios:
        (ti,) = airflow.queue(scenario.task)
        run = theirs[scenario.name] = Run(ti, var=f"{prefix}_{scenario.name}_airflow")
        out = tmp / f"{scenario.name}.airflow.frames.json"
        jobs.append(
            airflow_job(airflow, ti, queue_of(scenario), child_env(scenario, ti, run.var, out))
        )
    ours: dict[str, Run] = {}
    with airflow_supervisor(airflow, tmp, jobs) as results:
        for scenario in scenarios:
            (ti,) = airflow.queue(scenario.task)
            run = ours[scenario.name] = Run(ti, var=f"{prefix}_{scenario.name}_sim")
            out = tmp / f"{scenario.name}.sim.frames.json"
            run_sim(airflow, scenario, run, tmp, out, f"{scenario.name}.sim")
    for scenario, result in zip(scenarios, results, strict=True):
        frames = tmp / f"{scenario.name}.airflow.frames.json"
        take_airflow_result(airflow, theirs[scenario.name], result, frames)
    return {s.name: (theirs[s.name], ours[s.name]) for s in scenarios}


def replay(
    path: Path, tmp: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], str]:
    """``supervisor-sim replay --json`` with no Airflow in the environment and no network
    (``env``: the task's own variables, as the recorded runtime had them)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SUPERVISOR_SIM_"))},
        **(env or {}),
    }
    # A network namespace of its own, only its loopback up: nothing outside is reachable (the
    # Airflow API server these tries ran against included).
    no_network = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
    proc = subprocess.run(
        [*no_network, sys.executable, "-m", "supervisor_sim", "replay", str(path), "--json",
         "-q", *extra],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, proc.stderr[-3000:]
    return proc.returncode, json.loads(lines[-1]), proc.stderr


def runner_config(airflow: RealAirflow, dags: Path | None = None) -> dict[str, str]:
    """What Airflow's Python task runner reads to find the DAG file: its home and DAGs folder
    (configuration only: no API server, no database is reached in a replay)."""
    return {
        "AIRFLOW_HOME": airflow.env["AIRFLOW_HOME"],
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags or airflow.env["AIRFLOW__CORE__DAGS_FOLDER"]),
    }

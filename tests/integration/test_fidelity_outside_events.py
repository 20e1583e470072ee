"""Someone else changes the running task instance: Airflow's supervisor and supervisor-sim alike.

For each outside event (the TI marked failed, marked success, cleared so that a new try id
replaces it, deleted) the same small runtime runs twice: under Airflow 3.3.2's own
``supervise_task`` against the real Execution API, the event made in Airflow's DB through its ORM
(``TaskInstance.set_state``, ``clear_task_instances``, ``session.delete``: what the UI does) by a
watcher once the child holds its StartupDetails; and under ``supervisor-sim run-task`` on the
stub, the event from the fault plan (``--fault event=KIND@<first heartbeat>``).

The runtime (``CHILD`` below) reads its first frame, then keeps running; it records every signal
it gets, in order, with its monotonic time, and ticks every 0.1 s. One variant ignores SIGTERM,
so that the supervisor must escalate to SIGKILL after its escalation delay (Airflow: 5 s, fixed
in ``WatchedSubprocess.kill``; supervisor-sim: ``kill_escalation_delay`` in its config, set to
the same). Heartbeats every second on both sides (``AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL``;
``heartbeat_interval`` in supervisor-sim's config).

Compared: the frames the child received, the heartbeat status that ended the run (409, 410 or
404), every other HTTP call, the signals in order and how the child ended, how long an
SIGTERM-ignoring child lived on (at least the escalation delay, less the tick), the supervisor's
final state and the task instance's state afterwards (in Airflow's DB and in the stub's).
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ._airflow import RealAirflow
from ._helpers import (
    airflow_job,
    airflow_supervisor,
    coordinators,
    is_heartbeat,
    normalize,
    normalize_call,
    transcript_http,
)

pytestmark = pytest.mark.real_airflow

ESCALATION_DELAY = 5.0  # Airflow's, not configurable there; supervisor-sim's set to match
TICK = 0.1  # the child's tick
EVENTS = ["ti-failed", "ti-success", "ti-cleared", "ti-deleted"]
VARIANTS = {"exits-on-sigterm": False, "ignores-sigterm": True}
CASES = [(e, v) for e in EVENTS for v in VARIANTS]
IDS = [f"{e}-{v}" for e, v in CASES]
#: The heartbeat status each event leads to (Airflow's ti_heartbeat route).
STATUS = {"ti-failed": 409, "ti-success": 409, "ti-cleared": 410, "ti-deleted": 404}
#: The TI's state afterwards: what the event left (a running TI cleared is ``restarting``).
STATE = {"ti-failed": "failed", "ti-success": "success", "ti-cleared": "restarting",
         "ti-deleted": None}  # fmt: skip

CHILD = '''
"""A --comm/--logs runtime that keeps running and records the frames and signals it gets."""
import json, os, signal, socket, sys, time
import msgpack

args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
out = os.environ["OUTSIDE_OUT"]
ignore = os.environ.get("OUTSIDE_IGNORE_TERM") == "1"
seen = {"first": None, "signals": [], "ticks": 0, "last_tick": None}


def save(tmp=".tmp"):
    with open(out + tmp, "w") as f:
        json.dump(seen, f)
    os.replace(out + tmp, out)


def tagged(value):
    if isinstance(value, msgpack.Timestamp):
        return {"$datetime": value.to_datetime().isoformat()}
    if isinstance(value, dict):
        return {str(k): tagged(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [tagged(v) for v in value]
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    return value


def on_signal(signum, frame):
    seen["signals"].append([signal.Signals(signum).name, time.monotonic()])
    save(".signal.tmp")  # not the main loop's file, which it may be writing right now
    if not ignore:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(sig, on_signal)


def connect(hostport):
    host, port = hostport.rsplit(":", 1)
    return socket.create_connection((host, int(port)))


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("comm closed")
        buf += chunk
    return buf


comm = connect(args["comm"])
logs = connect(args["logs"])
n = int.from_bytes(recv_exact(comm, 4), "big")
frame = msgpack.unpackb(recv_exact(comm, n), timestamp=0, strict_map_key=False)
seen["first"] = {"len": len(frame), "frame": tagged(frame)}
save()
while seen["ticks"] < LIMIT / TICK:  # no event came: end, so nothing waits on it
    time.sleep(TICK)
    seen["ticks"] += 1
    seen["last_tick"] = time.monotonic()
    save()
sys.exit(3)
'''.replace("LIMIT", "40").replace("TICK", repr(TICK))

WATCHER = '''
"""Make each job's outside event in Airflow's DB once its child holds its first frame."""
import json, os, sys, time, uuid

from sqlalchemy import select

from airflow.models.taskinstance import TaskInstance, clear_task_instances
from airflow.utils.session import create_session
from airflow.utils.state import TaskInstanceState

pending = json.load(open(sys.argv[1]))
deadline = time.monotonic() + 600
while pending and time.monotonic() < deadline:
    for job in list(pending):
        if not os.path.exists(job["trigger"]):
            continue
        with create_session() as session:
            query = select(TaskInstance).where(TaskInstance.id == uuid.UUID(job["ti_id"]))
            ti = session.scalars(query).one()
            kind = job["event"]
            if kind == "ti-failed":
                ti.set_state(TaskInstanceState.FAILED, session=session)
            elif kind == "ti-success":
                ti.set_state(TaskInstanceState.SUCCESS, session=session)
            elif kind == "ti-cleared":
                clear_task_instances([ti], session)
            elif kind == "ti-deleted":
                session.delete(ti)
            else:
                raise SystemExit(f"unknown event {kind}")
        print("applied", kind, job["ti_id"], flush=True)
        pending.remove(job)
    time.sleep(0.05)
sys.exit(1 if pending else 0)
'''


@dataclass
class Side:
    """One supervisor's run of a case, as recorded."""

    ti: dict[str, Any]
    calls: list[dict[str, Any]] = field(default_factory=list)
    child: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    final_state: str | None = None
    state: tuple[str | None, int] | None = None  # the TI's (state, try) afterwards; None: gone

    def ids(self) -> dict[str, str]:
        return {self.ti["ti_id"]: "<ti>", self.ti["run_id"]: "<run>"}

    def other_calls(self) -> list[dict[str, Any]]:
        return [normalize_call(c, self.ids()) for c in self.calls if not is_heartbeat(c)]

    def last_heartbeat(self) -> Any:
        beats = [c["status"] for c in self.calls if is_heartbeat(c)]
        return beats[-1] if beats else None

    def first_frame(self) -> Any:
        return _comparable(normalize(self.child.get("first"), self.ids()))

    def signals(self) -> list[str]:
        return [name for name, _ in self.child.get("signals", [])]

    def lived_after_sigterm(self) -> float:
        (_, at), *_ = self.child["signals"]
        return self.child["last_tick"] - at


#: StartupDetails fields whose values come from how each side made its TI, not from the
#: supervisor: Airflow's DAG version row and the queue that picks the coordinator, against the
#: stub's. Ids and run ids are named and datetimes set aside by ``normalize``; types are kept.
_RUN_VALUES = {"dag_version_id", "queue"}


def _comparable(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _comparable(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if key in _RUN_VALUES:
        return f"<{type(value).__name__}>"
    return value


def _airflow_ti(airflow: RealAirflow, ti: dict[str, Any]) -> tuple[str | None, int] | None:
    rows = airflow._query(
        "SELECT state, try_number FROM task_instance"
        " WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index = ?",
        (ti["dag_id"], ti["run_id"], ti["task_id"], ti["map_index"]),
    )
    return (rows[0][0], rows[0][1]) if rows else None


def _stub_ti(state: Path) -> tuple[str | None, int] | None:
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT state, try_number FROM task_instances WHERE task_id = 'sleep'"
        ).fetchall()
    finally:
        db.close()
    assert len(rows) <= 1, rows
    return (rows[0][0], rows[0][1]) if rows else None


def _child_env(out: Path, ignore: bool) -> dict[str, str]:
    return {"OUTSIDE_OUT": str(out), "OUTSIDE_IGNORE_TERM": "1" if ignore else "0"}


def _final_states(log: Path) -> list[str]:
    """The final_state of every "Workload finished" line Airflow's supervisor logged, in order."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if "Workload finished" in line:
            m = re.search(r"final_state['\"]?[:=]\s*['\"]?([A-Za-z_]+)", line)
            found.append(m.group(1) if m else f"(unparsed: {line[-200:]})")
    return found


def _run_sim(tmp: Path, name: str, event: str, ignore: bool) -> Side:
    config = tmp / "supervisor-sim.toml"
    state = tmp / f"{name}.state.sqlite"
    transcript = tmp / f"{name}.sim.jsonl"
    out = tmp / f"{name}.sim.child.json"
    proc = subprocess.run(
        [sys.executable, "-m", "supervisor_sim", "--config", str(config), "run-task",
         "example_dag", "sleep", "--state", str(state), "--transcript", str(transcript),
         "--fault", f"event={event}@PUT /task-instances/*/heartbeat", "--json", "-q"],
        cwd=tmp, env={**_sim_env(), **_child_env(out, ignore)}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON result (exit {proc.returncode}); stderr:\n{proc.stderr[-4000:]}"
    result = json.loads(lines[-1])
    side = Side({"ti_id": result["ti_id"], "run_id": ""})
    side.calls = transcript_http(transcript)
    side.child = json.loads(out.read_text()) if out.exists() else {}
    if side.child.get("first"):
        side.ti["run_id"] = side.child["first"]["frame"][1]["ti"]["run_id"]
    side.exit_code = result["exit_code"]
    side.final_state = result["final_state"]
    side.state = _stub_ti(state)
    return side


def _sim_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SUPERVISOR_SIM_"))}


@pytest.fixture(scope="module")
def runs(
    airflow: RealAirflow, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Side, Side]]:
    """case id -> (run under Airflow's supervisor, run under supervisor-sim)."""
    tmp = tmp_path_factory.mktemp("fidelity_outside_events")
    child = tmp / "outside_child.py"
    child.write_text(CHILD)
    (tmp / "outside_watcher.py").write_text(WATCHER)
    (tmp / "supervisor-sim.toml").write_text(
        f"[runtime]\ncommand = [{json.dumps(sys.executable)}, {json.dumps(str(child))}]\n"
        "[supervisor]\nheartbeat_interval = 1.0\n"
        f"kill_escalation_delay = {ESCALATION_DELAY}\n"
    )
    theirs: dict[str, Side] = {}
    jobs, watch = [], []
    for (event, variant), name in zip(CASES, IDS, strict=True):
        (ti,) = airflow.queue("sleep")
        theirs[name] = Side(ti)
        out = tmp / f"{name}.airflow.child.json"
        jobs.append(airflow_job(airflow, ti, "outside-queue", _child_env(out, VARIANTS[variant])))
        watch.append({"trigger": str(out), "ti_id": ti["ti_id"], "event": event})
    (tmp / "watch.json").write_text(json.dumps(watch, indent=1))
    with open(tmp / "watcher.log", "w") as log:
        watcher = subprocess.Popen(
            [airflow.python, str(tmp / "outside_watcher.py"), str(tmp / "watch.json")],
            cwd=tmp, env=airflow.env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    ours: dict[str, Side] = {}
    try:
        env = coordinators(airflow, {"outside": child})
        with airflow_supervisor(airflow, tmp, jobs, env=env) as results:
            for (event, variant), name in zip(CASES, IDS, strict=True):
                ours[name] = _run_sim(tmp, name, event, VARIANTS[variant])
        watcher.wait(timeout=60)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait(timeout=30)
    assert watcher.returncode == 0, (tmp / "watcher.log").read_text()[-3000:]
    finals = _final_states(tmp / "airflow-supervisor.log")
    assert len(finals) == len(CASES), finals
    for name, result, final in zip(IDS, results, finals, strict=True):
        side = theirs[name]
        assert result["error"] is None, result["error"]
        side.calls = result["calls"]
        out = tmp / f"{name}.airflow.child.json"
        side.child = json.loads(out.read_text()) if out.exists() else {}
        side.exit_code = result["rc"]
        side.final_state = final.lower()
        side.state = _airflow_ti(airflow, side.ti)
    return {name: (theirs[name], ours[name]) for name in IDS}


@pytest.mark.parametrize("name", IDS)
def test_the_event_ends_the_run_at_the_same_heartbeat_status(
    runs: dict[str, tuple[Side, Side]], name: str
) -> None:
    """The heartbeat after the event is answered 409 (failed, success), 410 (cleared) or 404
    (deleted) under both supervisors, and every other call matches."""
    theirs, ours = runs[name]
    event = next(e for e in EVENTS if name.startswith(e))
    assert theirs.last_heartbeat() == STATUS[event], theirs.calls
    assert ours.last_heartbeat() == theirs.last_heartbeat()
    assert ours.other_calls() == theirs.other_calls()


@pytest.mark.parametrize("name", IDS)
def test_the_child_receives_the_same_frames(runs: dict[str, tuple[Side, Side]], name: str) -> None:
    """The child gets the same StartupDetails and nothing else before the signals."""
    theirs, ours = runs[name]
    assert theirs.child.get("first") is not None
    assert ours.first_frame() == theirs.first_frame()


@pytest.mark.parametrize("name", IDS)
def test_the_child_gets_the_same_signals_in_the_same_order(
    runs: dict[str, tuple[Side, Side]], name: str
) -> None:
    """SIGTERM and nothing before it; a child that ignores SIGTERM is then killed (-9), one
    that does not dies of it (-15), under both supervisors."""
    theirs, ours = runs[name]
    ignores = name.endswith("ignores-sigterm")
    assert theirs.signals() == ["SIGTERM"], theirs.child
    assert theirs.exit_code == (-9 if ignores else -15)
    assert (ours.signals(), ours.exit_code) == (theirs.signals(), theirs.exit_code)


@pytest.mark.parametrize("name", [n for n in IDS if n.endswith("ignores-sigterm")])
def test_sigkill_follows_sigterm_after_the_escalation_delay(
    runs: dict[str, tuple[Side, Side]], name: str
) -> None:
    """A child that ignores SIGTERM lives on for the escalation delay (less a tick) under both
    supervisors before SIGKILL ends it."""
    theirs, ours = runs[name]
    assert theirs.lived_after_sigterm() >= ESCALATION_DELAY - 3 * TICK
    assert ours.lived_after_sigterm() >= ESCALATION_DELAY - 3 * TICK


@pytest.mark.parametrize("name", IDS)
def test_the_run_ends_in_the_same_final_state(
    runs: dict[str, tuple[Side, Side]], name: str
) -> None:
    """Both supervisors end ``server_terminated`` and report no state; the TI is left as the
    event left it (failed, success, restarting under a new try id, or gone)."""
    theirs, ours = runs[name]
    event = next(e for e in EVENTS if name.startswith(e))
    assert theirs.final_state == "server_terminated"
    assert ours.final_state == theirs.final_state
    expected = None if STATE[event] is None else (STATE[event], theirs.ti["try_number"])
    assert theirs.state == expected
    assert ours.state == (None if expected is None else (expected[0], 1))

"""``supervisor-sim worker`` as the Edge worker of a real Airflow 3.3.2 (api-server + scheduler
with the EdgeExecutor, edge3 5.1.0, sqlite): registration, jobs, XComs, logs, drains, stops."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._airflow import tail
from ._edge import (
    REFERENCE,
    EdgeAirflow,
    start_edge_airflow,
    start_worker,
    stop_edge_airflow,
    stop_worker,
    trigger_dag,
    wait_dag_run,
    write_edge_dag,
)

pytestmark = pytest.mark.real_airflow

FAST = ["--heartbeat-interval", "1", "--poll-interval", "0.5"]


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EdgeAirflow, Path]]:
    """A real api-server + scheduler (EdgeExecutor) with edge_dag and edge_drain registered;
    and the reference runtime's bundle for them."""
    base = tmp_path_factory.mktemp("edge")
    dag, bundle = write_edge_dag(base / "dag_src")
    airflow = start_edge_airflow(base, [dag])
    try:
        yield airflow, bundle
    finally:
        stop_edge_airflow(airflow)


def _runtime_for(bundle: Path) -> list[str]:
    return ["--runtime-for", f"reference={{python}} {REFERENCE} --bundle {bundle}"]


def _wait(predicate, what: str, log: Path, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} not within {timeout:g}s; worker log:\n{tail(log)}")


def _alive_with(marker: str) -> list[int]:
    """Pids of the processes whose command line names ``marker``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            status = (entry / "status").read_text()
        except OSError:
            continue
        if marker in cmdline and "State:\tZ" not in status:
            pids.append(int(entry.name))
    return pids


def test_worker_runs_a_dag_to_the_end_and_airflow_records_it(edge, tmp_path: Path):
    """One worker registers, takes every TI of edge_dag, and Airflow's DB has the states, the
    XCom, the worker's row and TI hostnames, and its log endpoint serves the pushed logs, with
    the connection password the runtime logged masked."""
    airflow, bundle = edge
    log = tmp_path / "worker.log"
    runs = tmp_path / "runs"
    proc = start_worker(
        airflow,
        [*_runtime_for(bundle), "--hostname", "sim-w1", "--runs-dir", str(runs), *FAST],
        log=log,
    )
    try:
        _wait(
            lambda: airflow.edge_workers().get("sim-w1", {}).get("state") == "idle",
            "worker sim-w1 idle in edge_worker",
            log,
        )
        row = airflow.edge_workers()["sim-w1"]
        assert row["queues"] == ["reference"]
        assert row["sysinfo"]["concurrency"] == 8
        assert row["sysinfo"]["edge_provider_version"] == "5.1.0"
        assert "supervisor_sim_version" in row["sysinfo"]

        trigger_dag(airflow, "edge_dag", "edge_run_1", log=tmp_path / "trigger.log")
        assert wait_dag_run(airflow, "edge_dag", "edge_run_1", timeout=180) == "success"
        states = airflow.ti_states("edge_dag", "edge_run_1")
        assert states == {
            "hello": ("success", 1),
            "push_xcom": ("success", 1),
            "pull_xcom": ("success", 1),
            "sleep": ("success", 1),
            "secret": ("success", 1),
        }
        assert airflow.xcom("edge_dag", "edge_run_1", "push_xcom") == {"numbers": [1, 2, 3]}
        assert airflow.xcom("edge_dag", "edge_run_1", "pull_xcom") == 6
        assert set(airflow.ti_hostnames("edge_dag", "edge_run_1").values()) == {"sim-w1"}
        jobs = airflow.edge_jobs("edge_dag", "edge_run_1")
        assert jobs == {t: ("success", "sim-w1") for t in states}, tail(log)
        content = airflow.task_log("edge_dag", "edge_run_1", "pull_xcom")
        events = [e.get("event") for e in content if isinstance(e, dict)]
        assert "reference runtime: running edge_dag.pull_xcom try 1" in events, (
            f"{content}\n{tail(log)}"
        )
        secret_log = json.dumps(airflow.task_log("edge_dag", "edge_run_1", "secret"))
        assert "secret: password=***" in secret_log, f"{secret_log}\n{tail(log)}"
        assert "s3cret" not in secret_log
        assert len(list(runs.glob("edge_dag.*.jsonl"))) == 5
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        status = stop_worker(proc)
    assert status == 0, tail(log)
    assert airflow.edge_workers()["sim-w1"]["state"] == "offline"


def test_sigterm_drains_the_running_task_and_takes_no_new_one(edge, tmp_path: Path):
    """SIGTERM while edge_drain's sleep runs: sleep ends as success, the worker goes offline
    and exits 0, and hello (queued only after sleep) is left to another worker."""
    airflow, bundle = edge
    log = tmp_path / "worker.log"
    proc = start_worker(
        airflow,
        [*_runtime_for(bundle), "--hostname", "sim-drain", "--no-transcript", *FAST],
        log=log,
        env={"REFERENCE_SLEEP_S": "4"},
    )
    try:
        _wait(
            lambda: airflow.edge_workers().get("sim-drain", {}).get("state") == "idle",
            "worker sim-drain idle",
            log,
        )
        trigger_dag(airflow, "edge_drain", "drain_1", log=tmp_path / "trigger.log")
        _wait(
            lambda: airflow.edge_jobs("edge_drain", "drain_1").get("sleep", ("",))[0] == "running",
            "sleep running",
            log,
            timeout=120,
        )
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=60)
    finally:
        stop_worker(proc)
    assert status == 0, tail(log)
    states = airflow.ti_states("edge_drain", "drain_1")
    assert states["sleep"] == ("success", 1), tail(log)
    assert states["hello"][0] != "success"
    assert "hello" not in airflow.edge_jobs("edge_drain", "drain_1") or (
        airflow.edge_jobs("edge_drain", "drain_1")["hello"][1] is None
    )
    assert airflow.edge_workers()["sim-drain"]["state"] == "offline"


def test_a_second_sigterm_kills_the_running_task_and_nothing_outlives_the_worker(
    edge, tmp_path: Path
):
    """SIGTERM twice while a task sleeps: the worker exits 130 at once, the task's job is
    reported failed, and no runtime process is left alive."""
    airflow, bundle = edge
    own_bundle = tmp_path / "kill_bundle.py"
    own_bundle.write_text(bundle.read_text())
    log = tmp_path / "worker.log"
    proc = start_worker(
        airflow,
        [*_runtime_for(own_bundle), "--hostname", "sim-kill", "--no-transcript", *FAST],
        log=log,
        env={"REFERENCE_SLEEP_S": "120"},
    )
    try:
        _wait(
            lambda: airflow.edge_workers().get("sim-kill", {}).get("state") == "idle",
            "worker sim-kill idle",
            log,
        )
        trigger_dag(airflow, "edge_drain", "kill_1", log=tmp_path / "trigger.log")
        _wait(lambda: bool(_alive_with(str(own_bundle))), "the runtime started", log, 120)
        _wait(
            lambda: airflow.edge_jobs("edge_drain", "kill_1").get("sleep", ("",))[0] == "running",
            "sleep running",
            log,
        )
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=60)
    finally:
        stop_worker(proc)
    assert status == 130, tail(log)
    _wait(lambda: not _alive_with(str(own_bundle)), "no runtime left", log, timeout=15)
    assert airflow.edge_jobs("edge_drain", "kill_1")["sleep"][0] == "failed", tail(log)
    assert airflow.edge_workers()["sim-kill"]["state"] == "offline"


#: A bundle for edge_drain whose sleep ignores SIGTERM (and says so), for the drain kill grace.
STUBBORN_BUNDLE = """
import signal
import time


def sleep(ctx):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ctx.log.info("ignoring SIGTERM")
    time.sleep(120)


def hello(ctx):
    pass


DAGS = {"edge_drain": {"sleep": sleep, "hello": hello}}
"""


def _config(tmp_path: Path, worker_table: str) -> Path:
    """A supervisor-sim.toml whose [runtime] fails every task (so a task that succeeds ran a
    [worker] or --runtime-for command) and whose [worker] table is ``worker_table``."""
    path = tmp_path / "supervisor-sim.toml"
    path.write_text(f'[runtime]\ncommand = "false"\n\n[worker]\n{worker_table}\n')
    return path


def _ref(bundle: Path) -> str:
    return f"{{python}} {REFERENCE} --bundle {bundle}"


def test_the_config_files_worker_table_gives_queues_and_runtimes_and_flags_override_it(
    edge, tmp_path: Path
):
    """[worker] queues is the registered queue list; a --runtime-for replaces the file's
    command for its queue (the file's, 'false', would fail the tasks): edge_drain succeeds."""
    airflow, bundle = edge
    config = _config(
        tmp_path,
        'queues = ["reference"]\n'
        f'runtime_for = {{ reference = "false", other = {_ref(bundle)!r} }}',
    )
    log = tmp_path / "worker.log"
    proc = start_worker(
        airflow,
        [*_runtime_for(bundle), "--hostname", "sim-conf", "--no-transcript", *FAST],
        log=log,
        config=config,
        env={"REFERENCE_SLEEP_S": "0.1"},
    )
    try:
        _wait(
            lambda: airflow.edge_workers().get("sim-conf", {}).get("state") == "idle",
            "worker sim-conf idle",
            log,
        )
        assert airflow.edge_workers()["sim-conf"]["queues"] == ["reference"]
        trigger_dag(airflow, "edge_drain", "conf_1", log=tmp_path / "trigger.log")
        assert wait_dag_run(airflow, "edge_drain", "conf_1", timeout=120) == "success", tail(log)
        assert set(airflow.ti_hostnames("edge_drain", "conf_1").values()) == {"sim-conf"}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        status = stop_worker(proc)
    assert status == 0, tail(log)


def _start_drain(airflow, tmp_path: Path, name: str, run_id: str, marker: Path, **kw):  # type: ignore[no-untyped-def]
    """A worker ``name`` (``start_worker`` keywords ``kw``), edge_drain's run ``run_id`` with
    its sleep running in a runtime whose command line names ``marker``, then SIGTERM."""
    log = tmp_path / "worker.log"
    proc = start_worker(airflow, log=log, **kw)
    _wait(
        lambda: airflow.edge_workers().get(name, {}).get("state") == "idle",
        f"worker {name} idle",
        log,
    )
    trigger_dag(airflow, "edge_drain", run_id, log=tmp_path / "trigger.log")
    _wait(lambda: bool(_alive_with(str(marker))), "the runtime started", log, 120)
    _wait(
        lambda: airflow.edge_jobs("edge_drain", run_id).get("sleep", ("",))[0] == "running",
        "sleep running",
        log,
    )
    proc.send_signal(signal.SIGTERM)
    return proc, log


def test_a_drain_timeout_sends_sigterm_to_the_running_task_and_reports_it(edge, tmp_path: Path):
    """--drain-timeout 1 while sleep runs 120 s: after the timeout the runtime gets SIGTERM (and
    dies of it, before the kill grace), the note is in the task's log in Airflow, the job and
    the TI are failed, hello is not taken, and the worker goes offline with exit status 0."""
    airflow, bundle = edge
    own = tmp_path / "drain_bundle.py"
    own.write_text(bundle.read_text())
    proc, log = _start_drain(
        airflow,
        tmp_path,
        "sim-dto",
        "dto_1",
        own,
        args=[
            *_runtime_for(own),
            "--hostname",
            "sim-dto",
            "--no-transcript",
            *FAST,
            "--drain-timeout",
            "1",
        ],
        env={"REFERENCE_SLEEP_S": "120"},
    )
    try:
        status = proc.wait(timeout=60)
    finally:
        stop_worker(proc)
    text = log.read_text()
    assert status == 0, text
    assert "drain timeout of 1s passed with 1 task(s) running: sending them SIGTERM" in text
    assert "drain kill grace" not in text, text
    assert not _alive_with(str(own))
    assert airflow.edge_jobs("edge_drain", "dto_1")["sleep"][0] == "failed", text
    _wait(
        lambda: airflow.ti_states("edge_drain", "dto_1")["sleep"][0] == "failed",
        "sleep failed in Airflow",
        log,
    )
    task_log = json.dumps(airflow.task_log("edge_drain", "dto_1", "sleep"))
    assert "drain timeout of 1s expired; sending SIGTERM to the task's runtime" in task_log
    assert airflow.ti_states("edge_drain", "dto_1")["hello"][0] != "success"
    assert airflow.edge_workers()["sim-dto"]["state"] == "offline"


def test_a_task_that_ignores_the_drain_sigterm_is_killed_after_the_grace_from_the_config(
    edge, tmp_path: Path
):
    """[worker] drain_timeout = 1, drain_kill_grace = 2 and a runtime that ignores SIGTERM:
    the grace passes, the runtime is killed (nothing left), the job is failed with the reason
    in the task's log, and the worker exits 0 (as Airflow's does after its kill grace)."""
    airflow, _ = edge
    stubborn = tmp_path / "stubborn_bundle.py"
    stubborn.write_text(STUBBORN_BUNDLE)
    config = _config(
        tmp_path,
        f"runtime_for = {{ reference = {_ref(stubborn)!r} }}\n"
        "drain_timeout = 1\ndrain_kill_grace = 2",
    )
    proc, log = _start_drain(
        airflow,
        tmp_path,
        "sim-grace",
        "grace_1",
        stubborn,
        args=["--hostname", "sim-grace", "--no-transcript", *FAST],
        config=config,
    )
    try:
        status = proc.wait(timeout=60)
    finally:
        stop_worker(proc)
    text = log.read_text()
    assert status == 0, text
    assert "drain kill grace of 2s passed with 1 task(s) running: killing them" in text
    assert not _alive_with(str(stubborn)), text
    assert airflow.edge_jobs("edge_drain", "grace_1")["sleep"][0] == "failed", text
    task_log = json.dumps(airflow.task_log("edge_drain", "grace_1", "sleep"))
    assert "ignoring SIGTERM" in task_log
    assert "drain kill-grace of 2s expired: task killed" in task_log, task_log
    assert airflow.edge_workers()["sim-grace"]["state"] == "offline"


def test_maintenance_and_shutdown_requests_are_honoured(edge, tmp_path: Path):
    """In maintenance (requested through the edge UI API) the worker takes no job; once it
    ends the run completes on it; a shutdown request then takes it offline with exit 0."""
    airflow, bundle = edge
    log = tmp_path / "worker.log"
    proc = start_worker(
        airflow,
        [*_runtime_for(bundle), "--hostname", "sim-maint", "--no-transcript", *FAST],
        log=log,
        env={"REFERENCE_SLEEP_S": "0.1"},
    )
    try:
        _wait(
            lambda: airflow.edge_workers().get("sim-maint", {}).get("state") == "idle",
            "worker sim-maint idle",
            log,
        )
        airflow.edge_ui("POST", "worker/sim-maint/maintenance", {"maintenance_comment": "patch"})
        _wait(
            lambda: airflow.edge_workers()["sim-maint"]["state"] == "maintenance mode",
            "maintenance mode",
            log,
        )
        trigger_dag(airflow, "edge_drain", "maint_1", log=tmp_path / "trigger.log")
        _wait(
            lambda: "sleep" in airflow.edge_jobs("edge_drain", "maint_1"),
            "sleep queued for the edge",
            log,
            timeout=120,
        )
        time.sleep(3)  # six fetch intervals: none may take the job
        assert airflow.edge_jobs("edge_drain", "maint_1")["sleep"] == ("queued", None)
        airflow.edge_ui("DELETE", "worker/sim-maint/maintenance")
        assert wait_dag_run(airflow, "edge_drain", "maint_1", timeout=120) == "success"
        assert set(airflow.ti_hostnames("edge_drain", "maint_1").values()) == {"sim-maint"}
        airflow.edge_ui("POST", "worker/sim-maint/shutdown")
        status = proc.wait(timeout=60)
    finally:
        stop_worker(proc)
    assert status == 0, tail(log)
    assert airflow.edge_workers()["sim-maint"]["state"] == "offline"
    assert "maintenance mode requested" in log.read_text()


def test_a_wrong_secret_is_one_line_and_exit_status_4(edge, tmp_path: Path):
    """A worker whose --jwt-secret is not the API server's says so in one line (403)."""
    airflow, bundle = edge
    log = tmp_path / "worker.log"
    proc = start_worker(
        airflow,
        [*_runtime_for(bundle), "--hostname", "sim-bad", "--jwt-secret", "x" * 64, *FAST],
        log=log,
    )
    status = stop_worker(proc, timeout=60)
    lines = log.read_text().strip().splitlines()
    assert status == 4
    assert len(lines) == 1, lines
    assert "refused the worker's token (HTTP 403)" in lines[0]
    assert "Traceback" not in log.read_text()


def test_an_unreachable_api_is_one_line_and_exit_status_4(tmp_path: Path):
    """A worker whose --api-url has no server behind it says so in one line."""
    from ._airflow import free_port

    proc = subprocess.run(
        [
            *_sim(),
            "worker",
            "--api-url",
            f"http://127.0.0.1:{free_port()}",
            "--jwt-secret",
            "s" * 64,
            "--runtime-for",
            "q=true",
            "--api-retries",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_SIM_")},
    )
    assert proc.returncode == 4
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot reach the edge API at"), lines


def _sim() -> list[str]:
    import sys

    return [sys.executable, "-m", "supervisor_sim"]

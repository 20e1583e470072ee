"""Two edge workers on two "hosts" (network namespaces) under Airflow 3.3.2's EdgeExecutor.

Each scenario runs twice: with Airflow's own ``airflow edge worker`` (the baseline: what Airflow
does) and with ``supervisor-sim worker``. The topology test triggers example_dag (40 task
instances: Go runtime, reference runtime and Python tasks, fan-out/fan-in, a task mapped over 10,
one retried once) and reads Airflow's DB; the kill test SIGKILLs one worker's process group
mid-run and lets Airflow's heartbeat timeouts retry its tries on the other worker.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import _edge_topology as topo

pytestmark = pytest.mark.real_airflow

WORKERS = ["airflow", "supervisor-sim"]


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[topo.EdgeAirflow, Path]]:
    """Airflow's api-server and scheduler (EdgeExecutor, sqlite) and the built Go runtime."""
    base = tmp_path_factory.mktemp("edge_topology")
    go_binary = topo.build_go_runtime()
    inst = topo.start_edge_airflow(
        base, dags={"example_dag.py": topo.TOPOLOGY_DAG, "kill_dag.py": topo.KILL_DAG}
    )
    try:
        yield inst, go_binary
    finally:
        inst.close()


@pytest.fixture
def hosts(request: pytest.FixtureRequest) -> Iterator[list[topo.Host]]:
    made, note = topo.make_hosts(2)
    print(f"edge topology: {note}")  # shown with -s and in a failure's captured output
    request.node.user_properties.append(("hosts", note))
    try:
        yield made
    finally:
        topo.remove_hosts(made)


def _start(kind: str, inst: topo.EdgeAirflow, host: topo.Host, go_binary: Path) -> None:
    if kind == "airflow":
        inst.start_airflow_worker(host, go_binary)
    else:
        inst.start_sim_worker(host, go_binary)


def _wait_workers(inst: topo.EdgeAirflow, names: list[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = inst.edge_workers()
        if all(states.get(n) in ("idle", "running") for n in names):
            return
        time.sleep(0.5)
    pytest.fail(f"workers not registered in {timeout:g}s: {inst.edge_workers()}\n{inst.log_tail()}")


def _wait_empty(host: topo.Host, timeout: float) -> list[int]:
    """The pids left in ``host``'s namespace once it empties or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    left = host.pids()
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = host.pids()
    return left


def _stop_workers(inst: topo.EdgeAirflow) -> None:
    for name in [n for n in inst.procs if n.startswith("worker")]:
        inst.stop(name, timeout=30)
        del inst.procs[name]


@pytest.mark.parametrize("kind", WORKERS)
def test_two_edge_workers_on_two_hosts_run_the_40_task_dag(edge, hosts, kind):
    """Every TI of example_dag succeeds with its XCom, tries spread over both hosts' workers,
    and a task's log is served by Airflow's log endpoint."""
    inst, go_binary = edge
    try:
        for host in hosts:
            _start(kind, inst, host, go_binary)
        _wait_workers(inst, [h.name for h in hosts])
        run_id = f"topology_{kind}_{uuid.uuid4().hex[:6]}"
        inst.trigger("example_dag", run_id)
        state = inst.wait_run("example_dag", run_id, 150)
        tis = inst.tis("example_dag", run_id)
        assert len(tis) == 40, sorted(tis)
        assert state == "success", {k: v["state"] for k, v in tis.items()}
        assert {k: v["state"] for k, v in tis.items()} == dict.fromkeys(tis, "success")
        assert tis[("retry", -1)]["try_number"] == 2
        assert inst.xcoms("example_dag", run_id) == {
            **topo.EXPECTED_XCOMS,
            ("read_var_conn", -1): {"var": "hello-from-var", "host": "example.invalid"},
            ("push_xcom", -1): {"numbers": [1, 2, 3]},
        }
        jobs = inst.edge_jobs("example_dag", run_id)
        by_worker = {h.name: sum(j["edge_worker"] == h.name for j in jobs) for h in hosts}
        assert all(by_worker.values()), f"tries per worker: {by_worker}"
        assert len(jobs) == 41  # 40 TIs, retry twice
        # Each worker writes logs to its own folder: the API server serves what was pushed.
        worker = next(j["edge_worker"] for j in jobs if j["task_id"] == "pull_xcom")
        log = inst.task_log("example_dag", run_id, "pull_xcom", 1)
        assert "Summed upstream numbers" in log, log[-2000:]
        assert worker in by_worker
    finally:
        _stop_workers(inst)


@pytest.mark.parametrize("kind", WORKERS)
def test_a_killed_worker_host_has_its_tries_retried_on_the_other(edge, hosts, kind):
    """SIGKILL of one worker mid-run: Airflow fails its running tries by the task heartbeat
    timeout and retries them on the other host; nothing is left in the killed namespace."""
    inst, go_binary = edge
    victim, survivor = hosts
    try:
        for host in hosts:
            _start(kind, inst, host, go_binary)
        _wait_workers(inst, [h.name for h in hosts])
        run_id = f"kill_{kind}_{uuid.uuid4().hex[:6]}"
        inst.trigger("kill_dag", run_id)
        deadline = time.monotonic() + 90
        running: list[tuple[str, int]] = []
        while time.monotonic() < deadline:
            # Kill once the victim's tries have all started (TI running on it): a try fetched
            # but not yet started would stay queued until [scheduler] task_queued_timeout.
            tis = inst.tis("kill_dag", run_id)
            mine = [
                j for j in inst.edge_jobs("kill_dag", run_id) if j["edge_worker"] == victim.name
            ]
            states = [tis[(j["task_id"], j["map_index"])]["state"] for j in mine]
            running = [
                k
                for k, t in tis.items()
                if t["state"] == "running" and t["hostname"] == victim.name
            ]
            if running and "queued" not in states:
                break
            time.sleep(0.2)
        assert running, f"no try ran on {victim.name}: {inst.edge_jobs('kill_dag', run_id)}"
        proc = inst.procs[f"worker-{victim.name}"]
        os.kill(proc.pid, signal.SIGKILL)  # the worker process only, not its children
        proc.wait(timeout=30)
        if kind == "airflow":
            # Airflow's worker starts each task's supervisor in a session of its own: they
            # outlive a SIGKILLed worker and would finish their tries. That is the baseline's
            # behaviour; the host is then lost as a whole (everything in its namespace
            # killed), which is what Airflow's timeouts are for.
            orphans = victim.pids()
            topo.kill_host(victim)
            print(f"airflow edge worker SIGKILLed: {len(orphans)} process(es) left in its netns")
        left = _wait_empty(victim, 5)
        assert victim.netns is None or left == [], f"still running in {victim.netns}: {left}"
        state = inst.wait_run("kill_dag", run_id, 150)
        tis = inst.tis("kill_dag", run_id)
        assert state == "success", tis
        # A try may have ended in the instant before the kill; every other one is retried.
        killed = {k for k in running if tis[k]["try_number"] == 2}
        assert killed, f"none of {running} was retried: {tis}"
        for key in set(running) - killed:
            assert tis[key]["hostname"] == victim.name and tis[key]["state"] == "success"
        jobs = inst.edge_jobs("kill_dag", run_id)
        retried_on = {
            j["edge_worker"]
            for j in jobs
            if (j["task_id"], j["map_index"]) in killed and j["try_number"] == 2
        }
        assert retried_on == {survivor.name}, jobs
        assert inst.edge_workers()[victim.name] in ("unknown", "offline"), inst.edge_workers()
    finally:
        _stop_workers(inst)

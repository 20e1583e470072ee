"""Edge workers under Airflow 3.3.2's EdgeExecutor: throughput and queue-to-start latency.

For N short tasks (one DAG run of ``edge_bench``: N independent reference-runtime tasks on
queue ``ref``), with 1 and 2 workers, ``supervisor-sim worker`` beside Airflow's own
``airflow edge worker`` on the same Airflow (tests/integration/_edge_topology.py: api-server and
scheduler on a private Postgres) and machine. Figures from Airflow's DB: tasks/s = N / (last
end_date - first queued_dttm); latency = start_date - queued_dttm per TI, p50 and p95. Both
include the scheduler's and the API's share, which is the same for both workers.

    python bench/edge_bench.py            # N = 200
    python bench/edge_bench.py --quick    # N = 20, one worker count (2)

    python bench/edge_bench.py --memory-only   # the memory figures alone

Each worker runs in a network namespace of its own, as in test_real_edge_topology.py, reaching
the API server over a veth pair (``topology.make_hosts``; where namespaces cannot be made, on
the host, and ``hosts`` in the output says so).

Prints one JSON object. Wall-clock figures: noisy on a shared machine.

Memory (``memory``): of the worker process alone, from /proc/PID/smaps_rollup (PSS, USS and
RSS), idle (registered, no task) and with all tasks of ``edge_rss`` running at once (100
tasks sleeping 120 s; 10 with --quick), and per running task = (busy - idle) / tasks. The
worker's descendants are summed apart: the runtimes (reference runtime processes, the same for
both workers) and the rest, Airflow's per-task supervisor processes (forks of its worker;
supervisor-sim has none: its sessions live in the worker process). RSS counts shared pages once
per process mapping them (forked supervisors share most of theirs), so only PSS and USS are
summed into the per-task supervision cost.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import integration._edge_topology as topo  # noqa: E402

#: Longer timeouts than the topology tests' short ones: with N tasks queued at once and 16
#: slots per worker, a task waits in "queued" longer than their 30 s task_queued_timeout, and a
#: loaded machine can delay a heartbeat past their 8 s. With the tests' values, 141 of 200 tasks
#: of Airflow's own worker failed in one run (2026-12-04; queue-to-start p50 34 s).
BENCH_AIRFLOW_ENV = {
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "600",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "300",
}


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(
    inst: topo.EdgeAirflow,
    kind: str,
    workers: int,
    n: int,
    go_binary: Path,
    places: list[topo.Host],
) -> dict[str, Any]:
    # A name of its own for each worker of each measurement: Airflow refuses a name that is
    # still active, and a stopped worker's row may be.
    hosts = [
        dataclasses.replace(places[i], name=f"bench-{kind}-{workers}-{i}") for i in range(workers)
    ]
    try:
        for host in hosts:
            if kind == "airflow":
                inst.start_airflow_worker(host, go_binary, concurrency=16, queues="ref")
            else:
                inst.start_sim_worker(host, go_binary, concurrency=16)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            states = inst.edge_workers()
            if all(states.get(h.name) in ("idle", "running") for h in hosts):
                break
            time.sleep(0.3)
        run_id = f"bench_{kind}_{workers}_{uuid.uuid4().hex[:6]}"
        inst.trigger("edge_bench", run_id)
        state = inst.wait_run("edge_bench", run_id, 600)
        tis = inst.tis("edge_bench", run_id).values()
        done = [t for t in tis if t["start_date"] and t["end_date"]]
        latencies = [_ts(t["start_date"]) - _ts(t["queued_dttm"]) for t in done]
        span = max(_ts(t["end_date"]) for t in done) - min(_ts(t["queued_dttm"]) for t in done)
        return {
            "worker": kind,
            "workers": workers,
            "hosts": [h.netns or "host" for h in hosts],
            "tasks": n,
            "run_state": state,
            "succeeded": sum(t["state"] == "success" for t in tis),
            "tasks_per_s": round(len(done) / span, 2),
            "queue_to_start_p50_s": round(statistics.median(latencies), 3),
            "queue_to_start_p95_s": round(_pct(latencies, 0.95), 3),
        }
    finally:
        for name in [k for k in inst.procs if k.startswith("worker")]:
            inst.stop(name, timeout=30)
            del inst.procs[name]


#: The /proc/PID/smaps_rollup fields read, in KiB: RSS counts every page mapped (shared ones
#: in full, in each process mapping them), PSS shares each page among its mappers (a sum over
#: processes is their real footprint), USS = Private_Clean + Private_Dirty (what the process
#: alone holds: freed if it went).
def memory_kib(pid: int) -> dict[str, int]:
    """{"rss", "pss", "uss"} of ``pid`` in KiB, from /proc/PID/smaps_rollup (zeros if gone)."""
    got = {"rss": 0, "pss": 0, "uss": 0}
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return got
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss", "Private_Clean", "Private_Dirty"):
            kib = int(rest.split()[0])
            if key == "Rss":
                got["rss"] = kib
            elif key == "Pss":
                got["pss"] = kib
            else:
                got["uss"] += kib
    return got


def descendants(root: int) -> list[int]:
    """Every live descendant of ``root`` (children, theirs, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, frontier = [], [root]
    while frontier:
        kids = children.get(frontier.pop(), [])
        out.extend(kids)
        frontier.extend(kids)
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def snapshot(root: int, runtime_markers: tuple[str, ...]) -> dict[str, Any]:
    """The worker process's own memory, and its descendants' summed (PSS, USS, RSS), split in
    runtimes (a command line naming one of ``runtime_markers``) and the rest (Airflow's
    per-task supervisor processes; none for supervisor-sim, whose sessions are in the worker)."""
    groups: dict[str, dict[str, int]] = {
        g: {"rss": 0, "pss": 0, "uss": 0, "processes": 0} for g in ("runtimes", "supervisors")
    }
    for pid in descendants(root):
        group = "runtimes" if any(m in _cmdline(pid) for m in runtime_markers) else "supervisors"
        mem = memory_kib(pid)
        if not mem["rss"]:
            continue  # gone, or a kernel thread
        for key, kib in mem.items():
            groups[group][key] += kib
        groups[group]["processes"] += 1
    return {"worker": memory_kib(root), **groups}


def _mib(kib: float) -> float:
    return round(kib / 1024, 2)


def measure_memory(
    inst: topo.EdgeAirflow, kind: str, running: int, go_binary: Path, host: topo.Host
) -> dict[str, Any]:
    """A worker's memory idle (registered, no task) and with ``running`` tasks of edge_rss (each
    sleeping) running at once; per running task = (with - idle) / running, for the worker
    process alone and with its per-task supervisor processes (Airflow's), runtimes apart."""
    if kind == "airflow":
        proc = inst.start_airflow_worker(host, go_binary, concurrency=running, queues="ref")
    else:
        proc = inst.start_sim_worker(host, go_binary, concurrency=running)
    markers = (str(topo.REF_RUNTIME), str(go_binary))
    try:
        deadline = time.monotonic() + 120
        while inst.edge_workers().get(host.name) != "idle":
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"worker {host.name} not idle:\n{inst.log_tail()}")
            time.sleep(0.3)
        time.sleep(3)  # a few heartbeats and fetches: the idle loop's steady state
        idle = []
        for _ in range(3):
            idle.append(memory_kib(proc.pid))
            time.sleep(0.5)
        idle_worker = {k: statistics.median(m[k] for m in idle) for k in idle[0]}
        run_id = f"mem_{kind}_{uuid.uuid4().hex[:6]}"
        inst.trigger("edge_rss", run_id)
        limit = 600.0
        deadline, best, now, most = time.monotonic() + limit, None, 0, 0
        while time.monotonic() < deadline:
            tis = inst.tis("edge_rss", run_id).values()
            now = sum(t["state"] == "running" for t in tis)
            most = max(most, now)
            snap = snapshot(proc.pid, markers)
            if now >= running and snap["runtimes"]["processes"] >= running:
                time.sleep(2)  # every runtime past its start-up
                best = snapshot(proc.pid, markers)
                break
            if inst.run_state("edge_rss", run_id) in ("success", "failed"):
                break
            time.sleep(0.5)
        if best is None:
            # Kept as a figure of its own, so that the run's other measurements survive.
            return {
                "worker": kind,
                "running_tasks": running,
                "error": f"{kind}: only {most} of {running} tasks were running at once at most"
                f" within {limit:.0f} s",
                "worker_log_tail": inst.log_tail()[-3000:],
            }
        busy = best["worker"]
        sup = best["supervisors"]
        per_task = {
            f"worker_{k}_kib": round((busy[k] - idle_worker[k]) / running, 1)
            for k in ("pss", "uss", "rss")
        }
        per_task.update(
            {
                f"worker_and_supervisors_{k}_kib": round(
                    (busy[k] - idle_worker[k] + sup[k]) / running, 1
                )
                for k in ("pss", "uss")
            }
        )
        per_task["runtime_pss_kib"] = round(best["runtimes"]["pss"] / running, 1)
        return {
            "worker": kind,
            "host": host.netns or "host",
            "running_tasks": running,
            "worker_idle_mib": {k: _mib(v) for k, v in idle_worker.items()},
            "worker_busy_mib": {k: _mib(v) for k, v in busy.items()},
            "supervisor_processes": sup["processes"],
            "supervisors_mib": {k: _mib(sup[k]) for k in ("pss", "uss", "rss")},
            "runtime_processes": best["runtimes"]["processes"],
            "runtimes_mib": {k: _mib(best["runtimes"][k]) for k in ("pss", "uss", "rss")},
            "per_running_task": per_task,
        }
    finally:
        inst.stop(f"worker-{host.name}", timeout=30)
        del inst.procs[f"worker-{host.name}"]


def _progress(figure: dict[str, Any]) -> None:
    """Each measurement on stderr as it is made: a long run that fails later keeps them."""
    print(f"edge_bench: {json.dumps(figure)}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 tasks, 2 workers only")
    parser.add_argument("--tasks", type=int, default=None)
    parser.add_argument("--memory-only", action="store_true", help="only the memory figures")
    parser.add_argument("--no-memory", action="store_true", help="no memory figures")
    parser.add_argument("--memory-tasks", type=int, default=None, help="tasks running at once")
    args = parser.parse_args(argv)
    n = args.tasks or (20 if args.quick else 200)
    counts = [2] if args.quick else [1, 2]
    go_binary = topo.build_go_runtime()
    places, hosts_note = topo.make_hosts(2)
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        running = args.memory_tasks or (10 if args.quick else 100)
        os.environ["EDGE_KILL_SLEEP_S"] = "120"  # the edge_rss tasks outlast the sampling
        inst = topo.start_edge_airflow(
            Path(tmp),
            dags={
                "edge_bench.py": topo.BENCH_DAG.format(n=n, dag_id="edge_bench"),
                "edge_rss.py": topo.BENCH_DAG.format(n=running, dag_id="edge_rss"),
            },
            airflow_env=BENCH_AIRFLOW_ENV,
        )
        inst.task_sleep = "0"
        results: list[dict[str, Any]] = []
        memory: list[dict[str, Any]] = []
        try:
            for workers in counts if not args.memory_only else []:
                for kind in ("airflow", "supervisor-sim"):
                    results.append(measure(inst, kind, workers, n, go_binary, places))
                    _progress(results[-1])
            for kind in ("airflow", "supervisor-sim") if not args.no_memory else []:
                host = dataclasses.replace(places[0], name=f"mem-{kind}")
                memory.append(measure_memory(inst, kind, running, go_binary, host))
                _progress(memory[-1])
        finally:
            inst.close()
            topo.remove_hosts(places)
    print(json.dumps({"hosts": hosts_note, "edge_bench": results, "memory": memory}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

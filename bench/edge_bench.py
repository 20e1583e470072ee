"""Edge workers under Airflow 3.3.2's EdgeExecutor: throughput and queue-to-start latency.

For N short tasks (one DAG run of ``edge_bench``: N independent reference-runtime tasks on
queue ``ref``), with 1 and 2 workers, ``supervisor-sim worker`` beside Airflow's own
``airflow edge worker`` on the same Airflow (tests/integration/_edge_topology.py: api-server and
scheduler on a private Postgres) and machine. Figures from Airflow's DB: tasks/s = N / (last
end_date - first queued_dttm); latency = start_date - queued_dttm per TI, p50 and p95. Both
include the scheduler's and the API's share, which is the same for both workers.

    python bench/edge_bench.py            # N = 200
    python bench/edge_bench.py --quick    # N = 20, one worker count (2)

Prints one JSON object. Wall-clock figures: noisy on a shared machine.
Memory: VmRSS of the worker process, and of it with all its descendants (supervisors,
runtimes), at the most tasks running at once of ``edge_rss`` (100 sleeping tasks; 10 with
--quick), sampled from /proc every 0.5 s.
"""

from __future__ import annotations

import argparse
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


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(
    inst: topo.EdgeAirflow, kind: str, workers: int, n: int, go_binary: Path
) -> dict[str, Any]:
    hosts = [topo.Host(f"bench-{kind}-{i}", None, "127.0.0.1", "127.0.0.1") for i in range(workers)]
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


def _tree_rss_kib(root: int) -> tuple[int, int]:
    """(VmRSS of ``root``, VmRSS of ``root`` and all its descendants) in KiB, from /proc."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, frontier = {root}, [root]
    while frontier:
        kids = [p for p, pp in parent.items() if pp == frontier[-1]]
        frontier.pop()
        tree.update(kids)
        frontier.extend(kids)

    def rss(pid: int) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    return rss(root), sum(rss(p) for p in tree)


def measure_rss(inst: topo.EdgeAirflow, kind: str, running: int, go_binary: Path) -> dict[str, Any]:
    """A worker's memory while ``running`` tasks of edge_rss (each sleeping) run at once."""
    host = topo.Host(f"rss-{kind}", None, "127.0.0.1", "127.0.0.1")
    if kind == "airflow":
        proc = inst.start_airflow_worker(host, go_binary, concurrency=running, queues="ref")
    else:
        proc = inst.start_sim_worker(host, go_binary, concurrency=running)
    try:
        run_id = f"rss_{kind}_{uuid.uuid4().hex[:6]}"
        inst.trigger("edge_rss", run_id)
        deadline, best = time.monotonic() + 300, (0, 0, 0)
        while time.monotonic() < deadline:
            tis = inst.tis("edge_rss", run_id).values()
            now = sum(t["state"] == "running" for t in tis)
            if now >= best[0]:
                best = (now, *_tree_rss_kib(proc.pid))
            if now >= running or inst.run_state("edge_rss", run_id) in ("success", "failed"):
                break
            time.sleep(0.5)
        return {
            "worker": kind,
            "running_tasks": best[0],
            "worker_rss_mib": round(best[1] / 1024, 1),
            "worker_and_children_rss_mib": round(best[2] / 1024, 1),
        }
    finally:
        inst.stop(f"worker-{host.name}", timeout=30)
        del inst.procs[f"worker-{host.name}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 tasks, 2 workers only")
    parser.add_argument("--tasks", type=int, default=None)
    args = parser.parse_args(argv)
    n = args.tasks or (20 if args.quick else 200)
    counts = [2] if args.quick else [1, 2]
    go_binary = topo.build_go_runtime()
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        running = 10 if args.quick else 100
        os.environ["EDGE_KILL_SLEEP_S"] = "120"  # the edge_rss tasks outlast the sampling
        inst = topo.start_edge_airflow(
            Path(tmp),
            dags={
                "edge_bench.py": topo.BENCH_DAG.format(n=n, dag_id="edge_bench"),
                "edge_rss.py": topo.BENCH_DAG.format(n=running, dag_id="edge_rss"),
            },
        )
        inst.task_sleep = "0"
        try:
            results = [
                measure(inst, kind, workers, n, go_binary)
                for workers in counts
                for kind in ("airflow", "supervisor-sim")
            ]
            rss = [
                measure_rss(inst, kind, running, go_binary)
                for kind in ("airflow", "supervisor-sim")
            ]
        finally:
            inst.close()
    print(json.dumps({"edge_bench": results, "rss": rss}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

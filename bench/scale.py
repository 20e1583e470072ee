"""N concurrent children in ONE ``supervisor-sim run-dag`` process, beside Airflow's cost.

    .venv/bin/python bench/scale.py [--counts 1,10,100,500,1000] [--interval 1.0] [--hold 3]
                                    [--rt 5] [--airflow-python PY | --no-airflow]
                                    [--airflow-count 10] [--child python|go] [--tmp DIR]
                                    [--json]

For each N, ``run-dag`` runs a DAG of N parallel tasks (``bench/_load_child.py``, mode
``scale``: the runtime answers the parse itself) with ``--parallelism N`` and a transcript per
task, configured through a ``supervisor-sim.toml`` of its own: ``heartbeat_interval`` =
``--interval`` and ``startup_timeout = 300`` (N Python interpreters starting at once on a small
machine). Every child makes ``--rt`` timed ``GetVariable`` round trips, reports ready, and waits
until all N are ready (a FIFO the harness closes), so that all N are alive at once; then it lives
``--hold`` seconds more (heartbeats go on), makes ``--rt`` more round trips and succeeds.

Measured per N: wall time of the run-dag command; the supervisor process's own peak RSS
(``VmHWM``) and CPU (user+sys of that process and its threads, not its children), written at
exit by ``bench/_measured_cli.py``; CPU per request (that CPU / the runtime's requests, so spawns,
ownership checks, heartbeats and transcripts are included); each child's peak RSS; the time from
launch until all N were ready; heartbeat lateness (from the transcripts: for consecutive
heartbeats, start of the later one - (start of the earlier one + interval): by Airflow's rule a
heartbeat is due ``min_heartbeat_interval`` after the last *attempt* started) p50/p99/max as ms
and as % of the interval; request wait (each round trip as the child timed it) p50/p99/max.

Split by phase, by when each heartbeat was due: **start** (before all N were ready: children
still being launched and starting), **steady** (all N up, each waiting out ``--hold``: only
heartbeats), **burst** (after the hold: all N make their round trips, succeed and exit at
once). Per phase, the supervisor's main thread's share of the wall time spent running on a CPU
and spent runnable but waiting for one (``/proc/PID/task/PID/schedstat``, sampled every
0.2 s), and the machine's mean count of runnable tasks (``/proc/loadavg``): what tells a
supervisor busy with its own work from one starved of CPU by its children.

The child: ``--child python`` (the default, the figures in docs/performance.md) is
``bench/_load_child.py``; ``--child go`` is the same program compiled,
``runtimes/go/cmd/bench-scale-child`` (built by ``tools/build_go_runtime.sh --target
bench-scale-child``): same frames, files and measurement, without 1,000 Python interpreters
competing with the supervisor for the CPU. The Airflow side runs the same child. The output says
which child was used.

Airflow's cost for the same count: Airflow runs one supervisor process per task, so
``--airflow-count`` (10) ``bench/airflow_sup.py`` processes (each ``supervise_task`` with the same
child and the same barrier, ``[workers] min_heartbeat_interval`` = ``--interval``) are run at once
and measured; the figure for N is N x the mean per-process peak RSS and CPU: an extrapolation,
reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any, cast

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
CHILD = HERE / "_load_child.py"
GO_BUILD = ROOT / "tools" / "build_go_runtime.sh"


def build_go_child() -> tuple[Path | None, str | None]:
    """(the Go child, built or found up to date by tools/build_go_runtime.sh, None), or (None,
    why not): "no Go toolchain: ..." when there is none to build it with, else the failure."""
    try:
        proc = subprocess.run(
            ["bash", str(GO_BUILD), "--target", "bench-scale-child"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, "building the Go child took more than 600 s"
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        return Path(lines[-1]), None
    last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
    if shutil.which("go") is None:
        return None, f"no Go toolchain to build the Go scale child: {last}"
    return None, f"cannot build the Go child: {last}"


def child_command(kind: str) -> list[str]:
    """The child's command (--comm/--logs are appended by the supervisor): the Python child,
    or the Go one (``build_go_child``)."""
    if kind == "python":
        return [PY, str(CHILD)]
    binary, why = build_go_child()
    if binary is None:
        raise SystemExit(f"scale.py: {why}")
    return [str(binary)]


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def _barrier_env(work: Path, n: int, hold: float, rt: int) -> tuple[dict[str, str], Path, Path]:
    ready = work / "ready"
    out = work / "out"
    ready.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    fifo = work / "go.fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    env = {
        **os.environ,
        "BENCH_MODE": "scale",
        "BENCH_TASKS": str(n),
        "BENCH_READY_DIR": str(ready),
        "BENCH_GO_FIFO": str(fifo),
        "BENCH_OUT_DIR": str(out),
        "BENCH_HOLD_S": str(hold),
        "BENCH_RT": str(rt),
    }
    return env, ready, fifo


def _run_with_barrier(
    cmd: list[str] | list[list[str]], env: dict[str, str], ready: Path, fifo: Path, n: int,
    cwd: Path, timeout: float, sample: bool = False,
) -> tuple[list[subprocess.CompletedProcess[str]], float | None, float]:  # fmt: skip
    """Start the command(s), release the children once N are ready; (procs, ready_s, wall_s)."""
    go = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # a writer exists until every child is ready
    cmds = cast(list[list[str]], cmd if cmd and isinstance(cmd[0], list) else [cmd])
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            c, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for c in cmds
    ]
    global SAMPLER
    SAMPLER = _SchedSampler(procs[0].pid) if sample else None
    ready_s = None
    global RELEASED_WALL
    try:
        while time.perf_counter() - started < timeout:
            if len(os.listdir(ready)) >= n:
                ready_s = time.perf_counter() - started
                RELEASED_WALL = time.time()
                break
            if all(p.poll() is not None for p in procs):
                break
            time.sleep(0.05)
    finally:
        os.close(go)
    results = []
    for p in procs:
        remaining = max(1.0, timeout - (time.perf_counter() - started))
        stdout, stderr = p.communicate(timeout=remaining)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    if SAMPLER is not None:
        SAMPLER.stop()
    return results, ready_s, time.perf_counter() - started


#: time.time() when the children were released (all N ready).
RELEASED_WALL = 0.0


class _SchedSampler:
    """Every 0.2 s: (time.time(), s running, s waiting for a CPU, runnable tasks) of one
    process's main thread, from its schedstat (ns on CPU, ns runnable on a run queue)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, float, float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        path = f"/proc/{self.pid}/task/{self.pid}/schedstat"
        while not self._stop.wait(0.2):
            try:
                with open(path) as f:
                    run_ns, wait_ns, _ = (int(x) for x in f.read().split())
                with open("/proc/loadavg") as f:
                    runnable = int(f.read().split()[3].split("/")[0])
            except (OSError, ValueError):
                return
            self.samples.append((time.time(), run_ns / 1e9, wait_ns / 1e9, runnable))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def shares(self, start: float, end: float) -> dict[str, float | None]:
        """Between two wall-clock times: the shares of the wall time running and waiting for
        a CPU, and the mean runnable count."""
        inside = [x for x in self.samples if start <= x[0] <= end]
        if len(inside) < 2:
            return {"run": None, "wait": None, "runnable": None}
        (t0, r0, w0, _), (t1, r1, w1, _) = inside[0], inside[-1]
        return {
            "run": (r1 - r0) / (t1 - t0),
            "wait": (w1 - w0) / (t1 - t0),
            "runnable": statistics.mean(x[3] for x in inside),
        }


#: The sampler of the latest ``_run_with_barrier`` with ``sample=True``.
SAMPLER: _SchedSampler | None = None


def heartbeat_lateness(transcript: Path, interval: float) -> list[tuple[float, float]]:
    """(due, lateness) of each heartbeat after the first; ``due`` as a wall-clock time:
    the start of the one before + ``interval`` (Airflow's rule: the interval is counted from
    the last attempt)."""
    beats = []
    created = 0.0
    with transcript.open() as f:
        for line in f:
            if '"record":"header"' in line:
                stamp = json.loads(line)["created"].replace("Z", "+00:00")
                created = datetime.fromisoformat(stamp).timestamp()
            if '"cause":"heartbeat"' not in line:
                continue
            r = json.loads(line)
            if r.get("record") == "http" and r.get("cause") == "heartbeat":
                beats.append(r)
    starts = [b["t"] - b["duration_s"] for b in beats]
    return [(created + a + interval, b - (a + interval)) for a, b in pairwise(starts)]


def child_results(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]


def run_sim(
    n: int, interval: float, hold: float, rt: int, tmp: Path, child: list[str] | None = None
) -> dict[str, Any]:
    work = tmp / f"sim-{n}-{time.monotonic_ns()}"
    work.mkdir(parents=True)
    config = work / "supervisor-sim.toml"
    command = json.dumps(child or [PY, str(CHILD)])  # a JSON array of strings is TOML too
    config.write_text(
        f"[runtime]\ncommand = {command}\n\n"
        f"[supervisor]\nheartbeat_interval = {interval}\nstartup_timeout = 300.0\n"
    )
    fixtures = work / "fixtures.toml"
    fixtures.write_text('[variables]\nbench_var = "bench-value"\n')
    env, ready, fifo = _barrier_env(work, n, hold, rt)
    self_out = work / "self.json"
    env["BENCH_SELF_OUT"] = str(self_out)
    cmd = [PY, str(HERE / "_measured_cli.py"), "--config", str(config), "run-dag", "scale_dag"]
    cmd += ["--parallelism", str(n), "--state", ":memory:", "--fixtures", str(fixtures)]
    cmd += ["--runs-dir", str(work / "runs"), "--json", "-q"]
    (proc,), ready_s, wall = _run_with_barrier(cmd, env, ready, fifo, n, work, 900 + n, sample=True)
    ended_wall = time.time()
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise SystemExit(f"run-dag (N={n}) exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    dag = json.loads(lines[-1])
    me = json.loads(self_out.read_text())
    states: dict[str, int] = {}
    for task in dag["tasks"].values():
        states[task["state"]] = states.get(task["state"], 0) + 1
    timed: list[tuple[float, float]] = []
    for task in dag["tasks"].values():
        for t in task.get("transcripts") or []:
            timed += heartbeat_lateness(Path(t), interval)
    late = [x for _, x in timed]
    late_start = [x for due, x in timed if due < RELEASED_WALL]
    late_run = [x for due, x in timed if due >= RELEASED_WALL]
    burst_wall = RELEASED_WALL + hold
    bounds = {
        "start": (0.0, RELEASED_WALL),
        "steady": (RELEASED_WALL, burst_wall),
        "burst": (burst_wall, ended_wall),
    }
    phases: dict[str, dict[str, Any]] = {}
    for phase, (lo, hi) in bounds.items():
        lates = [x for due, x in timed if lo <= due < hi]
        sched = SAMPLER.shares(lo, hi) if SAMPLER is not None else {}
        phases[phase] = {
            "heartbeats": len(lates),
            "hb_late_p50_pct": _pc(pct(lates, 0.5), interval),
            "hb_late_p99_pct": _pc(pct(lates, 0.99), interval),
            "hb_late_max_ms": _ms(max(lates, default=None)),
            "main_thread_running": sched.get("run"),
            "main_thread_waiting_for_cpu": sched.get("wait"),
            "runnable_tasks": sched.get("runnable"),
        }
    children = child_results(work / "out")
    waits = [ms for c in children for ms in c.get("rt_ms", [])]
    waits_before = [ms for c in children for ms in c.get("rt_ms_before", [])]
    waits_after = [ms for c in children for ms in c.get("rt_ms_after", [])]
    requests = sum(c.get("round_trips", 0) + 1 for c in children)  # + SucceedTask
    child_rss = [c["peak_rss_kb"] / 1024 for c in children]
    return {
        "children": n,
        "exit_code": proc.returncode,
        "states": states,
        "succeeded": states.get("success", 0),
        "peak_running": dag.get("peak_running"),
        "wall_s": wall,
        "all_ready_s": ready_s,
        "supervisor_peak_rss_mb": me["peak_rss_kb"] / 1024,
        "supervisor_cpu_s": me["cpu_s"],
        "requests": requests,
        "cpu_us_per_request": me["cpu_s"] / requests * 1e6 if requests else None,
        "child_peak_rss_mb_median": statistics.median(child_rss) if child_rss else None,
        "rss_per_child_mb": me["peak_rss_kb"] / 1024 / n,
        "heartbeats_timed": len(late),
        "hb_late_p50_ms": _ms(pct(late, 0.5)),
        "hb_late_p99_ms": _ms(pct(late, 0.99)),
        "hb_late_max_ms": _ms(max(late, default=None)),
        "hb_late_p50_pct": _pc(pct(late, 0.5), interval),
        "hb_late_p99_pct": _pc(pct(late, 0.99), interval),
        "wait_p50_ms": pct(waits, 0.5),
        "wait_p99_ms": pct(waits, 0.99),
        "wait_max_ms": max(waits, default=None),
        "children_reporting": len(children),
        # While children were still starting (each round trip right after its StartupDetails),
        # and in the burst after the release (all N at once, after --hold).
        "hb_start_p99_pct": _pc(pct(late_start, 0.99), interval),
        "hb_after_release_p99_pct": _pc(pct(late_run, 0.99), interval),
        "hb_after_release_count": len(late_run),
        "wait_start_p99_ms": pct(waits_before, 0.99),
        "wait_burst_p99_ms": pct(waits_after, 0.99),
        # start / steady / burst: see the module's docstring.
        "phases": phases,
    }


def run_airflow(
    airflow_py: str,
    count: int,
    interval: float,
    hold: float,
    rt: int,
    tmp: Path,
    child: list[str] | None = None,
) -> dict[str, Any]:
    work = tmp / f"airflow-{count}-{time.monotonic_ns()}"
    work.mkdir(parents=True)
    env, ready, fifo = _barrier_env(work, count, hold, rt)
    env["AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"] = str(interval)
    env["BENCH_AIRFLOW_LOG"] = "WARNING"
    child = child or [PY, str(CHILD)]
    cmds = [[airflow_py, str(HERE / "airflow_sup.py"), "--", *child] for _ in range(count)]
    procs, ready_s, wall = _run_with_barrier(cmds, env, ready, fifo, count, work, 900)
    results = []
    for p in procs:
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
        if p.returncode != 0 or not lines:
            raise SystemExit(f"airflow_sup.py exited {p.returncode}:\n{p.stderr[-3000:]}")
        results.append(json.loads(lines[-1]))
    children = child_results(work / "out")
    waits = [ms for c in children for ms in c.get("rt_ms", [])]
    rss = [r["peak_rss_kb"] / 1024 for r in results]
    cpu = [r["cpu_total_s"] for r in results]
    requests = sum(c.get("round_trips", 0) + 1 for c in children)
    return {
        "measured_count": count,
        "exit_codes": [r["exit_code"] for r in results],
        "wall_s": wall,
        "all_ready_s": ready_s,
        "per_supervisor_peak_rss_mb": statistics.mean(rss),
        "per_supervisor_cpu_s": statistics.mean(cpu),
        "total_peak_rss_mb": sum(rss),
        "total_cpu_s": sum(cpu),
        "cpu_us_per_request": sum(cpu) / requests * 1e6 if requests else None,
        "heartbeats": sum(r["calls"].get("heartbeat", 0) for r in results),
        "wait_p50_ms": pct(waits, 0.5),
        "wait_p99_ms": pct(waits, 0.99),
        "child_peak_rss_mb_median": (
            statistics.median(c["peak_rss_kb"] / 1024 for c in children) if children else None
        ),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


def _pc(seconds: float | None, interval: float) -> float | None:
    return None if seconds is None else 100 * seconds / interval


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    counts = [int(c) for c in args.counts.split(",")]
    child = child_command(args.child)
    out: dict[str, Any] = {
        "child": args.child,
        "child_command": child,
        "interval_s": args.interval,
        "hold_s": args.hold,
        "rt_per_child": 2 * args.rt,
        "counts": counts,
        "sim": {},
        "airflow": None,
    }
    for n in counts:
        print(f"    scale: {n} children ...", file=sys.stderr, flush=True)
        out["sim"][str(n)] = run_sim(n, args.interval, args.hold, args.rt, tmp, child)
    base = out["sim"][str(counts[0])]
    for n in counts[1:]:
        r = out["sim"][str(n)]
        r["marginal_mb_per_child"] = (
            r["supervisor_peak_rss_mb"] - base["supervisor_peak_rss_mb"]
        ) / (n - counts[0])
    if args.airflow_python and not args.no_airflow:
        print(f"    scale: {args.airflow_count} Airflow supervisors ...", file=sys.stderr)
        af = run_airflow(
            args.airflow_python, args.airflow_count, args.interval, args.hold, args.rt, tmp, child
        )
        af["extrapolated"] = {
            str(n): {
                "peak_rss_mb": n * af["per_supervisor_peak_rss_mb"],
                "cpu_s": n * af["per_supervisor_cpu_s"],
            }
            for n in counts
        }
        out["airflow"] = af
    return out


def render(result: dict[str, Any]) -> str:
    af = result.get("airflow")
    lines = [
        f"N children in one run-dag process ({result.get('child', 'python')} child; heartbeat "
        f"every {result['interval_s']:g} s; {result['rt_per_child']} round trips per child)",
        f"{'N':>6}{'ok':>6}{'wall s':>8}{'ready s':>8}{'RSS MB':>8}{'MB/child':>9}"
        f"{'CPU s':>7}{'CPU us/req':>11}{'hb p50%':>8}{'hb p99%':>8}{'hb max ms':>10}"
        f"{'wait p99 ms':>12}{'Airflow RSS MB*':>16}",
    ]
    for n, r in result["sim"].items():
        model = af["extrapolated"][n]["peak_rss_mb"] if af else None
        lines.append(
            f"{n:>6}{r['succeeded']:>6}{r['wall_s']:>8.1f}{_f(r['all_ready_s'], '.1f'):>8}"
            f"{r['supervisor_peak_rss_mb']:>8.1f}{r['rss_per_child_mb']:>9.2f}"
            f"{r['supervisor_cpu_s']:>7.1f}{_f(r['cpu_us_per_request'], ',.0f'):>11}"
            f"{_f(r['hb_late_p50_pct'], '.1f'):>8}{_f(r['hb_late_p99_pct'], '.1f'):>8}"
            f"{_f(r['hb_late_max_ms'], '.0f'):>10}{_f(r['wait_p99_ms'], '.1f'):>12}"
            f"{_f(model, ',.0f'):>16}"
        )
    lines.append(
        "  split: heartbeat p99 % while children start / after all are up; request wait p99 ms "
        "while they start / in the burst after the release"
    )
    for n, r in result["sim"].items():
        lines.append(
            f"{n:>6}  hb {_f(r.get('hb_start_p99_pct'), '.1f')} / "
            f"{_f(r.get('hb_after_release_p99_pct'), '.1f')} %   wait "
            f"{_f(r.get('wait_start_p99_ms'), '.1f')} / {_f(r.get('wait_burst_p99_ms'), '.1f')} ms"
        )
    lines.append(
        "  by phase (heartbeats due while children start / all up, holding / in the burst):"
        " hb p99 %, and the supervisor's main thread running / waiting for a CPU, share of"
        " the wall time, mean runnable tasks on the machine"
    )
    for n, r in result["sim"].items():
        parts = []
        for phase in ("start", "steady", "burst"):
            p = r.get("phases", {}).get(phase, {})
            parts.append(
                f"{phase} {_f(p.get('hb_late_p99_pct'), '.1f')} % "
                f"(run {_f(p.get('main_thread_running'), '.2f')}, wait "
                f"{_f(p.get('main_thread_waiting_for_cpu'), '.2f')}, "
                f"{_f(p.get('runnable_tasks'), '.0f')} runnable)"
            )
        lines.append(f"{n:>6}  " + "; ".join(parts))
    if af:
        lines.append(
            f"* Airflow: {af['measured_count']} supervise_task processes measured at once "
            f"({af['per_supervisor_peak_rss_mb']:.0f} MB, {af['per_supervisor_cpu_s']:.2f} s CPU "
            f"each, wait p99 {_f(af['wait_p99_ms'], '.1f')} ms); N x that is extrapolated"
        )
    return "\n".join(lines)


def _f(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1,10,100,500,1000")
    parser.add_argument("--interval", type=float, default=1.0, help="heartbeat interval, s")
    parser.add_argument("--hold", type=float, default=3.0, help="seconds all N live at once")
    parser.add_argument("--rt", type=int, default=5, help="round trips before and after")
    parser.add_argument("--airflow-python")
    parser.add_argument("--no-airflow", action="store_true")
    parser.add_argument("--airflow-count", type=int, default=10)
    parser.add_argument(
        "--child",
        choices=["python", "go"],
        default="python",
        help="the runtime child: bench/_load_child.py, or the same compiled from Go "
        "(runtimes/go/cmd/bench-scale-child, built on demand)",
    )
    parser.add_argument("--tmp", type=Path)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.airflow_python and os.sep in args.airflow_python:
        # The Airflow supervisors run in a scratch folder: a relative path must not move.
        args.airflow_python = os.path.abspath(args.airflow_python)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
        tmp = args.tmp or Path(scratch)
        result = measure(args, tmp)
    print(json.dumps(result) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

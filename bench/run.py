"""supervisor-sim's benchmarks, side by side with Airflow 3.3.2's supervisor and the loopback limit.

One command (docs/performance.md)::

    .venv/bin/python bench/run.py [--quick] [--all] [--runs 3] [--roundtrip-runs 5] [--out FILE]
                                  [--only roundtrip,transcript,scale,logs,xcom,startup,
                                          many,stubapi,replay,masking,heartbeat,html,proxy,spawn,
                                          transcript_memory]
                                  [--scale 1,10,100,500,1000]
                                  [--airflow-python PATH | --no-airflow]

The default set is issue 21's: round trips (with and without a transcript), scale, logs, xcom
and start-up; ``--all`` adds the older benchmarks; ``--quick`` (alias ``--smoke``) runs all of
them at tiny sizes and writes to a temporary file. Every comparison is measured under two
conditions, alternated within the run (``CONDITIONS``: quiet, and loaded = one busy loop pinned
to the last CPU, started and killed by the harness); each round repeats ``--runs`` times
(the round trips, the noisiest, ``--roundtrip-runs``: 5) and medians are reported (scale: quiet
only, once). A table per figure, a compact summary and one
PASS/FAIL line per target are printed; the raw runs, medians and verdicts are written as JSON.
A FAIL never makes this program fail (exit 1 only when a benchmark produced no numbers).

Airflow's supervisor runs from the venv of ``tools/airflow_venv.sh`` (built on first use);
without that script or venv, and without ``--airflow-python``, those figures are skipped and
the reason printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
CHILD = [PY, str(HERE / "child.py")]
CLI = [PY, "-m", "supervisor_sim"]
CONSOLE_SCRIPT = Path(PY).parent / "supervisor-sim"
AIRFLOW_VENV_SCRIPT = ROOT / "tools" / "airflow_venv.sh"
AIRFLOW_VENV_PYTHON = ROOT / ".cache" / "airflow-venv" / "bin" / "python"

#: name -> (description, comparison, threshold, unit). Issue 21's targets first; "quiet" and
#: "loaded" are the two conditions (CONDITIONS below).
TARGETS: dict[str, tuple[str, str, float, str]] = {
    "rt_vs_echo_quiet": ("round trips vs raw loopback echo, quiet", ">=", 0.50, "x"),
    "rt_vs_echo_loaded": ("round trips vs raw loopback echo, loaded", ">=", 0.50, "x"),
    "rt_vs_airflow_quiet": ("round trips vs Airflow's supervisor, quiet", ">=", 3.0, "x"),
    "rt_vs_airflow_loaded": ("round trips vs Airflow's supervisor, loaded", ">=", 3.0, "x"),
    "transcript_quiet": ("round-trip time, transcript on / off, quiet", "<=", 1.10, "x"),
    "transcript_loaded": ("round-trip time, transcript on / off, loaded", "<=", 1.10, "x"),
    "scale_1000_rss": ("1,000 children: supervisor peak RSS (all ok)", "<=", 200.0, "MB"),
    "scale_1000_hb_p99": ("1,000 children: heartbeat lateness p99", "<=", 10.0, "%"),
    "scale_1000_wait_p99": ("1,000 children: request wait p99", "<=", 50.0, "ms"),
    # Earlier targets, judged when their benchmark runs (--all).
    "startup": ("spawn -> StartupDetails (seen by the child)", "<=", 50.0, "ms"),
    "run_task_overhead": ("run-task overhead over the child alone", "<=", 150.0, "ms"),
    "help": ("supervisor-sim --help wall time", "<=", 300.0, "ms"),
    "replay": ("replay of 100k requests / the recorded run", "<=", 1.5, "x"),
    "html": ("HTML view of 100k frames: first rows drawn", "<=", 2000.0, "ms"),
}

#: The two conditions every comparison is measured under, alternated within one run.
#: ``loaded``: one Python busy loop (``BUSY`` below) pinned to the last CPU with
#: ``os.sched_setaffinity`` at normal priority (nice 0), started just before the measurements of
#: that condition and killed (by its pid) right after them; it also ends by itself after 15 min.
CONDITIONS = ("quiet", "loaded")
BUSY = r"""
import os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
end = time.monotonic() + 900
while time.monotonic() < end:
    pass
"""


class Condition:
    """``with Condition("loaded"):`` keeps one CPU busy for the block; ``quiet`` does nothing."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Condition:
        if self.name == "loaded":
            cpu = max(os.sched_getaffinity(0))
            self.proc = subprocess.Popen([PY, "-c", BUSY, str(cpu)])
            time.sleep(0.2)  # let it reach its core
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


#: A program measuring the peak RSS of the command it runs (and its children), and its wall time.
MEASURE = r"""
import json, resource, subprocess, sys, time
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": p.returncode, "wall_s": wall, "maxrss_kb": ru.ru_maxrss,
                  "cpu_s": ru.ru_utime + ru.ru_stime, "stdout": p.stdout,
                  "stderr": p.stderr[-4000:]}))
"""


class BenchError(Exception):
    pass


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def run_json(
    cmd: list[str], *, timeout: float, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> dict:
    """Run a command that prints one JSON object as its last stdout line."""
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env, check=False
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise BenchError(
            f"`{shlex.join(cmd)}` exited {proc.returncode}\n{proc.stdout[-1500:]}\n"
            f"{proc.stderr[-3000:]}"
        )
    return json.loads(lines[-1])


def measured(
    cmd: list[str], *, timeout: float, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> dict:
    return run_json([PY, "-c", MEASURE, *cmd], timeout=timeout, cwd=cwd, env=env)


def load() -> list[float]:
    return list(os.getloadavg())


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "mem_mb": mem_kb // 1024,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


# --- individual benchmarks -----------------------------------------------------------------


def child_summary(child: dict | None, requests_fallback: int) -> dict[str, Any]:
    child = child or {}
    return {
        "req_per_s": child.get("req_per_s"),
        "us_per_req": child.get("us_per_req"),
        "p50_us": child.get("p50_us"),
        "p99_us": child.get("p99_us"),
        "spawn_to_startup_ms": child.get("spawn_to_startup_ms"),
        "main_to_startup_ms": child.get("main_to_startup_ms"),
        "requests": (child.get("n", 0) + child.get("warmup", 0)) or requests_fallback,
    }


def bench_sim_roundtrip(n: int, warmup: int, tmp: Path, transcript: bool) -> dict[str, Any]:
    cmd = [PY, str(HERE / "sim_bench.py"), "roundtrip", "--n", str(n), "--warmup", str(warmup)]
    cmd += ["--tmp", str(tmp)]
    if transcript:
        cmd += ["--transcript", str(tmp / f"transcript-{time.monotonic_ns()}.jsonl")]
    result = run_json(cmd, timeout=600)
    if result.get("final_state") != "success":
        raise BenchError(f"supervisor-sim session did not succeed: {result}")
    out = child_summary(result.get("child"), n + warmup)
    out["peak_rss_mb"] = result["peak_rss_kb"] / 1024
    out["cpu_us_per_req"] = result["session_cpu_s"] / out["requests"] * 1e6
    out["transcript_bytes"] = result.get("transcript_bytes")
    return out


def bench_echo_roundtrip(n: int, warmup: int) -> dict[str, Any]:
    cmd = [PY, str(HERE / "echo.py"), "--", *CHILD, "--n", str(n), "--warmup", str(warmup)]
    result = run_json(cmd, timeout=600)
    if result.get("exit_code") != 0 or not result.get("child"):
        raise BenchError(f"echo run failed: {result}")
    out = child_summary(result["child"], n + warmup)
    out["peak_rss_mb"] = result["peak_rss_kb"] / 1024
    out["cpu_us_per_req"] = result["cpu_s"] / out["requests"] * 1e6
    return out


def bench_airflow_roundtrip(airflow_py: str, n: int, warmup: int, tmp: Path) -> dict[str, Any]:
    child_out = tmp / f"airflow-child-{time.monotonic_ns()}.json"
    child = [*CHILD, "--n", str(n), "--warmup", str(warmup), "--out", str(child_out)]
    result = run_json([airflow_py, str(HERE / "airflow_sup.py"), "--", *child], timeout=900)
    if result.get("exit_code") != 0:
        raise BenchError(f"Airflow's supervise_task returned {result.get('exit_code')}: {result}")
    child_result = json.loads(child_out.read_text())
    out = child_summary(child_result, n + warmup)
    out["peak_rss_mb"] = result["peak_rss_kb"] / 1024
    out["peak_rss_after_import_mb"] = result["peak_rss_before_task_kb"] / 1024
    out["cpu_us_per_req"] = result["session_cpu_s"] / out["requests"] * 1e6
    out["import_s"] = result["import_s"]
    out["supervise_wall_s"] = result["wall_s"]
    return out


def bench_cli_roundtrip(n: int, tmp: Path) -> dict[str, Any]:
    """The same round trips through ``supervisor-sim run-task -q --no-transcript``."""
    child_out = tmp / f"cli-child-{time.monotonic_ns()}.json"
    runtime = shlex.join([*CHILD, "--n", str(n), "--warmup", "200", "--out", str(child_out)])
    fixtures = write_fixtures(tmp)
    cmd = [*CLI, "run-task", "bench", "bench_task", "--runtime", runtime, "--state", ":memory:"]
    cmd += ["--fixtures", str(fixtures), "--no-transcript", "-q", "--log-format", "json"]
    # From a scratch directory: no project config, nothing written into the checkout.
    # BENCH_SPAWN_WALL is taken when the command is launched: the child then reports the time
    # from `supervisor-sim run-task` starting (imports included) to its StartupDetails.
    env = {**os.environ, "BENCH_SPAWN_WALL": repr(time.time())}
    result = measured(cmd, timeout=600, cwd=tmp, env=env)
    if result["rc"] != 0:
        raise BenchError(f"run-task exited {result['rc']}: {result['stderr']}")
    out = child_summary(json.loads(child_out.read_text()), n + 200)
    out["launch_to_startup_ms"] = out.pop("spawn_to_startup_ms")
    out["peak_rss_mb"] = result["maxrss_kb"] / 1024
    out["wall_s"] = result["wall_s"]
    return out


def write_fixtures(tmp: Path) -> Path:
    path = tmp / "bench-fixtures.toml"
    if not path.exists():
        path.write_text('[variables]\nbench_var = "bench-value"\n')
    return path


def bench_many(children: int, n: int, tmp: Path, ownership: float | None) -> dict[str, Any]:
    cmd = [PY, str(HERE / "sim_bench.py"), "many", "--children", str(children), "--n", str(n)]
    cmd += ["--tmp", str(tmp), "--startup-timeout", "120"]
    if ownership is not None:
        cmd += ["--ownership-timeout", str(ownership)]
    result = run_json(cmd, timeout=1200)
    result["peak_rss_mb"] = result["peak_rss_kb"] / 1024
    return result


MANY_KEYS = (
    "succeeded",
    "wall_s",
    "total_req_per_s",
    "window_req_per_s",
    "median_child_req_per_s",
    "peak_rss_mb",
    "cpu_s",
    "cpu_pct",
)


def run_many(k: int, runs: int, n: int, tmp: Path, smoke: bool) -> dict[str, Any]:
    """K children, default settings; when some were lost (the ownership check timing out while
    many children start at once, docs/performance.md), again with ownership_check_timeout=60."""
    default = repeat(runs, bench_many, k, n, tmp, None)
    out: dict[str, Any] = {"default": default}
    if any(r["succeeded"] != k for r in default):
        if smoke:
            raise BenchError(f"{k} children: {[r['final_states'] for r in default]}")
        out["ownership_60"] = repeat(runs, bench_many, k, n, tmp, 60.0)
    return out


def bench_startup(tmp: Path, repeats: int) -> dict[str, Any]:
    """Wall times of whole commands, median of ``repeats``; each figure twice: as this machine
    runs Python (``cold``: with PYTHONDONTWRITEBYTECODE=1, as set here, every start compiles
    supervisor-sim's sources again) and with a warm bytecode cache (``PYTHONPYCACHEPREFIX`` in
    the scratch directory, as any normal install has)."""
    fixtures = write_fixtures(tmp)
    quick = shlex.join([*CHILD, "--n", "0", "--warmup", "0"])
    run_task = [*CLI, "run-task", "bench", "bench_task", "--runtime", quick]
    run_task += ["--state", ":memory:", "--fixtures", str(fixtures), "--no-transcript", "-q"]
    run_task += ["--log-format", "json"]
    help_cmd = [str(CONSOLE_SCRIPT), "--help"] if CONSOLE_SCRIPT.exists() else [*CLI, "--help"]
    commands = {
        "python": [PY, "-c", "pass"],
        "child_alone": [*CHILD, "--alone"],
        "help": help_cmd,
        "run_task": run_task,
    }
    cold_env = dict(os.environ)
    warm_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    warm_env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    envs = {"cold": cold_env, "warm": warm_env}
    samples: dict[str, list[float]] = {f"{k}_{e}": [] for e in envs for k in commands}

    def wall_ms(cmd: list[str], env: dict[str, str]) -> float:
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, env=env, check=False)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise BenchError(f"`{shlex.join(cmd)}` exited {proc.returncode}: {proc.stderr}")
        return wall * 1e3

    for cmd in commands.values():  # fill the warm bytecode cache
        wall_ms(cmd, warm_env)
    for _ in range(repeats):
        for env_name, env in envs.items():
            for name, cmd in commands.items():
                samples[f"{name}_{env_name}"].append(wall_ms(cmd, env))
    out: dict[str, Any] = {f"{k}_ms": median(v) for k, v in samples.items()}
    for env_name in envs:
        out[f"run_task_overhead_{env_name}_ms"] = (
            out[f"run_task_{env_name}_ms"] - out[f"child_alone_{env_name}_ms"]
        )
    out["samples_ms"] = samples
    out["help_cmd"] = shlex.join(help_cmd)
    return out


def bench_replay(sizes: list[int], tmp: Path) -> dict[str, Any]:
    """bench/replay_bench.py: record each size with run-task, replay it, both timed."""
    cmd = [PY, str(HERE / "replay_bench.py"), "--sizes", ",".join(map(str, sizes))]
    cmd += ["--tmp", str(tmp)]
    return run_json(cmd, timeout=600 + sum(sizes) / 50)


def bench_masking(smoke: bool) -> dict[str, Any]:
    """bench/masking.py: masking per log line with 10, 1,000 and 10,000 secrets; 10,000 added."""
    cmd = [PY, str(HERE / "masking.py"), "--json", "--repeats", "1" if smoke else "5"]
    return run_json(cmd, timeout=600)


def bench_spawn(smoke: bool) -> dict[str, Any]:
    """bench/spawn_cost.py: the supervisor's CPU per runtime start, setpriv against preexec."""
    cmd = [PY, str(HERE / "spawn_cost.py")]
    cmd += ["--launches", "10", "--ballast-mb", "20", "--rounds", "1"] if smoke else []
    return run_json(cmd, timeout=600)


def bench_transcript_memory(smoke: bool, tmp: Path) -> dict[str, Any]:
    """bench/transcript_memory.py: peak RSS of show, diff and replay against the file's size."""
    cmd = [PY, str(HERE / "transcript_memory.py"), "--n", "300" if smoke else "100000"]
    return run_json([*cmd, "--tmp", str(tmp)], timeout=300 if smoke else 3000)


def bench_heartbeat(smoke: bool, tmp: Path) -> dict[str, Any]:
    """bench/heartbeat_under_load.py: heartbeat lateness while MaskSecret requests arrive."""
    cmd = [PY, str(HERE / "heartbeat_under_load.py"), "--json", "--tmp", str(tmp)]
    cmd += ["--requests", "500" if smoke else "10000", "--linger", "1" if smoke else "2"]
    return run_json(cmd, timeout=600)


def bench_html(sizes: list[int], runs: int, tmp: Path) -> dict[str, Any]:
    """bench/html_scale.py: write, render and open a transcript of each size in Chromium."""
    cmd = [PY, str(HERE / "html_scale.py"), "--sizes", ",".join(map(str, sizes))]
    cmd += ["--runs", str(runs), "--tmp", str(tmp)]
    return run_json(cmd, timeout=300 + sum(sizes) / 200)


def bench_proxy(smoke: bool, airflow_py: str | None) -> dict[str, Any]:
    """bench/proxy_bench.py: what supervisor-sim proxy adds per round trip, and its CPU."""
    cmd = [PY, str(HERE / "proxy_bench.py"), "--json"] + (["--smoke"] if smoke else [])
    if airflow_py is not None:
        cmd += ["--airflow-python", airflow_py]
    return run_json(cmd, timeout=1800)


def bench_stubapi(n: int) -> dict[str, Any]:
    return run_json([PY, str(HERE / "sim_bench.py"), "stubapi", "--n", str(n)], timeout=600)


EXTRA = "many,stubapi,replay,masking,heartbeat,html,proxy,spawn,transcript_memory"


def go_child_unavailable() -> str | None:
    """Why the Go scale child cannot be built here (no Go toolchain), or None once it is
    built: a machine with only python3 runs the rest. A build that fails with a toolchain
    present is an error of the benchmark, reported as one by scale.py."""
    sys.path.insert(0, str(HERE))
    import scale as scale_mod  # bench/scale.py

    _, why = scale_mod.build_go_child()
    return why if why and why.startswith("no Go toolchain") else None


def bench_scale(
    counts: list[int], smoke: bool, args: argparse.Namespace, child: str = "go"
) -> dict[str, Any]:
    """bench/scale.py: N children in one run-dag process; Airflow measured at 10, extrapolated.
    ``child``: the compiled runtime (what the targets are judged on: the runtimes this tool is
    for are binaries) or the Python one (1,000 interpreters starting and exiting on 2 vCPUs
    starve the supervisor of CPU; reported beside it)."""
    cmd = [PY, str(HERE / "scale.py"), "--json", "--counts", ",".join(map(str, counts))]
    cmd += ["--child", child]
    if smoke:
        cmd += ["--hold", "1", "--rt", "2", "--airflow-count", "2"]
    airflow_py = find_airflow_python(args)[0]
    cmd += ["--airflow-python", airflow_py] if airflow_py else ["--no-airflow"]
    return run_json(cmd, timeout=3000)


def bench_script(script: str, smoke: bool, args: argparse.Namespace) -> dict[str, Any]:
    """bench/log_throughput.py or bench/xcom_big.py, every supervisor once, as JSON."""
    cmd = [PY, str(HERE / script), "--json"]
    if smoke:
        small = {"log_throughput.py": ["--lines", "2000"], "xcom_big.py": ["--mib", "1"]}
        cmd += small[script] + (["--runs", "1"] if script == "xcom_big.py" else [])
    elif script == "xcom_big.py":
        cmd += ["--runs", "3"]
    airflow_py = find_airflow_python(args)[0]
    cmd += ["--airflow-python", airflow_py] if airflow_py else ["--no-airflow"]
    return run_json(cmd, timeout=1200)


def median_by_kind(results: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Per supervisor kind, the run whose ``key`` is the median one (its other figures with it)."""
    out: dict[str, Any] = {}
    for kind in ("sim_console_json", "sim_transcript", "sim", "airflow"):
        rs = sorted((r[kind] for r in results if r.get(kind)), key=lambda r: r[key])
        if rs:
            out[kind] = {**rs[len(rs) // 2], "runs": len(rs)}
    return out


# --- orchestration ---------------------------------------------------------------------------


def find_airflow_python(args: argparse.Namespace) -> tuple[str | None, str]:
    if getattr(args, "_airflow", None) is None:
        args._airflow = _find_airflow_python(args)
    return args._airflow  # type: ignore[no-any-return]


def _find_airflow_python(args: argparse.Namespace) -> tuple[str | None, str]:
    if args.no_airflow:
        return None, "--no-airflow given"
    if args.airflow_python:
        return args.airflow_python, "--airflow-python"
    if AIRFLOW_VENV_SCRIPT.exists():
        proc = subprocess.run(
            ["sh", str(AIRFLOW_VENV_SCRIPT)], capture_output=True, text=True, check=False
        )
        path = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        if proc.returncode == 0 and path and Path(path).exists():
            return path, f"{AIRFLOW_VENV_SCRIPT.relative_to(ROOT)}"
        return None, f"tools/airflow_venv.sh failed (exit {proc.returncode}): {proc.stderr[-500:]}"
    if AIRFLOW_VENV_PYTHON.exists():
        return str(AIRFLOW_VENV_PYTHON), ".cache/airflow-venv"
    return None, "no tools/airflow_venv.sh and no .cache/airflow-venv: Airflow is not installed"


def repeat(runs: int, fn: Any, *a: Any) -> list[dict[str, Any]]:
    return [fn(*a) for _ in range(runs)]


def med(runs: list[dict[str, Any]], key: str) -> float | None:
    return median([r.get(key) for r in runs])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one run: it works")
    parser.add_argument("--quick", action="store_true", help="the same as --smoke")
    parser.add_argument("--all", action="store_true", help="also: " + EXTRA)
    parser.add_argument("--scale", help="children counts for scale (default 1,10,100,500,1000)")
    parser.add_argument(
        "--scale-child",
        default="go,python",
        help="scale's runtime child(ren): go (the targets), python, or both (default go,python)",
    )
    parser.add_argument("--runs", type=int, help="repetitions per measurement (default 3; 1)")
    parser.add_argument(
        "--roundtrip-runs",
        type=int,
        help="repetitions of the round trips, the noisiest figures (default 5, or --runs)",
    )
    parser.add_argument("--n", type=int, help="timed round trips per run (default 10000)")
    parser.add_argument(
        "--out",
        type=Path,
        help="where the report goes (default bench/results.json; with --smoke a temporary file, "
        "so a smoke run never overwrites the committed results)",
    )
    parser.add_argument(
        "--only",
        help="comma-separated: roundtrip,transcript,scale,logs,xcom,startup," + EXTRA,
    )
    parser.add_argument("--many", help="children counts (default 1,10,50,200)")
    parser.add_argument("--airflow-python", help="interpreter with apache-airflow-task-sdk")
    parser.add_argument("--no-airflow", action="store_true")
    args = parser.parse_args()
    # --quick is --smoke: decided before the default --out, so that neither ever overwrites
    # the committed results.
    smoke = args.smoke or args.quick
    args.smoke = smoke
    if args.out is None:
        args.out = (
            Path(tempfile.gettempdir()) / "supervisor-sim-bench-smoke.json"
            if smoke
            else HERE / "results.json"
        )
    runs = args.runs or (1 if smoke else 3)
    # The round trips swing most from run to run (waking a process, "Waking a process" in
    # docs/performance.md) and carry most verdicts: more rounds for their medians.
    roundtrip_runs = args.roundtrip_runs or args.runs or (1 if smoke else 5)
    n = args.n or (300 if smoke else 10000)
    warmup = 50 if smoke else 200
    many_counts = [int(x) for x in (args.many or ("1,3" if smoke else "1,10,50,200")).split(",")]
    many_n = 20 if smoke else 200
    replay_sizes = [300, 1000] if smoke else [10_000, 100_000]
    html_sizes = [300, 1000] if smoke else [10_000, 100_000]
    everything = "roundtrip,transcript,scale,logs,xcom,startup," + EXTRA
    core = "roundtrip,transcript,scale,logs,xcom,startup"
    selected = set((args.only or (everything if (smoke or args.all) else core)).split(","))
    scale_spec = args.scale or ("1,10" if smoke else "1,10,100,500,1000")
    scale_counts = [int(x) for x in scale_spec.split(",")]

    report: dict[str, Any] = {
        "machine": machine(),
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_before": load(),
        "config": {
            "smoke": smoke,
            "runs": runs,
            "roundtrip_runs": roundtrip_runs,
            "n": n,
            "warmup": warmup,
            "many": many_counts,
            "scale": scale_counts,
            "conditions": {
                "quiet": "nothing started by the harness",
                "loaded": "one Python busy loop pinned to the last CPU (sched_setaffinity), nice 0",
            },
            "replay": replay_sizes,
            "html": html_sizes,
        },
        "runs": {},
        "summary": {},
        "skipped": {},
        "errors": {},
    }
    summary = report["summary"]

    def attempt(name: str, fn: Any, *a: Any) -> Any:
        print(f"  running {name} ...", file=sys.stderr, flush=True)
        try:
            result = fn(*a)
        except (BenchError, subprocess.TimeoutExpired, OSError, ValueError, KeyError) as exc:
            report["errors"][name] = str(exc)
            print(f"  ERROR in {name}: {exc}", file=sys.stderr)
            return None
        if "(run " not in name:
            report["runs"][name] = result
        return result

    with tempfile.TemporaryDirectory(prefix="supsim-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if "roundtrip" in selected or "transcript" in selected:
            airflow_py, why = find_airflow_python(args)
            report["airflow_python"] = airflow_py
            kinds: list[tuple[str, Any]] = [
                ("roundtrip_sim", lambda: bench_sim_roundtrip(n, warmup, tmp, False)),
                ("roundtrip_sim_transcript", lambda: bench_sim_roundtrip(n, warmup, tmp, True)),
                ("roundtrip_echo", lambda: bench_echo_roundtrip(n, warmup)),
                ("roundtrip_cli", lambda: bench_cli_roundtrip(n, tmp)),
            ]
            if airflow_py is None:
                report["skipped"]["roundtrip_airflow"] = why
                print(f"  SKIPPED Airflow's supervisor: {why}", file=sys.stderr)
            else:
                kinds.insert(
                    2,
                    (
                        "roundtrip_airflow",
                        lambda: bench_airflow_roundtrip(airflow_py, n, warmup, tmp),
                    ),
                )
            # Every supervisor, then the same under load, `runs` times over: alternated.
            samples: dict[str, list[dict[str, Any]]] = {}
            for i in range(roundtrip_runs):
                for cond in CONDITIONS:
                    with Condition(cond):
                        for key, fn in kinds:
                            name = key + ("" if cond == "quiet" else "_loaded")
                            result = attempt(f"{name} (run {i + 1})", fn)
                            if result:
                                samples.setdefault(name, []).append(result)
            for name, rs in samples.items():
                report["runs"][name] = rs
                summary[name] = summarise(rs)
        if "scale" in selected:
            for key, child in (("scale", "go"), ("scale_python", "python")):
                if child not in args.scale_child.split(","):
                    continue
                why = go_child_unavailable() if child == "go" else None
                if why:
                    report["skipped"][key] = why
                    print(f"  skipped {key}: {why}", file=sys.stderr)
                    continue
                result = attempt(key, bench_scale, scale_counts, smoke, args, child)
                if result:
                    summary[key] = result
        for bench_name, script in (("logs", "log_throughput.py"), ("xcom", "xcom_big.py")):
            if bench_name not in selected:
                continue
            per: dict[str, list[dict[str, Any]]] = {}
            for i in range(runs):
                for cond in CONDITIONS:
                    with Condition(cond):
                        result = attempt(
                            f"{bench_name}_{cond} (run {i + 1})", bench_script, script, smoke, args
                        )
                    if result:
                        per.setdefault(cond, []).append(result)
            if per:
                summary[bench_name] = {
                    cond: median_by_kind(rs, "lines_per_s" if bench_name == "logs"
                                         else "round_trip_ms")
                    for cond, rs in per.items()
                }  # fmt: skip
        if "many" in selected:
            for k in many_counts:
                result = attempt(f"many_{k}", run_many, k, runs, many_n, tmp, smoke)
                if result:
                    for variant, variant_runs in result.items():
                        key = f"many_{k}" if variant == "default" else f"many_{k}_{variant}"
                        summary[key] = {m: med(variant_runs, m) for m in MANY_KEYS}
                        summary[key]["children"] = k
                        summary[key]["violations"] = variant_runs[0].get("violations")
        if "startup" in selected:
            result = attempt("startup", bench_startup, tmp, 2 if smoke else 7)
            if result:
                summary["startup"] = {k: v for k, v in result.items() if k.endswith("_ms")}
        if "stubapi" in selected:
            result = attempt("stubapi", repeat, runs, bench_stubapi, 300 if smoke else 5000)
            if result:
                summary["stubapi"] = {
                    layer: {
                        "req_per_s": median([r[layer]["req_per_s"] for r in result]),
                        "us_per_req": median([r[layer]["us_per_req"] for r in result]),
                        "cpu_us_per_req": median([r[layer]["cpu_us_per_req"] for r in result]),
                    }
                    for layer in ("serve", "transport", "httpx_client", "api_client", "dispatcher")
                }

        if "replay" in selected:
            result = attempt("replay", repeat, runs, bench_replay, replay_sizes, tmp)
            if result:
                summary["replay"] = {
                    str(size): {
                        key: median([r["sizes"][i][key] for r in result])
                        for key in ("run_s", "replay_s", "ratio", "replay_us_per_req")
                    }
                    for i, size in enumerate(replay_sizes)
                }
        if "masking" in selected:
            result = attempt("masking", bench_masking, smoke)
            if result:
                summary["masking"] = {k: v for k, v in result.items() if k != "impl"}
        if "spawn" in selected:
            result = attempt("spawn", bench_spawn, smoke)
            if result:
                summary["spawn"] = {k: result[k] for k in ("launches", "ballast_mb", "ways")}
        if "transcript_memory" in selected:
            result = attempt("transcript_memory", bench_transcript_memory, smoke, tmp)
            if result:
                summary["transcript_memory"] = result
        if "heartbeat" in selected:
            result = attempt("heartbeat", bench_heartbeat, smoke, tmp)
            if result:
                summary["heartbeat"] = result

        if "html" in selected:
            result = attempt("html", bench_html, html_sizes, runs, tmp)
            if result and "skipped" in result:
                report["skipped"]["html"] = result["skipped"]
                print(f"  SKIPPED the HTML view: {result['skipped']}", file=sys.stderr)
            elif result:
                keys = ("frames", "page_mb", "render_s", "load_ms", "records_ms", "search_ms")
                summary["html"] = {
                    str(size): {key: r[key] for key in keys}
                    for size, r in zip(html_sizes, result["sizes"], strict=True)
                }

        if "proxy" in selected:
            # Under Airflow's supervisor too, except at smoke sizes (the echo one is enough).
            proxy_airflow = None if smoke else find_airflow_python(args)[0]
            result = attempt("proxy", bench_proxy, smoke, proxy_airflow)
            if result:
                summary["proxy"] = {"added": result["added"], **result["summary"]}

    report["load_after"] = load()
    report["targets"] = evaluate(summary)
    text = render(report)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=repr) + "\n")
    print(f"\nresults written to {args.out}")
    return 1 if report["errors"] else 0


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
    out = {k: med(runs, k) for k in keys}
    out["runs"] = len(runs)
    out["req_per_s_all"] = [r.get("req_per_s") for r in runs]
    return out


def evaluate(s: dict[str, Any]) -> list[dict[str, Any]]:
    values: dict[str, float | None] = {}
    for cond in CONDITIONS:
        sfx = "" if cond == "quiet" else "_loaded"
        sim = s.get(f"roundtrip_sim{sfx}", {}).get("req_per_s")
        af = s.get(f"roundtrip_airflow{sfx}", {}).get("req_per_s")
        echo = s.get(f"roundtrip_echo{sfx}", {}).get("req_per_s")
        values[f"rt_vs_airflow_{cond}"] = sim / af if sim and af else None
        values[f"rt_vs_echo_{cond}"] = sim / echo if sim and echo else None
        on = s.get(f"roundtrip_sim_transcript{sfx}", {}).get("us_per_req")
        off = s.get(f"roundtrip_sim{sfx}", {}).get("us_per_req")
        values[f"transcript_{cond}"] = on / off if on and off else None
    k = s.get("scale", {}).get("sim", {}).get("1000")
    if k:
        # The memory figure counts only when every child succeeded; else it is a FAIL.
        values["scale_1000_rss"] = (
            k["supervisor_peak_rss_mb"] if k["succeeded"] == 1000 else float("inf")
        )
        values["scale_1000_hb_p99"] = k["hb_late_p99_pct"]
        values["scale_1000_wait_p99"] = k["wait_p99_ms"]
    values["startup"] = s.get("roundtrip_sim", {}).get("spawn_to_startup_ms")
    values["run_task_overhead"] = s.get("startup", {}).get("run_task_overhead_warm_ms")
    values["help"] = s.get("startup", {}).get("help_warm_ms")
    values["replay"] = s.get("replay", {}).get("100000", {}).get("ratio")
    values["html"] = s.get("html", {}).get("100000", {}).get("load_ms")
    verdicts = []
    for name, (label, op, threshold, unit) in TARGETS.items():
        value = values.get(name)
        if value is None:
            verdict = "N/A"
        elif op == ">=":
            verdict = "PASS" if value >= threshold else "FAIL"
        else:
            verdict = "PASS" if value <= threshold else "FAIL"
        verdicts.append(
            {
                "target": name,
                "label": label,
                "value": value,
                "op": op,
                "threshold": threshold,
                "unit": unit,
                "verdict": verdict,
            }
        )
    return verdicts


def fmt(value: Any, spec: str = ",.0f") -> str:
    if value is None:
        return "-"
    return format(value, spec)


LOG_KINDS = (
    ("sim_console_json", "supervisor-sim run-task, console json"),
    ("sim_transcript", "supervisor-sim run-task, transcript (-q)"),
    ("airflow", "Airflow 3.3.2 supervise_task"),
)
XCOM_KINDS = (
    ("sim", "supervisor-sim run-task, embedded stub"),
    ("sim_transcript", "supervisor-sim run-task + transcript"),
    ("airflow", "Airflow 3.3.2 supervise_task (pass-through mock)"),
)


def _scale_text(scale: dict[str, Any]) -> str:
    sys.path.insert(0, str(HERE))
    import scale as scale_mod  # bench/scale.py

    return scale_mod.render(scale)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _summary_text(report: dict[str, Any]) -> str:
    """One compact table: figure, goal, Airflow, echo, ours quiet, ours loaded."""
    s = report["summary"]

    def rt(kind: str, cond: str) -> float | None:
        return s.get(f"roundtrip_{kind}" + ("" if cond == "quiet" else "_loaded"), {}).get(
            "req_per_s"
        )

    def us(kind: str, cond: str) -> float | None:
        return s.get(f"roundtrip_{kind}" + ("" if cond == "quiet" else "_loaded"), {}).get(
            "us_per_req"
        )

    rows: list[tuple[str, str, str, str, str, str]] = []
    q, ld = "quiet", "loaded"
    rows.append(
        ("round trips req/s", "-", fmt(rt("airflow", q)), fmt(rt("echo", q)),
         fmt(rt("sim", q)), fmt(rt("sim", ld)))
    )  # fmt: skip
    rows.append(
        ("  / echo", ">= 0.50", "-", "1.00", fmt(_ratio(rt("sim", q), rt("echo", q)), ".2f"),
         fmt(_ratio(rt("sim", ld), rt("echo", ld)), ".2f"))
    )  # fmt: skip
    rows.append(
        ("  / Airflow", ">= 3.0", "1.00", "-", fmt(_ratio(rt("sim", q), rt("airflow", q)), ".2f"),
         fmt(_ratio(rt("sim", ld), rt("airflow", ld)), ".2f"))
    )  # fmt: skip
    rows.append(
        ("transcript on/off", "<= 1.10", "-", "-",
         fmt(_ratio(us("sim_transcript", q), us("sim", q)), ".2f"),
         fmt(_ratio(us("sim_transcript", ld), us("sim", ld)), ".2f"))
    )  # fmt: skip
    scale = s.get("scale") or {}
    k = (scale.get("sim") or {}).get("1000")
    af = scale.get("airflow") or {}
    if k:
        af_rss = (af.get("extrapolated") or {}).get("1000", {}).get("peak_rss_mb")
        rows.append(
            ("1,000 children RSS MB", "<= 200", fmt(af_rss) + "*", "-",
             fmt(k["supervisor_peak_rss_mb"], ".0f"), "-")
        )  # fmt: skip
        rows.append(
            ("1,000: heartbeat late p99 %", "<= 10", "-", "-",
             fmt(k["hb_late_p99_pct"], ".1f"), "-")
        )  # fmt: skip
        rows.append(
            ("1,000: request wait p99 ms", "<= 50", "-", "-", fmt(k["wait_p99_ms"], ".1f"), "-")
        )  # fmt: skip
    kp = ((s.get("scale_python") or {}).get("sim") or {}).get("1000")
    if kp:
        rows.append(
            ("  Python child: hb p99 %", "-", "-", "-", fmt(kp["hb_late_p99_pct"], ".1f"), "-")
        )  # fmt: skip
        rows.append(
            ("  Python child: wait p99 ms", "-", "-", "-", fmt(kp["wait_p99_ms"], ".1f"), "-")
        )  # fmt: skip
    logs = s.get("logs") or {}
    for kind, label in (("sim_console_json", "log lines/s, console json"),
                        ("sim_transcript", "log lines/s, transcript")):  # fmt: skip
        if logs:
            rows.append(
                (label, "-", fmt(logs.get(q, {}).get("airflow", {}).get("lines_per_s")), "-",
                 fmt(logs.get(q, {}).get(kind, {}).get("lines_per_s")),
                 fmt(logs.get(ld, {}).get(kind, {}).get("lines_per_s")))
            )  # fmt: skip
    xcom = s.get("xcom") or {}
    for kind, label in (("sim", "16 MiB XCom set+get ms"),
                        ("sim_transcript", "  with a transcript")):  # fmt: skip
        if xcom:
            rows.append(
                (label, "-", fmt(xcom.get(q, {}).get("airflow", {}).get("round_trip_ms"), ".0f"),
                 "-", fmt(xcom.get(q, {}).get(kind, {}).get("round_trip_ms"), ".0f"),
                 fmt(xcom.get(ld, {}).get(kind, {}).get("round_trip_ms"), ".0f"))
            )  # fmt: skip
    head = ("figure", "goal", "Airflow", "echo", "ours quiet", "ours loaded")
    widths = (30, 9, 10, 9, 11, 12)
    count = af.get("measured_count", "-")
    out = [f"Summary (from this run; * Airflow: {count} supervisors measured, x N extrapolated)"]
    for row in (head, *rows):
        out.append("".join(f"{c:<{w}}" if i == 0 else f"{c:>{w}}"
                           for i, (c, w) in enumerate(zip(row, widths, strict=True))))  # fmt: skip
    return "\n".join(out)


def render(report: dict[str, Any]) -> str:
    s = report["summary"]
    m = report["machine"]
    lines = [
        "",
        f"machine: {m['nproc']} x {m['cpu_model']}, {m['mem_mb']} MB, Python {m['python']}",
        f"load average before/after: {report['load_before'][0]:.2f} / "
        f"{report['load_after'][0]:.2f}   runs per figure: {report['config']['runs']} (medians)",
        "",
        "Round trips (lock-step GetVariable, measured by the child; alternated: every "
        "supervisor quiet, then loaded, per run)",
        f"{'supervisor':<34}{'cond':>7}{'req/s':>9}{'us/req':>8}{'p50 us':>8}{'p99 us':>8}"
        f"{'CPU us/req':>11}{'peak RSS MB':>12}",
    ]
    rows = [
        ("supervisor-sim (in-process, -q)", "roundtrip_sim"),
        ("supervisor-sim + transcript", "roundtrip_sim_transcript"),
        ("supervisor-sim run-task -q (CLI)", "roundtrip_cli"),
        ("Airflow 3.3.2 supervise_task", "roundtrip_airflow"),
        ("raw loopback echo (selectors)", "roundtrip_echo"),
    ]
    for label, base in rows:
        for cond in CONDITIONS:
            key = base + ("" if cond == "quiet" else "_loaded")
            r = s.get(key)
            if r is None:
                why = report["skipped"].get(base) or "not run"
                lines.append(f"{label:<34}{cond:>7}  ({why.splitlines()[0][:80]})")
                continue
            lines.append(
                f"{label:<34}{cond:>7}{fmt(r.get('req_per_s')):>9}{fmt(r.get('us_per_req')):>8}"
                f"{fmt(r.get('p50_us')):>8}{fmt(r.get('p99_us')):>8}"
                f"{fmt(r.get('cpu_us_per_req')):>11}{fmt(r.get('peak_rss_mb'), '.1f'):>12}"
            )
    for key in ("scale", "scale_python"):
        if s.get(key):
            lines += ["", _scale_text(s[key])]
    logs = s.get("logs")
    if logs:
        lines += [
            "",
            "Log ingestion (bench/log_throughput.py: JSON lines pushed through --logs; medians)",
            f"{'supervisor':<44}{'cond':>7}{'lines/s':>10}{'MB/s':>7}{'lines out':>11}",
        ]
        for kind, label in LOG_KINDS:
            for cond, per in logs.items():
                r = per.get(kind)
                if r:
                    lines.append(
                        f"{label:<44}{cond:>7}{fmt(r['lines_per_s']):>10}"
                        f"{fmt(r['mb_per_s'], '.1f'):>7}{r['lines_out']:>11,}"
                    )
    xcom = s.get("xcom")
    if xcom:
        lines += [
            "",
            "16 MiB XCom (bench/xcom_big.py: SetXCom then GetXCom, timed by the runtime; medians)",
            f"{'supervisor':<50}{'cond':>7}{'set ms':>8}{'get ms':>8}{'set+get':>9}",
        ]
        for kind, label in XCOM_KINDS:
            for cond, per in xcom.items():
                r = per.get(kind)
                if r:
                    lines.append(
                        f"{label:<50}{cond:>7}{fmt(r['set_ms_median'], '.1f'):>8}"
                        f"{fmt(r['get_ms_median'], '.1f'):>8}{fmt(r['round_trip_ms'], '.1f'):>9}"
                    )
    counts = [k for k in report["config"]["many"] if f"many_{k}" in s]
    af_rss = s.get("roundtrip_airflow", {}).get("peak_rss_mb")
    lines += (
        []
        if not counts
        else [
            "",
            "Many children under one supervisor-sim process (each child: lock-step round trips)",
            f"{'children':>8}{'wall s':>8}{'total req/s':>12}{'steady req/s':>13}"
            f"{'peak RSS MB':>12}{'CPU s':>7}{'CPU %':>7}{'Airflow N x RSS MB':>20}",
        ]
    )
    for k in counts:
        for key in (f"many_{k}", f"many_{k}_ownership_60"):
            r = s.get(key)
            if r is None:
                if key == f"many_{k}":
                    err = report["errors"].get(key, "not run")
                    lines.append(f"{k:>8}  ({err[:80]})")
                continue
            model = f"{k * af_rss:,.0f}" if af_rss else "-"
            note = ""
            if r["succeeded"] != k:
                note = f"  only {r['succeeded']:.0f}/{k} succeeded: {r.get('violations')}"
            if key.endswith("ownership_60"):
                note += "  (ownership_check_timeout=60)"
            lines.append(
                f"{k:>8}{fmt(r['wall_s'], '.2f'):>8}{fmt(r['total_req_per_s']):>12}"
                f"{fmt(r['window_req_per_s']):>13}{fmt(r['peak_rss_mb'], '.1f'):>12}"
                f"{fmt(r['cpu_s'], '.2f'):>7}{fmt(r['cpu_pct'], '.0f'):>7}{model:>20}{note}"
            )
    st = s.get("startup", {})
    lines += [
        "",
        "Start-up (ms)",
        f"  spawn -> StartupDetails, supervisor-sim: "
        f"{fmt(s.get('roundtrip_sim', {}).get('spawn_to_startup_ms'), '.1f')}"
        f"  (child's main -> StartupDetails "
        f"{fmt(s.get('roundtrip_sim', {}).get('main_to_startup_ms'), '.1f')})",
        f"  spawn -> StartupDetails, Airflow:        "
        f"{fmt(s.get('roundtrip_airflow', {}).get('spawn_to_startup_ms'), '.1f')}",
        f"  spawn -> StartupDetails, echo:           "
        f"{fmt(s.get('roundtrip_echo', {}).get('spawn_to_startup_ms'), '.1f')}",
        f"  launch of run-task -> StartupDetails (CLI, imports included): "
        f"{fmt(s.get('roundtrip_cli', {}).get('launch_to_startup_ms'), '.1f')}",
        f"  {'(wall ms; bytecode cache)':<34}{'warm':>8}{'cold':>8}",
    ]
    for label, key in (
        ("run-task, child exits at once", "run_task"),
        ("the child alone", "child_alone"),
        ("run-task overhead", "run_task_overhead"),
        ("supervisor-sim --help", "help"),
        ("python -c pass", "python"),
    ):
        if not st:
            lines.pop()  # the header: no start-up figures in this run
            break
        lines.append(
            f"  {label:<34}{fmt(st.get(f'{key}_warm_ms'), '.0f'):>8}"
            f"{fmt(st.get(f'{key}_cold_ms'), '.0f'):>8}"
        )
    api = s.get("stubapi")
    if api:
        lines += ["", "Stub Execution API alone (GET variables/KEY, in-process)"]
        names = {
            "serve": "StubTransport.serve (lean, no httpx)",
            "transport": "StubTransport.handle_async_request",
            "httpx_client": "httpx.AsyncClient.get -> stub",
            "api_client": "ExecutionAPIClient.request -> stub",
            "dispatcher": "Dispatcher GetVariable -> stub",
        }
        for layer, label in names.items():
            r = api.get(layer)
            if r is None:
                continue
            lines.append(
                f"  {label:<38}{fmt(r['req_per_s']):>9} req/s{fmt(r['us_per_req'], '.0f'):>6} us"
                f"  ({fmt(r['cpu_us_per_req'], '.0f')} us CPU)"
            )
    replay = s.get("replay")
    if replay:
        lines += [
            "",
            "Replay (run-task records N lock-step round trips; replay answers them from the file)",
            f"{'requests':>10}{'run s':>9}{'replay s':>10}{'ratio':>8}{'us/req':>9}",
        ]
        for size, r in replay.items():
            lines.append(
                f"{int(size):>10,}{fmt(r['run_s'], '.2f'):>9}{fmt(r['replay_s'], '.2f'):>10}"
                f"{fmt(r['ratio'], '.2f'):>8}{fmt(r['replay_us_per_req'], '.0f'):>9}"
            )
    masking = s.get("masking")
    if masking:
        lines += [
            "",
            "Secret masking (bench/masking.py; one structlog-style record per line)",
            f"{'secrets':>10}{'redact us':>11}{'with a secret us':>18}{'leaves_plain us':>17}",
        ]
        for count, r in masking["per_line"].items():
            lines.append(
                f"{int(count):>10,}{fmt(r['redact_us'], '.1f'):>11}"
                f"{fmt(r['redact_with_secret_us'], '.1f'):>18}"
                f"{fmt(r['leaves_plain_us'], '.1f'):>17}"
            )
        alone = fmt(masking["add_s"] * 1e3, ".0f")
        interleaved = fmt(masking["add_with_redact_s"] * 1e3, ".0f")
        lines.append(
            f"  {masking['adds']:,} secrets added one by one: {alone} ms;"
            f" with a line redacted after each: {interleaved} ms"
        )
    spawn = s.get("spawn")
    if spawn:
        lines += [
            "",
            f"Starting a runtime (bench/spawn_cost.py; {spawn['launches']} launches from a"
            f" {spawn['ballast_mb']} MB process)",
            f"{'way':>10}{'CPU ms':>9}{'wall ms':>10}",
        ]
        for way, r in spawn["ways"].items():
            lines.append(
                f"{way:>10}{fmt(r['cpu_ms_per_launch'], '.2f'):>9}"
                f"{fmt(r['wall_ms_per_launch'], '.1f'):>10}"
            )
    memory = s.get("transcript_memory")
    if memory:
        lines += [
            "",
            f"Reading a transcript (bench/transcript_memory.py; {memory['requests']:,} requests,"
            f" {fmt(memory['transcript_mb'], '.1f')} MB)",
            f"{'command':>10}{'peak MB':>9}{'x file':>8}{'wall s':>8}{'CPU s':>7}",
        ]
        for name, r in memory["commands"].items():
            lines.append(
                f"{name:>10}{fmt(r['peak_rss_mb'], '.0f'):>9}{fmt(r['x_file'], '.1f'):>8}"
                f"{fmt(r['wall_s'], '.2f'):>8}{fmt(r['cpu_s'], '.2f'):>7}"
            )
    heartbeat = s.get("heartbeat")
    if heartbeat:
        lines += [
            "",
            "Heartbeats under a MaskSecret flood (bench/heartbeat_under_load.py)",
            f"  {heartbeat['served']:,} requests served in {fmt(heartbeat['serve_s'], '.2f')} s;"
            f" heartbeat every {heartbeat['interval_s']:g} s, latest"
            f" {fmt(heartbeat['late_max_ms'], '.1f')} ms late"
            f" ({fmt(heartbeat['flood_late_max_ms'], '.1f')} ms during the flood)",
        ]
    html = s.get("html")
    if html:
        lines += [
            "",
            "HTML view (show --html of N frames, opened in headless Chromium; medians)",
            f"{'frames':>10}{'page MB':>9}{'render s':>10}{'first rows ms':>15}"
            f"{'all records ms':>16}{'search ms':>11}",
        ]
        for r in html.values():
            lines.append(
                f"{r['frames']:>10,}{fmt(r['page_mb'], '.1f'):>9}{fmt(r['render_s'], '.2f'):>10}"
                f"{fmt(r['load_ms'], '.0f'):>15}{fmt(r['records_ms'], '.0f'):>16}"
                f"{fmt(r['search_ms'], '.0f'):>11}"
            )
    proxy = s.get("proxy")
    if proxy:
        lines += [
            "",
            "supervisor-sim proxy (bench/proxy_bench.py; the same child, medians)",
            f"{'':<36}{'us/rt':>8}{'p50 us':>8}{'added us/rt':>13}{'added p50':>11}"
            f"{'proxy CPU us/req':>18}",
        ]
        for key, label in (
            ("direct", "echo supervisor, child alone"),
            ("forward", "  + proxy --no-transcript"),
            ("record", "  + proxy, transcript (redacted)"),
            ("trio", "  + that forwarding in trio"),
            ("airflow_direct", "Airflow's supervisor, child alone"),
            ("airflow_record", "  + proxy, transcript (redacted)"),
        ):
            r = proxy.get(key)
            if not r:
                continue
            extra = proxy["added"].get(key, {})
            lines.append(
                f"{label:<36}{fmt(r.get('us_per_req'), '.1f'):>8}{fmt(r.get('p50_us'), '.1f'):>8}"
                f"{fmt(extra.get('us_per_rt'), '.1f'):>13}{fmt(extra.get('p50_us'), '.1f'):>11}"
                f"{fmt(r.get('cpu_us_per_req'), '.1f'):>18}"
            )
    lines += ["", _summary_text(report)]
    lines += ["", "Targets"]
    for t in report["targets"]:
        value = "-" if t["value"] is None else f"{t['value']:.2f}{t['unit']}"
        lines.append(
            f"  {t['verdict']:<5} {t['label']:<46} {value:>10}  (target {t['op']} "
            f"{t['threshold']:g}{t['unit']})"
        )
    for name, why in report["skipped"].items():
        lines.append(f"  skipped {name}: {why}")
    for name, err in report["errors"].items():
        lines.append(f"  ERROR {name}: {err.splitlines()[0][:160]}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

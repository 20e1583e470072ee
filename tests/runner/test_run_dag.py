"""run-dag: dependency order, parallelism, trigger rules, retries, mapping, clean shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
from _cli import CONFIG, ROOT, cli

REFERENCE = ROOT / "runtimes" / "reference" / "runtime.py"

FAN = textwrap.dedent("""
    import time
    def start(ctx): return [1, 2, 3]
    def a(ctx): time.sleep(0.3); return 1
    def b(ctx): time.sleep(0.3); return 2
    def c(ctx): time.sleep(0.3); return 3
    def join(ctx): return sum(ctx.xcom_pull(t) for t in ("a", "b", "c"))
    def double(ctx): return 2 * ctx.ti["map_index"]
    def boom(ctx): raise RuntimeError("boom")
    def after_boom(ctx): return 1
    def skipper(ctx): raise ctx.SkipTask("nothing to do")
    def after_skip(ctx): return 1
    def flaky(ctx):
        if ctx.ti["try_number"] < 2:
            raise RuntimeError("first try fails")
        return "ok"
    DAGS = {"fan": {"start": start, "a": a, "b": b, "c": c, "join": join, "double": double},
            "bad": {"boom": boom, "after_boom": after_boom, "skipper": skipper,
                    "after_skip": after_skip, "flaky": flaky}}
    DEPENDENCIES = {"fan": {"a": ["start"], "b": ["start"], "c": ["start"],
                            "join": ["a", "b", "c"], "double": ["start"]},
                    "bad": {"after_boom": ["boom"], "after_skip": ["skipper"]}}
    MAPPED = {"fan": {"double": "start"}}
    TASK_SETTINGS = {"bad": {"flaky": {"retries": 1}}}
""")


def _bundle(tmp: Path, text: str = FAN) -> str:
    path = tmp / "bundle.py"
    path.write_text(text)
    return f"{sys.executable} {REFERENCE} --bundle {path}"


def _run_dag(tmp: Path, dag: str, *args: str) -> tuple[int, dict, str]:
    proc = cli(
        "run-dag",
        dag,
        "--runtime",
        _bundle(tmp),
        "--state",
        str(tmp / "s.sqlite"),
        "--runs-dir",
        str(tmp / "runs"),
        "--json",
        "-q",
        *args,
        cwd=tmp,
        timeout=120,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, proc.stderr[-3000:]
    return proc.returncode, json.loads(lines[-1]), proc.stderr


def test_fan_out_fan_in_runs_in_parallel_and_passes_xcoms(tmp_path: Path):
    """The fan DAG succeeds with four at once; join sums its upstream XComs; double maps 3x."""
    status, result, _ = _run_dag(tmp_path, "fan", "--parallelism", "4", "--run-id", "r")
    assert status == 0
    assert {t: v["state"] for t, v in result["tasks"].items()} == dict.fromkeys(
        ("start", "a", "b", "c", "join", "double"), "success"
    )
    assert result["peak_running"] >= 3
    assert result["tasks"]["double"]["map_indexes"] == [0, 1, 2]
    from supervisor_sim.api import StubStore

    store = StubStore(tmp_path / "s.sqlite")
    assert store.get_xcom("fan", "r", "join", "return_value") == 6
    assert [store.get_xcom("fan", "r", "double", "return_value", i) for i in range(3)] == [0, 2, 4]
    assert all(Path(p).exists() for v in result["tasks"].values() for p in v["transcripts"])


def test_failure_marks_downstream_upstream_failed_and_skips_propagate(tmp_path: Path):
    """boom fails so after_boom is upstream_failed; skipper skips after_skip; exit 1."""
    status, result, _ = _run_dag(tmp_path, "bad", "--retry-delay", "0.05")
    assert status == 1
    states = {t: v["state"] for t, v in result["tasks"].items()}
    assert states["boom"] == "failed"
    assert states["after_boom"] == "upstream_failed"
    assert states["skipper"] == "skipped"
    assert states["after_skip"] == "skipped"
    assert states["flaky"] == "success"
    assert result["tasks"]["flaky"]["tries"] == 2


def test_unknown_dag_names_the_dags_the_runtime_has(tmp_path: Path):
    """A DAG id the bundle lacks is a usage error listing the DAGs it has."""
    proc = cli(
        "run-dag",
        "nope",
        "--runtime",
        _bundle(tmp_path),
        "--state",
        str(tmp_path / "s.sqlite"),
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "bad, fan" in proc.stderr


async def test_fifty_tasks_leave_no_descriptor_or_process_behind(tmp_path: Path):
    """A 50-task DAG at parallelism 8 completes, and fds and children return to their counts."""
    from supervisor_sim.cli._run_dag import _run_dag as run_dag
    from supervisor_sim.runner import load_project_config
    from supervisor_sim.supervision import SupervisorConfig

    tasks = "\n".join(f"def t{i}(ctx): return {i}" for i in range(50))
    deps = {f"t{i}": [f"t{i // 2}"] for i in range(1, 50)}
    text = (
        f"{tasks}\n"
        "DAGS = {'big': {f't{i}': globals()[f't{i}'] for i in range(50)}}\n"
        f"DEPENDENCIES = {{'big': {deps!r}}}\n"
    )
    bundle = tmp_path / "big.py"
    bundle.write_text(text)
    runtime = [sys.executable, str(REFERENCE), "--bundle", str(bundle)]
    project = load_project_config(CONFIG)
    me = psutil.Process()
    fds_before = set(os.listdir("/proc/self/fd"))
    children_before = {p.pid for p in me.children(recursive=True)}
    opts = {
        "state_path": str(tmp_path / "s.sqlite"),
        "fixtures": None,
        "run_id": "big",
        "runs_dir": tmp_path / "runs",
        "quiet": 1,
        "log_format": "json",
        "no_transcript": False,
        "as_json": True,
        "parallelism": 8,
        "retry_delay": None,
    }
    status = await run_dag("big", runtime, project, SupervisorConfig(), opts)
    assert status == 0
    # Compared as sets: other tests' leftovers may go away meanwhile, but nothing may be new.
    assert {p.pid for p in me.children(recursive=True)} - children_before == set()
    assert set(os.listdir("/proc/self/fd")) - fds_before == set()


def test_ctrl_c_stops_every_child_and_reports_what_ran(tmp_path: Path):
    """SIGINT during run-dag reaches running tasks, starts nothing new, exits 130."""
    slow = FAN.replace("time.sleep(0.3)", "time.sleep(30)")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "supervisor_sim",
            "--config",
            str(CONFIG),
            "run-dag",
            "fan",
            "--runtime",
            _bundle(tmp_path, slow),
            "--state",
            str(tmp_path / "s.sqlite"),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--json",
            "-q",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            runs = list((tmp_path / "runs").glob("fan.a.*.jsonl"))
            if runs and "StartupDetails" in runs[0].read_text():
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["interrupted"] is True
    assert result["tasks"]["start"]["state"] == "success"
    assert result["tasks"]["join"]["state"] in ("not_run", "none", "upstream_failed")
    assert not [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(tmp_path / "bundle.py") in " ".join(p.info["cmdline"] or [])
    ]


def test_env_is_untouched():
    """The test module leaves the environment as it found it."""
    assert "SCRIPTED_STEPS" not in os.environ

"""The benchmarks keep working: ``bench/run.py --quick`` runs every one of them at tiny sizes.

Only that each benchmark produced its numbers is checked, never how fast anything was (the
figures live in docs/performance.md). Airflow's own supervisor is part of the run whenever it
can be: through ``tools/airflow_venv.sh`` (which builds ``.cache/airflow-venv`` on first use) or
an existing ``.cache/airflow-venv``. It may be skipped only when neither exists, and the reason
is printed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from numbers import Number
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "bench" / "run.py"
AIRFLOW_SCRIPT = ROOT / "tools" / "airflow_venv.sh"
AIRFLOW_VENV = ROOT / ".cache" / "airflow-venv" / "bin" / "python"

pytestmark = pytest.mark.slow


def _positive(value: Any) -> bool:
    return isinstance(value, Number) and not isinstance(value, bool) and value > 0


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    proc = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
        check=False,
    )
    print(proc.stdout[-6000:])
    assert out.exists(), f"bench/run.py --quick wrote no results:\n{proc.stderr[-4000:]}"
    report = json.loads(out.read_text())
    assert proc.returncode == 0, (
        f"a benchmark failed: {report.get('errors')}\n{proc.stderr[-4000:]}"
    )
    return report


ROUND_TRIPS = ["roundtrip_sim", "roundtrip_sim_transcript", "roundtrip_cli", "roundtrip_echo"]


@pytest.mark.parametrize("condition", ["", "_loaded"])
@pytest.mark.parametrize("name", ROUND_TRIPS)
def test_round_trip_benchmarks_measure(smoke: dict[str, Any], name: str, condition: str) -> None:
    """Each supervisor's round trips are measured quiet and with one CPU kept busy."""
    figures = smoke["summary"][name + condition]
    for key in ("req_per_s", "us_per_req", "p50_us", "p99_us", "peak_rss_mb"):
        assert _positive(figures.get(key)), (name, key, figures)
    startup = "launch_to_startup_ms" if name == "roundtrip_cli" else "spawn_to_startup_ms"
    assert _positive(figures.get(startup)), figures


def test_airflow_supervisor_benchmark_runs_when_airflow_is_available(
    smoke: dict[str, Any],
) -> None:
    skipped = smoke["skipped"].get("roundtrip_airflow")
    if skipped:
        # Allowed only when there is no way to get Airflow on this machine.
        assert not AIRFLOW_SCRIPT.exists() and not AIRFLOW_VENV.exists(), skipped
        print(f"Airflow's supervisor benchmark skipped: {skipped}")
        pytest.skip(f"Airflow's supervisor benchmark skipped: {skipped}")
    for condition in ("", "_loaded"):
        figures = smoke["summary"]["roundtrip_airflow" + condition]
        for key in ("req_per_s", "us_per_req", "peak_rss_mb", "spawn_to_startup_ms"):
            assert _positive(figures.get(key)), (condition, key, figures)


@pytest.mark.parametrize(("key", "child"), [("scale", "go"), ("scale_python", "python")])
def test_scale_benchmark_measures(smoke: dict[str, Any], key: str, child: str) -> None:
    """bench/scale.py runs N children in one run-dag process and reports memory, CPU,
    heartbeat lateness and request wait for each N, with Airflow's per-process cost, with the
    compiled Go child and the Python one; the Go one is skipped only without a Go toolchain."""
    skipped = smoke["skipped"].get(key)
    if skipped:
        assert child == "go" and shutil.which("go") is None, skipped
        pytest.skip(skipped)
    scale = smoke["summary"][key]
    assert scale["child"] == child, scale
    name = Path(scale["child_command"][-1 if child == "python" else 0]).name
    assert name == ("bench-scale-child" if child == "go" else "_load_child.py"), scale
    for n, figures in scale["sim"].items():
        assert figures["succeeded"] == int(n) == figures["children_reporting"], figures
        for key in ("wall_s", "supervisor_peak_rss_mb", "supervisor_cpu_s", "cpu_us_per_request",
                    "child_peak_rss_mb_median", "wait_p99_ms"):  # fmt: skip
            assert _positive(figures.get(key)), (n, key, figures)
        assert figures["heartbeats_timed"] > 0, figures
        assert isinstance(figures["hb_late_p99_pct"], Number), figures
    if not smoke["skipped"].get("roundtrip_airflow"):
        airflow = scale["airflow"]
        assert airflow["exit_codes"] == [0] * airflow["measured_count"], airflow
        assert _positive(airflow["per_supervisor_peak_rss_mb"]), airflow
        assert set(airflow["extrapolated"]) == set(scale["sim"]), airflow


def test_startup_benchmark_measures(smoke: dict[str, Any]) -> None:
    figures = smoke["summary"]["startup"]
    for cache in ("warm", "cold"):
        for key in ("run_task", "child_alone", "help", "python"):
            assert _positive(figures.get(f"{key}_{cache}_ms")), (key, cache, figures)
        assert isinstance(figures.get(f"run_task_overhead_{cache}_ms"), Number)


def test_stub_api_benchmark_measures(smoke: dict[str, Any]) -> None:
    layers = smoke["summary"]["stubapi"]
    for layer in ("transport", "httpx_client", "api_client", "dispatcher"):
        assert _positive(layers[layer]["req_per_s"]), (layer, layers)


def test_replay_benchmark_measures(smoke: dict[str, Any]) -> None:
    runs = smoke["runs"]["replay"]
    assert runs and all(len(r["sizes"]) == 2 for r in runs)
    for size, figures in smoke["summary"]["replay"].items():
        for key in ("run_s", "replay_s", "ratio", "replay_us_per_req"):
            assert _positive(figures.get(key)), (size, key, figures)


def test_heartbeat_under_load_benchmark_measures(smoke: dict[str, Any]) -> None:
    """bench/heartbeat_under_load.py serves every MaskSecret request and times the heartbeats."""
    figures = smoke["summary"]["heartbeat"]
    assert figures["served"] == figures["requests"] > 0
    assert figures["heartbeats"] >= 2
    assert isinstance(figures["late_max_ms"], Number)


def test_html_view_benchmark_measures(smoke: dict[str, Any]) -> None:
    """bench/html_scale.py renders each transcript and times its page in headless Chromium."""
    assert not smoke["skipped"].get("html"), smoke["skipped"]["html"]
    for size, figures in smoke["summary"]["html"].items():
        for key in ("frames", "page_mb", "render_s", "load_ms", "records_ms", "search_ms"):
            assert _positive(figures.get(key)), (size, key, figures)


def test_proxy_benchmark_measures(smoke: dict[str, Any]) -> None:
    """bench/proxy_bench.py times the child alone and behind the proxy (forwarding only, and
    recording), and the proxy's added microseconds and CPU per request."""
    figures = smoke["summary"]["proxy"]
    for variant in ("direct", "forward", "record"):
        assert _positive(figures[variant]["us_per_req"]), (variant, figures)
    for variant in ("forward", "record"):
        assert isinstance(figures["added"][variant]["us_per_rt"], Number), figures["added"]
        assert isinstance(figures[variant]["cpu_us_per_req"], Number), figures[variant]
    assert _positive(figures["record"]["transcript_bytes_per_req"]), figures["record"]


def test_spawn_cost_benchmark_measures(smoke: dict[str, Any]) -> None:
    """The supervisor's CPU and wall time per runtime start are measured for every way this
    machine can start one (setpriv where it is installed, the preexec hook always)."""
    ways = smoke["summary"]["spawn"]["ways"]
    assert "preexec" in ways
    for figures in ways.values():
        assert _positive(figures["cpu_ms_per_launch"]) and _positive(figures["wall_ms_per_launch"])


def test_transcript_memory_benchmark_measures(smoke: dict[str, Any]) -> None:
    """bench/transcript_memory.py takes the peak RSS, wall and CPU time of show, diff and replay
    of a recorded transcript, and each peak against the size of what it read."""
    figures = smoke["summary"]["transcript_memory"]
    assert _positive(figures["transcript_mb"]), figures
    assert set(figures["commands"]) == {"show", "diff", "replay"}
    for name, command in figures["commands"].items():
        for key in ("peak_rss_mb", "wall_s", "cpu_s", "x_file"):
            assert _positive(command[key]), (name, key, command)


def test_every_target_gets_a_verdict(smoke: dict[str, Any]) -> None:
    verdicts = {t["target"]: t["verdict"] for t in smoke["targets"]}
    assert set(verdicts) == {
        "rt_vs_echo_quiet",
        "rt_vs_echo_loaded",
        "rt_vs_airflow_quiet",
        "rt_vs_airflow_loaded",
        "transcript_quiet",
        "transcript_loaded",
        "scale_1000_rss",
        "scale_1000_hb_p99",
        "scale_1000_wait_p99",
        "startup",
        "run_task_overhead",
        "help",
        "replay",
        "html",
    }
    # The quick run has no 1,000-children run, no 100k-request replay and no 100k-frame HTML
    # page, and no Airflow figure when Airflow is skipped.
    not_applicable = {
        "scale_1000_rss",
        "scale_1000_hb_p99",
        "scale_1000_wait_p99",
        "replay",
        "html",
    }
    if smoke["skipped"].get("roundtrip_airflow"):
        not_applicable |= {"rt_vs_airflow_quiet", "rt_vs_airflow_loaded"}
    for name, verdict in verdicts.items():
        expected = {"N/A"} if name in not_applicable else {"PASS", "FAIL"}
        assert verdict in expected, (name, verdict)

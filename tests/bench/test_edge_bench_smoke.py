"""bench/edge_bench.py keeps working: ``--quick`` measures both edge workers on a real Airflow.

Only that every figure was produced (and every task succeeded) is checked, never how fast.
Needs the Airflow venv (tools/airflow_venv.sh) and Debian's postgresql, as the real-Airflow tier.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_edge_bench_quick_reports_throughput_latency_and_memory_for_both_workers():
    """Both workers ran all 20 tasks, every figure is a positive number, and supervisor-sim's
    worker has no per-task supervisor process."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "edge_bench.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {r["worker"] for r in out["edge_bench"]} == {"airflow", "supervisor-sim"}
    for row in out["edge_bench"]:
        assert row["run_state"] == "success" and row["succeeded"] == row["tasks"] == 20, row
        assert (
            row["tasks_per_s"] > 0
            and row["queue_to_start_p95_s"] >= row["queue_to_start_p50_s"] > 0
        )
    assert {r["worker"] for r in out["memory"]} == {"airflow", "supervisor-sim"}
    for row in out["memory"]:
        assert row["running_tasks"] == row["runtime_processes"] == 10, row
        for figures in (row["worker_idle_mib"], row["worker_busy_mib"]):
            assert figures["rss"] >= figures["pss"] > 0 and figures["uss"] > 0, row
        per_task = row["per_running_task"]
        assert per_task["worker_and_supervisors_pss_kib"] > 0 and per_task["runtime_pss_kib"] > 0
    sim = next(r for r in out["memory"] if r["worker"] == "supervisor-sim")
    assert sim["supervisor_processes"] == 0, sim  # its sessions live in the worker process

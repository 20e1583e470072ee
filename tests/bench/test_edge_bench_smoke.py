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
    """Both workers ran all 20 tasks and every figure is a positive number."""
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
    for row in out["rss"]:
        assert row["running_tasks"] == 10, row
        assert row["worker_and_children_rss_mib"] >= row["worker_rss_mib"] > 0, row

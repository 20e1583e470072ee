"""run-dag against a real Airflow: task instances queued by Airflow's own code, run in order."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ._airflow import ROOT as REPO

pytestmark = pytest.mark.real_airflow


def test_run_dag_drives_a_dependency_chain_on_a_real_airflow(airflow, tmp_path: Path):
    """push_xcom then pull_xcom of example_dag run on a real Airflow; the XCom flows between."""
    run_id = f"run_dag__{uuid.uuid4().hex[:8]}"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "supervisor_sim",
            "--config",
            str(REPO / "supervisor-sim.toml"),
            "run-dag",
            "example_dag",
            "--task",
            "push_xcom",
            "--task",
            "pull_xcom",
            "--run-id",
            run_id,
            "--api-url",
            airflow.api_url,
            "--jwt-secret",
            airflow.secret,
            "--airflow-python",
            airflow.python,
            "--state",
            str(tmp_path / "s.sqlite"),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--json",
            "-q",
        ],
        cwd=tmp_path,
        env=airflow.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {t: v["state"] for t, v in result["tasks"].items()} == {
        "push_xcom": "success",
        "pull_xcom": "success",
    }
    ti = {"dag_id": "example_dag", "run_id": run_id, "map_index": -1}
    assert airflow.ti_state({**ti, "task_id": "push_xcom"})[0] == "success"
    assert airflow.ti_state({**ti, "task_id": "pull_xcom"})[0] == "success"
    assert airflow.xcom({**ti, "task_id": "pull_xcom"}) == 6

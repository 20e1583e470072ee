"""run-dag on a real Airflow with client-side faults: injected before the call leaves, retried.

``push_xcom`` then ``pull_xcom`` of example_dag run on the real Execution API with a plan whose
faults the client applies itself (a 503, a connection reset, a delay): Airflow's server never
sees the failed attempts, the client retries as Airflow's does (back-off made short through
``AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_*``, which supervisor-sim reads as Airflow does),
and the XCom still flows. A fault that outlasts every attempt fails the task in Airflow's DB.
Outside events are refused against a real API in one line, exit 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from ._airflow import ROOT as REPO, RealAirflow

pytestmark = pytest.mark.real_airflow

FAST_RETRY = {
    "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MIN": "0.05",
    "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MAX": "0.1",
}


def _run_dag(
    airflow: RealAirflow, tmp: Path, run_id: str, *faults: str
) -> subprocess.CompletedProcess[str]:
    args = [
        sys.executable, "-m", "supervisor_sim", "--config", str(REPO / "supervisor-sim.toml"),
        "run-dag", "example_dag", "--task", "push_xcom", "--task", "pull_xcom",
        "--run-id", run_id, "--api-url", airflow.api_url, "--jwt-secret", airflow.secret,
        "--airflow-python", airflow.python, "--state", str(tmp / "s.sqlite"),
        "--runs-dir", str(tmp / "runs"), "--json", "-q",
    ]  # fmt: skip
    for fault in faults:
        args += ["--fault", fault]
    return subprocess.run(
        args, cwd=tmp, env={**airflow.env, **FAST_RETRY}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def _records(tmp: Path, task_id: str) -> list[dict[str, Any]]:
    """The records of ``task_id``'s transcript (the one transcript naming it)."""
    found = []
    for path in sorted((tmp / "runs").rglob("*.jsonl")):
        records = [json.loads(line) for line in path.read_text().splitlines()]
        if records and records[0].get("task", {}).get("task_id") == task_id:
            found.append(records)
    assert len(found) == 1, [p.name for p in (tmp / "runs").rglob("*.jsonl")]
    return found[0]


def _calls(records: list[dict[str, Any]], method: str, part: str) -> list[tuple[Any, Any, Any]]:
    return [
        (r.get("attempt"), r.get("status"), r.get("error"))
        for r in records
        if r.get("record") == "http" and r["method"] == method and part in r["path"]
    ]


def _faults(records: list[dict[str, Any]]) -> list[str]:
    return [r["fault"]["what"] for r in records if r.get("record") == "note" and "fault" in r]


def test_run_dag_retries_injected_faults_on_a_real_airflow(airflow: RealAirflow, tmp_path: Path):
    """A 503 on the first SetXCom and a reset on the first GetXCom are retried; both tasks
    succeed in Airflow's DB, the XCom flows, and each transcript records the injected fault
    and the retry the real server answered."""
    run_id = f"run_dag_faults__{uuid.uuid4().hex[:8]}"
    proc = _run_dag(airflow, tmp_path, run_id, "SetXCom:503@1", "GetXCom:reset@1", "*:delay=20ms@1")
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
    push, pull = _records(tmp_path, "push_xcom"), _records(tmp_path, "pull_xcom")
    assert _calls(push, "POST", "/xcoms/")[:2] == [(1, 503, None), (2, 201, None)]
    attempts = _calls(pull, "GET", "/xcoms/")
    assert attempts[0][0] == 1 and attempts[0][1] is None and attempts[0][2], attempts
    assert attempts[1][:2] == (2, 200), attempts
    assert "status 503" in _faults(push) and "delay 0.02s" in _faults(push)
    assert "reset" in _faults(pull)


def test_a_fault_outlasting_every_attempt_fails_the_task_in_airflows_db(
    airflow: RealAirflow, tmp_path: Path
):
    """Every GetXCom reset: the client gives up after Airflow's 5 attempts, pull_xcom fails
    and Airflow's DB says so; push_xcom, untouched, succeeds."""
    run_id = f"run_dag_faults__{uuid.uuid4().hex[:8]}"
    proc = _run_dag(airflow, tmp_path, run_id, "GetXCom:reset")
    assert proc.returncode == 1, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["tasks"]["push_xcom"]["state"] == "success"
    assert result["tasks"]["pull_xcom"]["state"] == "failed"
    ti = {"dag_id": "example_dag", "run_id": run_id, "map_index": -1}
    assert airflow.ti_state({**ti, "task_id": "pull_xcom"})[0] == "failed"
    attempts = _calls(_records(tmp_path, "pull_xcom"), "GET", "/xcoms/")
    assert [a[0] for a in attempts] == [1, 2, 3, 4, 5], attempts
    assert all(a[1] is None and a[2] for a in attempts), attempts


def test_an_outside_event_is_refused_against_a_real_api(airflow: RealAirflow, tmp_path: Path):
    """event=ti-failed with --api-url is one line naming the entry, exit 2, nothing run."""
    run_id = f"run_dag_faults__{uuid.uuid4().hex[:8]}"
    proc = _run_dag(airflow, tmp_path, run_id, "event=ti-failed@1s")
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "event=ti-failed@1s" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr

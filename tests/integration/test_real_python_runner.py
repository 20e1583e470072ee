"""Airflow's own Python task runner, as a ``--comm/--logs`` child of supervisor-sim.

tools/airflow_peer/py_comm_shim.py puts the comm socket on fd 0 (where ``task_runner.main()``
reads) and Airflow's structured logs on the logs socket; with the Airflow environment the
runner loads ``example_dag`` from the DAGs folder and runs the real Python task against the
real Execution API, supervised by supervisor-sim. (The same child under Airflow's own
supervisor is compared call by call in test_real_supervisor_parity.py.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from supervisor_sim.transcript import read_transcript

from ._airflow import RealAirflow
from ._helpers import SHIM, replay, run_task, runner_config, transcript_http

pytestmark = pytest.mark.real_airflow


def test_airflows_python_task_runner_runs_a_dag_task_to_success_under_supervisor_sim(
    airflow: RealAirflow, tmp_path: Path
):
    """read_var_conn, run by Airflow's task runner under supervisor-sim, succeeds: the variable
    and connection come through, its XCom lands in Airflow's DB, its JSON logs arrive, and
    supervisor-sim finds nothing to object to in what the real runtime sent."""
    (ti,) = airflow.queue("read_var_conn")
    code, result, stderr, transcript = run_task(
        airflow, ti, tmp_path, runtime=[airflow.python, str(SHIM)], timeout=180
    )
    assert (code, result["final_state"], result["violations"]) == (0, "success", []), stderr
    assert airflow.ti_state(ti) == ("success", 1)
    assert airflow.xcom(ti) == {"var": "hello-from-var", "host": "example.invalid"}
    calls = [
        (c["method"], c["path"].rsplit("/", 1)[-1], c["status"])
        for c in transcript_http(transcript)
    ]
    assert ("PUT", "rtif", 201) in calls  # the runner's SetRenderedFields
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    logs = [r for r in records if r.get("record") == "log" and r.get("source") == "logs"]
    assert logs, "no structured log line arrived on --logs"
    assert any("Read connection host=example.invalid" in json.dumps(r) for r in records)


def test_a_redacted_run_of_airflows_task_runner_replays_to_match_without_airflow(
    airflow: RealAirflow, tmp_path: Path
):
    """The run's transcript is redacted (the runner's MaskSecret of the variable it read is
    '***'), yet replayed with no Airflow and no network it matches frame for frame."""
    (ti,) = airflow.queue("read_var_conn")
    code, result, stderr, transcript = run_task(
        airflow, ti, tmp_path, runtime=[airflow.python, str(SHIM)], timeout=180
    )
    assert (code, result["final_state"]) == (0, "success"), stderr
    masked = [f for f in read_transcript(transcript).frames("in") if f.get("type") == "MaskSecret"]
    assert masked and all(f.get("raw_redacted") for f in masked), masked
    code, replayed, stderr = replay(transcript, tmp_path, env=runner_config(airflow))
    assert code == 0 and replayed["matched"] is True, stderr[-3000:]
    assert replayed["final_state"] == "success"

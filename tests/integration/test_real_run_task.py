"""``supervisor-sim run-task --api-url`` drives the reference runtime against a real Airflow."""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from _cli import CONFIG

from supervisor_sim.runner import QUEUE_TI_TOOL

from ._airflow import RealAirflow
from ._helpers import is_heartbeat, run_task, transcript_http

pytestmark = pytest.mark.real_airflow


def test_hello_ends_success_in_airflow(airflow: RealAirflow, tmp_path: Path):
    """A task that only logs ends success, as supervisor-sim reports and Airflow's DB records."""
    (ti,) = airflow.queue("hello")
    code, result, stderr, _ = run_task(airflow, ti, tmp_path)
    assert (code, result["final_state"], result["violations"]) == (0, "success", []), stderr
    assert airflow.ti_state(ti) == ("success", 1)


def test_read_var_conn_gets_airflows_variable_and_connection_and_stores_its_xcom(
    airflow: RealAirflow, tmp_path: Path
):
    """The variable and connection come from Airflow's DB, and the returned XCom lands there."""
    (ti,) = airflow.queue("read_var_conn")
    code, result, stderr, transcript = run_task(airflow, ti, tmp_path)
    assert (code, result["final_state"]) == (0, "success"), stderr
    assert airflow.ti_state(ti) == ("success", 1)
    assert airflow.xcom(ti) == {"var": "hello-from-var", "host": "example.invalid"}
    # The connection password crossed the wire but never reaches the transcript.
    assert "s3cret" not in transcript.read_text()


def test_failing_task_is_failed_in_airflow(airflow: RealAirflow, tmp_path: Path):
    """A task that raises ends failed: exit status 1, and failed in Airflow's DB."""
    (ti,) = airflow.queue("fail")
    code, result, stderr, _ = run_task(airflow, ti, tmp_path)
    assert (code, result["final_state"]) == (1, "failed"), stderr
    assert airflow.ti_state(ti) == ("failed", 1)


def test_skipping_task_is_skipped_in_airflow(airflow: RealAirflow, tmp_path: Path):
    """A task that raises SkipTask ends skipped in Airflow's DB."""
    (ti,) = airflow.queue("skip")
    _, result, stderr, _ = run_task(airflow, ti, tmp_path)
    assert result["final_state"] == "skipped", stderr
    assert airflow.ti_state(ti) == ("skipped", 1)


def test_xcom_pushed_by_one_task_is_pulled_by_the_next_in_the_same_run(
    airflow: RealAirflow, tmp_path: Path
):
    """push_xcom then pull_xcom in one DAG run: the pull reads the push through Airflow."""
    push, pull = airflow.queue(["push_xcom", "pull_xcom"])
    assert push["run_id"] == pull["run_id"]
    code, result, stderr, _ = run_task(airflow, push, tmp_path)
    assert (code, result["final_state"]) == (0, "success"), stderr
    code, result, stderr, _ = run_task(airflow, pull, tmp_path)
    assert (code, result["final_state"]) == (0, "success"), stderr
    assert airflow.xcom(push) == {"numbers": [1, 2, 3]}
    assert airflow.xcom(pull) == 6


def test_failure_with_tries_left_is_up_for_retry_and_the_next_try_succeeds(
    airflow: RealAirflow, tmp_path: Path
):
    """retry (max_tries=1) fails try 1 as up_for_retry; queued again, try 2 succeeds."""
    (first,) = airflow.queue("retry")
    assert first["max_tries"] == 1
    code, result, stderr, transcript = run_task(airflow, first, tmp_path)
    assert (code, result["final_state"]) == (1, "up_for_retry"), stderr
    assert airflow.ti_state(first) == ("up_for_retry", 1)
    states = [
        c["request_json"]["state"] for c in transcript_http(transcript) if "/state" in c["path"]
    ]
    assert states == ["up_for_retry"]  # sent at once by RetryTask, nothing after the exit
    (second,) = airflow.queue("retry", run_id=first["run_id"])
    assert second["try_number"] == 2 and second["ti_id"] != first["ti_id"]
    code, result, stderr, _ = run_task(airflow, second, tmp_path)
    assert (code, result["final_state"]) == (0, "success"), stderr
    assert airflow.ti_state(second) == ("success", 2)


def test_heartbeats_are_accepted_by_airflow_while_the_task_runs(
    airflow: RealAirflow, tmp_path: Path
):
    """Every heartbeat of a 2.5 s task (one a second) gets 204 from the real API."""
    (ti,) = airflow.queue("sleep")
    code, result, stderr, transcript = run_task(
        airflow, ti, tmp_path, "--heartbeat-interval", "1", env={"REFERENCE_SLEEP_S": "2.5"}
    )
    assert (code, result["final_state"]) == (0, "success"), stderr
    beats = [c["status"] for c in transcript_http(transcript) if is_heartbeat(c)]
    assert len(beats) >= 2 and set(beats) == {204}, beats


def test_a_task_instance_that_is_not_queued_is_refused_and_never_started(
    airflow: RealAirflow, tmp_path: Path
):
    """Running a finished TI again: /run answers 409, exit status 3, Airflow's row unchanged."""
    (ti,) = airflow.queue("hello")
    assert run_task(airflow, ti, tmp_path, name="first")[0] == 0
    code, result, stderr, _ = run_task(airflow, ti, tmp_path, name="again")
    assert code == 3 and result["started"] is False, stderr
    assert "409" in (result["error"] or ""), result
    assert airflow.ti_state(ti) == ("success", 1)


def test_queue_ti_prints_a_command_line_that_runs_as_printed(airflow: RealAirflow, tmp_path: Path):
    """airflow_queue_ti.py's printed run-task command (with $AIRFLOW__API_AUTH__JWT_SECRET)
    runs the TI to success when pasted into a shell."""
    proc = subprocess.run(
        [airflow.python, str(QUEUE_TI_TOOL), "example_dag", "hello"],
        env=airflow.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ti = json.loads(proc.stdout.splitlines()[0])
    (command,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("supervisor-sim ")]
    assert command == ti["command"]
    assert f"--api-url {airflow.api_url}" in command and "$AIRFLOW__API_AUTH__JWT_SECRET" in command
    sim = f"{shlex.quote(sys.executable)} -m supervisor_sim --config {shlex.quote(str(CONFIG))}"
    shell = subprocess.run(
        ["sh", "-c", command.replace("supervisor-sim", sim, 1) + " --no-transcript -q"],
        cwd=tmp_path,
        env={**airflow.env, "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shell.returncode == 0, shell.stderr[-3000:]
    assert airflow.ti_state(ti) == ("success", 1)


def test_queue_ti_mints_a_workload_token_airflow_accepts(airflow: RealAirflow, tmp_path: Path):
    """Without the secret in the environment, the printed command carries a workload token
    minted by Airflow's own generator, and run-task runs the TI with it."""
    env = {k: v for k, v in airflow.env.items() if k != "AIRFLOW__API_AUTH__JWT_SECRET"}
    # The secret still has to reach Airflow's config for minting: through airflow.cfg.
    cfg = tmp_path / "airflow.cfg"
    cfg.write_text(f"[api_auth]\njwt_secret = {airflow.secret}\n")
    env["AIRFLOW_CONFIG"] = str(cfg)
    proc = subprocess.run(
        [airflow.python, str(QUEUE_TI_TOOL), "example_dag", "hello"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ti = json.loads(proc.stdout.splitlines()[0])
    assert ti["command"].endswith(f"--token {ti['token']}")
    argv = [*shlex.split(ti["command"])[1:], "--no-transcript", "-q"]
    sim = subprocess.run(
        [sys.executable, "-m", "supervisor_sim", "--config", str(CONFIG), *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sim.returncode == 0, sim.stderr[-3000:]
    assert airflow.ti_state(ti) == ("success", 1)


HOSTILE = Path(__file__).resolve().parents[1] / "children" / "hostile.py"


def test_mask_secret_values_are_masked_in_their_own_frames_with_a_real_api(
    airflow: RealAirflow, tmp_path: Path
):
    """With --api-url nothing is held for an inline stub, so every record is written as it
    happens: a MaskSecret value is still learnt before its own frame is recorded, and neither
    that frame nor any record after it holds the value."""
    (ti,) = airflow.queue("hello")
    runtime = [sys.executable, str(HOSTILE), "mask-flood"]
    code, result, stderr, transcript = run_task(
        airflow, ti, tmp_path, runtime=runtime, env={"HOSTILE_N": "20"}
    )
    assert (code, result["final_state"]) == (0, "success"), stderr
    text = transcript.read_text()
    assert "-value" not in text  # every "secret-00000N-value"
    records = [json.loads(line) for line in text.splitlines()]
    masks = [r for r in records if r.get("record") == "frame" and r.get("type") == "MaskSecret"]
    assert len(masks) == 20 and all(r["body"]["value"] == "***" for r in masks)


@pytest.mark.parametrize(
    "kind", ["secret-in-bad-log", "secret-as-type", "secret-as-key", "secret-in-undecodable-frame"]
)
def test_a_secret_from_airflows_connection_leaked_by_the_runtime_is_masked_everywhere(
    airflow: RealAirflow, tmp_path: Path, kind: str
):
    """The runtime reads peer_conn from Airflow (password "s3cret"), then leaks it; it is in
    neither the transcript, the --json result nor the console output."""
    (ti,) = airflow.queue("hello")
    runtime = [sys.executable, str(HOSTILE), kind]
    code, result, stderr, transcript = run_task(airflow, ti, tmp_path, "-v", runtime=runtime)
    assert (code, result["final_state"]) == (0, "success"), stderr
    assert "s3cret" not in transcript.read_text()
    for line in transcript.read_text().splitlines():
        raw = json.loads(line).get("raw")
        assert raw is None or b"s3cret" not in base64.b64decode(raw)  # a frame's bytes
    assert "s3cret" not in json.dumps(result) and "s3cret" not in stderr

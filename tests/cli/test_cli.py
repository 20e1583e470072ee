"""The command line as users run it: real processes, real state files, real transcripts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from _cli import CONFIG, ROOT, cli, run_task_json

from supervisor_sim.transcript import read_transcript


class TestRunTask:
    def test_hello_succeeds_with_a_json_result_and_a_transcript(self, tmp_path: Path):
        """run-task example_dag hello exits 0 and prints the outcome as one JSON object."""
        status, result, _ = run_task_json("hello", tmp_path)
        assert status == 0
        assert result["final_state"] == "success"
        assert result["exit_code"] == 0
        assert result["violations"] == []
        assert isinstance(result["duration_s"], float)
        transcript = read_transcript(result["transcript"])
        assert transcript.footer["final_state"] == "success"
        assert Path(result["transcript"]).is_relative_to(tmp_path / ".supervisor-sim" / "runs")

    def test_an_xcom_passes_between_two_invocations_through_the_state_file(self, tmp_path: Path):
        """push_xcom then pull_xcom in one DAG run, in two processes, share the XCom."""
        s1, _, _ = run_task_json("push_xcom", tmp_path, "--run-id", "r1")
        s2, r2, _ = run_task_json("pull_xcom", tmp_path, "--run-id", "r1")
        assert (s1, s2) == (0, 0)
        assert r2["final_state"] == "success"
        from supervisor_sim.api import StubStore

        store = StubStore(tmp_path / "state.sqlite")
        assert store.get_xcom("example_dag", "r1", "pull_xcom", "return_value") == 6

    def test_a_failed_task_exits_1(self, tmp_path: Path):
        """A task that ends failed makes run-task exit with status 1."""
        status, result, _ = run_task_json("fail", tmp_path)
        assert status == 1
        assert result["final_state"] == "failed"

    def test_rerunning_a_task_of_the_same_run_is_its_next_try(self, tmp_path: Path):
        """A second run-task for the same DAG run makes try 2, as Airflow does after a clear."""
        run_task_json("hello", tmp_path, "--run-id", "r")
        _, result, _ = run_task_json("hello", tmp_path, "--run-id", "r")
        assert read_transcript(result["transcript"]).task["try_number"] == 2

    def test_runtime_that_never_connects_exits_3(self, tmp_path: Path):
        """A runtime that exits at once gives status 3 and names what happened."""
        runtime = f"{sys.executable} -c 'import sys; sys.exit(4)'"
        status, result, _ = run_task_json("hello", tmp_path, "--runtime", runtime)
        assert status == 3
        assert "process exited with 4 before connecting" in result["error"]

    def test_bad_fixtures_file_is_a_usage_error_naming_the_key(self, tmp_path: Path):
        """A fixtures file with a wrong type exits 2 and names the file and key path."""
        bad = tmp_path / "bad.toml"
        bad.write_text('[connections.c]\nconn_type = "http"\nport = "abc"\n')
        proc = cli(
            "run-task",
            "example_dag",
            "hello",
            "--fixtures",
            str(bad),
            "--state",
            str(tmp_path / "s.sqlite"),
            cwd=tmp_path,
        )
        assert proc.returncode == 2
        assert "connections.c.port" in proc.stderr
        assert "Traceback" not in proc.stderr

    def test_missing_runtime_command_is_a_usage_error(self, tmp_path: Path):
        """Without a config file or --runtime, run-task explains how to name the runtime."""
        proc = subprocess.run(
            [sys.executable, "-m", "supervisor_sim", "run-task", "d", "t"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2
        assert "--runtime" in proc.stderr

    def test_ctrl_c_is_forwarded_and_the_outcome_still_reported(self, tmp_path: Path):
        """SIGINT to supervisor-sim reaches the runtime; the final state and footer follow."""
        transcript = tmp_path / "t.jsonl"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "supervisor_sim",
                "--config",
                str(CONFIG),
                "run-task",
                "example_dag",
                "sleep",
                "--state",
                str(tmp_path / "s.sqlite"),
                "--transcript",
                str(transcript),
                "--json",
                "-q",
            ],
            cwd=tmp_path,
            env={**os.environ, "REFERENCE_SLEEP_S": "30"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if transcript.exists() and "Sleeping" in transcript.read_text():
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("the runtime never started sleeping")
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
        assert proc.returncode == 130, err[-2000:]
        result = json.loads(out.strip().splitlines()[-1])
        assert result["interrupted"] is True
        assert result["final_state"] is not None
        t = read_transcript(transcript)
        assert t.footer is not None
        forwarded = [r for r in t.of("process") if r.get("event") == "signal"]
        assert forwarded[0]["signal"] == "SIGINT" and forwarded[0]["target"] == "child"


class TestTranscriptCommands:
    def test_show_prints_the_timeline(self, tmp_path: Path):
        """show lists each frame with the HTTP call it caused."""
        _, result, _ = run_task_json("read_var_conn", tmp_path)
        proc = cli("show", result["transcript"], cwd=tmp_path)
        assert proc.returncode == 0
        assert "GetVariable" in proc.stdout
        assert "↳ GET /execution/variables/peer_var → 200" in proc.stdout
        only = cli("show", result["transcript"], "--type", "GetConnection", cwd=tmp_path)
        frames = [line for line in only.stdout.splitlines() if "→ sup" in line]
        assert len(frames) == 1 and "GetConnection" in frames[0]

    def test_show_refuses_a_file_that_is_not_a_transcript(self, tmp_path: Path):
        """show on a non-transcript exits 2 with a one-line reason."""
        p = tmp_path / "x.jsonl"
        p.write_text("hello\n")
        proc = cli("show", str(p), cwd=tmp_path)
        assert proc.returncode == 2
        assert "not JSON" in proc.stderr

    def test_diff_of_two_runs_of_a_task_is_equivalent(self, tmp_path: Path):
        """Two runs of the same task differ only in volatile values: diff exits 0."""
        _, a, _ = run_task_json("read_var_conn", tmp_path)
        _, b, _ = run_task_json("read_var_conn", tmp_path)
        proc = cli("diff", a["transcript"], b["transcript"], cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout

    def test_diff_of_different_tasks_names_the_differences(self, tmp_path: Path):
        """hello and fail differ, and diff says which frames and fields."""
        _, a, _ = run_task_json("hello", tmp_path)
        _, b, _ = run_task_json("fail", tmp_path)
        proc = cli("diff", a["transcript"], b["transcript"], "--json", cwd=tmp_path)
        assert proc.returncode == 1
        result = json.loads(proc.stdout)
        assert any("SucceedTask" in d and "TaskState" in d for d in result["differences"])


def test_module_entry_point_prints_help():
    """python -m supervisor_sim --help works and lists the commands."""
    proc = subprocess.run(
        [sys.executable, "-m", "supervisor_sim", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    for command in ("run-task", "show", "replay", "diff"):
        assert command in proc.stdout

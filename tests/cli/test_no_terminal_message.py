"""run-task of a runtime that exits 0 without a terminal message (runtimes/broken/no_terminal.py):
Airflow's supervisor computes ``success`` from the exit code but reports nothing, so its TI stays
running; the summary and the exit status must not read as a success."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from _cli import CONFIG, ROOT

NO_TERMINAL = f"{{python}} {ROOT / 'runtimes' / 'broken' / 'no_terminal.py'}"
REFERENCE = f"{{python}} {ROOT / 'runtimes' / 'reference' / 'runtime.py'}"


def _run_task(tmp: Path, runtime: str, *extra: str) -> subprocess.CompletedProcess[str]:
    sim = [sys.executable, "-m", "supervisor_sim", "--config", str(CONFIG)]
    task = ["example_dag", "hello", "--runtime", runtime, "--state", str(tmp / "state.sqlite")]
    proc = subprocess.run(
        [*sim, "run-task", *task, "--log-format", "console", "--no-transcript", *extra],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=60,
        # No COLUMNS: the summary's lines are not wrapped off a terminal.
        env={**{k: v for k, v in os.environ.items() if k != "COLUMNS"}, "NO_COLOR": "1"},
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc


def _summary(proc: subprocess.CompletedProcess[str]) -> list[str]:
    lines = proc.stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("── example_dag.hello"))
    return lines[start:]


def _ti_state(tmp: Path, proc: subprocess.CompletedProcess[str]) -> str:
    """The stub's state of the TI the run's header names (``... · ti ID``)."""
    ti_id = proc.stderr.splitlines()[0].rsplit(" · ti ", 1)[1]
    with sqlite3.connect(tmp / "state.sqlite") as db:
        (state,) = db.execute("SELECT state FROM task_instances WHERE id = ?", (ti_id,)).fetchone()
    return str(state)


def test_exit_zero_without_a_terminal_message_is_not_a_success(tmp_path: Path):
    """The summary says the state was never reported and why the TI stays running, lists the
    no-terminal-message violation, and run-task exits 1; the stub's TI is still running."""
    proc = _run_task(tmp_path, NO_TERMINAL)
    assert proc.returncode == 1, proc.stderr[-3000:]
    summary = _summary(proc)
    final = next(line for line in summary if line.startswith("  final state"))
    assert final.startswith("  final state   not reported (the TI stays running) · exit code 0")
    assert "success" not in final
    violation = "    - no-terminal-message: the runtime exited 0"
    assert any(line.startswith(violation) for line in summary)
    reason = next(line for line in summary if line.startswith("  reason"))
    assert reason == (
        "  reason        exit 0, but the runtime never reported a terminal state to the API: "
        "Airflow's TI stays running (the scheduler later fails it as a zombie)"
    )
    assert _ti_state(tmp_path, proc) == "running"


def test_json_result_keeps_the_supervisors_state_and_the_violation(tmp_path: Path):
    """--json reports what the supervisor computed (final_state success, exit code 0) with the
    no-terminal-message violation that makes it not one, and the exit status is 1 there too."""
    proc = _run_task(tmp_path, NO_TERMINAL, "--json", "-q")
    assert proc.returncode == 1, proc.stderr[-3000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    assert (result["final_state"], result["exit_code"]) == ("success", 0)
    assert [v["rule"] for v in result["violations"]] == ["no-terminal-message"]


def test_a_reported_success_is_still_a_plain_success(tmp_path: Path):
    """A runtime that sends SucceedTask ends with the plain success summary and exit 0."""
    proc = _run_task(tmp_path, REFERENCE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = _summary(proc)
    assert summary[1].startswith("  final state   success · exit code 0")
    assert not any(line.startswith("  reason") for line in summary)
    assert _ti_state(tmp_path, proc) == "success"

"""run-dag interrupted (real SIGINT to a real run-dag): no runtime starts after the signal, none
outlives the run, and the report says what was stopped and what never started."""

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
from _cli import CONFIG, ROOT

REFERENCE = ROOT / "runtimes" / "reference" / "runtime.py"

#: N independent tasks that would each run 30 s (far longer than any of these tests waits).
MANY = textwrap.dedent("""
    import time
    def slow(ctx): time.sleep(30); return 1
    DAGS = {"many": {f"t{i:02d}": slow for i in range(16)}}
""")

FAN = textwrap.dedent("""
    import time
    def start(ctx): return 1
    def slow(ctx): time.sleep(30); return 1
    def join(ctx): return 1
    DAGS = {"fan": {"start": start, "a": slow, "b": slow, "join": join}}
    DEPENDENCIES = {"fan": {"a": ["start"], "b": ["start"], "join": ["a", "b"]}}
""")


def _wrapper(tmp: Path, bundle_text: str, *, sigint_from: str | None = None) -> str:
    """A runtime command whose every start appends its pid to ``pids`` (``exec`` keeps it the
    runtime's pid). ``sigint_from``: "parse" — the DAG parse's runtime sends run-dag SIGINT as
    it starts; "task" — the first task's runtime does, while the others are being started."""
    (tmp / "bundle.py").write_text(bundle_text)
    signal_line = ""
    if sigint_from == "parse":
        signal_line = 'if mkdir "$here/parse.lock" 2>/dev/null; then kill -INT $PPID; fi'
    elif sigint_from == "task":
        signal_line = (
            'if ! mkdir "$here/parse.lock" 2>/dev/null && mkdir "$here/sigint.lock" 2>/dev/null; '
            "then kill -INT $PPID; fi"
        )
    script = tmp / "runtime.sh"
    script.write_text(
        textwrap.dedent(f"""\
            #!/bin/sh
            here={tmp}
            echo $$ >> "$here/pids"
            {signal_line}
            exec {sys.executable} {REFERENCE} --bundle "$here/bundle.py" "$@"
        """)
    )
    script.chmod(0o755)
    return str(script)


def _start(
    tmp: Path, dag: str, runtime: str, *args: str, config: Path = CONFIG
) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable, "-m", "supervisor_sim", "--config", str(config),
            "run-dag", dag, "--runtime", runtime,
            "--state", str(tmp / "s.sqlite"), "--runs-dir", str(tmp / "runs"),
            "--json", "-q", *args,
        ],
        cwd=tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _pids(tmp: Path) -> list[int]:
    path = tmp / "pids"
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _left_behind(pids: list[int]) -> list[str]:
    """Live processes among ``pids`` or in their process groups (each runtime leads one)."""
    left = []
    for proc in psutil.process_iter(["pid", "status", "cmdline"]):
        try:
            pgid = os.getpgid(proc.pid)
        except (ProcessLookupError, PermissionError):
            continue
        if (proc.pid in pids or pgid in pids) and proc.info["status"] != psutil.STATUS_ZOMBIE:
            left.append(f"{proc.pid} {' '.join(proc.info['cmdline'] or [])}")
    return left


def _wait_for(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)


def _finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    finally:
        proc.kill()


def test_sigint_while_runtimes_are_being_started_starts_no_task_and_leaves_nothing(
    tmp_path: Path,
):
    """SIGINT that comes while sessions are launching their runtimes (sent by the first task's
    runtime itself, so the others are queued or in flight): no task gets to run, no session
    says "no child to forward it to", and no runtime outlives run-dag."""
    runtime = _wrapper(tmp_path, MANY, sigint_from="task")
    proc = _start(tmp_path, "many", runtime, "--parallelism", "16")
    out, err = _finish(proc)
    pids = _pids(tmp_path)
    assert proc.returncode == 130, err[-3000:]
    assert "no child to forward it to" not in err
    assert "Traceback" not in err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["state"] == "interrupted"
    states = {t: r["state"] for t, r in result["tasks"].items()}
    # Before the fix, the sessions whose launch was in flight ran their 30 s task to the end.
    assert set(states.values()) <= {"not_run", "failed"}, states
    assert sorted(result["interrupt"]["not_run"] + result["interrupt"]["stopped"]) == sorted(states)
    assert len(pids) >= 2  # the parse, and the task runtime that sent the signal
    assert _left_behind(pids) == []


def test_sigint_after_the_first_task_started_stops_it_and_reports_the_interrupt(tmp_path: Path):
    """Ctrl+C while tasks run: one line says what happens next, the summary says interrupted
    (not failed) and names the stopped and never-started tasks, exit 130, nothing left."""
    runtime = _wrapper(tmp_path, FAN)
    proc = _start(tmp_path, "fan", runtime)
    try:
        _wait_for(lambda: _given_the_task(tmp_path, "fan.a."))
        proc.send_signal(signal.SIGINT)
        out, err = _finish(proc)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["state"] == "interrupted" and result["interrupted"] is True
    assert result["tasks"]["start"]["state"] == "success"
    assert result["tasks"]["a"]["stopped"] is True
    assert result["interrupt"]["signal"] == "SIGINT"
    assert "a" in result["interrupt"]["stopped"] and "join" in result["interrupt"]["not_run"]
    # b, started at the same time as a, may or may not have been given its task yet.
    assert sorted(result["interrupt"]["stopped"] + result["interrupt"]["not_run"]) == [
        "a",
        "b",
        "join",
    ]
    hints = [line for line in err.splitlines() if line.startswith("interrupt (SIGINT)")]
    assert len(hints) == 1, err[-3000:]
    assert "no new task will start" in hints[0] and "press Ctrl+C again" in hints[0]
    assert _left_behind(_pids(tmp_path)) == []


def test_the_report_after_an_interrupt_says_interrupted_and_lists_what_it_stopped(
    tmp_path: Path,
):
    """Without --json the report's title says "interrupted" (never "failed") and its last
    line names the tasks stopped while running and those that never started."""
    runtime = _wrapper(tmp_path, FAN)
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "supervisor_sim", "--config", str(CONFIG),
            "run-dag", "fan", "--runtime", runtime, "--state", str(tmp_path / "s.sqlite"),
            "--runs-dir", str(tmp_path / "runs"), "--log-format", "console", "-q",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        _wait_for(
            lambda: _given_the_task(tmp_path, "fan.a.") and _given_the_task(tmp_path, "fan.b.")
        )
        proc.send_signal(signal.SIGINT)
        _, err = _finish(proc)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-3000:]
    title = next(line for line in err.splitlines() if line.startswith("fan run "))
    assert ": interrupted after " in title and "failed" not in title
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted by SIGINT: stopped while running"), err[-2000:]
    assert "never started 1: join" in last


def test_sigint_while_the_dag_is_parsed_is_one_line_and_exit_130(tmp_path: Path):
    """SIGINT during the DAG parse (sent by the parsing runtime as it starts): no traceback,
    one line saying no task was started, exit 130, the parse's runtime gone."""
    runtime = _wrapper(tmp_path, FAN, sigint_from="parse")
    proc = _start(tmp_path, "fan", runtime)
    out, err = _finish(proc)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    assert "interrupted (SIGINT) while parsing the DAG; no task was started" in err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["state"] == "interrupted" and result["tasks"] == {}
    assert len(_pids(tmp_path)) == 1
    assert _left_behind(_pids(tmp_path)) == []


def test_sigint_during_a_retry_delay_does_not_wait_it_out(tmp_path: Path):
    """A task waiting out its retry delay when Ctrl+C comes is not retried: run-dag ends
    (well within the 600 s delay) and the task stays up_for_retry."""
    bundle = textwrap.dedent("""
        def flaky(ctx): raise RuntimeError("first try fails")
        DAGS = {"retry": {"flaky": flaky}}
        TASK_SETTINGS = {"retry": {"flaky": {"retries": 3}}}
    """)
    runtime = _wrapper(tmp_path, bundle)
    proc = _start(tmp_path, "retry", runtime, "--retry-delay", "600")
    try:
        _wait_for(lambda: any((tmp_path / "runs").glob("retry.flaky.*")) and _try_ended(tmp_path))
        proc.send_signal(signal.SIGINT)
        out, err = _finish(proc, timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["tasks"]["flaky"]["state"] == "up_for_retry"
    assert result["tasks"]["flaky"]["tries"] == 1
    assert result["interrupt"]["retry_not_run"] == ["flaky"]
    assert _left_behind(_pids(tmp_path)) == []


def _given_the_task(tmp: Path, prefix: str) -> bool:
    """Whether the transcript of a try whose file name starts with ``prefix`` shows the
    runtime was given its task (StartupDetails sent)."""
    return any("StartupDetails" in p.read_text() for p in (tmp / "runs").glob(prefix + "*"))


def _try_ended(tmp: Path) -> bool:
    """Whether a transcript in ``tmp/runs`` has its footer (the try is over)."""
    for path in (tmp / "runs").glob("*.jsonl"):
        lines = path.read_text().splitlines()
        if lines and '"footer"' in lines[-1]:
            return True
    return False

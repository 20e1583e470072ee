"""What Ctrl+C says, and that it is true: run-task and run-dag (real commands, real SIGINT) print
one line per interrupt naming what happens next with the configured delays, and a second and a
third Ctrl+C really terminate and then kill a runtime that ignores SIGINT and SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
from _cli import ROOT

from supervisor_sim.transcript import read_transcript

REFERENCE = ROOT / "runtimes" / "reference" / "runtime.py"

#: ``stubborn`` ignores SIGINT and SIGTERM once it runs (and says so in a file), ``polite``
#: sleeps and dies of SIGINT as Python does.
BUNDLE = textwrap.dedent("""
    import pathlib, signal, time
    def stubborn(ctx):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        pathlib.Path("ready." + ctx.ti["task_id"]).write_text("")
        time.sleep(120)
    def polite(ctx):
        pathlib.Path("ready." + ctx.ti["task_id"]).write_text("")
        time.sleep(120)
    DAGS = {"d": {"stubborn": stubborn, "polite": polite, "other": stubborn}}
""")


def _project(tmp: Path, grace: float, escalation: float) -> tuple[Path, str]:
    """A config file with these delays, and a runtime command whose starts append their pid to
    ``pids``."""
    (tmp / "bundle.py").write_text(BUNDLE)
    config = tmp / "supervisor-sim.toml"
    config.write_text(
        f"[supervisor]\nsignal_grace = {grace}\nkill_escalation_delay = {escalation}\n"
    )
    script = tmp / "runtime.sh"
    script.write_text(
        f'#!/bin/sh\necho $$ >> "{tmp}/pids"\n'
        f'exec {sys.executable} {REFERENCE} --bundle "{tmp}/bundle.py" "$@"\n'
    )
    script.chmod(0o755)
    return config, str(script)


class _Command:
    """A supervisor-sim command in a child process, its stderr read as it comes."""

    def __init__(self, tmp: Path, config: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor_sim", "--config", str(config), *args],
            cwd=tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.01)
        raise AssertionError(f"no line with {text!r}; stderr:\n" + "\n".join(self.lines[-40:]))

    def sigint(self) -> None:
        self.proc.send_signal(signal.SIGINT)

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        """(exit status, stdout) once the command ended (killed after ``timeout``)."""
        try:
            self.proc.wait(timeout=timeout)
        finally:
            self.proc.kill()
        self._reader.join(5)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        with self.proc.stdout, self.proc.stderr:
            return self.proc.returncode, self.proc.stdout.read()


def _wait_for_file(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def _left_behind(tmp: Path) -> list[int]:
    """Live processes that are a recorded runtime or in one's process group."""
    pids = [int(p) for p in (tmp / "pids").read_text().split()]
    left = []
    for proc in psutil.process_iter(["status"]):
        try:
            pgid = os.getpgid(proc.pid)
        except (ProcessLookupError, PermissionError):
            continue
        if (proc.pid in pids or pgid in pids) and proc.info["status"] != psutil.STATUS_ZOMBIE:
            left.append(proc.pid)
    return left


def _message(line: str) -> str:
    """The message of a JSON log line (the event), or the line itself."""
    try:
        return str(json.loads(line)["event"])
    except (ValueError, KeyError, TypeError):
        return line


def test_run_task_says_what_ctrl_c_does_and_a_third_one_kills(tmp_path: Path):
    """run-task: each Ctrl+C gets one line that quotes the configured grace and escalation
    delay, and the ladder it describes is what happens: SIGINT to the runtime, then SIGTERM to
    its group, then SIGKILL at once for a runtime that ignores both."""
    config, runtime = _project(tmp_path, grace=60, escalation=60)
    transcript = tmp_path / "t.jsonl"
    cmd = _Command(
        tmp_path, config,
        "run-task", "d", "stubborn", "--runtime", runtime, "--state", str(tmp_path / "s.sqlite"),
        "--transcript", str(transcript), "--json", "--log-format", "json",
    )  # fmt: skip
    _wait_for_file(tmp_path / "ready.stubborn")
    cmd.sigint()
    first = _message(cmd.wait_for_line("interrupt (SIGINT)"))
    assert first == (
        "interrupt (SIGINT): SIGINT forwarded to the runtime; if still running after 60s: "
        "SIGTERM, then SIGKILL 60s later; press Ctrl+C again to terminate now"
    )
    cmd.sigint()
    second = _message(cmd.wait_for_line("second interrupt (SIGINT)"))
    assert second == (
        "second interrupt (SIGINT): terminating the runtime now (SIGTERM, then SIGKILL 60s "
        "later); press Ctrl+C again to kill at once"
    )
    cmd.wait_for_line('"signal": "SIGTERM"')  # the second Ctrl+C's SIGTERM went out
    cmd.sigint()
    third = _message(cmd.wait_for_line("interrupt 3 (SIGINT)"))
    assert third == "interrupt 3 (SIGINT): killing the runtime now (SIGKILL)"
    # Well before the 60 s escalation could have killed it: only the third Ctrl+C can have.
    status, out = cmd.finish(timeout=45)
    assert status == 130, "\n".join(cmd.lines[-30:])
    result = json.loads(out.strip().splitlines()[-1])
    assert result["interrupted"] is True and result["exit_code"] == -9
    signals = [
        (r["signal"], r["target"])
        for r in read_transcript(transcript).of("process")
        if r.get("event") == "signal"
    ]
    assert signals == [("SIGINT", "child"), ("SIGTERM", "group"), ("SIGKILL", "group")]
    assert _left_behind(tmp_path) == []


def test_run_task_first_ctrl_c_stops_a_polite_runtime_with_one_hint(tmp_path: Path):
    """A runtime that dies of SIGINT: one hint line (naming the configured delays), the
    runtime's exit, exit 130, and the runtime gone."""
    config, runtime = _project(tmp_path, grace=7.5, escalation=2.5)
    cmd = _Command(
        tmp_path, config,
        "run-task", "d", "polite", "--runtime", runtime, "--state", str(tmp_path / "s.sqlite"),
        "--no-transcript", "--json", "-q", "--log-format", "json",
    )  # fmt: skip
    _wait_for_file(tmp_path / "ready.polite")
    cmd.sigint()
    status, out = cmd.finish()
    assert status == 130, "\n".join(cmd.lines[-30:])
    hints = [_message(x) for x in cmd.lines if "interrupt (" in _message(x)]
    assert hints == [
        "interrupt (SIGINT): SIGINT forwarded to the runtime; if still running after 7.5s: "
        "SIGTERM, then SIGKILL 2.5s later; press Ctrl+C again to terminate now"
    ]
    assert json.loads(out.strip().splitlines()[-1])["exit_code"] == -2
    assert _left_behind(tmp_path) == []


def test_run_task_summary_says_an_interrupted_try_was_interrupted(tmp_path: Path):
    """The console summary of a try that died of a forwarded Ctrl+C names the state Airflow
    records (failed) as interrupted, and its reason says the signal went to the runtime."""
    config, runtime = _project(tmp_path, grace=7.5, escalation=2.5)
    cmd = _Command(
        tmp_path, config,
        "run-task", "d", "polite", "--runtime", runtime, "--state", str(tmp_path / "s.sqlite"),
        "--no-transcript", "-q",
    )  # fmt: skip
    _wait_for_file(tmp_path / "ready.polite")
    cmd.sigint()
    status, _ = cmd.finish()
    assert status == 130, "\n".join(cmd.lines[-30:])
    [state] = [x for x in cmd.lines if x.startswith("  final state")]
    assert state.startswith("  final state   failed (interrupted) · exit code -2"), state
    [reason] = [x for x in cmd.lines if x.startswith("  reason")]
    assert "interrupted: the signal supervisor-sim received went to the runtime" in reason
    assert _left_behind(tmp_path) == []


def test_run_dag_says_once_per_ctrl_c_what_happens_to_all_its_tasks(tmp_path: Path):
    """run-dag: one line per Ctrl+C for all its running tasks (not one per task), with the
    configured delays; the second terminates and the third kills runtimes that ignore both
    signals; the report then says interrupted, exit 130, nothing left."""
    config, runtime = _project(tmp_path, grace=60, escalation=60)
    cmd = _Command(
        tmp_path, config,
        "run-dag", "d", "--task", "stubborn", "--task", "other", "--runtime", runtime,
        "--state", str(tmp_path / "s.sqlite"), "--runs-dir", str(tmp_path / "runs"),
        "--json", "-q", "--log-format", "json",
    )  # fmt: skip
    _wait_for_file(tmp_path / "ready.stubborn")
    _wait_for_file(tmp_path / "ready.other")
    cmd.sigint()
    first = cmd.wait_for_line("interrupt (SIGINT)")
    assert first == (
        "interrupt (SIGINT): no new task will start; SIGINT forwarded to the 2 running tasks; "
        "if still running after 60s: SIGTERM, then SIGKILL 60s later; press Ctrl+C again to "
        "terminate now"
    )
    cmd.sigint()
    second = cmd.wait_for_line("second interrupt (SIGINT)")
    assert second == (
        "second interrupt (SIGINT): terminating the 2 running tasks now (SIGTERM, then SIGKILL "
        "60s later); press Ctrl+C again to kill at once"
    )
    cmd.sigint()
    third = cmd.wait_for_line("interrupt 3 (SIGINT)")
    assert third == "interrupt 3 (SIGINT): killing the 2 running tasks now (SIGKILL)"
    status, out = cmd.finish(timeout=45)
    assert status == 130, "\n".join(cmd.lines[-30:])
    result = json.loads(out.strip().splitlines()[-1])
    assert result["state"] == "interrupted"
    assert result["interrupt"]["signals"] == 3
    assert sorted(result["interrupt"]["stopped"]) == ["other", "stubborn"]
    assert {t["exit_codes"][-1] for t in result["tasks"].values()} == {-9}
    # Once each: not one line per task.
    assert sum(x.startswith("interrupt (SIGINT)") for x in cmd.lines) == 1
    assert _left_behind(tmp_path) == []


def test_run_task_interrupted_while_it_starts_is_one_line_exit_130_and_no_runtime(
    tmp_path: Path,
):
    """SIGINT as soon as run-task's early-started runtime exists (before or while the session
    takes it over): no traceback, exit 130, and that runtime gone."""
    config, runtime = _project(tmp_path, grace=60, escalation=60)
    cmd = _Command(
        tmp_path, config,
        "run-task", "d", "polite", "--runtime", runtime, "--state", str(tmp_path / "s.sqlite"),
        "--no-transcript", "--json", "-q", "--log-format", "json",
    )  # fmt: skip
    _wait_for_file(tmp_path / "pids")
    cmd.sigint()
    status, _ = cmd.finish()
    assert status == 130, "\n".join(cmd.lines[-30:])
    assert not [x for x in cmd.lines if "Traceback" in x or x == "Aborted!"]
    assert _left_behind(tmp_path) == []

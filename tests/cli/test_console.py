"""The console people read: levels kept, tracebacks, the task named once, internals at -v,
colours as the environment says, a status line on a terminal, run-dag's failure report."""

from __future__ import annotations

import io
import json
import os
import re
import select
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import structlog
from _cli import CONFIG, ROOT, cli

from supervisor_sim.cli import _console
from supervisor_sim.cli._console import ConsoleSink, configure_logging
from supervisor_sim.protocol import exception_summary, render_traceback
from supervisor_sim.supervision import Event

SGR = re.compile(r"\x1b\[[0-9;]*m")
BUNDLE = ROOT / "runtimes" / "reference" / "fanout_dags.py"
REFERENCE = ROOT / "runtimes" / "reference" / "runtime.py"
HOSTILE = ROOT / "tests" / "children" / "hostile.py"


def stacks(*chain: tuple[str, str, bool]) -> list[dict]:
    """An error_detail as Airflow's task runner sends it: (type, value, is_cause) per stack,
    the exception raised last first."""
    return [
        {
            "exc_type": exc_type,
            "exc_value": value,
            "exc_notes": [],
            "syntax_error": None,
            "is_cause": is_cause,
            "frames": [
                {"filename": "/dags/etl.py", "lineno": 10 + n, "name": f"step_{n}"},
                {"filename": "/dags/lib.py", "lineno": 3, "name": "load"},
            ],
            "is_group": False,
            "exceptions": [],
        }
        for n, (exc_type, value, is_cause) in enumerate(chain)
    ]


def log(level: str, event: str = "line", source: str = "logs", **fields) -> Event:
    record = {"level": level, "event": event, "timestamp": "1999-01-02T03:04:05Z", **fields}
    return Event("log", 0.1, {"record": record, "source": source})


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        raise io.UnsupportedOperation("no descriptor")


@pytest.fixture(autouse=True)
def _no_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """The console wraps at $COLUMNS when set; these tests read unwrapped lines."""
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.fixture
def restore_logging():
    saved = structlog.get_config()
    state = (_console._json_stream, _console._format, _console._colors, _console._console_stream)
    yield
    structlog.configure(**saved)
    (_console._json_stream, _console._format, _console._colors, _console._console_stream) = state


def shown(events: list[Event], fmt: str = "console", stream=None, **sink_args) -> str:
    stream = stream if stream is not None else io.StringIO()
    configure_logging(fmt, stream)
    sink = ConsoleSink(**sink_args)
    for event in events:
        sink(event)
    return stream.getvalue()


LEVELS = [
    log("debug", "a debug line"),
    log("info", "an info line"),
    log("warn", "a warn line"),
    log("warning", "a warning line"),
    log("error", "an error line"),
    log("exception", "an exception line"),
    log("critical", "a critical line"),
    log("fatal", "a fatal line"),
    Event("log", 0.2, {"record": {"level": "error", "event": "on stderr", "logger": "task.stderr"}, "source": "stderr"}),  # noqa: E501
]  # fmt: skip
EXPECTED = {
    "a debug line": "debug",
    "an info line": "info",
    "a warn line": "warning",
    "a warning line": "warning",
    "an error line": "error",
    "an exception line": "error",
    "a critical line": "critical",
    "a fatal line": "critical",
    "on stderr": "error",
}


def test_the_console_keeps_each_lines_level(restore_logging):
    """Every runtime level (and stderr, which Airflow logs at error) is shown at its own level."""
    out = shown(LEVELS, bind=False).splitlines()
    assert len(out) == len(EXPECTED)
    for line in out:
        message = next(m for m in EXPECTED if line.endswith(m))
        assert line.split()[1] == EXPECTED[message], line


def test_json_lines_keep_each_lines_level(restore_logging):
    """--log-format json writes the runtime's level (aliases made Airflow's names), not info."""
    lines = [json.loads(line) for line in shown(LEVELS, "json", bind=False).splitlines()]
    assert {line["event"]: line["level"] for line in lines} == EXPECTED


def test_error_detail_is_shown_as_a_traceback_under_the_error_line(restore_logging):
    """A record's error_detail is rendered as Python prints a chained traceback, under the
    error line, causes first; no Python repr of the dicts is shown."""
    detail = stacks(("RuntimeError", "load failed", False), ("KeyError", "'row'", True))
    out = shown([log("error", "Task failed with exception", error_detail=detail)], bind=False)
    lines = out.splitlines()
    assert lines[0].split()[1:] == ["error", "logs", "Task", "failed", "with", "exception"]
    body = [line.strip() for line in lines[1:]]
    assert body == [
        "Traceback (most recent call last):",
        'File "/dags/etl.py", line 11, in step_1',
        'File "/dags/lib.py", line 3, in load',
        "KeyError: 'row'",
        "",
        "The above exception was the direct cause of the following exception:",
        "",
        "Traceback (most recent call last):",
        'File "/dags/etl.py", line 10, in step_0',
        'File "/dags/lib.py", line 3, in load',
        "RuntimeError: load failed",
    ]
    assert "exc_type" not in out and "error_detail" not in out


def test_tracebacks_of_odd_records_are_shown_not_raised():
    """Groups, notes, recursion and malformed error_detail values render without raising."""
    group = stacks(("ExceptionGroup", "two failed (2 sub-exceptions)", False))[0]
    group |= {"is_group": True, "exceptions": [stacks(("ValueError", "a", False)), "junk"]}
    group["exc_notes"] = ["while loading partition 3"]
    text = "\n".join(render_traceback([group]))
    assert "Exception Group Traceback (most recent call last):" in text
    assert "| ValueError: a" in text and "while loading partition 3" in text
    deep = stacks(("RecursionError", "maximum recursion depth exceeded", False))[0]
    deep["frames"] = [{"filename": "/r.py", "lineno": 1, "name": "f"}] * 500
    lines = render_traceback([deep])
    assert len(lines) < 20 and any("more frames" in ln or "repeated" in ln for ln in lines)
    for odd in (None, "a plain string", 42, [1, "x"], {"exc_type": None}, [{"frames": "no"}]):
        render_traceback(odd)
    assert exception_summary(stacks(("OSError", "disk full", False))) == "OSError: disk full"
    assert exception_summary("no structure") is None


def test_the_task_is_named_once_in_a_header(restore_logging):
    """On the console the identity is a header before the first line; runtime records drop the
    identity keys that say the same, and keep those that differ."""
    identity = {"ti_id": "0190-ti", "dag_id": "d", "task_id": "t", "run_id": "r", "try_number": 1}
    events = [
        log("info", "one", **identity, map_index=-1),
        log("info", "two", **identity | {"task_id": "other"}, map_index=-1),
    ]
    out = shown(events, bind=False, header="d.t try 1 · run r · ti 0190-ti", identity=identity)
    lines = out.splitlines()
    assert lines[0] == "d.t try 1 · run r · ti 0190-ti"
    assert out.count("0190-ti") == 1
    assert "dag_id=" not in out and "run_id=" not in out and "try_number=" not in out
    assert "task_id=other" in lines[2]


def test_run_task_shows_a_short_console(tmp_path: Path):
    """run-task hello on the console: the header names the task instance once; connections,
    byte counts, EOFs and a clean exit are not shown; -v shows them."""
    env = {"NO_COLOR": "1", "COLUMNS": "120"}
    args = ("run-task", "example_dag", "hello", "--state", str(tmp_path / "s.sqlite"))
    proc = cli(*args, "--log-format", "console", "--json", cwd=tmp_path, env=env)
    ti_id = json.loads(proc.stdout)["ti_id"]
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert err.count(ti_id) == 1 and err.splitlines()[0].startswith("example_dag.hello try 1")
    for internal in (
        "channel-bytes",
        "process eof",
        "process connect",
        "process exit",
        "::group::",
    ):
        assert internal not in err, err
    assert "Hello from the reference runtime" in err and "ti_id=" not in err
    verbose = cli(*args, "--log-format", "console", "-v", cwd=tmp_path, env=env)
    for internal in (
        "channel-bytes",
        "process eof",
        "process connect",
        "process exit",
        "::group::",
    ):
        assert internal in verbose.stderr, verbose.stderr


def test_a_failed_try_gives_its_reason_and_stderr_even_with_q(tmp_path: Path):
    """The summary of a failed try names the runtime's exception and ends with its last stderr
    lines, with -q too (which hides the logs)."""
    code = (
        "import sys; print('warming up', file=sys.stderr); "
        "print('giving up: no config', file=sys.stderr); sys.exit(5)"
    )
    proc = cli(
        "run-task", "example_dag", "hello", "--state", str(tmp_path / "s.sqlite"),
        "--runtime", f"{sys.executable} -c \"{code}\"", "-q", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 3
    assert "  stderr        last 2 lines:\n    warming up\n    giving up: no config" in proc.stderr
    failed = cli(
        "run-task", "example_dag", "fail", "--state", str(tmp_path / "s.sqlite"), "-q",
        cwd=tmp_path,
    )  # fmt: skip
    assert "  reason        RuntimeError: this task always fails" in failed.stderr


def test_no_color_and_force_color_are_respected(restore_logging, monkeypatch):
    """Colour on a terminal; none with NO_COLOR (even with FORCE_COLOR); FORCE_COLOR colours
    a stream that is not a terminal."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert SGR.search(shown([log("error", "boom")], stream=FakeTerminal(), bind=False))
    monkeypatch.setenv("NO_COLOR", "1")
    assert not SGR.search(shown([log("error", "boom")], stream=FakeTerminal(), bind=False))
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert not SGR.search(shown([log("error", "boom")], stream=FakeTerminal(), bind=False))
    monkeypatch.delenv("NO_COLOR")
    assert SGR.search(shown([log("error", "boom")], bind=False))


def test_long_lines_wrap_to_the_terminal_width(restore_logging, monkeypatch):
    """On a terminal no line is wider than it; the continuation is indented under the message."""
    monkeypatch.setenv("COLUMNS", "60")
    monkeypatch.setenv("NO_COLOR", "1")
    out = shown([log("info", "word " * 30, key="v" * 100)], stream=FakeTerminal(), bind=False)
    lines = out.splitlines()
    assert len(lines) > 2 and all(len(line) <= 60 for line in lines)
    assert all(line.startswith(" " * 22) for line in lines[1:])


def test_a_runtimes_control_characters_are_shown_escaped(restore_logging, monkeypatch):
    """A log line cannot move the cursor, clear the screen or colour the console: control
    characters in messages, values and tracebacks are shown escaped."""
    monkeypatch.setenv("NO_COLOR", "1")
    detail = stacks(("Boom\x1b[2J", "x\x07", False))
    events = [log("error", "a\x1b[31mred\rline\x9b", value="\x1b]0;title\x07", error_detail=detail)]
    out = shown(events, stream=FakeTerminal(), bind=False)
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", out)
    assert "a\\x1b[31mred\\rline\\x9b" in out and "Boom\\x1b[2J: x\\x07" in out


# --- on a terminal ----------------------------------------------------------------------------


def on_a_terminal(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 90):
    """Run ``argv`` with stdin, stdout and stderr on a 120x40 pseudo-terminal; returns (exit
    status, everything written to the terminal)."""
    import fcntl
    import pty
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    base = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    proc = subprocess.Popen(
        argv, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env={**base, **env}
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the last writer closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        status = proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        proc.kill()
        os.close(master)
    return status, b"".join(chunks).decode(errors="replace")


def supervisor_sim(*args: str) -> list[str]:
    return [sys.executable, "-m", "supervisor_sim", "--config", str(CONFIG), *args]


def test_a_silent_task_shows_a_ticking_status_line_on_a_terminal_only(tmp_path: Path):
    """A task that logs nothing shows a status line (elapsed, heartbeats, requests) on a
    terminal, cleared before the summary; with stderr not a terminal there is none."""
    runtime = f"{sys.executable} {HOSTILE} sleep"
    args = (
        "run-task", "example_dag", "hello", "--state", str(tmp_path / "s.sqlite"),
        "--runtime", runtime, "--heartbeat-interval", "0.2",
    )  # fmt: skip
    env = {"HOSTILE_SLEEP": "1.5", "TERM": "xterm"}
    status, screen = on_a_terminal(supervisor_sim(*args), tmp_path, env)
    assert status == 0, screen
    ticks = re.findall(
        r"\r\x1b\[K(?:\x1b\[2m)?\S+ example_dag.hello try 1 running ([\d.]+)s", screen
    )
    assert len(ticks) >= 2 and len(set(ticks)) >= 2, screen  # it ticked
    assert re.search(r"[1-9]\d* heartbeats? sent · 0 requests served", screen)
    # Each drawing is cleared (\r, erase line) before the next line, and none follows the summary.
    before, summary = SGR.sub("", screen).split("── example_dag.hello try 1")
    last = before.rindex("requests served")
    assert "\r\x1b[K" in before[last:] and "served" not in summary, screen
    piped = cli(*args, "--log-format", "console", cwd=tmp_path, env=env)
    assert piped.returncode == 0 and "served" not in piped.stderr and "\r" not in piped.stderr


def test_run_dag_on_a_terminal_reports_once_with_reasons_and_transcripts(tmp_path: Path):
    """run-dag on a terminal: the live view fits the screen and goes; the report is printed
    once, then each failed task's reason and transcript, and what was left upstream_failed."""
    runtime = f"{sys.executable} {REFERENCE} --bundle {BUNDLE}"
    argv = supervisor_sim(
        "run-dag", "failing_dag", "--runtime", runtime, "--state", str(tmp_path / "s.sqlite"),
        "--runs-dir", str(tmp_path / "runs"), "--retry-delay", "0.05", "--run-id", "r1",
    )  # fmt: skip
    status, screen = on_a_terminal(argv, tmp_path, {"TERM": "xterm", "NO_COLOR": "1"})
    assert status == 1, screen
    plain = SGR.sub("", screen)
    assert plain.count("failing_dag run r1: failed in") == 1, plain
    report = plain[plain.index("failing_dag run r1: failed in") :]
    assert re.search(r"broken +failed +1 ", report)
    assert re.search(r"flaky +success +2 ", report)
    assert "1 failed" in report
    match = re.search(r"broken try 1  RuntimeError: always fails\r?\n +(\S+\.jsonl)", report)
    assert match, report
    assert (tmp_path / match.group(1)).exists() or Path(match.group(1)).exists()
    assert "upstream_failed 1: cleanup (after broken)" in report


def test_run_dag_shows_map_indexes_apart_from_tries(tmp_path: Path):
    """A mapped task's row says its map indexes in the map column; tries counts tries."""
    runtime = f"{sys.executable} {REFERENCE} --bundle {BUNDLE}"
    proc = cli(
        "run-dag", "fanout_dag", "--runtime", runtime, "--state", str(tmp_path / "s.sqlite"),
        "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path,
        env={"FANOUT_SLEEP_S": "0", "COLUMNS": "120", "NO_COLOR": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"\n square +success +1 +0-3 ", proc.stderr), proc.stderr
    assert "failed" not in proc.stderr.split("fanout_dag run")[-1].split("\n", 1)[1]

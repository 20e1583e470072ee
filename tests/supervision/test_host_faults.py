"""The supervisor survives its host: intruders on its ports, SIGHUP, full disks, read-only and
damaged state, file modes (docs/reliability.md, "The host")."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import trio
from _session_helpers import SCRIPTED, SUCCEED, run_task

from supervisor_sim.transcript import read_transcript

# --- intruders on --comm and --logs -------------------------------------------------------------

#: Threads of one process connecting to a port in a loop until killed: each connects, then
#: waits until the supervisor closes the connection ("hold") or closes it at once ("flood"),
#: and connects again.
INTRUDER = textwrap.dedent(
    """
    import socket, sys, threading

    port, threads, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

    def loop():
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port)) as s:
                    if mode == "hold":
                        s.settimeout(30)
                        s.recv(1)
            except OSError:
                pass

    for _ in range(threads):
        threading.Thread(target=loop, daemon=True).start()
    threading.Event().wait()
    """
)


@pytest.mark.parametrize("mode", ["hold", "flood"])
async def test_dozens_of_intruders_per_port_cannot_keep_the_runtime_out(
    store, tmp_path: Path, mode: str
):
    """Thirty intruders per port connecting before and while the runtime connects, holding
    their connections open or opening new ones as fast as they can, are each closed, and the
    runtime's own connections are accepted in time; the rejections are recorded, the
    one-by-one records bounded."""
    intruders: list[subprocess.Popen[bytes]] = []

    def on_spawn(event: Any) -> None:
        if event.kind == "process" and event.data.get("event") == "spawn":
            for port in (event.data["comm_port"], event.data["logs_port"]):
                intruders.append(
                    subprocess.Popen(
                        [sys.executable, "-c", INTRUDER, str(port), "30", mode],
                        stdout=subprocess.DEVNULL,
                    )
                )

    try:
        with trio.fail_after(30):
            run = await run_task(
                store,
                "hello",
                runtime=SCRIPTED,
                steps=[{"send": SUCCEED}],
                sinks=[on_spawn],
                # The runtime connects after the intruders: ~1 s for them to start and connect.
                env={"SCRIPTED_CONNECT_DELAY": "1.5"},
                startup_timeout=10.0,
            )
    finally:
        for proc in intruders:
            proc.kill()
            proc.wait()
    assert run.outcome.final_state == "success", run.outcome.error
    rejects = [e for e in run.journal_events if e.kind == "process" and e.data["event"] == "reject"]
    foreign = [v for v in run.outcome.violations if v.rule == "foreign-connection"]
    # Recorded one by one up to a cap, the rest counted in one record per channel. A held
    # connection is found to be foreign; one its intruder closed at once has nobody to blame.
    assert len(foreign) <= 21
    if mode == "hold":
        assert foreign
    counted = sum(e.data.get("count", 1) for e in rejects)
    assert counted >= 30, counted
    assert len(rejects) <= 22
    connects = [
        e for e in run.journal_events if e.kind == "process" and e.data["event"] == "connect"
    ]
    assert sorted(e.data["channel"] for e in connects) == ["comm", "logs"]


# --- SIGHUP: the terminal closed ----------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = [sys.executable, str(ROOT / "tests" / "children" / "hostile.py")]
CONFIG = ROOT / "supervisor-sim.toml"


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "supervisor_sim", "--config", str(CONFIG), *args]


def _group_gone(pgid: int) -> bool:
    """No live (non-zombie) process is left in process group ``pgid``."""
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return False
        except (ProcessLookupError, psutil.Error):
            continue
    return True


def _wait_for(predicate: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_sighup_mid_run_is_handled_like_sigterm(tmp_path: Path):
    """SIGHUP to run-task is forwarded to the runtime as SIGTERM: the runtime's process group
    is gone, the state is reported, the transcript has its footer, and the exit status is 130
    (interrupted), as for SIGTERM."""
    transcript = tmp_path / "t.jsonl"
    proc = subprocess.Popen(
        _command(
            "run-task",
            "example_dag",
            "hello",
            "--runtime",
            " ".join([*HOSTILE, "sleep"]),
            "--state",
            str(tmp_path / "s.sqlite"),
            "--transcript",
            str(transcript),
            "--json",
            "-q",
        ),
        cwd=tmp_path,
        env={**os.environ, "HOSTILE_SLEEP": "30"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The session runs once the runtime has its StartupDetails (the first frame out).
        _wait_for(
            lambda: transcript.exists() and '"dir":"out"' in transcript.read_text(),
            "the runtime to start",
        )
        proc.send_signal(signal.SIGHUP)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["interrupted"] is True
    assert result["final_state"] == "failed"  # killed by the SIGTERM, no terminal message
    t = read_transcript(transcript)
    assert t.footer is not None and t.footer["final_state"] == "failed"
    [spawn] = [r for r in t.of("process") if r.get("event") == "spawn"]
    forwarded = [r for r in t.of("process") if r.get("event") == "signal"]
    assert forwarded[0]["signal"] == "SIGTERM" and forwarded[0]["target"] == "child"
    assert "SIGHUP" in forwarded[0]["reason"]
    assert _group_gone(spawn["pid"])


def test_sighup_before_the_session_kills_the_runtimes_group_then_this_process(tmp_path: Path):
    """SIGHUP between the runtime's early start and the session's own signal handling kills
    the runtime's process group, then the command, as SIGTERM does."""
    script = textwrap.dedent(
        """
        import os, signal, sys, time
        from supervisor_sim.cli._run_task import _runtime_started
        from supervisor_sim.supervision import SupervisorConfig
        # A runtime that outlives a supervisor it never connects to.
        with _runtime_started(["sh", "-c", "sleep 30"], None, SupervisorConfig()) as launch:
            print(launch.pid, flush=True)
            time.sleep(0.5)
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(30)
        print("not reached", flush=True)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGHUP, proc.stderr[-3000:]
    assert "not reached" not in proc.stdout
    pgid = int(proc.stdout.split()[0])
    _wait_for(lambda: _group_gone(pgid), "the runtime's group to go", timeout=10)


# --- full disks, read-only and damaged state --------------------------------------------------


def _sim(*args: str, cwd: Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    """``supervisor-sim ARGS``; whatever it does, its output holds no traceback."""
    proc = subprocess.run(
        _command(*args), cwd=cwd, capture_output=True, text=True, timeout=90, **kw
    )
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    return proc


def _error_line(proc: subprocess.CompletedProcess[str], status: int) -> str:
    """The one ``Error:`` line the command ended with, its exit status checked."""
    assert proc.returncode == status, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    return errors[0]


def _make_state(state: Path) -> None:
    """A state file made by one run, as a user's would be."""
    proc = _sim(
        "run-task", "example_dag", "hello", "--state", str(state), "--no-transcript", "-q",
        cwd=state.parent,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


def _ti_states(state: Path) -> list[str]:
    with sqlite3.connect(state) as db:
        return [r[0] for r in db.execute("SELECT state FROM task_instances")]


def _ti_state(state: Path, ti_id: str) -> str:
    with sqlite3.connect(state) as db:
        [(value,)] = db.execute("SELECT state FROM task_instances WHERE id = ?", (ti_id,))
    return value


def test_a_full_disk_for_the_transcript_at_the_start_is_one_line_and_status_2(tmp_path: Path):
    """--transcript /dev/full (ENOSPC on the first write): one line naming the file and the
    fix, exit 2, no runtime left, no try left running, and /dev/full untouched."""
    mode = os.stat("/dev/full").st_mode
    state = tmp_path / "s.sqlite"
    proc = _sim(
        "run-task", "example_dag", "hello", "--state", str(state), "--transcript", "/dev/full",
        cwd=tmp_path,
    )  # fmt: skip
    line = _error_line(proc, 2)
    assert "/dev/full" in line and "No space left on device" in line
    assert "--no-transcript" in line
    assert "running" not in _ti_states(state)
    assert os.stat("/dev/full").st_mode == mode


def _file_size_limit(limit: int) -> Any:
    """A preexec_fn: files this process writes stop at ``limit`` bytes (EFBIG, as a disk that
    fills up mid-run; Python ignores the SIGXFSZ that comes with it)."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_disk_that_fills_mid_run_keeps_supervising_and_exits_4(tmp_path: Path):
    """The transcript's disk fills while the runtime floods logs: the run goes on to the
    task's final state, which is reported (and written to the state), the transcript stops
    without a footer, the problem is said once in one line, and the exit status is 4."""
    state = tmp_path / "s.sqlite"
    _make_state(state)
    transcript = tmp_path / "t.jsonl"
    proc = _sim(
        "run-task", "example_dag", "hello", "--state", str(state), "--transcript",
        str(transcript), "--runtime", " ".join([*HOSTILE, "non-json-flood"]), "--json", "-q",
        cwd=tmp_path, preexec_fn=_file_size_limit(400_000),
    )  # fmt: skip
    line = _error_line(proc, 4)
    assert str(transcript) in line and "File too large" in line
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["final_state"] == "success"
    assert "File too large" in result["transcript_error"]
    assert _ti_state(state, result["ti_id"]) == "success"
    t = read_transcript(transcript)
    assert t.footer is None
    assert 300_000 < transcript.stat().st_size <= 400_000


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(lambda whole: os.urandom(8192), id="random-bytes"),
        pytest.param(lambda whole: whole[: len(whole) // 2], id="truncated-sqlite"),
    ],
)
def test_a_damaged_state_file_is_one_line_and_status_2(tmp_path: Path, content: Any):
    """A --state file of random bytes, or an SQLite file cut in half: one line naming the file
    and the fix, exit 2, and the runtime started early is gone."""
    good = tmp_path / "good.sqlite"
    _make_state(good)
    with sqlite3.connect(good) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(content(good.read_bytes()))
    proc = _sim("run-task", "example_dag", "hello", "--state", str(bad), cwd=tmp_path)
    line = _error_line(proc, 2)
    assert str(bad) in line and "--state" in line
    assert "not an SQLite database" in line or "truncated" in line or "damaged" in line


def _read_only_argv(folder: Path, argv: list[str]) -> list[str]:
    """``argv`` run where ``folder`` cannot be written: its mode for an ordinary user; for
    root, whom modes do not stop, a read-only bind mount in a mount namespace of its own."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return argv
    if shutil.which("unshare") is None:
        pytest.skip("root without unshare: no way to make a folder read-only")
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount --bind {folder} {folder}"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot make a read-only mount here: {probe.stderr.decode()[-200:]}")
    script = (
        f'mount --bind "{folder}" "{folder}" && mount -o remount,bind,ro "{folder}" && exec "$@"'
    )
    return ["unshare", "-m", "sh", "-c", script, "sh", *argv]


@pytest.mark.parametrize("existing", [False, True], ids=["new-file", "existing-file"])
def test_a_read_only_state_folder_is_one_line_and_status_2(tmp_path: Path, existing: bool):
    """--state in a folder nobody may write (a new file, or an existing state whose -wal
    cannot be made): one line naming the file, exit 2, before any task starts."""
    folder = tmp_path / "ro"
    folder.mkdir()
    state = folder / "s.sqlite"
    if existing:
        _make_state(state)
    argv = _read_only_argv(
        folder, _command("run-task", "example_dag", "hello", "--state", str(state))
    )
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=90)
    folder.chmod(0o755)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    line = _error_line(proc, 2)
    assert str(state) in line and "--state" in line


# --- file modes ---------------------------------------------------------------------------------


def test_existing_state_and_transcript_files_are_made_private(tmp_path: Path):
    """A state file, its WAL, and a transcript that exist as 0644 before the run are 0600
    after it, as files the run creates are."""
    state = tmp_path / "s.sqlite"
    _make_state(state)
    transcript = tmp_path / "t.jsonl"
    transcript.write_text("")
    for path in (state, transcript):
        path.chmod(0o644)
    proc = _sim(
        "run-task", "example_dag", "use_secret", "--state", str(state), "--transcript",
        str(transcript), "--no-redact", "-q", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    assert read_transcript(transcript).footer is not None
    for path in (state, transcript, *tmp_path.glob("s.sqlite-*")):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


@pytest.mark.parametrize("existing", [False, True], ids=["new-file", "existing-0644-file"])
def test_html_of_an_unredacted_transcript_is_private(tmp_path: Path, existing: bool):
    """show --html of a transcript recorded with --no-redact writes a 0600 page, also over a
    0644 file that was there before."""
    transcript = tmp_path / "t.jsonl"
    _sim(
        "run-task", "example_dag", "use_secret", "--state", ":memory:", "--transcript",
        str(transcript), "--no-redact", "-q", cwd=tmp_path,
    )  # fmt: skip
    assert read_transcript(transcript).header["redacted"] is False
    page = tmp_path / "t.html"
    if existing:
        page.write_text("old")
        page.chmod(0o644)
    proc = _sim("show", str(transcript), "--html", str(page), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert stat.S_IMODE(os.stat(page).st_mode) == 0o600


def test_run_dag_whose_transcripts_fill_the_disk_runs_every_task_and_exits_4(tmp_path: Path):
    """run-dag whose transcripts stop mid-task (a file-size limit) still runs and reports
    every task; the last line names the first incomplete transcript, and the status is 4."""
    bundle = tmp_path / "bundle.py"
    bundle.write_text(
        "def a(ctx):\n    return 1\n\ndef b(ctx):\n    return 2\n\n"
        'DAGS = {"tiny": {"a": a, "b": b}}\n'
    )
    runtime = f"{sys.executable} {ROOT / 'runtimes' / 'reference' / 'runtime.py'} --bundle {bundle}"
    proc = _sim(
        "run-dag", "tiny", "--runtime", runtime, "--state", ":memory:", "--json", "-q",
        cwd=tmp_path, preexec_fn=_file_size_limit(4000),
    )  # fmt: skip
    line = _error_line(proc, 4)
    assert "cannot write the transcript" in line and "File too large" in line
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {t: r["state"] for t, r in summary["tasks"].items()} == {"a": "success", "b": "success"}
    assert len(summary["transcript_errors"]) == 2

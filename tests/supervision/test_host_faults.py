"""The supervisor survives its host: intruders on its ports, SIGHUP, full disks, read-only and
damaged state, file modes (docs/reliability.md, "The host")."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import trio
from _session_helpers import SCRIPTED, run_task

from supervisor_sim.transcript import read_transcript

SUCCEED = {
    "type": "SucceedTask",
    "state": "success",
    "end_date": "$now",
    "task_outlets": [],
    "outlet_events": [],
}

# --- intruders on --comm and --logs -------------------------------------------------------------

#: Threads of one process connecting to a port in a loop: each connects, waits until the
#: supervisor closes the connection, and connects again, until killed.
INTRUDER = textwrap.dedent(
    """
    import socket, sys, threading

    port, threads = int(sys.argv[1]), int(sys.argv[2])

    def loop():
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port)) as s:
                    s.settimeout(30)
                    s.recv(1)
            except OSError:
                pass

    for _ in range(threads):
        threading.Thread(target=loop, daemon=True).start()
    threading.Event().wait()
    """
)


async def test_dozens_of_intruders_per_port_cannot_keep_the_runtime_out(store, tmp_path: Path):
    """Thirty connections per port arriving before and while the runtime connects are each
    closed, and the runtime's own connections are accepted in time; the rejections are
    recorded, the one-by-one records bounded."""
    intruders: list[subprocess.Popen[bytes]] = []

    def on_spawn(event: Any) -> None:
        if event.kind == "process" and event.data.get("event") == "spawn":
            for port in (event.data["comm_port"], event.data["logs_port"]):
                intruders.append(
                    subprocess.Popen(
                        [sys.executable, "-c", INTRUDER, str(port), "30"],
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
    # Recorded one by one up to a cap, the rest counted in one record per channel.
    assert 0 < len(foreign) <= 21
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
        f"""
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

"""The supervisor survives its host: intruders on its ports, SIGHUP, full disks, read-only and
damaged state, file modes (docs/reliability.md, "The host")."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import trio
from _session_helpers import SCRIPTED, run_task

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
    print("ready", flush=True)
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
                        stdout=subprocess.PIPE,
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

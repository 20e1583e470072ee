"""supervisor-sim proxy between a runtime and an Airflow-like supervisor, seen from both ends.

``FakeAirflow`` plays Airflow's coordinator and supervisor as far as the wire goes: it binds
--comm/--logs, launches ``supervisor-sim proxy ... -- RUNTIME`` with the two addresses appended
(stdout and stderr piped, as Airflow's socketpairs), sends ``StartupDetails``, answers every
request from a table, closes a channel at its end of stream, and keeps every byte. The tests
check what the proxy must never change (the bytes, their order, the exit status, the signals)
and what it must write (the transcript). The real Airflow tier is
tests/integration/test_real_proxy.py.
"""

from __future__ import annotations

import json
import os
import re
import resource
import selectors
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgpack
import pytest

from supervisor_sim.runner.proxy import bundle_metadata, transcript_name
from supervisor_sim.transcript import read_transcript

ROOT = Path(__file__).resolve().parents[2]
SCRIPTED = ROOT / "tests" / "children" / "scripted.py"
REFERENCE = ROOT / "runtimes" / "reference" / "runtime.py"
DEADLINE = 30.0

TI = {
    "id": str(uuid.UUID("01234567-89ab-4def-8123-456789abcdef")),
    "task_id": "read_var_conn",
    "dag_id": "example_dag",
    "run_id": "manual__proxy_test",
    "try_number": 2,
    "dag_version_id": str(uuid.UUID("11111111-2222-4333-8444-555555555555")),
    "map_index": -1,
    "hostname": None,
    "context_carrier": None,
    "queue": "default",
}
PASSWORD = "pr0xy-pa55word"
MASKED = "value-to-mask-42"
TOKEN = "tok-sensitive-987"


def frame(req_id: int, body: Any = None, error: Any = None) -> bytes:
    payload = msgpack.packb([req_id, body, error], datetime=True)
    return len(payload).to_bytes(4, "big") + payload


def startup(ti: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
    return {
        "type": "StartupDetails",
        "ti": ti or TI,
        "dag_rel_path": "example_dag.py",
        "bundle_info": {"name": "dags-folder", "version": None},
        "start_date": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "ti_context": {
            "dag_run": {
                "dag_id": TI["dag_id"],
                "run_id": TI["run_id"],
                "logical_date": None,
                "data_interval_start": None,
                "data_interval_end": None,
                "run_after": datetime(2026, 1, 2, tzinfo=UTC),
                "start_date": datetime(2026, 1, 2, tzinfo=UTC),
                "end_date": None,
                "clear_number": 0,
                "run_type": "manual",
                "state": "running",
                "conf": {},
                "triggered_by": "cli",
                "consumed_asset_events": [],
            },
            "task_reschedule_count": 0,
            "max_tries": 0,
            "variables": [],
            "connections": [],
            "upstream_map_indexes": None,
            "next_method": None,
            "next_kwargs": None,
            "xcom_keys_to_clear": [],
            "should_retry": False,
            **context,
        },
        "sentry_integration": "",
    }


def answer(body: dict[str, Any]) -> tuple[Any, Any]:
    """What this fake Airflow answers to a request: (body, error)."""
    kind = body.get("type")
    if kind == "GetVariable":
        value = TOKEN if "token" in body["key"] else f"value-of-{body['key']}"
        return {"type": "VariableResult", "key": body["key"], "value": value}, None
    if kind == "GetConnection":
        return {
            "type": "ConnectionResult",
            "conn_id": body["conn_id"],
            "conn_type": "http",
            "host": "example.invalid",
            "schema": None,
            "login": "bob",
            "password": PASSWORD,
            "port": None,
            "extra": None,
        }, None
    if kind == "GetXCom":
        return {"type": "XComResult", "key": body["key"], "value": None}, None
    return None, None


@dataclass
class Run:
    """What Airflow's end saw of one proxied try."""

    returncode: int
    comm_in: bytes
    logs_in: bytes
    stdout: bytes
    stderr: bytes
    sent: bytes
    requests: list[dict[str, Any]]
    connected: bool
    pid: int
    seconds: float
    folder: Path

    def transcripts(self) -> list[Path]:
        return sorted(self.folder.glob("*.jsonl")) if self.folder.is_dir() else []

    def transcript(self) -> Any:
        (path,) = self.transcripts()
        return read_transcript(path)


@dataclass
class FakeAirflow:
    """Airflow's side of one try (see the module's docstring)."""

    tmp: Path
    runtime: list[str]
    proxy_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    first: dict[str, Any] | bytes | None = None
    #: Called with (request body, the proxy's Popen) for every request, before it is answered.
    on_request: Callable[[dict[str, Any], subprocess.Popen[bytes]], None] | None = None
    command: list[str] | None = None
    preexec: Callable[[], None] | None = None

    def run(self, timeout: float = DEADLINE) -> Run:
        folder = self.tmp / "transcripts"
        servers = {name: socket.create_server(("127.0.0.1", 0)) for name in ("comm", "logs")}
        addresses = [
            f"--{name}=127.0.0.1:{sock.getsockname()[1]}" for name, sock in servers.items()
        ]
        command = self.command or [
            sys.executable, "-m", "supervisor_sim", "proxy", "--dir", str(folder),
            *self.proxy_args, "--", *self.runtime,
        ]  # fmt: skip
        started = time.monotonic()
        proc = subprocess.Popen(
            [*command, *addresses],
            cwd=self.tmp,
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=self.preexec,
        )
        deadline = started + timeout
        out = {
            "comm": bytearray(),
            "logs": bytearray(),
            "stdout": bytearray(),
            "stderr": bytearray(),
        }
        sent = bytearray()
        requests: list[dict[str, Any]] = []
        conns: dict[str, socket.socket] = {}
        sel = selectors.DefaultSelector()
        for name, sock in servers.items():
            sel.register(sock, selectors.EVENT_READ, ("server", name))
        assert proc.stdout is not None and proc.stderr is not None
        sel.register(proc.stdout, selectors.EVENT_READ, ("pipe", "stdout"))
        sel.register(proc.stderr, selectors.EVENT_READ, ("pipe", "stderr"))
        decoded = 0
        try:
            while len(sel.get_map()) > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the proxied try did not end within {timeout:g}s")
                if proc.poll() is not None and not conns and servers:
                    # Exited before connecting: Airflow gives up on the listeners.
                    for name in list(servers):
                        server = servers.pop(name)
                        sel.unregister(server)
                        server.close()
                for key, _ in sel.select(min(left, 0.1)):
                    kind, name = key.data
                    if kind == "server":
                        conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                        sel.unregister(key.fileobj)
                        servers.pop(name).close()
                        conns[name] = conn
                        sel.register(conn, selectors.EVENT_READ, ("conn", name))
                        if len(conns) == 2 and self.first is not None:
                            first = self.first
                            data = first if isinstance(first, bytes) else frame(0, first)
                            conns["comm"].sendall(data)
                            sent.extend(data)
                        continue
                    if kind == "pipe":
                        data = os.read(key.fileobj.fileno(), 65536)  # type: ignore[union-attr]
                    else:
                        try:
                            data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                        except ConnectionResetError:
                            data = b""
                    if not data:
                        sel.unregister(key.fileobj)
                        if kind == "conn":
                            key.fileobj.close()  # type: ignore[union-attr]
                        continue
                    out[name].extend(data)
                    if name != "comm":
                        continue
                    buf = out["comm"]
                    while len(buf) - decoded >= 4:
                        size = int.from_bytes(buf[decoded : decoded + 4], "big")
                        if len(buf) - decoded - 4 < size:
                            break
                        payload = bytes(buf[decoded + 4 : decoded + 4 + size])
                        decoded += 4 + size
                        message = msgpack.unpackb(payload, timestamp=3, strict_map_key=False)
                        body = message[1] if isinstance(message[1], dict) else {}
                        requests.append(body)
                        if self.on_request is not None:
                            self.on_request(body, proc)
                        reply = frame(message[0], *answer(body))
                        try:
                            conns["comm"].sendall(reply)
                            sent.extend(reply)
                        except OSError:
                            pass
            returncode = proc.wait(max(0.1, deadline - time.monotonic()))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for sock in [*servers.values(), *conns.values()]:
                sock.close()
            sel.close()
            proc.stdout.close()
            proc.stderr.close()
        return Run(
            returncode=returncode,
            comm_in=bytes(out["comm"]),
            logs_in=bytes(out["logs"]),
            stdout=bytes(out["stdout"]),
            stderr=bytes(out["stderr"]),
            sent=bytes(sent),
            requests=requests,
            connected=bool(conns),
            pid=proc.pid,
            seconds=time.monotonic() - started,
            folder=folder,
        )


def scripted(tmp: Path, steps: list[dict[str, Any]], **kwargs: Any) -> FakeAirflow:
    """A fake Airflow whose runtime is tests/children/scripted.py following ``steps``."""
    env = {"SCRIPTED_STEPS": json.dumps(steps), **kwargs.pop("env", {})}
    kwargs.setdefault("first", startup())
    return FakeAirflow(tmp, [sys.executable, str(SCRIPTED)], env=env, **kwargs)


SUCCEED = {"send": {"type": "SucceedTask", "state": "success", "end_date": "$now",
                    "task_outlets": [], "outlet_events": []}}  # fmt: skip
LOG = {"timestamp": "2026-01-01T00:00:00Z", "level": "info", "event": "hello from the runtime"}


def process_events(transcript: Any, event: str) -> list[dict[str, Any]]:
    return [r for r in transcript.of("process") if r.get("event") == event]


# --- what crosses, unchanged -------------------------------------------------------------------

#: Two requests as a runtime in another language may encode them: [0, {"type": "GetVariable",
#: "key": "a"}, nil] with its id 0 as a uint64 (not minimal), then [1, {"type": "MaskSecret",
#: 1: "x"}, nil] with an int map key.
EXACT_FRAMES = [
    "93cf0000000000000000" "82a474797065ab4765745661726961626c65a36b6579a161" "c0",
    "9301" "82a474797065aa4d61736b536563726574" "01a178" "c0",
]  # fmt: skip

#: A runtime that sends $FRAMES (hex) in odd pieces (the first frame split in two writes, the
#: rest of it and the second frame in one), log lines cut mid-line, and keeps every byte it
#: receives in $OUT.
EXACT_RUNTIME = r"""
import os, socket, sys, time
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
def connect(hp):
    h, p = hp.rsplit(":", 1)
    return socket.create_connection((h, int(p)))
comm, logs = connect(args["comm"]), connect(args["logs"])
frames = bytes.fromhex(os.environ["FRAMES"])
received = bytearray()
comm.settimeout(10)
while len(received) < int(os.environ["EXPECT"]):
    received += comm.recv(65536)
comm.sendall(frames[:7]); time.sleep(0.05); comm.sendall(frames[7:])
logs.sendall(b'{"level": "info", "event": "caf\xc3\xa9 \\u00e9"}\n{"level":"info","event":"two"}')
time.sleep(0.05)
logs.sendall(b'\nnot json\n')
while True:
    chunk = comm.recv(65536)
    if not chunk:
        break
    received += chunk
    if len(received) >= int(os.environ["EXPECT_ALL"]):
        break
open(os.environ["OUT"], "wb").write(bytes(received))
sys.stdout.write("out line\n"); sys.stdout.flush()
sys.stderr.write("err line without newline"); sys.stderr.flush()
"""


def test_every_byte_crosses_unchanged_both_ways(tmp_path: Path) -> None:
    """Airflow receives exactly the runtime's bytes and the runtime exactly Airflow's, in order,
    frames, log lines and output alike, whatever their chunking and encoding."""
    script = tmp_path / "exact.py"
    script.write_text(EXACT_RUNTIME)
    first = frame(0, startup())
    airflow = FakeAirflow(tmp_path, [sys.executable, str(script)], first=first)
    replies = frame(0, *answer({"type": "GetVariable", "key": "a"})) + frame(1)
    airflow.env = {
        "EXPECT": str(len(first)),
        "EXPECT_ALL": str(len(first) + len(replies)),
        "OUT": str(tmp_path / "received.bin"),
        "FRAMES": _exact_frames().hex(),
    }
    run = airflow.run()
    assert run.returncode == 0, run.stderr
    expected_comm = _exact_frames()
    assert run.comm_in == expected_comm
    assert run.logs_in == (
        b'{"level": "info", "event": "caf\xc3\xa9 \\u00e9"}\n{"level":"info","event":"two"}'
        b"\nnot json\n"
    )
    assert (tmp_path / "received.bin").read_bytes() == run.sent == first + replies
    assert run.stdout == b"out line\n"
    assert run.stderr == b"err line without newline"
    t = run.transcript()
    assert [r["dir"] for r in t.frames()] == ["out", "in", "in", "out", "out"]
    payloads = [base64_bytes(r["raw"]) for r in t.frames("in")]
    assert b"".join(len(p).to_bytes(4, "big") + p for p in payloads) == expected_comm
    replayed = b"".join(
        len(p).to_bytes(4, "big") + p for p in (base64_bytes(r["raw"]) for r in t.frames("out"))
    )
    assert replayed == run.sent
    assert [r["id"] for r in t.frames("in")] == [0, 1]
    assert [r["offset"] for r in t.frames("in")] == [0, len(payloads[0]) + 4]
    # In order within each channel (the channels' relative order is the kernel's).
    logs = sorted(((r["source"], r["line"]) for r in t.of("log")), key=lambda x: x[0])
    assert logs == [
        ("logs", {"level": "info", "event": "café é"}),
        ("logs", {"level": "info", "event": "two"}),
        ("logs", {"level": "info", "event": "not json", "malformed": True}),
        ("stderr", {"level": "error", "event": "err line without newline",
                    "logger": "task.stderr"}),
        ("stdout", {"level": "info", "event": "out line", "logger": "task.stdout"}),
    ]  # fmt: skip


def _exact_frames() -> bytes:
    payloads = [bytes.fromhex(h) for h in EXACT_FRAMES]
    return b"".join(len(p).to_bytes(4, "big") + p for p in payloads)


def base64_bytes(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


def test_the_transcript_records_the_try_as_run_task_would(tmp_path: Path) -> None:
    """Header (a proxy recording, the runtime command, the TI from StartupDetails), every frame
    with its exact bytes and decoded body, log lines, process events with times, and a footer
    with the final state and exit code."""
    steps = [
        {"log": json.dumps(LOG)},
        {"send": {"type": "GetVariable", "key": "peer_var"}},
        {"stdout": "printed"},
        SUCCEED,
    ]
    run = scripted(tmp_path, steps).run()
    assert run.returncode == 0, run.stderr
    t = run.transcript()
    header = t.header
    assert header["redacted"] is True
    assert header["runtime"] == [sys.executable, str(SCRIPTED)]
    assert header["api"] == "proxy" and set(header["proxy"]) >= {"comm", "logs", "pid"}
    assert header["task"]["ti"]["id"] == TI["id"]
    assert (header["task"]["dag_id"], header["task"]["try_number"]) == ("example_dag", 2)
    types = [(r["dir"], r["type"]) for r in t.frames()]
    assert types == [
        ("out", "StartupDetails"),
        ("in", "GetVariable"),
        ("out", "VariableResult"),
        ("in", "SucceedTask"),
        ("out", None),
    ]
    # The exact bytes Airflow received, frame by frame (nothing here is secret).
    payloads = b"".join(
        len(raw).to_bytes(4, "big") + raw
        for raw in (base64_bytes(r["raw"]) for r in t.frames("in"))
    )
    assert payloads == run.comm_in
    # Each frame's offset in the runtime's stream.
    sizes = [r["len"] + 4 for r in t.frames("in")]
    assert [r["offset"] for r in t.frames("in")] == [0, sizes[0]]
    assert t.frames("out")[1]["body"] == {
        "type": "VariableResult", "key": "peer_var", "value": "value-of-peer_var"
    }  # fmt: skip
    logs = {(r["source"], r["line"]["event"]) for r in t.of("log")}
    assert logs == {("logs", "hello from the runtime"), ("stdout", "printed")}
    events = [r["event"] for r in t.of("process")]
    assert events[:1] == ["spawn"] and "exit" in events
    assert {"connect", "connect-upstream", "eof"} <= set(events)
    times = [r["t"] for r in t.records]
    assert times == sorted(times) and [r["seq"] for r in t.records] == list(
        range(1, len(t.records) + 1)
    )
    assert t.footer is not None and t.truncated is None and not t.problems
    assert (t.footer["final_state"], t.footer["exit_code"]) == ("success", 0)


@pytest.mark.parametrize(
    ("ti", "expected"),
    [
        ({}, r"example_dag\.read_var_conn\.manual__proxy_test\.try2\.\d{8}T\d{6}\.\d{6}Z\.jsonl"),
        ({"map_index": 3, "run_id": "scheduled__2026-01-01T00:00:00+00:00"},
         r"example_dag\.read_var_conn\.scheduled__2026-01-01T00_00_00\+00_00\.try2\.map3\."
         r"\d{8}T\d{6}\.\d{6}Z\.jsonl"),
    ],
)  # fmt: skip
def test_one_owner_only_file_per_try_named_by_the_try(
    tmp_path: Path, ti: dict[str, Any], expected: str
) -> None:
    """Each try gets its own file in the folder, named by DAG, task, run, try and map index
    (characters a file name cannot hold replaced), mode 0600 in a 0700 folder."""
    first = startup({**TI, **ti})
    run = scripted(tmp_path, [SUCCEED], first=first).run()
    assert run.returncode == 0, run.stderr
    (path,) = run.transcripts()
    assert re.fullmatch(expected, path.name), path.name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(run.folder.stat().st_mode) == 0o700
    second = scripted(tmp_path, [SUCCEED], first=first).run()
    assert len(second.transcripts()) == 2
    assert transcript_name(None, "S") == "proxy.unstarted.S.jsonl"


# --- the end of the try passes through ---------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 3, 124])
def test_the_runtimes_exit_status_is_the_proxys(tmp_path: Path, code: int) -> None:
    """The proxy exits with the runtime's status, whatever it is."""
    run = scripted(tmp_path, [{"exit": code}]).run()
    assert run.returncode == code, run.stderr
    t = run.transcript()
    (exit_record,) = process_events(t, "exit")
    assert exit_record["exit_code"] == code
    assert t.footer is not None and t.footer["exit_code"] == code


#: A runtime that connects, reads StartupDetails and kills itself with $SIGNAL.
SELF_KILLING = r"""
import os, signal, socket, sys
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
socks = [socket.create_connection((a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])))
         for a in (args["comm"], args["logs"])]
socks[0].recv(4)
os.kill(os.getpid(), int(os.environ["SIGNAL"]))
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV, signal.SIGTERM])
def test_a_runtime_killed_by_a_signal_ends_the_proxy_by_the_same_signal(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """A runtime that dies of signal N makes the proxy die of N too, so Airflow sees -N as it
    would without the proxy (and the proxy leaves no core dump)."""
    script = tmp_path / "self_killing.py"
    script.write_text(SELF_KILLING)
    airflow = FakeAirflow(tmp_path, [sys.executable, str(script)], first=startup())
    airflow.env = {"SIGNAL": str(int(sig))}
    run = airflow.run()
    assert run.returncode == -sig, run.stderr
    assert not list(tmp_path.glob("core*"))
    (exit_record,) = process_events(run.transcript(), "exit")
    assert (exit_record["exit_code"], exit_record["signal"]) == (-sig, sig.name)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_from_airflow_reaches_the_runtime(tmp_path: Path, sig: signal.Signals) -> None:
    """SIGTERM, SIGINT or SIGHUP sent to the proxy goes to the runtime's process group; the
    runtime dies of it, and so does the proxy; the transcript records the signal, then the
    exit, then a footer that leaves the final state to Airflow."""

    def kill_on_first(body: dict[str, Any], proc: subprocess.Popen[bytes]) -> None:
        if body.get("type") == "GetVariable":
            proc.send_signal(sig)

    steps = [{"send": {"type": "GetVariable", "key": "v"}, "no_wait": True}, {"sleep": 30}]
    run = scripted(tmp_path, steps, on_request=kill_on_first).run()
    assert run.returncode == -sig, run.stderr
    assert run.seconds < 20
    t = run.transcript()
    events = [(r["event"], r.get("signal")) for r in t.of("process")]
    assert ("signal", sig.name) in events
    assert events.index(("signal", sig.name)) < events.index(("exit", sig.name))
    assert t.footer is not None and t.footer["final_state"] is None
    assert t.footer["signals_received"] == [sig.name]


def test_a_runtime_ignoring_sigterm_dies_when_airflow_sigkills_the_proxy(
    tmp_path: Path,
) -> None:
    """Airflow's escalation ends with SIGKILL, which the proxy cannot pass on; the kernel kills
    the runtime with it (PR_SET_PDEATHSIG), and the transcript ends with the forwarded SIGTERM."""
    state: dict[str, Any] = {}

    def escalate(body: dict[str, Any], proc: subprocess.Popen[bytes]) -> None:
        if body.get("type") == "GetVariable":
            proc.send_signal(signal.SIGTERM)
            time.sleep(1.0)  # the runtime ignores it
            state["alive_after_sigterm"] = proc.poll() is None
            proc.send_signal(signal.SIGKILL)

    steps = [
        {"ignore_sigterm": True},
        {"send": {"type": "GetVariable", "key": "v"}, "no_wait": True},
        {"sleep": 60},
    ]
    run = scripted(tmp_path, steps, on_request=escalate).run()
    assert run.returncode == -signal.SIGKILL
    assert state["alive_after_sigterm"]
    t = run.transcript()
    (spawn,) = process_events(t, "spawn")
    assert _gone(spawn["pid"], within=5.0), "the runtime outlived the SIGKILLed proxy"
    assert t.footer is None
    assert t.of("process")[-1]["event"] == "signal"
    assert t.of("process")[-1]["signal"] == "SIGTERM"


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A zombie waiting for init to reap it is gone as far as the task goes.
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def test_a_runtime_that_never_connects_is_seen_as_one_by_airflow(tmp_path: Path) -> None:
    """The proxy connects to Airflow only once the runtime connected to it: a runtime that exits
    first leaves Airflow with no connection and the runtime's exit status, and the transcript
    (named ``proxy.unstarted``) says what happened."""
    run = scripted(tmp_path, [], env={"SCRIPTED_NO_CONNECT": "0.2", "SCRIPTED_EXIT": "4"}).run()
    assert run.returncode == 4
    assert not run.connected
    (path,) = run.transcripts()
    assert path.name.startswith("proxy.unstarted.")
    t = read_transcript(path)
    assert [r["event"] for r in t.of("process")] == ["spawn", "exit"]
    assert "task" not in t.header


def test_a_runtime_that_cannot_start_fails_like_a_missing_command(tmp_path: Path) -> None:
    """A runtime command that does not exist: one line on stderr, exit 127, nothing sent."""
    run = FakeAirflow(tmp_path, [str(tmp_path / "no-such-runtime")], first=startup()).run()
    assert run.returncode == 127
    assert not run.connected
    assert run.stderr.count(b"supervisor-sim proxy:") == 1
    assert b"cannot start the runtime" in run.stderr


#: A runtime that writes its --comm address to $PORT_FILE, waits for $GO_FILE (the test has
#: connected to that port from outside meanwhile), then connects and runs as scripted.py.
INTRUDED = r"""
import os, runpy, sys, time
comm = next(a for a in sys.argv if a.startswith("--comm="))[7:]
open(os.environ["PORT_FILE"], "w").write(comm)
deadline = time.monotonic() + 20
while not os.path.exists(os.environ["GO_FILE"]) and time.monotonic() < deadline:
    time.sleep(0.02)
sys.argv = [os.environ["SCRIPTED"], *sys.argv[1:]]
runpy.run_path(os.environ["SCRIPTED"], run_name="__main__")
"""


def test_a_connection_from_outside_the_runtimes_tree_is_rejected(tmp_path: Path) -> None:
    """A process that is not the runtime or one of its descendants cannot take the runtime's
    place on the proxy's --comm: it is closed and recorded, Airflow never sees it, and the
    runtime's own connection goes through."""
    script = tmp_path / "intruded.py"
    script.write_text(INTRUDED)
    port_file, go_file = tmp_path / "port", tmp_path / "go"
    airflow = scripted(tmp_path, [SUCCEED], env={
        "PORT_FILE": str(port_file), "GO_FILE": str(go_file), "SCRIPTED": str(SCRIPTED),
    })  # fmt: skip
    airflow.runtime = [sys.executable, str(script)]
    intruder: list[socket.socket] = []

    def intrude() -> None:
        deadline = time.monotonic() + 20
        while not port_file.exists() or not port_file.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        host, port = port_file.read_text().rsplit(":", 1)
        sock = socket.create_connection((host, int(port)))
        intruder.append(sock)
        sock.settimeout(10)
        assert sock.recv(1) == b""  # closed by the proxy, nothing sent
        go_file.write_text("")

    import threading

    thread = threading.Thread(target=intrude, daemon=True)
    thread.start()
    run = airflow.run()
    thread.join(10)
    for sock in intruder:
        sock.close()
    assert run.returncode == 0, run.stderr
    assert [r["type"] for r in run.requests] == ["SucceedTask"]
    events = [(r["event"], r.get("channel")) for r in run.transcript().of("process")]
    assert events.index(("reject", "comm")) < events.index(("connect", "comm"))


def test_a_frame_larger_than_a_read_is_forwarded_and_recorded_whole(tmp_path: Path) -> None:
    """A SetXCom larger than a read (100 kB; 64 kB reads) crosses in several: Airflow gets it
    byte for byte, and the transcript holds it as one frame with its exact bytes."""
    value = "x" * 100_000  # an environment string holds at most 128 kB (the script)
    steps = [
        {"send": {"type": "SetXCom", "key": "big", "value": value, "dag_id": "d",
                  "run_id": "r", "task_id": "t", "map_index": -1}},
        SUCCEED,
    ]  # fmt: skip
    run = scripted(tmp_path, steps).run()
    assert run.returncode == 0, run.stderr
    assert [r["type"] for r in run.requests] == ["SetXCom", "SucceedTask"]
    assert run.requests[0]["value"] == value
    (xcom,) = [r for r in run.transcript().frames("in") if r["type"] == "SetXCom"]
    raw = base64_bytes(xcom["raw"])
    assert run.comm_in.startswith(len(raw).to_bytes(4, "big") + raw)
    assert xcom["body"]["value"] == value


# --- secrets -----------------------------------------------------------------------------------

SECRET_STEPS = [
    {"send": {"type": "GetConnection", "conn_id": "peer_conn"}},
    {"send": {"type": "GetVariable", "key": "api_token"}},
    {"send": {"type": "MaskSecret", "value": MASKED, "name": None}},
    {"log": json.dumps({**LOG, "event": f"using {PASSWORD} and {TOKEN} and {MASKED}"})},
    {"stdout": f"password={PASSWORD}"},
    SUCCEED,
]


def test_secrets_learned_from_the_frames_are_masked_in_the_transcript(tmp_path: Path) -> None:
    """A connection's password, a sensitive variable's value and a MaskSecret value are masked
    everywhere in the transcript (frames, logs, output), while the runtime gets them as sent."""
    out = tmp_path / "seen.json"
    run = scripted(tmp_path, SECRET_STEPS, env={"SCRIPTED_OUT": str(out)}).run()
    assert run.returncode == 0, run.stderr
    seen = json.loads(out.read_text())
    assert seen["replies"][0][1]["password"] == PASSWORD
    assert seen["replies"][1][1]["value"] == TOKEN
    (path,) = run.transcripts()
    data = path.read_bytes()
    for secret in (PASSWORD, TOKEN, MASKED):
        assert secret.encode() not in data
    t = read_transcript(path)
    connection = t.frames("out")[1]
    assert connection["body"]["password"] == "***" and connection.get("raw_redacted") is True
    assert "***" in t.of("log")[0]["line"]["event"]


def test_no_redact_keeps_the_secrets(tmp_path: Path) -> None:
    """With --no-redact the transcript holds the frames' exact bytes, secrets included."""
    run = scripted(tmp_path, SECRET_STEPS, proxy_args=["--no-redact"]).run()
    assert run.returncode == 0, run.stderr
    t = run.transcript()
    assert t.header["redacted"] is False
    assert t.frames("out")[1]["body"]["password"] == PASSWORD


# --- recording can fail; the task cannot --------------------------------------------------------


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))


@pytest.mark.parametrize("where", ["uncreatable-folder", "dev-full", "file-size-limit"])
def test_a_transcript_that_cannot_be_written_leaves_the_task_unchanged(
    tmp_path: Path, where: str
) -> None:
    """A folder that cannot be made, a full disk (/dev/full) or a file-size limit reached
    mid-run: the try runs exactly as it would (same bytes both ways, same exit status) and the
    proxy says so once on stderr."""
    steps = [
        {"send": {"type": "GetVariable", "key": "v"}},
        {"log": json.dumps(LOG)},
        {"send": {"type": "GetVariable", "key": "w"}},
        SUCCEED,
    ]
    airflow = scripted(tmp_path, steps)
    if where == "uncreatable-folder":
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("")
        airflow.proxy_args = ["--dir", str(blocker / "transcripts")]
    elif where == "dev-full":
        airflow.proxy_args = ["--transcript", "/dev/full"]
    else:
        airflow.preexec = _limit_file_size
        airflow.env["SCRIPTED_STEPS"] = json.dumps([{"log": json.dumps(LOG)}] * 40 + steps)
    run = airflow.run()
    assert run.returncode == 0
    assert [r.get("type") for r in run.requests][-3:] == ["GetVariable", "GetVariable",
                                                         "SucceedTask"]  # fmt: skip
    assert run.stderr.count(b"supervisor-sim proxy:") == 1, run.stderr
    assert b"Traceback" not in run.stderr
    if where == "file-size-limit":
        t = run.transcript()
        assert t.footer is None and t.truncated


# --- replay, show, diff ------------------------------------------------------------------------


def _record_reference(tmp: Path, task: str = "read_var_conn") -> tuple[Run, Path]:
    ti = {**TI, "task_id": task}
    airflow = FakeAirflow(tmp, [sys.executable, str(REFERENCE)], first=startup(ti))
    run = airflow.run()
    assert run.returncode == 0, run.stderr
    (path,) = run.transcripts()
    return run, path


def replay(path: Path, tmp: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run(
        [sys.executable, "-m", "supervisor_sim", "replay", str(path), "--json", "-q", *extra],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, proc.stderr[-3000:]
    return proc.returncode, json.loads(lines[-1]), proc.stderr


def test_replay_gives_the_runtime_the_recorded_replies_and_matches(tmp_path: Path) -> None:
    """A proxy transcript holds no HTTP calls; its replay answers each request with the reply
    Airflow gave (masked secrets included) and the unchanged runtime matches."""
    run, path = _record_reference(tmp_path)
    assert [r["type"] for r in run.requests] == [
        "GetVariable", "GetConnection", "SetXCom", "SucceedTask"
    ]  # fmt: skip
    code, result, stderr = replay(path, tmp_path)
    assert code == 0, stderr
    assert result["matched"] is True
    assert result["final_state"] == result["recorded_final_state"] == "success"


CHANGED_BUNDLE = """
def read_var_conn(ctx):
    value = ctx.get_variable("peer_var")
    conn = ctx.get_connection("another_conn")
    return {"var": value, "host": conn.get("host")}

DAGS = {"example_dag": {"read_var_conn": read_var_conn}}
"""


def test_replay_of_a_changed_runtime_diverges_at_the_first_changed_frame(tmp_path: Path) -> None:
    """A runtime that now asks for another connection diverges at that request (runtime frame
    #1), reported as the replay of any transcript reports it."""
    _, path = _record_reference(tmp_path)
    bundle = tmp_path / "changed.py"
    bundle.write_text(CHANGED_BUNDLE)
    runtime = f"{sys.executable} {REFERENCE} --bundle {bundle}"
    code, result, stderr = replay(path, tmp_path, "--runtime", runtime)
    assert code == 1, stderr
    first = result["divergences"][0]
    assert (first["index"], first["kind"]) == (1, "frame")
    assert any("another_conn" in d for d in first["differences"]), first
    assert "divergence at runtime frame #1" in stderr


def test_show_and_the_html_view_read_a_proxy_transcript(tmp_path: Path) -> None:
    """show prints the recorded frames and show --html writes the view, as for any transcript."""
    _, path = _record_reference(tmp_path)
    show = subprocess.run(
        [sys.executable, "-m", "supervisor_sim", "show", str(path)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert show.returncode == 0, show.stderr
    assert "GetConnection" in show.stdout and "StartupDetails" in show.stdout
    html = tmp_path / "view.html"
    view = subprocess.run(
        [sys.executable, "-m", "supervisor_sim", "show", str(path), "--html", str(html)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert view.returncode == 0, view.stderr
    assert "GetConnection" in html.read_text()


def test_diff_compares_a_proxy_transcript_with_a_run_task_transcript(tmp_path: Path) -> None:
    """diff lines up a proxy recording with a local run-task recording of the same task frame
    by frame; the HTTP calls only one side could see are not counted as differences."""
    _, path = _record_reference(tmp_path)
    local = tmp_path / "local.jsonl"
    fixtures = tmp_path / "fixtures.toml"
    fixtures.write_text(
        '[variables]\npeer_var = "value-of-peer_var"\n'
        '[connections.peer_conn]\nconn_type = "http"\nhost = "example.invalid"\nlogin = "bob"\n'
    )
    run_task = subprocess.run(
        [sys.executable, "-m", "supervisor_sim", "run-task", "example_dag", "read_var_conn",
         "--state", ":memory:", "--fixtures", str(fixtures), "--transcript", str(local), "-q",
         "--runtime", f"{sys.executable} {REFERENCE}"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert run_task.returncode == 0, run_task.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "supervisor_sim", "diff", str(path), str(local), "--json"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    result = json.loads(proc.stdout)
    kinds = {d["kind"] for d in result["details"]}
    assert "http" not in kinds, result["differences"]
    assert "only-in-a" not in kinds and "only-in-b" not in kinds, result["differences"]
    assert "final-state" not in kinds


# --- the command line --------------------------------------------------------------------------


def test_without_airflows_addresses_the_proxy_is_a_usage_error(tmp_path: Path) -> None:
    """Run by hand without --comm/--logs (or without a runtime), the proxy says what is missing
    in one line and exits 2, starting nothing."""
    for args in (["--", sys.executable, str(SCRIPTED)], ["--comm=127.0.0.1:1", "--"]):
        proc = subprocess.run(
            [sys.executable, "-m", "supervisor_sim", "proxy", *args],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("Error: ") and proc.stderr.count("\n") == 1, proc.stderr


def test_forward_only_records_nothing(tmp_path: Path) -> None:
    """--no-transcript forwards the try and writes no file."""
    run = scripted(tmp_path, [SUCCEED], proxy_args=["--no-transcript"]).run()
    assert run.returncode == 0, run.stderr
    assert run.transcripts() == []
    assert [r["type"] for r in run.requests] == ["SucceedTask"]


def _make_bundle(path: Path, command: list[str], dag_id: str) -> bytes:
    """An executable bundle as Airflow's executable coordinator reads it (a shell script)."""
    import hashlib
    import shlex
    import struct

    exe = f'#!/bin/sh\nexec {shlex.join(command)} "$@"\nexit 127\n'.encode()
    src = b"# source region\n"
    meta = f'dags:\n  {dag_id}: {{}}\nsdk:\n  supervisor_schema_version: "2026-06-16"\n'.encode()
    footer = struct.pack("<III", len(src), len(meta), 1) + hashlib.sha256(exe).digest()
    path.write_bytes(exe + src + meta + footer + b"\0" * 12 + b"AFBNDL01")
    path.chmod(0o755)
    return meta


@pytest.mark.parametrize("kind", ["script", "bundle"])
def test_a_written_wrapper_runs_the_runtime_behind_the_proxy(tmp_path: Path, kind: str) -> None:
    """--write-wrapper writes an executable Airflow can launch in the runtime's place: for an
    executable bundle, a bundle declaring the same DAGs (trailer and digest valid)."""
    runtime = [sys.executable, str(SCRIPTED)]
    folder = tmp_path / "transcripts"
    wrapper = tmp_path / "wrappers" / "proxied"
    if kind == "bundle":
        original = tmp_path / "bundles" / "example.bundle"
        original.parent.mkdir()
        meta = _make_bundle(original, runtime, "example_dag")
        runtime = [str(original)]
    proc = subprocess.run(
        [sys.executable, "-m", "supervisor_sim", "proxy", "--dir", str(folder),
         "--write-wrapper", str(wrapper), "--", *runtime],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert os.access(wrapper, os.X_OK)
    if kind == "bundle":
        assert "executable bundle" in proc.stdout
        assert bundle_metadata(wrapper) == meta.decode()
    else:
        assert bundle_metadata(wrapper) is None
    airflow = scripted(tmp_path, [SUCCEED], command=[str(wrapper)])
    run = airflow.run()
    assert run.returncode == 0, run.stderr
    assert [r["type"] for r in run.requests] == ["SucceedTask"]
    (path,) = folder.glob("*.jsonl")
    assert read_transcript(path).footer["final_state"] == "success"

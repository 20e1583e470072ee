"""A runtime that follows a script: the tiny helper tests use to make a child misbehave on cue.

Usage: python scripted.py --comm=H:P --logs=H:Q, with the script as JSON in $SCRIPTED_STEPS
and, optionally, $SCRIPTED_OUT naming a file that receives what the child saw (JSON).

Steps (run in order after connecting both sockets and reading the first frame):
  {"send": {...body...}}            send a request [id, body, None] and wait for its reply
  {"send": {...}, "no_wait": true}  send without waiting
  {"send": {...}, "repeat": N}      the same, N times in a row
  {"raw": "hex"}                    write raw bytes to the comm socket
  {"log": "text"}                   write raw bytes + "\n" to the logs socket
  {"stdout": "text"}                print a line on stdout
  {"sleep": seconds}
  {"ignore_sigterm": true}          SIG_IGN for SIGTERM and SIGINT
  {"grandchild": seconds}           spawn `sleep N` in the same process group
  {"close": "comm" | "logs"}
  {"exit": code}
Datetimes: any string value "$now" is replaced by the current aware UTC datetime, and "$run_id"
by the run id of the StartupDetails' TI.
Uses msgpack only, like a runtime written in another language would.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime

import msgpack

args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
steps = json.loads(os.environ.get("SCRIPTED_STEPS", "[]"))
out_path = os.environ.get("SCRIPTED_OUT")
seen: dict = {"first": None, "replies": [], "errors": []}
if os.environ.get("SCRIPTED_NO_CONNECT"):
    time.sleep(float(os.environ["SCRIPTED_NO_CONNECT"]))
    sys.exit(int(os.environ.get("SCRIPTED_EXIT", "0")))


def connect(hostport: str) -> socket.socket:
    host, port = hostport.rsplit(":", 1)
    return socket.create_connection((host, int(port)))


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("comm closed")
        buf += chunk
    return buf


def read_frame(sock: socket.socket):
    n = int.from_bytes(recv_exact(sock, 4), "big")
    return msgpack.unpackb(recv_exact(sock, n), timestamp=3, strict_map_key=False)


def fill(value):
    if value == "$now":
        return datetime.now(UTC)
    if value == "$run_id":
        return ((seen["first"] or [None, {}])[1] or {}).get("ti", {}).get("run_id")
    if isinstance(value, dict):
        return {k: fill(v) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v) for v in value]
    return value


def jsonable(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def save() -> None:
    if out_path:
        with open(out_path, "w") as f:
            json.dump(jsonable(seen), f)


time.sleep(float(os.environ.get("SCRIPTED_CONNECT_DELAY", "0")))
only = os.environ.get("SCRIPTED_ONLY")
comm = connect(args["comm"]) if "comm" in args and only != "logs" else None
logs = connect(args["logs"]) if "logs" in args and only != "comm" else None
if only:
    time.sleep(60)  # hold the one connection; the supervisor must give up on its own
first = read_frame(comm)
seen["first"] = first
save()
next_id = 0
for step in steps:
    try:
        if "send" in step:
            for _ in range(step.get("repeat", 1)):
                body = fill(step["send"])
                payload = msgpack.packb([next_id, body, None], datetime=True)
                comm.sendall(len(payload).to_bytes(4, "big") + payload)
                next_id += 1
                if not step.get("no_wait"):
                    comm.settimeout(step.get("timeout", 30))
                    seen["replies"].append(read_frame(comm))
                    comm.settimeout(None)
        elif "raw" in step:
            comm.sendall(bytes.fromhex(step["raw"]))
        elif "log" in step:
            logs.sendall(step["log"].encode("utf-8", "surrogateescape") + b"\n")
        elif "stdout" in step:
            print(step["stdout"], flush=True)
        elif "sleep" in step:
            time.sleep(step["sleep"])
        elif "ignore_sigterm" in step:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        elif "grandchild_holding" in step:
            # A grandchild that inherits both sockets keeps them open after this process exits.
            fds = [s.fileno() for s in (comm, logs) if s is not None]
            proc = subprocess.Popen(["sleep", str(step["grandchild_holding"])], pass_fds=fds)
            seen["grandchild"] = proc.pid
        elif "flood_logs" in step:
            line = (
                json.dumps(
                    {
                        "timestamp": "2026-01-01T00:00:00Z",
                        "level": "info",
                        "event": "x" * step.get("line", 10_000),
                    }
                ).encode()
                + b"\n"
            )
            for _ in range(int(step["flood_logs"] * 1_000_000 // len(line))):
                logs.sendall(line)
        elif "flood_stdout" in step:
            chunk = ("y" * 9_999 + "\n") * 100
            for _ in range(int(step["flood_stdout"] * 1_000_000 // len(chunk))):
                sys.stdout.write(chunk)
            sys.stdout.flush()
        elif "dump_env" in step:
            seen["env"] = dict(os.environ)
            seen["argv"] = list(sys.argv)
        elif "log_hex" in step:
            logs.sendall(bytes.fromhex(step["log_hex"]))
        elif "grandchild" in step:
            proc = subprocess.Popen(["sleep", str(step["grandchild"])])
            seen["grandchild"] = proc.pid
        elif "close" in step:
            {"comm": comm, "logs": logs}[step["close"]].close()
        elif "exit" in step:
            save()
            os._exit(step["exit"])
    except Exception as exc:  # record and go on: the test decides what it means
        seen["errors"].append(f"{type(exc).__name__}: {exc}")
    save()
save()

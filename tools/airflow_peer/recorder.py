"""A ``--comm/--logs`` runtime that follows a script and records, typed, every frame it gets.

Used to compare supervisors: run the same script under Airflow's own supervisor and under
supervisor-sim, then diff what the child received. Standard library and ``msgpack`` only (like a
runtime written in another language), so it runs in either virtualenv.

    recorder.py --comm=HOST:PORT --logs=HOST:PORT
    RECORDER_STEPS='[{"send": {...}}, ...]'  RECORDER_OUT=/path/out.json

Steps, in order, after connecting both sockets and reading the first frame:

* ``{"send": BODY}`` sends ``[id, BODY, None]`` (ids count from 0) and waits for the reply;
  ``"timeout": S`` (default 30) bounds the wait, and a missing reply is recorded as such.
* ``{"log": RECORD}`` writes one JSON line to the logs socket (a string is written as is).
* ``{"sleep": S}``; ``{"exit": CODE}`` closes both sockets and exits at once.

Any string ``"$now"`` inside a body becomes the current aware UTC datetime (a msgpack timestamp,
as Airflow's runtime sends). The output file holds ``{"first": F, "replies": [F | {"no_reply":
S}], "errors": [...]}`` where each frame F is ``{"len": <array length>, "frame": [...]}``, with
datetimes tagged ``{"$datetime": iso}`` and other non-JSON values tagged by type, so that a
string and a timestamp never compare equal.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from datetime import UTC, datetime
from typing import Any

import msgpack

args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
steps = json.loads(os.environ.get("RECORDER_STEPS", "[]"))
out_path = os.environ.get("RECORDER_OUT")
seen: dict[str, Any] = {"first": None, "replies": [], "errors": []}


def tagged(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    if isinstance(value, msgpack.ExtType):
        return {"$ext": [value.code, value.data.hex()]}
    if isinstance(value, dict):
        return {str(k): tagged(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [tagged(v) for v in value]
    if isinstance(value, float) and value != value:
        return {"$float": "nan"}
    return value


def fill(value: Any) -> Any:
    if value == "$now":
        return datetime.now(UTC)
    if isinstance(value, dict):
        return {k: fill(v) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v) for v in value]
    return value


def save() -> None:
    if out_path:
        with open(out_path + ".tmp", "w") as f:
            json.dump(seen, f)
        os.replace(out_path + ".tmp", out_path)


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


def read_frame(sock: socket.socket) -> dict[str, Any]:
    n = int.from_bytes(recv_exact(sock, 4), "big")
    frame = msgpack.unpackb(recv_exact(sock, n), timestamp=3, strict_map_key=False)
    return {"len": len(frame), "frame": tagged(frame)}


def _exit(code: int) -> None:
    """Exit with the sockets still open: the kernel closes them as the process dies.

    Airflow's supervisor polls for the exit only when its channels close, then waits up to a
    heartbeat interval; closing them first makes it wait that whole interval.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


comm = connect(args["comm"])
logs = connect(args["logs"])
seen["first"] = read_frame(comm)
save()
next_id = 0
for step in steps:
    try:
        if "send" in step:
            payload = msgpack.packb([next_id, fill(step["send"]), None], datetime=True)
            comm.sendall(len(payload).to_bytes(4, "big") + payload)
            next_id += 1
            timeout = step.get("timeout", 30)
            comm.settimeout(timeout)
            try:
                seen["replies"].append(read_frame(comm))
            except TimeoutError:
                seen["replies"].append({"no_reply": timeout})
            comm.settimeout(None)
        elif "log" in step:
            line = step["log"] if isinstance(step["log"], str) else json.dumps(step["log"])
            logs.sendall(line.encode() + b"\n")
        elif "sleep" in step:
            time.sleep(step["sleep"])
        elif "exit" in step:
            save()
            _exit(step["exit"])
    except Exception as exc:  # recorded; the comparing test decides what it means
        seen["errors"].append(f"{type(exc).__name__}: {exc}")
    save()
save()
_exit(0)

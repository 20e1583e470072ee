"""A runtime that is correct on the happy path and misbehaves on one unhappy path, for the
fault scenarios of `supervisor-sim check` (tests/check/test_check_faults.py).

Usage: python faulty_runtime.py MODE --comm=H:P --logs=H:Q   (check appends --comm/--logs)

It deletes the XComs named in ti_context.xcom_keys_to_clear (as Airflow's runtime does), then
sends SucceedTask and exits 0. MODE says what goes wrong:

  correct          nothing: an error reply fails the task (TaskState failed), exit 0
  hang-on-error    after an error reply it sends nothing and never exits
  exit-on-error    after an error reply it exits 3 without a terminal message
  impatient        it waits at most $FAULTY_PATIENCE seconds (default 0.5) for a reply, then
                   crashes with exit 1
  ignore-sigterm   SIGTERM and SIGINT are ignored

Uses msgpack only, like a runtime written in another language would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from datetime import UTC, datetime

import msgpack

mode = sys.argv[1]
args = dict(a[2:].split("=", 1) for a in sys.argv[2:] if a.startswith("--") and "=" in a)
if mode == "ignore-sigterm":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def connect(hostport: str) -> socket.socket:
    host, port = hostport.rsplit(":", 1)
    return socket.create_connection((host, int(port)))


comm = connect(args["comm"])
logs = connect(args["logs"])


def log(event: str, level: str = "info") -> None:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    line = {"timestamp": now, "level": level, "event": event, "logger": "faulty_runtime"}
    logs.sendall(json.dumps(line).encode() + b"\n")


def recv_exact(n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        try:
            chunk = comm.recv(n - len(buf))
        except TimeoutError:
            log("no reply in time: giving up", "error")
            sys.exit(1)
        if not chunk:
            raise SystemExit(1)
        buf += chunk
    return buf


def read_frame() -> list:
    n = int.from_bytes(recv_exact(4), "big")
    return msgpack.unpackb(recv_exact(n), timestamp=3, strict_map_key=False)


next_id = 0


def request(body: dict) -> tuple[dict | None, dict | None]:
    global next_id
    payload = msgpack.packb([next_id, body, None], datetime=True)
    next_id += 1
    comm.sendall(len(payload).to_bytes(4, "big") + payload)
    frame = read_frame()
    reply = frame[1] if len(frame) > 1 else None
    error = frame[2] if len(frame) > 2 else None
    return reply, error


def failed_reply(reply: dict | None, error: dict | None) -> bool:
    return error is not None or (isinstance(reply, dict) and reply.get("type") == "ErrorResponse")


def end(body: dict) -> None:
    request(body)
    sys.exit(0)


first = read_frame()
startup = first[1]
ti = startup["ti"]
context = startup.get("ti_context") or {}
if mode == "impatient":
    comm.settimeout(float(os.environ.get("FAULTY_PATIENCE", "0.5")))
log("faulty runtime started")
for key in context.get("xcom_keys_to_clear") or []:
    reply, error = request(
        {
            "type": "DeleteXCom",
            "key": key,
            "dag_id": ti["dag_id"],
            "run_id": ti["run_id"],
            "task_id": ti["task_id"],
            "map_index": ti.get("map_index", -1),
        }
    )
    if failed_reply(reply, error):
        log(f"clearing XCom {key} failed: {error or reply}", "error")
        if mode == "hang-on-error":
            while True:
                time.sleep(60)
        if mode == "exit-on-error":
            sys.exit(3)
        end({"type": "TaskState", "state": "failed", "end_date": datetime.now(UTC)})
end({"type": "SucceedTask", "state": "success", "end_date": datetime.now(UTC)})

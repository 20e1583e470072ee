"""The loopback limit: a minimal selectors server that answers the bench child, nothing more.

No HTTP, no validation, no journal: it spawns the child with --comm/--logs, accepts both
connections, sends a canned ``StartupDetails``, and answers every request by frame id with a
canned ``VariableResult`` (``SucceedTask`` gets the empty ack ``[id, nil, nil]``). Logs and
stdout/stderr are read and dropped (stdout is kept, it carries the child's measurement).

Usage: python bench/echo.py [--json] -- CHILD_CMD...
Prints one JSON line: ``{"child": <the child's measurement>, "peak_rss_kb": .., "cpu_s": ..}``.
"""

from __future__ import annotations

import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import msgpack

VARIABLE_RESULT = msgpack.packb(
    {"key": "bench_var", "value": "bench-value", "type": "VariableResult"}
)
NIL = b"\xc0"


def reply_frame(req_id: int, body: bytes | None) -> bytes:
    # [id, body, nil] built from pre-encoded parts: fixarray(3) + id + body + nil.
    payload = b"\x93" + msgpack.packb(req_id) + (body if body is not None else NIL) + NIL
    return len(payload).to_bytes(4, "big") + payload


def startup_details() -> bytes:
    now = datetime.now(UTC)
    body = {
        "ti": {
            "id": str(uuid.uuid4()),
            "task_id": "bench_task",
            "dag_id": "bench",
            "run_id": "bench_run",
            "try_number": 1,
            "dag_version_id": str(uuid.uuid4()),
            "map_index": -1,
        },
        "dag_rel_path": "bench.py",
        "bundle_info": {"name": "dags-folder", "version": None},
        "start_date": now,
        "ti_context": {},
        "sentry_integration": "",
        "type": "StartupDetails",
    }
    payload = msgpack.packb([0, body, None], datetime=True)
    return len(payload).to_bytes(4, "big") + payload


def peak_rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def serve(cmd: list[str]) -> dict:
    comm_srv = socket.create_server(("127.0.0.1", 0))
    logs_srv = socket.create_server(("127.0.0.1", 0))
    argv = [
        *cmd,
        f"--comm=127.0.0.1:{comm_srv.getsockname()[1]}",
        f"--logs=127.0.0.1:{logs_srv.getsockname()[1]}",
    ]
    env = {**os.environ, "BENCH_SPAWN_WALL": repr(time.time())}
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    comm, _ = comm_srv.accept()
    logs, _ = logs_srv.accept()
    comm_srv.close()
    logs_srv.close()
    comm.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    comm.sendall(startup_details())

    sel = selectors.DefaultSelector()
    sel.register(comm, selectors.EVENT_READ, "comm")
    sel.register(logs, selectors.EVENT_READ, "logs")
    sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
    sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
    buf = bytearray()
    out = bytearray()
    err = bytearray()
    requests = 0
    while sel.get_map():
        for key, _ in sel.select():
            obj = key.fileobj
            sock = key.data in ("comm", "logs")
            data = obj.recv(65536) if sock else os.read(obj.fileno(), 65536)  # type: ignore
            if not data:
                sel.unregister(obj)
                continue
            if key.data == "stdout":
                out += data
            elif key.data == "stderr":
                err += data
            elif key.data == "comm":
                buf += data
                replies = []
                while len(buf) >= 4:
                    size = int.from_bytes(buf[:4], "big")
                    if len(buf) < 4 + size:
                        break
                    frame = msgpack.unpackb(bytes(buf[4 : 4 + size]), timestamp=3)
                    del buf[: 4 + size]
                    requests += 1
                    body = frame[1]
                    if body.get("type") == "GetVariable":
                        replies.append(reply_frame(frame[0], VARIABLE_RESULT))
                    else:
                        replies.append(reply_frame(frame[0], None))
                if replies:
                    comm.sendall(b"".join(replies))
    rc = proc.wait()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    child = None
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("{"):
            child = json.loads(line)
    return {
        "child": child,
        "exit_code": rc,
        "requests": requests,
        "peak_rss_kb": peak_rss_kb(),
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "stderr": err.decode(errors="replace")[-2000:],
    }


def main() -> int:
    if "--" not in sys.argv:
        print("usage: echo.py -- CHILD_CMD...", file=sys.stderr)
        return 2
    cmd = sys.argv[sys.argv.index("--") + 1 :]
    print(json.dumps(serve(cmd)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

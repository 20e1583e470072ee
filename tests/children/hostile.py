"""A hostile runtime: one attack on the supervisor per kind, then it ends the task normally.

Usage: python hostile.py KIND --comm=H:P --logs=H:Q   (the supervisor appends --comm/--logs)

Each kind is a class of runtime bug (docs/reliability.md, "Hostile runtimes"). Where a kind
needs a secret, the runtime first asks for connection ``peer_conn`` (the test fixtures give it
password ``s3cret-pw``), so the supervisor has learnt it before the attack leaks it. After the
attack the runtime sends SucceedTask and exits 0, unless the kind says otherwise: the verdict
then shows whether the supervisor survived the attack and went on supervising.

Uses msgpack only, like a runtime written in another language would.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from datetime import UTC, datetime

import msgpack

SECRET = "s3cret-pw"
kind = sys.argv[1]
args = dict(a[2:].split("=", 1) for a in sys.argv[2:] if a.startswith("--") and "=" in a)


def connect(hostport: str) -> socket.socket:
    host, port = hostport.rsplit(":", 1)
    return socket.create_connection((host, int(port)))


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("comm closed")
        buf += chunk
    return bytes(buf)


def read_frame(sock: socket.socket):
    n = int.from_bytes(recv_exact(sock, 4), "big")
    return msgpack.unpackb(recv_exact(sock, n), timestamp=3, strict_map_key=False)


comm = connect(args["comm"])
logs = connect(args["logs"])
read_frame(comm)  # StartupDetails
next_id = 0


def send_raw_body(payload: bytes, wait: bool = True):
    comm.sendall(len(payload).to_bytes(4, "big") + payload)
    if wait:
        comm.settimeout(30)
        reply = read_frame(comm)
        comm.settimeout(None)
        return reply
    return None


def send(body, wait: bool = True):
    global next_id
    payload = msgpack.packb([next_id, body, None], datetime=True)
    next_id += 1
    return send_raw_body(payload, wait)


def log(raw: bytes) -> None:
    logs.sendall(raw + b"\n")


def log_record(**fields) -> None:
    record = {"timestamp": datetime.now(UTC).isoformat(), "level": "info", **fields}
    log(json.dumps(record).encode())


def learn_secret() -> None:
    send({"type": "GetConnection", "conn_id": "peer_conn"})


def nested_json(depth: int) -> bytes:
    return (
        b'{"timestamp":"2026-01-01T00:00:00Z","level":"info","event":"deep","x":'
        + (b"[" * depth + b"]" * depth)
        + b"}"
    )


def nested_msgpack(depth: int) -> bytes:
    # [id, {"type": "GetVariable", "key": "k", "extra": [[[...]]]}, None], built without recursion
    inner = b"\x90"  # empty fixarray
    for _ in range(depth - 1):
        inner = b"\x91" + inner  # fixarray of one element
    body = (
        b"\x83"
        + msgpack.packb("type")
        + msgpack.packb("GetVariable")
        + msgpack.packb("key")
        + msgpack.packb("k")
        + msgpack.packb("extra")
        + inner
    )
    return b"\x93" + msgpack.packb(next_id) + body + b"\xc0"


ends_normally = True

if kind == "deep-json-log":  # ~500 deep: recursed in the masker
    log(nested_json(500))
elif kind == "deeper-json-log":  # ~100k deep: recursed in json.loads
    log(nested_json(100_000))
elif kind == "long-number-log":  # 5,000 digits: int() refuses, with an odd ValueError
    log(b'{"timestamp":"2026-01-01T00:00:00Z","level":"info","event":"n","n":' + b"7" * 5000 + b"}")
elif kind == "deep-msgpack":  # a legal msgpack body nested 1,000 deep
    send_raw_body(nested_msgpack(1000))
    next_id += 1
elif kind == "secret-in-bad-log":  # a non-JSON log line quoting the password
    learn_secret()
    log(f"connecting with password={SECRET} now".encode())
elif kind == "secret-in-bad-id":  # a request id that is the secret
    learn_secret()
    send_raw_body(msgpack.packb([SECRET, {"type": "GetVariable", "key": "k"}, None]), wait=False)
    time.sleep(0.2)
elif kind == "secret-in-invalid-field":  # an invalid field's value
    learn_secret()
    send({"type": "GetVariable", "key": {"password": SECRET}})
elif kind == "secret-in-level":  # an unknown log level
    learn_secret()
    log_record(level=SECRET, event="odd level")
elif kind == "secret-as-key":  # a log record whose key is the secret
    learn_secret()
    log_record(event="key", **{SECRET: 1})
elif kind == "secret-as-type":  # a request type string
    learn_secret()
    send({"type": SECRET})
elif kind == "secret-in-bin":  # a msgpack bin value in a log-like request body
    learn_secret()
    send({"type": "GetVariable", "key": SECRET.encode()})
elif kind == "secret-in-undecodable-frame":  # raw bytes of a frame that is not msgpack
    learn_secret()
    send_raw_body(b"\xc1" + SECRET.encode(), wait=False)
    next_id += 1
    time.sleep(0.2)
elif kind == "non-json-flood":  # 2 MB of non-JSON log lines
    line = b"not json " * 11
    for _ in range(2_000_000 // (len(line) + 1)):
        log(line)
elif kind == "binary-stdout":  # MB of binary stdout ($HOSTILE_MB, default 50)
    chunk = bytes(range(256)) * 4096
    for _ in range(int(float(os.environ.get("HOSTILE_MB", "50")) * 1_000_000 // len(chunk))):
        sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()
elif kind == "empty-frames":  # 200k zero-length frames (800 KB of input)
    comm.sendall(b"\x00\x00\x00\x00" * int(os.environ.get("HOSTILE_FRAMES", "200000")))
elif kind == "mask-flood":  # MaskSecret requests ($HOSTILE_N, default 2,000)
    for i in range(int(os.environ.get("HOSTILE_N", "2000"))):
        send({"type": "MaskSecret", "value": f"secret-{i:06d}-value", "name": None}, wait=False)
    time.sleep(float(os.environ.get("HOSTILE_LINGER", "0")))
elif kind == "sleep":  # no attack: a task that runs $HOSTILE_SLEEP seconds (signals, disk)
    time.sleep(float(os.environ.get("HOSTILE_SLEEP", "30")))
else:
    print(f"hostile.py: unknown kind {kind!r}", file=sys.stderr)
    sys.exit(64)

if ends_normally:
    send(
        {
            "type": "SucceedTask",
            "state": "success",
            "end_date": datetime.now(UTC),
            "task_outlets": [],
            "outlet_events": [],
        }
    )
    sys.exit(0)

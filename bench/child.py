"""Benchmark runtime child: lock-step GetVariable round trips over --comm, measured here.

Depends only on the standard library and msgpack (no supervisor_sim, no Airflow), so the same
program runs unchanged under supervisor-sim, under Airflow 3.3's own supervisor (through a
SubprocessCoordinator) and under the raw echo server, and the three are measured alike.

Usage::

    child.py [--n N] [--warmup W] [--key KEY] [--out PATH] [--alone] --comm=H:P --logs=H:Q

Flow: connect --comm and --logs, read ``[0, StartupDetails, nil]``, do W untimed then N timed
round trips ``[id, {"type": "GetVariable", "key": KEY}, nil]`` -> ``[id, VariableResult, nil]``
(one request in flight at a time), write one JSON log line on --logs per 1,000 round trips, send
``SucceedTask``, wait for its ack, print the measurement as one JSON line on stdout (and write it
to ``--out``), exit 0. ``--alone`` imports what a run imports and exits at once (the baseline
for start-up overhead). With ``BENCH_SPAWN_WALL`` (``time.time()`` taken by the harness just
before the supervisor spawns this process) the spawn -> StartupDetails time is reported too.
"""

import time

T_MAIN = time.time()  # before any other import: the start of this program as it sees it

import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

import msgpack  # noqa: E402


def parse_args(argv: list[str]) -> dict[str, str]:
    opts: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--") and "=" in arg:
            key, value = arg[2:].split("=", 1)
            opts[key] = value
        elif arg.startswith("--") and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            opts[arg[2:]] = argv[i + 1]
            i += 1
        elif arg.startswith("--"):
            opts[arg[2:]] = "1"
        i += 1
    return opts


def connect(hostport: str) -> socket.socket:
    host, port = hostport.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Comm:
    """Length-prefixed msgpack frames over a blocking socket, with a receive buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def read_frame(self) -> list:
        buf = self.buf
        while True:
            if len(buf) >= 4:
                size = int.from_bytes(buf[:4], "big")
                if len(buf) >= 4 + size:
                    payload = bytes(buf[4 : 4 + size])
                    del buf[: 4 + size]
                    return msgpack.unpackb(payload, timestamp=3, strict_map_key=False)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("comm closed by the supervisor")
            buf += chunk

    def send(self, req_id: int, body: dict) -> None:
        payload = msgpack.packb([req_id, body, None], datetime=True)
        self.sock.sendall(len(payload).to_bytes(4, "big") + payload)

    def request(self, req_id: int, body: dict) -> list:
        self.send(req_id, body)
        reply = self.read_frame()
        if reply[0] != req_id:
            raise RuntimeError(f"reply id {reply[0]!r} for request {req_id}")
        return reply


def log(logs: socket.socket, event: str, **extra: object) -> None:
    line = {
        "timestamp": datetime.now(UTC).isoformat(),
        "level": "info",
        "event": event,
        "logger": "bench_child",
        **extra,
    }
    logs.sendall(json.dumps(line).encode() + b"\n")


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def main() -> int:
    opts = parse_args(sys.argv[1:])
    if "alone" in opts:
        return 0
    n = int(opts.get("n", "1000"))
    warmup = int(opts.get("warmup", str(min(200, n))))
    key = opts.get("key", "bench_var")
    comm_sock = connect(opts["comm"])
    logs = connect(opts["logs"])
    comm = Comm(comm_sock)
    t_connected = time.time()
    first = comm.read_frame()
    t_startup = time.time()
    body = first[1] if len(first) > 1 else None
    if not isinstance(body, dict) or body.get("type") != "StartupDetails":
        print(json.dumps({"error": f"first frame is not StartupDetails: {first!r}"}), flush=True)
        return 1
    log(logs, "got StartupDetails", ti_id=str(body.get("ti", {}).get("id")))

    request = {"type": "GetVariable", "key": key}
    req_id = 0
    for _ in range(warmup):
        req_id += 1
        reply = comm.request(req_id, request)
    if warmup:
        value_body = reply[1] if len(reply) > 1 else None
        if not isinstance(value_body, dict) or value_body.get("type") != "VariableResult":
            print(json.dumps({"error": f"unexpected GetVariable reply: {reply!r}"}), flush=True)
            return 1

    latencies: list[float] = []
    perf = time.perf_counter
    t_rt_wall = time.time()
    started = perf()
    for i in range(1, n + 1):
        req_id += 1
        t0 = perf()
        comm.request(req_id, request)
        latencies.append(perf() - t0)
        if i % 1000 == 0:
            log(logs, "round trips", done=i)
    elapsed = perf() - started
    t_rt_end_wall = time.time()

    req_id += 1
    ack = comm.request(
        req_id,
        {
            "type": "SucceedTask",
            "state": "success",
            "end_date": datetime.now(UTC),
            "task_outlets": [],
            "outlet_events": [],
        },
    )
    latencies.sort()
    result: dict[str, object] = {
        "n": n,
        "warmup": warmup,
        "elapsed_s": elapsed,
        "req_per_s": n / elapsed if elapsed > 0 else None,
        "us_per_req": elapsed / n * 1e6 if n else None,
        "p50_us": percentile(latencies, 0.50) * 1e6,
        "p99_us": percentile(latencies, 0.99) * 1e6,
        "rt_start_wall": t_rt_wall,
        "rt_end_wall": t_rt_end_wall,
        "main_to_startup_ms": (t_startup - T_MAIN) * 1e3,
        "connected_to_startup_ms": (t_startup - t_connected) * 1e3,
        "succeed_ack": ack[1:],
        "pid": os.getpid(),
    }
    spawn_wall = os.environ.get("BENCH_SPAWN_WALL")
    if spawn_wall:
        result["spawn_to_startup_ms"] = (t_startup - float(spawn_wall)) * 1e3
        result["spawn_to_main_ms"] = (T_MAIN - float(spawn_wall)) * 1e3
    line = json.dumps(result, default=repr)
    if "out" in opts:
        with open(opts["out"], "w") as f:
            f.write(line + "\n")
    print(line, flush=True)
    log(logs, "done", req_per_s=result["req_per_s"])
    comm_sock.close()
    logs.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

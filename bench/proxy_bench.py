"""What ``supervisor-sim proxy`` adds to a round trip, and what it costs in CPU per request.

The bench child (bench/child.py: lock-step GetVariable round trips, measured by the child) runs
under a minimal selectors supervisor here (bench/echo.py's, with the proxy's CPU sampled),
four ways::

    direct      the child alone (the loopback limit)
    forward     behind `supervisor-sim proxy --no-transcript` (forwarding only)
    record      behind `supervisor-sim proxy --dir D` (transcript written, redacted: as deployed)
    trio        behind the same forwarding written with trio (one task per direction), to show
                why the proxy forwards with a thread per direction (not with --smoke)

and, with ``--airflow-python``, under Airflow 3.3.2's own supervisor (bench/airflow_sup.py),
directly and behind the recording proxy. The proxy's CPU is read from its process's CPU clock
(``clock_getcpuclockid``) when the timed round trips start and when SucceedTask arrives, so
start-up is not in it.

Usage::

    python bench/proxy_bench.py [--n N] [--warmup W] [--runs R] [--smoke]
                                [--airflow-python PATH] [--json]

Prints a table, or with ``--json`` one JSON object (bench/run.py reads it).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgpack

HERE = Path(__file__).resolve().parent
PY = sys.executable
CHILD = [PY, str(HERE / "child.py")]
PROXY = [PY, "-m", "supervisor_sim", "proxy"]

VARIABLE_RESULT = msgpack.packb(
    {"key": "bench_var", "value": "bench-value", "type": "VariableResult"}
)
NIL = b"\xc0"


def reply_frame(req_id: int, body: bytes | None) -> bytes:
    payload = b"\x93" + msgpack.packb(req_id) + (body if body is not None else NIL) + NIL
    return len(payload).to_bytes(4, "big") + payload


def startup_details() -> bytes:
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
        "start_date": datetime.now(UTC),
        "ti_context": {},
        "sentry_integration": "",
        "type": "StartupDetails",
    }
    payload = msgpack.packb([0, body, None], datetime=True)
    return len(payload).to_bytes(4, "big") + payload


# --- a process's CPU time -----------------------------------------------------------------------


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


try:
    _LIBC = ctypes.CDLL(None, use_errno=True)
    _GETCPUCLOCKID = _LIBC.clock_getcpuclockid
    _CLOCK_GETTIME = _LIBC.clock_gettime
except (OSError, AttributeError):  # pragma: no cover - not glibc
    _GETCPUCLOCKID = _CLOCK_GETTIME = None


def process_cpu_s(pid: int) -> float | None:
    """CPU time (user + system, every thread) of process ``pid``, in seconds, to the
    nanosecond where the C library can read another process's CPU clock; else from
    /proc/PID/stat (clock ticks)."""
    if _GETCPUCLOCKID is not None:
        clock = ctypes.c_int()
        if _GETCPUCLOCKID(pid, ctypes.byref(clock)) == 0:
            ts = _Timespec()
            if _CLOCK_GETTIME(clock, ctypes.byref(ts)) == 0:
                return ts.tv_sec + ts.tv_nsec / 1e9
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the supervisor's side ----------------------------------------------------------------------


def serve(cmd: list[str], *, warmup: int, sample_cpu: bool) -> dict[str, Any]:
    """Run ``cmd --comm --logs`` (the child, or something in front of it) and answer it."""
    comm_srv = socket.create_server(("127.0.0.1", 0))
    logs_srv = socket.create_server(("127.0.0.1", 0))
    argv = [
        *cmd,
        f"--comm=127.0.0.1:{comm_srv.getsockname()[1]}",
        f"--logs=127.0.0.1:{logs_srv.getsockname()[1]}",
    ]
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
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
    assert proc.stdout is not None and proc.stderr is not None
    sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
    sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
    buf = bytearray()
    out = bytearray()
    err = bytearray()
    cpu: dict[str, float | None] = {}
    timed_requests = 0
    while sel.get_map():
        for key, _ in sel.select():
            obj = key.fileobj
            sock = key.data in ("comm", "logs")
            data = obj.recv(65536) if sock else os.read(obj.fileno(), 65536)  # type: ignore
            if not data:
                sel.unregister(obj)
                if key.data in ("comm", "logs"):
                    obj.close()  # type: ignore[union-attr]
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
                    body = frame[1]
                    if body.get("type") == "GetVariable":
                        if frame[0] == warmup + 1 and sample_cpu:
                            cpu["start"] = process_cpu_s(proc.pid)
                        if frame[0] > warmup:
                            timed_requests += 1
                        replies.append(reply_frame(frame[0], VARIABLE_RESULT))
                    else:
                        if sample_cpu:
                            cpu["end"] = process_cpu_s(proc.pid)
                        replies.append(reply_frame(frame[0], None))
                if replies:
                    comm.sendall(b"".join(replies))
    rc = proc.wait()
    child = None
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("{"):
            child = json.loads(line)
    result: dict[str, Any] = {"child": child, "exit_code": rc, "stderr": err.decode()[-2000:]}
    start, end = cpu.get("start"), cpu.get("end")
    if start is not None and end is not None and timed_requests:
        result["cpu_us_per_req"] = (end - start) / timed_requests * 1e6
    return result


def trio_forward(argv: list[str]) -> int:
    """The proxy's forwarding written with trio (one task per direction), no recording."""
    import trio

    comm = next(a for a in argv if a.startswith("--comm="))[7:]
    logs = next(a for a in argv if a.startswith("--logs="))[7:]
    cmd = [a for a in argv if not a.startswith(("--comm=", "--logs="))]

    async def pump(src: Any, dst: Any) -> None:
        while data := await src.receive_some(65536):
            await dst.send_all(data)
        await dst.send_eof()

    async def main() -> int:
        (comm_l,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
        (logs_l,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
        ports = [comm_l.socket.getsockname()[1], logs_l.socket.getsockname()[1]]
        proc = subprocess.Popen(
            [*cmd, f"--comm=127.0.0.1:{ports[0]}", f"--logs=127.0.0.1:{ports[1]}"],
            process_group=0,
        )
        async with trio.open_nursery() as nursery:
            for listener, upstream in ((comm_l, comm), (logs_l, logs)):
                runtime = await listener.accept()
                host, port = upstream.rsplit(":", 1)
                airflow = await trio.open_tcp_stream(host, int(port))
                nursery.start_soon(pump, runtime, airflow)
                nursery.start_soon(pump, airflow, runtime)
            code = await trio.to_thread.run_sync(proc.wait)
            nursery.cancel_scope.cancel()
        return code

    return trio.run(main)


# --- the variants -------------------------------------------------------------------------------


def child_cmd(n: int, warmup: int, out: Path | None = None) -> list[str]:
    cmd = [*CHILD, "--n", str(n), "--warmup", str(warmup)]
    return cmd + (["--out", str(out)] if out else [])


def variant_cmd(variant: str, n: int, warmup: int, tmp: Path) -> list[str]:
    child = child_cmd(n, warmup)
    if variant == "direct":
        return child
    if variant == "forward":
        return [*PROXY, "--no-transcript", "--", *child]
    if variant == "record":
        return [*PROXY, "--dir", str(tmp / "transcripts"), "--", *child]
    if variant == "trio":
        return [PY, str(Path(__file__).resolve()), "trio-forward", "--", *child]
    raise ValueError(variant)


def run_variant(variant: str, n: int, warmup: int, tmp: Path) -> dict[str, Any]:
    before = set((tmp / "transcripts").glob("*.jsonl")) if variant == "record" else set()
    result = serve(
        variant_cmd(variant, n, warmup, tmp),
        warmup=warmup,
        sample_cpu=variant in ("forward", "record", "trio"),
    )
    child = result["child"] or {}
    if result["exit_code"] != 0 or not child:
        raise RuntimeError(f"{variant}: exit {result['exit_code']}: {result['stderr']}")
    out = {k: child.get(k) for k in ("us_per_req", "p50_us", "p99_us", "req_per_s")}
    out["cpu_us_per_req"] = result.get("cpu_us_per_req")
    if variant == "record":
        (path,) = set((tmp / "transcripts").glob("*.jsonl")) - before
        out["transcript_bytes_per_req"] = path.stat().st_size / (n + warmup)
        path.unlink()
    return out


def run_airflow(airflow_py: str, proxied: bool, n: int, warmup: int, tmp: Path) -> dict:
    out_file = tmp / f"airflow-child-{time.monotonic_ns()}.json"
    child = child_cmd(n, warmup, out_file)
    if proxied:
        child = [*PROXY, "--dir", str(tmp / "airflow-transcripts"), "--", *child]
    proc = subprocess.run(
        [airflow_py, str(HERE / "airflow_sup.py"), "--", *child],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0 or not out_file.exists():
        raise RuntimeError(f"airflow_sup.py exited {proc.returncode}: {proc.stderr[-2000:]}")
    measured = json.loads(out_file.read_text())
    return {k: measured.get(k) for k in ("us_per_req", "p50_us", "p99_us", "req_per_s")}


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = {k for r in runs for k in r}
    out = {}
    for key in sorted(keys):
        values = [r[key] for r in runs if isinstance(r.get(key), int | float)]
        out[key] = statistics.median(values) if values else None
    return out


def added(base: dict[str, Any], over: dict[str, Any]) -> dict[str, float | None]:
    def delta(key: str) -> float | None:
        a, b = base.get(key), over.get(key)
        return None if a is None or b is None else b - a

    return {"us_per_rt": delta("us_per_req"), "p50_us": delta("p50_us")}


def bench(args: argparse.Namespace) -> dict[str, Any]:
    variants = ["direct", "forward", "record"] + ([] if args.smoke else ["trio"])
    n = args.n or (300 if args.smoke else 10_000)
    warmup = args.warmup if args.warmup is not None else (50 if args.smoke else 200)
    runs = args.runs or (1 if args.smoke else 3)
    report: dict[str, Any] = {
        "config": {"n": n, "warmup": warmup, "runs": runs, "smoke": args.smoke},
        "runs": {},
        "summary": {},
    }
    tmp = Path(tempfile.mkdtemp(prefix="proxy-bench-"))
    try:
        for _ in range(runs):  # interleaved, so a burst of load hits every variant alike
            for variant in variants:
                result = run_variant(variant, n, warmup, tmp)
                report["runs"].setdefault(variant, []).append(result)
        if args.airflow_python:
            for _ in range(runs):
                for proxied in (False, True):
                    name = "airflow_record" if proxied else "airflow_direct"
                    result = run_airflow(args.airflow_python, proxied, n, warmup, tmp)
                    report["runs"].setdefault(name, []).append(result)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {name: median_of(results) for name, results in report["runs"].items()}
    report["summary"] = summary
    direct = summary["direct"]
    report["added"] = {v: added(direct, summary[v]) for v in variants if v != "direct"}
    if "airflow_direct" in summary:
        report["added"]["airflow_record"] = added(
            summary["airflow_direct"], summary["airflow_record"]
        )
    return report


def render(report: dict[str, Any]) -> str:
    def fmt(value: Any, spec: str = ".1f") -> str:
        return "-" if value is None else format(value, spec)

    config = report["config"]
    lines = [
        f"supervisor-sim proxy: lock-step round trips ({config['n']:,} timed, median of "
        f"{config['runs']} runs, measured by the child)",
        f"{'':<34}{'us/rt':>8}{'p50 us':>8}{'p99 us':>9}{'added us/rt':>12}{'added p50':>10}"
        f"{'proxy CPU us/req':>17}",
    ]
    labels = {
        "direct": "echo supervisor, child alone",
        "forward": "  + proxy --no-transcript",
        "record": "  + proxy (transcript, redacted)",
        "trio": "  + the same forwarding in trio",
        "airflow_direct": "Airflow's supervisor, child alone",
        "airflow_record": "  + proxy (transcript, redacted)",
    }
    for name, label in labels.items():
        r = report["summary"].get(name)
        if r is None:
            continue
        extra = report["added"].get(name, {})
        lines.append(
            f"{label:<34}{fmt(r.get('us_per_req')):>8}{fmt(r.get('p50_us')):>8}"
            f"{fmt(r.get('p99_us')):>9}{fmt(extra.get('us_per_rt')):>12}"
            f"{fmt(extra.get('p50_us')):>10}{fmt(r.get('cpu_us_per_req')):>17}"
        )
    record = report["summary"].get("record", {})
    if record.get("transcript_bytes_per_req"):
        lines.append(f"transcript: {record['transcript_bytes_per_req']:.0f} bytes per request")
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "trio-forward":
        argv = sys.argv[2:]
        return trio_forward(argv[1:] if argv[:1] == ["--"] else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, help="timed round trips per run (default 10000)")
    parser.add_argument("--warmup", type=int, help="untimed round trips first (default 200)")
    parser.add_argument("--runs", type=int, help="repetitions, median reported (default 3)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one run, no trio")
    parser.add_argument("--airflow-python", help="also under Airflow's supervisor (its venv)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    report = bench(args)
    print(json.dumps(report) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

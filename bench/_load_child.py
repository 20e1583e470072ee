"""The runtime of bench/scale.py, bench/log_throughput.py and bench/xcom_big.py.

Standard library and msgpack only (no supervisor_sim, no Airflow), so the same program runs
under supervisor-sim and under Airflow 3.3's own supervisor (``bench/airflow_sup.py``) and is
measured alike. The mode comes from ``BENCH_MODE`` (``scale``, ``logs`` or ``xcom``); every mode
sends ``SucceedTask`` at the end and writes its measurement as one JSON object to
``BENCH_OUT_DIR/<task_id>-<map_index>-<pid>.json``.

* ``scale``: a ``DagFileParseRequest`` is answered with one DAG, ``BENCH_DAG_ID``, of
  ``BENCH_TASKS`` parallel tasks (no dependencies). As a task: ``BENCH_RT`` timed ``GetVariable``
  round trips, then a file named after the task in ``BENCH_READY_DIR`` (the harness counts them),
  then it waits for ``BENCH_GO_FIFO`` to reach end of file (the harness closes its end when every
  child is ready: all N are alive at once), lives ``BENCH_HOLD_S`` more seconds (heartbeats go on
  meanwhile), makes ``BENCH_RT`` more round trips and ends.
* ``logs``: ``BENCH_LINES`` JSON log lines of about ``BENCH_LINE_BYTES`` bytes, pre-encoded and
  written to ``--logs`` as fast as the socket takes them (256 KiB per ``sendall``).
* ``xcom``: ``BENCH_XCOM_RUNS`` times a ``SetXCom`` of a ``BENCH_XCOM_MIB`` MiB string, then a
  ``GetXCom`` of it, each timed (request sent -> reply read), the value checked.
"""

import time

T_MAIN = time.time()

import json  # noqa: E402
import os  # noqa: E402
import select  # noqa: E402
import sys  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from child import Comm, connect, log, parse_args, percentile  # noqa: E402


def vm_hwm_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def parse_result(request: dict) -> dict:
    dag_id = os.environ.get("BENCH_DAG_ID", "scale_dag")
    tasks = int(os.environ.get("BENCH_TASKS", "1"))
    fileloc = str(request.get("file") or __file__)
    operators = [
        {
            "__type": "operator",
            "__var": {
                "task_id": f"t{i:04d}",
                "task_type": "BenchTask",
                "_task_module": "bench_load_child",
                "ui_color": "#ededed",
                "ui_fgcolor": "#000",
                "template_fields": [],
                "downstream_task_ids": [],
            },
        }
        for i in range(tasks)
    ]
    dag = {
        "dag_id": dag_id,
        "fileloc": fileloc,
        "relative_fileloc": Path(fileloc).name,
        "timezone": "UTC",
        "timetable": {"__type": "airflow.timetables.simple.NullTimetable", "__var": {}},
        "catchup": False,
        "fail_fast": False,
        "max_active_tasks": tasks,
        "max_active_runs": 16,
        "tags": ["bench"],
        "edge_info": {},
        "dag_dependencies": [],
        "params": [],
        "tasks": operators,
    }
    return {
        "fileloc": fileloc,
        "serialized_dags": [{"data": {"__version": 3, "dag": dag}}],
        "warnings": [],
        "import_errors": {},
        "type": "DagFileParsingResult",
    }


class Client:
    def __init__(self, comm: Comm) -> None:
        self.comm = comm
        self.req_id = 0

    def request(self, body: dict) -> list:
        self.req_id += 1
        return self.comm.request(self.req_id, body)

    def timed(self, body: dict) -> tuple[float, list]:
        t0 = time.perf_counter()
        reply = self.request(body)
        return time.perf_counter() - t0, reply


def round_trips(client: Client, count: int) -> list[float]:
    out = []
    for _ in range(count):
        took, reply = client.timed({"type": "GetVariable", "key": "bench_var"})
        if not isinstance(reply[1], dict) or reply[1].get("type") != "VariableResult":
            raise RuntimeError(f"unexpected GetVariable reply: {reply!r}")
        out.append(took)
    return out


def wait_for_go(fifo: str, deadline_s: float) -> float:
    """Block until the harness closes the FIFO's write end (EOF); the seconds waited."""
    t0 = time.perf_counter()
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        while time.perf_counter() - t0 < deadline_s:
            ready, _, _ = select.select([fd], [], [], deadline_s)
            if ready and os.read(fd, 4096) == b"":
                break
            if not ready:
                break
    finally:
        os.close(fd)
    return time.perf_counter() - t0


def mode_scale(client: Client, ti: dict, result: dict) -> None:
    rt = int(os.environ.get("BENCH_RT", "5"))
    lat = round_trips(client, rt)
    ready = os.environ.get("BENCH_READY_DIR")
    if ready:
        Path(ready, f"{ti.get('task_id')}-{ti.get('map_index')}-{os.getpid()}").touch()
    fifo = os.environ.get("BENCH_GO_FIFO")
    if fifo:
        result["waited_for_go_s"] = wait_for_go(fifo, float(os.environ.get("BENCH_GO_MAX", "600")))
    time.sleep(float(os.environ.get("BENCH_HOLD_S", "3")))
    after = round_trips(client, rt)
    result.update(rt_ms_before=[x * 1e3 for x in lat], rt_ms_after=[x * 1e3 for x in after])
    lat += after
    lat.sort()
    result.update(
        round_trips=len(lat),
        rt_p50_ms=percentile(lat, 0.5) * 1e3,
        rt_p99_ms=percentile(lat, 0.99) * 1e3,
        rt_max_ms=lat[-1] * 1e3 if lat else None,
        rt_ms=[x * 1e3 for x in lat],
    )


def mode_logs(logs_sock: object, result: dict) -> None:
    lines = int(os.environ.get("BENCH_LINES", "100000"))
    size = int(os.environ.get("BENCH_LINE_BYTES", "200"))
    stamp = datetime.now(UTC).isoformat()
    head = json.dumps({"timestamp": stamp, "level": "info", "logger": "bench_logs"})[:-1]
    pad = "x" * max(0, size - len(head) - 40)
    encoded = [f'{head}, "event": "bench line {i:08d} {pad}"}}\n'.encode() for i in range(lines)]
    chunks, chunk, used = [], [], 0
    for line in encoded:
        chunk.append(line)
        used += len(line)
        if used >= 256 * 1024:
            chunks.append(b"".join(chunk))
            chunk, used = [], 0
    if chunk:
        chunks.append(b"".join(chunk))
    total = sum(len(c) for c in chunks)
    t_first = time.time()
    for c in chunks:
        logs_sock.sendall(c)  # type: ignore[attr-defined]
    result.update(lines=lines, bytes=total, first_send_wall=t_first, last_send_wall=time.time())


def mode_xcom(client: Client, ti: dict, result: dict) -> None:
    mib = float(os.environ.get("BENCH_XCOM_MIB", "16"))
    runs = int(os.environ.get("BENCH_XCOM_RUNS", "3"))
    value = "x" * int(mib * 1024 * 1024)
    where = {
        "dag_id": ti["dag_id"],
        "run_id": ti["run_id"],
        "task_id": ti["task_id"],
        "map_index": ti.get("map_index", -1),
    }
    sets, gets = [], []
    for i in range(runs):
        key = f"big_{i}"
        took, reply = client.timed({"type": "SetXCom", "key": key, "value": value, **where})
        if len(reply) > 2 and reply[2]:
            raise RuntimeError(f"SetXCom failed: {reply[2]!r}")
        sets.append(took)
        took, reply = client.timed({"type": "GetXCom", "key": key, **where})
        body = reply[1] if isinstance(reply[1], dict) else {}
        if body.get("value") != value:
            got = body.get("value")
            raise RuntimeError(f"GetXCom returned {type(got).__name__} of {len(str(got))} chars")
        gets.append(took)
    result.update(
        xcom_bytes=len(value),
        runs=runs,
        set_ms=[x * 1e3 for x in sets],
        get_ms=[x * 1e3 for x in gets],
    )


def main() -> int:
    opts = parse_args(sys.argv[1:])
    mode = os.environ.get("BENCH_MODE", "scale")
    comm_sock = connect(opts["comm"])
    logs_sock = connect(opts["logs"])
    comm = Comm(comm_sock)
    first = comm.read_frame()
    body = first[1] if len(first) > 1 and isinstance(first[1], dict) else {}
    client = Client(comm)
    client.req_id = first[0] if isinstance(first[0], int) else 0
    if body.get("type") == "DagFileParseRequest":
        reply = client.request(parse_result(body))
        return 0 if not (len(reply) > 2 and reply[2]) else 1
    if body.get("type") != "StartupDetails":
        print(json.dumps({"error": f"first frame: {first!r}"[:500]}), flush=True)
        return 1
    ti = body.get("ti") or {}
    result: dict = {"mode": mode, "pid": os.getpid(), "task_id": ti.get("task_id")}
    result["main_to_startup_ms"] = (time.time() - T_MAIN) * 1e3
    if mode == "scale":
        mode_scale(client, ti, result)
    elif mode == "logs":
        mode_logs(logs_sock, result)
    elif mode == "xcom":
        mode_xcom(client, ti, result)
    else:
        raise SystemExit(f"unknown BENCH_MODE {mode!r}")
    client.request(
        {
            "type": "SucceedTask",
            "state": "success",
            "end_date": datetime.now(UTC),
            "task_outlets": [],
            "outlet_events": [],
        }
    )
    result["succeeded_wall"] = time.time()
    result["peak_rss_kb"] = vm_hwm_kb()
    out_dir = os.environ.get("BENCH_OUT_DIR")
    if out_dir:
        name = f"{ti.get('task_id')}-{ti.get('map_index')}-{os.getpid()}.json"
        Path(out_dir, name).write_text(json.dumps(result))
    log(logs_sock, "done")
    comm_sock.close()
    logs_sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

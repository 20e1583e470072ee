"""The compiled scale child (runtimes/go/cmd/bench-scale-child) speaks exactly like
bench/_load_child.py in mode ``scale``: both are driven by the same fake supervisor over real
sockets and their frames, files and log lines are compared.

Skipped, with the reason, only when the Go toolchain is absent and the build script cannot
install it (not root); a build that fails with a toolchain present fails the tests.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest

ROOT = Path(__file__).resolve().parents[2]
PY_CHILD = ROOT / "bench" / "_load_child.py"
TIMEOUT = 60.0


def build_go_child() -> Path:
    """The built Go child (bench/scale.py builds it); pytest.skip when there is no Go
    toolchain to build it with."""
    sys.path.insert(0, str(ROOT / "bench"))
    import scale

    binary, why = scale.build_go_child()
    if binary is None:
        assert why is not None
        if why.startswith("no Go toolchain"):
            pytest.skip(why)
        pytest.fail(why)
    return binary


@pytest.fixture(scope="module")
def go_child() -> list[str]:
    return [str(build_go_child())]


PY_CMD = [sys.executable, str(PY_CHILD)]


def _read_frame(conn: socket.socket) -> bytes:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise EOFError(f"child closed the comm socket after {len(data)} of {n} bytes")
            data += chunk
        return data

    (size,) = struct.unpack(">I", exactly(4))
    return exactly(size)


def _send(conn: socket.socket, frame: list[Any]) -> None:
    payload = msgpack.packb(frame, datetime=True)
    conn.sendall(struct.pack(">I", len(payload)) + payload)


def drive(cmd: list[str], first: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """Run the child against a fake supervisor: send ``first`` as frame 0, answer every
    request (GetVariable with a VariableResult, anything else with an empty ack), and return
    the raw request payloads, what arrived on --logs and the exit status."""
    comm_l = socket.create_server(("127.0.0.1", 0))
    logs_l = socket.create_server(("127.0.0.1", 0))
    comm_l.settimeout(TIMEOUT)
    logs_l.settimeout(TIMEOUT)
    args = [f"--comm=127.0.0.1:{comm_l.getsockname()[1]}"]
    args += [f"--logs=127.0.0.1:{logs_l.getsockname()[1]}"]
    proc = subprocess.Popen([*cmd, *args], env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip
    opened: list[socket.socket] = [comm_l, logs_l]
    try:
        comm, _ = comm_l.accept()
        opened.append(comm)
        logs, _ = logs_l.accept()
        opened.append(logs)
        comm.settimeout(TIMEOUT)
        logs.settimeout(TIMEOUT)
        _send(comm, [0, first, None])
        requests: list[bytes] = []
        arrived: list[float] = []
        while True:
            try:
                payload = _read_frame(comm)
            except EOFError:
                break
            requests.append(payload)
            arrived.append(time.monotonic())
            req_id, body, _ = msgpack.unpackb(payload, timestamp=3)
            if body["type"] == "GetVariable":
                reply = {"type": "VariableResult", "key": body["key"], "value": "bench-value"}
                _send(comm, [req_id, reply, None])
            else:
                _send(comm, [req_id, None, None])
        log_bytes = b""
        while chunk := logs.recv(65536):
            log_bytes += chunk
        _, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for sock in opened:
            sock.close()
    return {
        "requests": requests,
        "arrived": arrived,
        "logs": log_bytes,
        "code": proc.returncode,
        "stderr": stderr,
    }


PARSE_REQUEST = {
    "file": "/dags/scale_dag.py",
    "bundle_path": "/dags",
    "bundle_name": "dags-folder",
    "callback_requests": [],
    "type": "DagFileParseRequest",
}


def test_go_child_answers_the_parse_with_the_python_childs_bytes(go_child: list[str]) -> None:
    """The Go child's DagFileParsingResult for a DAG of 300 tasks is byte for byte the one
    bench/_load_child.py sends, and both exit 0 on its ack."""
    env = {"BENCH_DAG_ID": "scale_dag", "BENCH_TASKS": "300"}
    py = drive(PY_CMD, PARSE_REQUEST, env)
    go = drive(go_child, PARSE_REQUEST, env)
    assert py["code"] == 0 == go["code"], (py["stderr"], go["stderr"])
    assert len(py["requests"]) == 1, py
    assert go["requests"] == py["requests"]
    _, body, _ = msgpack.unpackb(go["requests"][0])
    assert len(body["serialized_dags"][0]["data"]["dag"]["tasks"]) == 300


def _startup(task_id: str) -> dict[str, Any]:
    return {
        "type": "StartupDetails",
        "ti": {
            "id": "0192",
            "task_id": task_id,
            "dag_id": "scale_dag",
            "run_id": "r",
            "try_number": 1,
            "map_index": -1,
        },
        "dag_rel_path": "scale_dag.py",
        "bundle_info": {"name": "dags-folder", "version": None},
    }


def _run_task(cmd: list[str], work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The child as task t0001 with the scale harness's barrier: the FIFO's writer is closed
    once its ready file exists. (drive's result, the child's measurement file)."""
    ready, out = work / "ready", work / "out"
    ready.mkdir(parents=True)
    out.mkdir()
    fifo = work / "go.fifo"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    released: list[float] = []

    def release() -> None:
        deadline = time.monotonic() + TIMEOUT
        while not os.listdir(ready) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # the child is (very likely) blocked on the FIFO by now
        released.append(time.monotonic())
        os.close(writer)

    releaser = threading.Thread(target=release)
    releaser.start()
    env = {"BENCH_MODE": "scale", "BENCH_READY_DIR": str(ready), "BENCH_GO_FIFO": str(fifo),
           "BENCH_OUT_DIR": str(out), "BENCH_HOLD_S": "0.1", "BENCH_RT": "3"}  # fmt: skip
    result = drive(cmd, _startup("t0001"), env)
    releaser.join()
    result["released"] = released[0]
    (ready_file,) = os.listdir(ready)
    (out_file,) = out.glob("*.json")
    measurement = json.loads(out_file.read_text())
    pid = measurement["pid"]
    assert ready_file == f"t0001--1-{pid}", ready_file
    assert out_file.name == f"t0001--1-{pid}.json", out_file
    return result, measurement


def test_go_child_runs_the_scale_task_like_the_python_child(
    go_child: list[str], tmp_path: Path
) -> None:
    """As a task, the Go child sends the same requests (same ids, same bytes but for
    SucceedTask's end_date), waits for the FIFO's end of file, writes a measurement with the
    same keys and value kinds and the same "done" log line."""
    py, py_m = _run_task(PY_CMD, tmp_path / "py")
    go, go_m = _run_task(go_child, tmp_path / "go")
    assert py["code"] == 0 == go["code"], (py["stderr"], go["stderr"])
    assert len(go["requests"]) == len(py["requests"]) == 7
    assert go["requests"][:6] == py["requests"][:6]  # six GetVariable round trips
    py_end = msgpack.unpackb(py["requests"][6], timestamp=3)
    go_end = msgpack.unpackb(go["requests"][6], timestamp=3)
    assert list(go_end[1]) == list(py_end[1]), (go_end, py_end)
    assert go_end[0] == py_end[0] == 7
    assert type(go_end[1]["end_date"]) is type(py_end[1]["end_date"])
    go_end[1].pop("end_date"), py_end[1].pop("end_date")
    assert go_end == py_end

    assert list(go_m) == list(py_m), (go_m, py_m)
    for key, value in py_m.items():
        assert isinstance(go_m[key], type(value)) or (
            isinstance(value, float) and isinstance(go_m[key], int)
        ), (key, go_m[key], value)
    assert go_m["round_trips"] == 6 and len(go_m["rt_ms"]) == 6
    assert go_m["rt_ms"] == sorted(go_m["rt_ms_before"] + go_m["rt_ms_after"])
    for run in (py, go):  # the round trips after the hold come after the release
        assert run["arrived"][2] < run["released"] < run["arrived"][3], run["arrived"]
    assert go_m["peak_rss_kb"] > 0

    py_log, go_log = json.loads(py["logs"]), json.loads(go["logs"])
    assert list(go_log) == list(py_log) == ["timestamp", "level", "event", "logger"]
    assert {k: v for k, v in go_log.items() if k != "timestamp"} == {
        k: v for k, v in py_log.items() if k != "timestamp"
    }
    assert go_log["timestamp"].endswith("+00:00"), go_log

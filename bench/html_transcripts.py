"""Large, realistic transcripts written straight through ``TranscriptWriter`` (no session).

A task that makes N requests of the kinds a real one makes (variables, connections, XComs,
asset events, a few failing lookups), each answered through the stub's HTTP call with the
headers the real client sends, log lines in between, a heartbeat now and then, and near the end
one protocol violation. Seconds, ids, bodies and headers look like those of a recorded run
(docs/transcript.md); only the clock is invented.

    write_transcript(path, frames=100_000)  ->  {"frames": ..., "records": ..., "needle": ...}

``needle`` names one specific frame deep inside (its ``seq``, frame id and a unique key in its
body), which the HTML scale test searches for. Used by bench/html_scale.py and
tests/transcript/test_html_scale.py.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supervisor_sim.protocol import SecretsMasker, packb
from supervisor_sim.transcript import TranscriptWriter

RUN_ID = "manual__2026-01-01T00:00:00+00:00"
TI_ID = "01a23c04-b2aa-7d24-b9db-c11eef9320c2"
DAG, TASK = "bench_dag", "transform_orders"
RUNTIME = [
    "/opt/airflow/.venv/bin/python",
    "-m",
    "airflow_runtime.entrypoint",
    "--profile",
    "bench",
    "/opt/airflow/dags/bench_dag.py",
]
NEEDLE_KEY = "needle_6f1d2c"


@dataclass(slots=True)
class _Event:
    kind: str
    t: float
    data: dict[str, Any]
    seq: int = 0


@dataclass
class _Session:
    writer: TranscriptWriter
    seq: int = 0
    t: float = 0.05
    frames: int = 0
    records: int = 0
    needle: dict[str, Any] = field(default_factory=dict)

    def emit(self, kind: str, data: dict[str, Any], dt: float = 0.00011) -> int:
        self.seq += 1
        self.t += dt
        self.records += 1
        if kind == "frame":
            self.frames += 1
        self.writer(_Event(kind, round(self.t, 6), data, self.seq))
        return self.seq


def _request_headers(length: int | None) -> dict[str, str]:
    headers = {
        "host": "stub.invalid",
        "airflow-api-version": "2026-06-30",
        "correlation-id": str(uuid.uuid4()),
        "user-agent": "supervisor-sim",
        "accept": "application/json",
        "authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0aSJ9.c2lnbmF0dXJl",
    }
    if length is not None:
        headers["content-type"] = "application/json"
        headers["content-length"] = str(length)
    return headers


def _response_headers(request: dict[str, str], length: int) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "airflow-api-version": "2026-06-30",
        "correlation-id": request["correlation-id"],
        "content-length": str(length),
    }


def _http(
    s: _Session,
    method: str,
    path: str,
    status: int,
    cause: Any,
    request: Any = None,
    response: Any = None,
) -> None:
    req_body = b"" if request is None else json.dumps(request).encode()
    res_body = b"" if response is None else json.dumps(response).encode()
    req_headers = _request_headers(len(req_body) if req_body else None)
    s.emit(
        "http",
        {
            "method": method,
            "path": path,
            "query": "",
            "status": status,
            "error": None,
            "attempt": 1,
            "duration_s": 0.000213,
            "cause": cause,
            "request_headers": req_headers,
            "request_body": req_body,
            "response_headers": _response_headers(req_headers, len(res_body)),
            "response_body": res_body,
        },
        dt=0.00009,
    )


def _frame_in(s: _Session, fid: int, body: dict[str, Any]) -> int:
    payload = packb([fid, body, None])
    return s.emit(
        "frame",
        {
            "direction": "in",
            "id": fid,
            "type": body["type"],
            "body": body,
            "payload": payload,
            "offset": s.frames * 60,
            "elements": 3,
        },
        dt=0.00015,
    )


def _frame_out(
    s: _Session, fid: int, body: dict[str, Any] | None, error: dict[str, Any] | None = None
) -> int:
    payload = packb([fid, body, error])
    typ = None if body is None else body.get("type")
    data = {"direction": "out", "id": fid, "type": typ, "body": body, "payload": payload}
    if error is not None:
        data["error"] = error
    return s.emit("frame", data, dt=0.00003)


def _log(s: _Session, level: str, event: str, **fields: Any) -> None:
    record = {
        "level": level,
        "event": event,
        "timestamp": "2026-01-01T00:00:01.000000Z",
        "logger": "task",
        "ti_id": TI_ID,
        "dag_id": DAG,
        "task_id": TASK,
        "run_id": RUN_ID,
        **fields,
    }
    s.emit("log", {"source": "logs", "record": record}, dt=0.00005)


def _exchange(s: _Session, fid: int, i: int, needle_at: int, violation_at: int) -> None:
    """One request of a rotating kind, its HTTP call, its reply, and now and then a log line."""
    kind = i % 8
    key = NEEDLE_KEY if i == needle_at else f"order_{i:06d}"
    if kind in (0, 1, 2):
        req = _frame_in(s, fid, {"type": "GetVariable", "key": key})
        if i == needle_at:
            s.needle = {"seq": req, "id": fid, "key": key, "type": "GetVariable"}
        value = {"order": i, "sku": f"SKU-{i % 977:04d}", "qty": i % 13 + 1, "region": "eu-west"}
        _http(
            s,
            "GET",
            f"/execution/variables/{key}",
            200,
            req,
            response={"key": key, "value": json.dumps(value)},
        )
        _frame_out(s, fid, {"key": key, "value": json.dumps(value), "type": "VariableResult"})
    elif kind == 3:
        conn = f"warehouse_{i % 5}"
        req = _frame_in(s, fid, {"type": "GetConnection", "conn_id": conn})
        result = {
            "conn_id": conn,
            "conn_type": "postgres",
            "host": "db.example.invalid",
            "schema": "orders",
            "login": "etl",
            "password": "***",
            "port": 5432,
            "extra": None,
        }
        _http(s, "GET", f"/execution/connections/{conn}", 200, req, response=result)
        _frame_out(s, fid, {**result, "type": "ConnectionResult"})
    elif kind == 4:
        body = {
            "type": "SetXCom",
            "key": f"batch_{i}",
            "value": {"rows": i % 1000, "ok": True},
            "dag_id": DAG,
            "run_id": RUN_ID,
            "task_id": TASK,
            "map_index": -1,
            "mapped_length": None,
        }
        req = _frame_in(s, fid, body)
        _http(
            s,
            "POST",
            f"/execution/xcoms/{DAG}/{RUN_ID}/{TASK}/batch_{i}",
            201,
            req,
            request={"rows": i % 1000, "ok": True},
            response={"message": "XCom set"},
        )
        _frame_out(s, fid, None)
        if i % 40 == 4:
            _log(s, "info", f"Pushed batch {i}", rows=i % 1000)
    elif kind == 5:
        body = {
            "type": "GetXCom",
            "key": "return_value",
            "dag_id": DAG,
            "run_id": RUN_ID,
            "task_id": "extract_orders",
            "map_index": i % 4,
            "include_prior_dates": False,
        }
        req = _frame_in(s, fid, body)
        path = f"/execution/xcoms/{DAG}/{RUN_ID}/extract_orders/return_value"
        _http(s, "GET", path, 200, req, response={"key": "return_value", "value": [i, i + 1]})
        _frame_out(s, fid, {"key": "return_value", "value": [i, i + 1], "type": "XComResult"})
    elif kind == 6:
        missing = f"optional_{i % 17}"
        req = _frame_in(s, fid, {"type": "GetVariable", "key": missing})
        detail = {"reason": "not_found", "message": f"Variable with key '{missing}' not found"}
        _http(s, "GET", f"/execution/variables/{missing}", 404, req, response={"detail": detail})
        _frame_out(
            s,
            fid,
            {"error": "VARIABLE_NOT_FOUND", "detail": {"key": missing}, "type": "ErrorResponse"},
        )
        if i % 48 == 6:
            _log(s, "warning", f"Variable {missing} is not set, using the default")
    else:
        body = {"type": "GetTICount", "dag_id": DAG, "task_ids": [TASK], "states": ["success"]}
        req = _frame_in(s, fid, body)
        _http(s, "GET", "/execution/task-instances/count", 200, req, response=i % 50)
        _frame_out(s, fid, {"count": i % 50, "type": "TICount"})
    if i % 25 == 0:
        _log(s, "info", f"Processed {i} orders", progress=round(i / max(needle_at, 1), 3))
    if i == violation_at:
        s.emit(
            "violation",
            {
                "rule": "unknown-message-type",
                "message": "the runtime sent a SetRenderedFields for another task instance",
                "airflow": "the supervisor logs the error and answers with an ErrorResponse",
                "frame_id": fid,
            },
            dt=0.00001,
        )


def write_transcript(path: Path, frames: int = 100_000) -> dict[str, Any]:
    """Write a transcript of about ``frames`` frames (2 per request, and StartupDetails) to
    ``path``; returns its counts and the needle frame."""
    masker = SecretsMasker()
    masker.add("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0aSJ9.c2lnbmF0dXJl")
    header = {
        "command": ["supervisor-sim", "run-task", DAG, TASK, "--runtime", " ".join(RUNTIME)],
        "runtime": RUNTIME,
        "api": "stub",
        "config": {"heartbeat_interval": 5.0},
        "task": {
            "ti": {
                "id": TI_ID,
                "task_id": TASK,
                "dag_id": DAG,
                "run_id": RUN_ID,
                "try_number": 1,
                "map_index": -1,
            },
            "dag_rel_path": "bench_dag.py",
            "dag_id": DAG,
            "task_id": TASK,
            "run_id": RUN_ID,
            "try_number": 1,
            "map_index": -1,
        },
    }
    writer = TranscriptWriter(path, header, redact=masker.redact)
    s = _Session(writer)
    s.emit(
        "process",
        {
            "event": "spawn",
            "argv": [*RUNTIME, "--comm=127.0.0.1:40169", "--logs=127.0.0.1:45347"],
            "pid": 19487,
        },
    )
    s.emit("process", {"event": "connect", "channel": "comm", "peer": "127.0.0.1:58836"})
    _http(
        s,
        "PATCH",
        f"/execution/task-instances/{TI_ID}/run",
        200,
        "start",
        request={"state": "running", "hostname": "vm", "pid": 19487},
        response={"dag_run": {"dag_id": DAG, "run_id": RUN_ID}, "max_tries": 1},
    )
    _frame_out(
        s,
        0,
        {
            "ti": header["task"]["ti"],
            "dag_rel_path": "bench_dag.py",
            "bundle_info": {"name": "dags-folder", "version": None},
            "start_date": "2026-01-01T00:00:00Z",
            "type": "StartupDetails",
        },
    )
    requests = max(-(-(frames - 3) // 2), 1)  # at least ``frames`` frames
    needle_at = requests * 3 // 4 - ((requests * 3 // 4) % 8)  # a GetVariable, 3/4 of the way
    violation_at = requests - 3
    for i in range(requests):
        if i % 2000 == 1999:
            _http(
                s,
                "PUT",
                f"/execution/task-instances/{TI_ID}/heartbeat",
                204,
                "heartbeat",
                request={"hostname": "vm", "pid": 19487},
            )
        _exchange(s, i, i, needle_at, violation_at)
    body = {
        "type": "SucceedTask",
        "state": "success",
        "end_date": "2026-01-01T00:01:00Z",
        "task_outlets": [],
        "outlet_events": [],
        "rendered_map_index": None,
    }
    req = _frame_in(s, requests, body)
    _http(
        s,
        "PATCH",
        f"/execution/task-instances/{TI_ID}/state",
        204,
        req,
        request={"state": "success"},
    )
    _frame_out(s, requests, None)
    s.emit("process", {"event": "eof", "channel": "comm"})
    s.emit("process", {"event": "exit", "exit_code": 0})
    writer.close({"final_state": "success", "exit_code": 0, "violations": 1})
    return {
        "frames": s.frames,
        "records": s.records,
        "bytes": path.stat().st_size,
        "needle": s.needle,
    }

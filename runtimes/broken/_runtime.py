"""A minimal, correct --comm/--logs task runtime (msgpack only) that can be broken on purpose.

``supervisor-sim check`` must pass on this file run as it is, and must fail, naming the rule, on
each variant beside it, which breaks exactly one thing through ``Breaks``:

=========================== =====================================================
rejects_unknown_fields.py   decoders refuse keys they do not know
naive_datetimes.py          datetimes sent as ISO strings without a zone
no_terminal.py              exits 0 without a terminal message
ignores_reply_ids.py        takes any reply as the answer to its request
log_without_level.py        log lines have no ``level`` key
ignores_sigterm.py          ignores SIGTERM (killed only by the SIGKILL escalation)
=========================== =====================================================

It runs one DAG, ``example_dag``, whose tasks log a line and succeed. Usage:
``python _runtime.py --comm=HOST:PORT --logs=HOST:PORT`` (exit 0 after an acknowledged terminal
message; 1 when the comm channel breaks or the first frame is wrong).
"""

from __future__ import annotations

import json
import socket
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgpack

DAGS = {"example_dag": ("hello", "read_var_conn")}

# Keys this runtime knows, per message (what a strict decoder would accept).
KNOWN_KEYS = {
    "StartupDetails": {
        "type", "ti", "dag_rel_path", "bundle_info", "start_date", "ti_context",
        "sentry_integration",
    },
    "ti": {
        "id", "task_id", "dag_id", "run_id", "try_number", "dag_version_id", "map_index",
        "hostname", "context_carrier", "queue",
    },
    "bundle_info": {"name", "version"},
    "ti_context": {
        "dag_run", "task_reschedule_count", "max_tries", "variables", "connections",
        "next_method", "next_kwargs", "xcom_keys_to_clear", "should_retry", "start_date",
    },
}  # fmt: skip


@dataclass(frozen=True)
class Breaks:
    reject_unknown_fields: bool = False
    naive_datetimes: bool = False
    no_terminal: bool = False
    ignore_reply_ids: bool = False
    log_without_level: bool = False


class Broken(Exception):
    """The comm channel can no longer be trusted."""


class Runtime:
    def __init__(self, comm: socket.socket, logs: socket.socket, breaks: Breaks) -> None:
        self.comm, self.logs, self.breaks = comm, logs, breaks
        self.next_id = 0
        self.context: dict[str, Any] = {}

    # logs ----------------------------------------------------------------------------------

    def log(self, level: str, event: str, **fields: Any) -> None:
        record: dict[str, Any] = {
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "level": level,
            "event": event,
            "logger": "broken_runtime",
            **self.context,
            **fields,
        }
        if self.breaks.log_without_level:
            record.pop("level")
        try:
            self.logs.sendall(json.dumps(record, default=str).encode() + b"\n")
        except OSError:
            pass

    # comm ----------------------------------------------------------------------------------

    def _recv(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.comm.recv(n - len(buf))
            if not chunk:
                raise Broken("comm socket closed")
            buf += chunk
        return buf

    def read_frame(self) -> tuple[int, Any, Any]:
        length = int.from_bytes(self._recv(4), "big")
        frame = msgpack.unpackb(self._recv(length), timestamp=3, raw=False)
        if not isinstance(frame, list) or not frame:
            raise Broken(f"not a frame: {frame!r:.80}")
        return frame[0], frame[1] if len(frame) > 1 else None, frame[2] if len(frame) > 2 else None

    def request(self, body: dict[str, Any]) -> tuple[Any, Any]:
        req_id = self.next_id
        self.next_id += 1
        payload = msgpack.packb([req_id, body, None], datetime=True, use_bin_type=True)
        self.comm.sendall(len(payload).to_bytes(4, "big") + payload)
        reply_id, reply, error = self.read_frame()
        if reply_id != req_id and not self.breaks.ignore_reply_ids:
            raise Broken(f"reply id {reply_id} for request {req_id}")
        if reply is not None:
            self.check_keys(reply.get("type"), reply)
        return reply, error

    def check_keys(self, name: str | None, body: Any) -> None:
        known = KNOWN_KEYS.get(name or "")
        if not self.breaks.reject_unknown_fields or known is None or not isinstance(body, dict):
            return
        unknown = set(body) - known
        if unknown:
            raise Broken(f"unknown keys in {name}: {sorted(unknown)}")
        for key in ("ti", "bundle_info", "ti_context"):
            if name == "StartupDetails":
                self.check_keys(key, body.get(key))

    def now(self) -> Any:
        if self.breaks.naive_datetimes:
            return datetime.now().isoformat()  # no zone: Airflow drops the request
        return datetime.now(UTC)

    # workloads ------------------------------------------------------------------------------

    def run(self) -> int:
        _, body, _ = self.read_frame()
        kind = body.get("type") if isinstance(body, dict) else None
        if kind == "StartupDetails":
            self.check_keys(kind, body)
            return self.run_task(body)
        if kind == "DagFileParseRequest":
            return self.parse(body)
        self.log("error", "unexpected first frame", type=kind)
        return 1

    def run_task(self, details: dict[str, Any]) -> int:
        ti = details.get("ti") or {}
        context = details.get("ti_context") or {}
        self.context = {"dag_id": ti.get("dag_id"), "task_id": ti.get("task_id")}
        self.log("info", "::group::Pre Execute")
        if ti.get("task_id") not in DAGS.get(ti.get("dag_id"), ()):
            self.log("error", "task not found; reporting it as removed")
            return self.finish({"type": "TaskState", "state": "removed", "end_date": self.now()})
        terminal: dict[str, Any] = {
            "type": "SucceedTask",
            "state": "success",
            "end_date": None,
            "task_outlets": [],
            "outlet_events": [],
        }
        try:
            for key in context.get("xcom_keys_to_clear") or []:
                reply, error = self.request(
                    {
                        "type": "DeleteXCom",
                        "key": key,
                        "dag_id": ti["dag_id"],
                        "run_id": ti["run_id"],
                        "task_id": ti["task_id"],
                        "map_index": ti.get("map_index", -1),
                    }
                )
                if error is not None or (reply or {}).get("type") == "ErrorResponse":
                    raise RuntimeError(f"DeleteXCom failed: {error or reply}")
            self.log("info", "Hello from the broken runtime's control")
        except Broken:
            raise
        except Exception as exc:
            self.log("error", "task failed", error=str(exc))
            terminal = {"type": "TaskState", "state": "failed", "end_date": None}
        if self.breaks.no_terminal:
            self.log("warning", "exiting without a terminal message")
            return 0
        terminal["end_date"] = self.now()
        return self.finish(terminal)

    def finish(self, terminal: dict[str, Any]) -> int:
        reply, error = self.request(terminal)
        if error is not None or (reply or {}).get("type") == "ErrorResponse":
            self.log("error", "terminal message rejected", error=error or reply)
            return 1
        self.log("info", "Task finished", state=terminal["state"])
        return 0

    def parse(self, request: dict[str, Any]) -> int:
        dags = []
        for dag_id, tasks in DAGS.items():
            operators = [
                {
                    "__type": "operator",
                    "__var": {
                        "task_id": task_id,
                        "task_type": "BrokenRuntimeTask",
                        "_task_module": "broken_runtime",
                        "ui_color": "#fff",
                        "ui_fgcolor": "#000",
                        "template_fields": [],
                    },
                }
                for task_id in tasks
            ]
            data = {
                "__version": 3,
                "dag": {"dag_id": dag_id, "fileloc": request["file"], "tasks": operators},
            }
            dags.append({"data": data})
        result = {
            "type": "DagFileParsingResult",
            "fileloc": request["file"],
            "serialized_dags": dags,
            "warnings": [],
            "import_errors": {},
        }
        _, error = self.request(result)
        return 1 if error is not None else 0


def main(breaks: Breaks = Breaks(), argv: list[str] | None = None) -> int:
    args = dict(
        a[2:].split("=", 1) for a in (argv or sys.argv[1:]) if a.startswith("--") and "=" in a
    )
    try:
        host, port = args["comm"].rsplit(":", 1)
        lhost, lport = args["logs"].rsplit(":", 1)
    except (KeyError, ValueError):
        print("usage: --comm=HOST:PORT --logs=HOST:PORT", file=sys.stderr)
        return 2
    comm = socket.create_connection((host, int(port)))
    logs = socket.create_connection((lhost, int(lport)))
    runtime = Runtime(comm, logs, breaks)
    try:
        return runtime.run()
    except Broken as exc:
        runtime.log("error", "comm channel broken", reason=str(exc))
        return 1
    finally:
        comm.close()
        logs.close()


if __name__ == "__main__":
    sys.exit(main())

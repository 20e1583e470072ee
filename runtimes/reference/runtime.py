#!/usr/bin/env python3
"""Reference task runtime: an independent peer for Airflow 3.3's task supervisor.

This program plays the part of a non-Python SDK launched by a coordinator. It depends only on the
standard library and ``msgpack`` (deliberately not msgspec and not ``supervisor_sim``), so it checks
the supervisor against the wire contract rather than against shared code.

Usage::

    runtime.py [--bundle MODULE_PATH] --comm=HOST:PORT --logs=HOST:PORT

Contract followed (see protocol.md sections 1, 2.4-2.7, 4.1, 5.2 and 8):

* Startup: connect TCP to ``--comm`` and ``--logs`` *before* reading anything. The supervisor only
  sends its first frame once both connections are accepted.
* Framing: every frame is a 4-byte big-endian payload length followed by one msgpack array.
  Requests are ``[id, body, None]``, three elements like Airflow's Python runtime, with ids counting
  up from 0. Replies may be ``[id]``, ``[id, body]`` or ``[id, body, error]``; shorter arrays take
  nil defaults and extra trailing elements are ignored. The reply id must equal the request id.
  Strict lock-step: one request in flight at a time, and no timeout on the wait, because the
  supervisor may spend minutes retrying HTTP calls.
* Values: datetimes travel as msgpack timestamp extensions (ext type -1) in both directions. We
  always send tz-aware instants and decode all three timestamp sizes to aware UTC datetimes.
* First frame: ``[0, body, None]`` whose ``body["type"]`` selects the mode. ``StartupDetails`` runs
  a task. ``DagFileParseRequest`` (DAG parsing) is recognised but not implemented yet.
* Replies: an ``ErrorResponse`` in the body slot is a typed "not found" style answer. A non-nil
  error slot means the supervisor or the API failed, and it is raised inside the task.
* Outcome: exactly one terminal message (``SucceedTask``, ``TaskState`` or ``RetryTask``), wait
  for its ack, close both sockets, exit 0. The outcome travels in the message, not the exit code.
* Logs: one JSON object per line on the logs socket with keys ``timestamp``, ``level``, ``event``
  and ``logger`` first. Level filtering is done here from ``AIRFLOW__LOGGING__LOGGING_LEVEL`` and
  ``AIRFLOW__LOGGING__NAMESPACE_LEVELS``. Secret masking is the supervisor's job, so it is not done
  here.

Exit codes: 0 when a terminal message was acknowledged, 1 on fatal errors (bad first frame,
protocol violations, unloadable bundle, terminal message rejected), 2 on usage errors.

A task is a function ``task(ctx) -> value``. ``ctx`` is a :class:`TaskContext`. The bundle is a
Python file defining ``DAGS = {dag_id: {task_id: function}}``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import msgpack

RUNTIME_LOGGER = "reference_runtime"
TASK_LOGGER = "task"
DEFAULT_BUNDLE = Path(__file__).with_name("example_dags.py")

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_USAGE = 2

# The Python runtime truncates RetryTask.retry_reason to this length.
RETRY_REASON_MAX_CHARS = 500
MAX_FRAME_BYTES = 2**32 - 1  # the length header is a u32

# ErrorResponse codes that mean "what you asked for is not there". They arrive in the body slot.
NOT_FOUND_ERRORS = frozenset(
    {
        "CONNECTION_NOT_FOUND",
        "VARIABLE_NOT_FOUND",
        "XCOM_NOT_FOUND",
        "ASSET_NOT_FOUND",
        "TASK_STORE_NOT_FOUND",
        "ASSET_STORE_NOT_FOUND",
    }
)

TaskFunction = Callable[["TaskContext"], Any]


# --------------------------------------------------------------------------------------------
# Exceptions
# --------------------------------------------------------------------------------------------


class SkipTask(Exception):
    """Raise from a task to finish it as ``skipped``."""


class NotFound(KeyError):
    """The supervisor answered with a "not found" ``ErrorResponse`` in the body slot."""

    def __init__(self, error: str, detail: Any = None) -> None:
        super().__init__(error)
        self.error = error
        self.detail = detail

    def __str__(self) -> str:
        # KeyError.__str__ would quote the message; a plain message reads better in logs.
        return f"{self.error}: {self.detail!r}"


class SupervisorError(RuntimeError):
    """The reply carried a non-nil error slot, or an ErrorResponse that is not "not found"."""

    def __init__(self, error: dict[str, Any]) -> None:
        self.error = error.get("error", "GENERIC_ERROR")
        self.detail = error.get("detail")
        super().__init__(f"{self.error}: {self.detail!r}")


class ProtocolError(Exception):
    """The supervisor broke the framing contract. The comm channel can no longer be trusted."""


# --------------------------------------------------------------------------------------------
# Comm channel: length-prefixed msgpack frames
# --------------------------------------------------------------------------------------------


class Comms:
    """Lock-step request/response client on the comm socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._next_id = 0
        # Tasks may use threads; the protocol allows one request in flight, as in Airflow.
        self._lock = threading.Lock()
        # Set once the stream is out of sync (EOF, bad frame, wrong id). Every later request
        # fails fast, and the runner exits 1 instead of sending a terminal message into it.
        self.broken: str | None = None

    def read_first_frame(self) -> tuple[int, dict[str, Any] | None, dict[str, Any] | None]:
        with self._lock:
            return self._read_reply()

    def request(self, body: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Send one request and return ``(body, error)`` of its reply."""
        with self._lock:
            if self.broken is not None:
                raise ProtocolError(f"comm channel unusable: {self.broken}")
            req_id = self._next_id
            # Pack before touching the socket: an unencodable value (a set, a naive datetime)
            # is the caller's error and must not leave half a frame on the wire.
            payload = msgpack.packb([req_id, body, None], datetime=True, use_bin_type=True)
            if len(payload) > MAX_FRAME_BYTES:
                raise ValueError("cannot send messages larger than 4GiB")
            self._next_id += 1
            try:
                self._sock.sendall(len(payload).to_bytes(4, "big") + payload)
                reply_id, reply_body, error = self._read_reply()
            except (OSError, EOFError, ProtocolError) as exc:
                self.broken = f"{type(exc).__name__}: {exc}"
                raise
            if reply_id != req_id:
                self.broken = f"reply id {reply_id} does not match request id {req_id}"
                raise ProtocolError(self.broken)
            return reply_body, error

    def close(self) -> None:
        _close_quietly(self._sock)

    def _recv_exact(self, n: int, what: str) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self._sock.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                raise EOFError(f"comm socket closed {what} after {len(buf)} of {n} bytes")
            buf.extend(chunk)
        return bytes(buf)

    def _read_reply(self) -> tuple[int, dict[str, Any] | None, dict[str, Any] | None]:
        length = int.from_bytes(self._recv_exact(4, "while reading the length"), "big")
        if length == 0:
            raise ProtocolError("zero-length frame")
        payload = self._recv_exact(length, "while reading the frame body")
        try:
            # timestamp=3 turns all three timestamp ext sizes into aware UTC datetimes.
            frame = msgpack.unpackb(payload, timestamp=3, raw=False)
        except Exception as exc:
            raise ProtocolError(f"undecodable frame: {exc}") from exc
        if not isinstance(frame, list) or not frame:
            raise ProtocolError(f"frame is not a non-empty array: {frame!r:.200}")
        reply_id = frame[0]
        if not isinstance(reply_id, int) or isinstance(reply_id, bool):
            raise ProtocolError(f"frame id is not an int: {reply_id!r}")
        # Missing trailing elements mean nil; extra trailing elements are ignored.
        body = frame[1] if len(frame) > 1 else None
        error = frame[2] if len(frame) > 2 else None
        for name, value in (("body", body), ("error", error)):
            if value is not None and not isinstance(value, dict):
                raise ProtocolError(f"frame {name} is not a map: {value!r:.200}")
        return reply_id, body, error


# --------------------------------------------------------------------------------------------
# Logs channel: JSON lines
# --------------------------------------------------------------------------------------------

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
LEVEL_ALIASES = {"warn": "warning", "fatal": "critical", "exception": "error"}
# Same pattern as Airflow's JWT redaction, which the runtime (not the supervisor) applies.
JWT_RE = re.compile(r"eyJ[.A-Za-z0-9_-]*")
RESERVED_LOG_KEYS = ("timestamp", "level", "event", "logger")


def parse_level(name: str | None, default: int = LEVELS["info"]) -> int:
    """Map a level name (any case) or number to a numeric threshold."""
    if not name or not name.strip():
        return default
    text = name.strip().lower()
    if text.isdigit():
        return int(text)
    return LEVELS.get(LEVEL_ALIASES.get(text, text), default)


def parse_namespace_levels(spec: str | None) -> dict[str, int]:
    """Parse ``"<logger>=<LEVEL>"`` pairs separated by whitespace and/or commas."""
    levels: dict[str, int] = {}
    for pair in re.split(r"[\s,]+", spec or ""):
        name, sep, level = pair.partition("=")
        if sep and name:
            levels[name] = parse_level(level)
    return levels


def utc_timestamp(now: datetime | None = None) -> str:
    """RFC 3339 UTC with microseconds and ``Z``, like structlog's ``TimeStamper(fmt="iso")``."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return repr(value) if isinstance(value, bytes) else str(value)


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, default=_json_default))
    except (TypeError, ValueError):
        return repr(value)


def _redact_jwts(value: Any) -> Any:
    if isinstance(value, str):
        return JWT_RE.sub("eyJ***", value)
    if isinstance(value, dict):
        return {k: _redact_jwts(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_jwts(v) for v in value]
    return value


def exception_dicts(exc: BaseException) -> list[dict[str, Any]]:
    """Describe an exception chain like structlog's ``ExceptionDictTransformer`` does."""
    stack: list[dict[str, Any]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    is_cause = False
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = traceback.extract_tb(current.__traceback__)
        stack.append(
            {
                "exc_type": type(current).__name__,
                "exc_value": str(current),
                "exc_notes": list(getattr(current, "__notes__", [])),
                "syntax_error": None,
                "is_cause": is_cause,
                "frames": [
                    {"filename": f.filename, "lineno": f.lineno, "name": f.name} for f in frames
                ],
                "is_group": False,
                "exceptions": [],
            }
        )
        if current.__cause__ is not None:
            current, is_cause = current.__cause__, True
        elif current.__context__ is not None and not current.__suppress_context__:
            current, is_cause = current.__context__, False
        else:
            current = None
    return stack


class LogChannel:
    """Writes filtered JSON log records to the logs socket."""

    def __init__(self, sock: socket.socket | None, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._sock = sock
        self._lock = threading.Lock()
        self._default_level = parse_level(env.get("AIRFLOW__LOGGING__LOGGING_LEVEL"))
        self._namespace_levels = parse_namespace_levels(
            env.get("AIRFLOW__LOGGING__NAMESPACE_LEVELS")
        )
        self._context: dict[str, Any] = {}

    def bind(self, **context: Any) -> None:
        """Add fields to every later record (the TI identity, once StartupDetails is read)."""
        self._context.update(context)

    def logger(self, name: str) -> Logger:
        return Logger(self, name)

    def threshold(self, logger: str) -> int:
        # Most specific namespace wins: "task.x=DEBUG" beats "task=ERROR" for logger "task.x".
        best, best_len = self._default_level, -1
        for name, level in self._namespace_levels.items():
            if (logger == name or logger.startswith(name + ".")) and len(name) > best_len:
                best, best_len = level, len(name)
        return best

    def emit(self, level: str, logger: str, event: str, fields: dict[str, Any]) -> None:
        if LEVELS[level] < self.threshold(logger):
            return
        record: dict[str, Any] = {
            "timestamp": utc_timestamp(),
            "level": level,
            "event": str(event),
            "logger": logger,
        }
        record.update(self._context)
        for key, value in fields.items():
            # Never let a field replace the header keys the supervisor depends on.
            record[f"field_{key}" if key in RESERVED_LOG_KEYS else key] = value
        record = _redact_jwts(record)
        try:
            line = json.dumps(record, default=_json_default, ensure_ascii=False)
        except (TypeError, ValueError):
            # Tuple keys, cycles and the like: logging must never be what fails a task.
            # Only the offending fields become reprs; the header keys are plain strings.
            line = json.dumps({k: _jsonable(v) for k, v in record.items()}, ensure_ascii=False)
        # "replace" keeps the line valid UTF-8 even if a field held a lone surrogate.
        self._write((line + "\n").encode("utf-8", "replace"))

    def _write(self, data: bytes) -> None:
        with self._lock:
            if self._sock is not None:
                try:
                    self._sock.sendall(data)
                    return
                except OSError as exc:
                    # The supervisor went away; keep the task alive and fall back to stderr.
                    self._sock = None
                    sys.stderr.write(f"reference runtime: logs socket failed: {exc}\n")
            sys.stderr.write(data.decode("utf-8", "replace"))
            sys.stderr.flush()

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                _close_quietly(self._sock)
                self._sock = None


class Logger:
    """A named logger: ``log.info("event", key=value, ...)``."""

    def __init__(self, channel: LogChannel, name: str) -> None:
        self._channel = channel
        self.name = name

    def debug(self, event: str, **fields: Any) -> None:
        self._channel.emit("debug", self.name, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._channel.emit("info", self.name, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._channel.emit("warning", self.name, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._channel.emit("error", self.name, event, fields)

    def critical(self, event: str, **fields: Any) -> None:
        self._channel.emit("critical", self.name, event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        """Log at error level with the exception being handled, as structlog does."""
        exc = sys.exc_info()[1]
        if exc is not None:
            fields.setdefault("exception", exception_dicts(exc))
        self._channel.emit("error", self.name, event, fields)


# --------------------------------------------------------------------------------------------
# Task API
# --------------------------------------------------------------------------------------------


class TaskContext:
    """What a task function receives. Wraps the supervisor requests a task may make."""

    SkipTask = SkipTask  # so bundles can raise ctx.SkipTask without importing this file
    NotFound = NotFound
    SupervisorError = SupervisorError

    def __init__(self, comms: Comms, details: dict[str, Any], channel: LogChannel) -> None:
        self._comms = comms
        self._channel = channel
        self.details = details
        self.ti: dict[str, Any] = details.get("ti") or {}
        self.ti_context: dict[str, Any] = details.get("ti_context") or {}
        self.log = channel.logger(TASK_LOGGER)
        #: Whether a mapped task of the bundle expands over this task's return value: then its
        #: length goes with the XCom (``mapped_length``), as Airflow's task runner sends it, so
        #: that a real Airflow can expand the mapped task.
        self.has_mapped_dependants = False

    # Identity shortcuts -----------------------------------------------------------------------

    @property
    def dag_id(self) -> str:
        return self.ti.get("dag_id", "")

    @property
    def task_id(self) -> str:
        return self.ti.get("task_id", "")

    @property
    def run_id(self) -> str:
        return self.ti.get("run_id", "")

    @property
    def try_number(self) -> int:
        return int(self.ti.get("try_number") or 0)

    @property
    def map_index(self) -> int:
        # The TI model defaults map_index to -1 ("not mapped"); treat a nil the same way.
        value = self.ti.get("map_index")
        return -1 if value is None else int(value)

    # Requests ---------------------------------------------------------------------------------

    def request(self, body: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Send any message; return ``(body, error)`` untouched. Raises only on protocol errors."""
        return self._comms.request(body)

    def _call(self, body: dict[str, Any], expected: str | None) -> dict[str, Any] | None:
        """Send a request and turn error replies into exceptions.

        ``expected`` is the reply body type, or None for messages answered with an empty ack.
        """
        reply, error = self._comms.request(body)
        if error is not None:
            raise SupervisorError(error)
        if reply is not None and reply.get("type") == "ErrorResponse":
            if reply.get("error") in NOT_FOUND_ERRORS:
                raise NotFound(reply["error"], reply.get("detail"))
            raise SupervisorError(reply)
        if expected is not None and (reply is None or reply.get("type") != expected):
            found = None if reply is None else reply.get("type")
            raise SupervisorError(
                {"error": "GENERIC_ERROR", "detail": f"expected {expected} reply, got {found}"}
            )
        return reply

    def get_variable(self, key: str) -> str | None:
        reply = self._call({"type": "GetVariable", "key": key}, "VariableResult")
        return reply.get("value") if reply else None

    def put_variable(self, key: str, value: Any, description: str | None = None) -> None:
        # Variables are strings on the wire; `value` and `description` are required-nullable
        # keys, so both are always sent (a missing one gets the request silently dropped).
        if value is not None and not isinstance(value, str):
            value = json.dumps(value)
        body = {"type": "PutVariable", "key": key, "value": value, "description": description}
        self._call(body, None)

    def get_connection(self, conn_id: str) -> dict[str, Any]:
        reply = self._call({"type": "GetConnection", "conn_id": conn_id}, "ConnectionResult")
        conn = dict(reply or {})
        conn.pop("type", None)
        return conn

    def xcom_pull(
        self,
        task_id: str,
        key: str = "return_value",
        dag_id: str | None = None,
        run_id: str | None = None,
        map_index: int | None = None,
    ) -> Any:
        """Return an XCom value, or None when it does not exist (the supervisor sends nil)."""
        body = {
            "type": "GetXCom",
            "key": key,
            "dag_id": dag_id or self.dag_id,
            "run_id": run_id or self.run_id,
            "task_id": task_id,
            "map_index": map_index,
            "include_prior_dates": False,
        }
        try:
            reply = self._call(body, "XComResult")
        except NotFound:
            return None
        return reply.get("value") if reply else None

    def xcom_push(self, key: str, value: Any) -> None:
        self._call(
            {
                "type": "SetXCom",
                "key": key,
                "value": value,
                "dag_id": self.dag_id,
                "run_id": self.run_id,
                "task_id": self.task_id,
                "map_index": self.map_index,
                "mapped_length": (
                    len(value)
                    if key == "return_value"
                    and self.has_mapped_dependants
                    and isinstance(value, list | dict)
                    else None
                ),
                "dag_result": False,
            },
            None,
        )

    def delete_xcom(self, key: str) -> None:
        self._call(
            {
                "type": "DeleteXCom",
                "key": key,
                "dag_id": self.dag_id,
                "run_id": self.run_id,
                "task_id": self.task_id,
                "map_index": self.map_index,
            },
            None,
        )

    def mask_secret(self, value: Any, name: str | None = None) -> None:
        self._call({"type": "MaskSecret", "value": value, "name": name}, None)

    def exit_without_terminal(self, exit_code: int = 0) -> NoReturn:
        """Close both channels and exit now, without a terminal message (for failure tests)."""
        self.log.warning("Exiting without a terminal message", exit_code=exit_code)
        self._comms.close()
        self._channel.close()
        raise SystemExit(exit_code)


# --------------------------------------------------------------------------------------------
# Bundle loading
# --------------------------------------------------------------------------------------------


def load_bundle(path: Path) -> dict[str, dict[str, TaskFunction]]:
    """Import a bundle file and return its ``DAGS`` mapping."""
    spec = importlib.util.spec_from_file_location("reference_bundle", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import bundle {path}")
    module = importlib.util.module_from_spec(spec)
    # Registered before exec so that dataclasses/pickling inside the bundle can find it.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    dags = getattr(module, "DAGS", None)
    if not isinstance(dags, dict):
        raise ImportError(f"bundle {path} does not define a DAGS dict")
    return dags


# --------------------------------------------------------------------------------------------
# Running a task
# --------------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def succeed_task() -> dict[str, Any]:
    # SucceedTask forbids unknown keys: send exactly these.
    return {
        "type": "SucceedTask",
        "state": "success",
        "end_date": _now(),
        "task_outlets": [],
        "outlet_events": [],
        "rendered_map_index": None,
    }


def task_state(state: str) -> dict[str, Any]:
    return {"type": "TaskState", "state": state, "end_date": _now(), "rendered_map_index": None}


def retry_task(reason: str) -> dict[str, Any]:
    # RetryTask forbids unknown keys too. A nil delay lets the server use the task's own delay.
    return {
        "type": "RetryTask",
        "state": "up_for_retry",
        "end_date": _now(),
        "rendered_map_index": None,
        "retry_delay_seconds": None,
        "retry_reason": reason[:RETRY_REASON_MAX_CHARS],
    }


def execute(ctx: TaskContext, fn: TaskFunction) -> dict[str, Any]:
    """Run the task function and return the terminal message describing its outcome."""
    log = ctx.log
    try:
        result = fn(ctx)
        if result is not None:
            ctx.xcom_push("return_value", result)
    except SkipTask as exc:
        log.info("Skipping task.", reason=str(exc))
        return task_state("skipped")
    except Exception as exc:
        log.error("Task failed with exception", exception=exception_dicts(exc))
        if ctx.ti_context.get("should_retry"):
            return retry_task(str(exc) or type(exc).__name__)
        return task_state("failed")
    return succeed_task()


def send_terminal(comms: Comms, log: Logger, message: dict[str, Any]) -> int:
    """Send the single terminal message and wait for its ack."""
    body, error = comms.request(message)
    rejection = error or (body if body and body.get("type") == "ErrorResponse" else None)
    if rejection is not None:
        log.error(
            "Supervisor rejected the terminal message", state=message["state"], error=rejection
        )
        return EXIT_FATAL
    log.info("Task finished", state=message["state"])
    return EXIT_OK


def run_task_mode(comms: Comms, channel: LogChannel, details: dict[str, Any], bundle: Path) -> int:
    log = channel.logger(RUNTIME_LOGGER)
    ti = details.get("ti") or {}
    channel.bind(
        ti_id=ti.get("id"),
        dag_id=ti.get("dag_id"),
        task_id=ti.get("task_id"),
        run_id=ti.get("run_id"),
        try_number=ti.get("try_number"),
        map_index=ti.get("map_index", -1),
    )
    log.info("::group::Pre Execute")
    log.debug(
        "StartupDetails received",
        start_date=details.get("start_date"),
        dag_rel_path=details.get("dag_rel_path"),
        bundle_info=details.get("bundle_info"),
    )
    # One plain line on stdout so the supervisor's stdout capture has something to forward.
    print(
        f"reference runtime: running {ti.get('dag_id')}.{ti.get('task_id')} "
        f"try {ti.get('try_number')}",
        flush=True,
    )

    try:
        dags = load_bundle(bundle)
    except Exception as exc:
        log.error(
            "Could not load the DAG bundle", bundle=str(bundle), exception=exception_dicts(exc)
        )
        return EXIT_FATAL

    fn = (dags.get(ti.get("dag_id")) or {}).get(ti.get("task_id"))
    if fn is None:
        log.error(
            "DAG or task not found in the bundle; reporting it as removed", bundle=str(bundle)
        )
        return send_terminal(comms, log, task_state("removed"))

    ctx = TaskContext(comms, details, channel)
    mapped = getattr(sys.modules.get("reference_bundle"), "MAPPED", None) or {}
    ctx.has_mapped_dependants = ti.get("task_id") in (mapped.get(ti.get("dag_id")) or {}).values()
    terminal: dict[str, Any] | None = None
    try:
        # Stale XComs from an earlier try go first, as Airflow's runtime does before executing.
        for key in ctx.ti_context.get("xcom_keys_to_clear") or []:
            ctx.delete_xcom(key)
    except Exception as exc:
        ctx.log.error("Could not clear XComs", exception=exception_dicts(exc))
        terminal = task_state("failed")
    log.info("::endgroup::")

    if terminal is None:
        terminal = execute(ctx, fn)
    if comms.broken is not None:
        # The stream is out of sync: a terminal message now could be matched to the wrong reply.
        log.error("Comm channel broken; exiting without a terminal message", reason=comms.broken)
        return EXIT_FATAL

    log.info("::group::Post Execute")
    code = send_terminal(comms, log, terminal)
    log.info("::endgroup::")
    return code


def load_bundle_module(path: Path) -> Any:
    """Import a bundle file as a module (parse mode reads more than ``DAGS`` from it)."""
    load_bundle(path)
    return sys.modules["reference_bundle"]


def serialize_dag(module: Any, dag_id: str, fileloc: str, bundle_path: str) -> dict[str, Any]:
    """One DAG of the bundle in Airflow's serialized form, version 3 (protocol.md §7.5)."""
    tasks = module.DAGS[dag_id]
    deps = (getattr(module, "DEPENDENCIES", {}) or {}).get(dag_id, {})
    mapped = (getattr(module, "MAPPED", {}) or {}).get(dag_id, {})
    settings = (getattr(module, "TASK_SETTINGS", {}) or {}).get(dag_id, {})
    downstream: dict[str, list[str]] = {tid: [] for tid in tasks}
    for tid, upstream in deps.items():
        for up in upstream:
            if up in downstream and tid in tasks:
                downstream[up].append(tid)
    operators = []
    for tid in tasks:
        var: dict[str, Any] = {
            "task_id": tid,
            "task_type": "ReferenceRuntimeTask",
            "_task_module": "reference_runtime",
            "ui_color": "#ededed",
            "ui_fgcolor": "#000",
            "template_fields": [],
            "downstream_task_ids": sorted(downstream[tid]),
        }
        for key, value in (settings.get(tid) or {}).items():
            var[key] = value
        if tid in mapped:
            # How Airflow serializes `task.expand(x=upstream_task())`: an XComArg reference.
            ref = {"__type": "xcomref", "__var": {"task_id": mapped[tid], "key": "return_value"}}
            var.update(
                _is_mapped=True,
                partial_kwargs={},
                expand_input={
                    "type": "dict-of-lists",
                    "value": {"__type": "dict", "__var": {"value": ref}},
                },
            )
        operators.append({"__type": "operator", "__var": var})
    try:
        relative = str(Path(fileloc).resolve().relative_to(Path(bundle_path).resolve()))
    except ValueError:
        relative = Path(fileloc).name
    dag: dict[str, Any] = {
        "dag_id": dag_id,
        "fileloc": fileloc,
        "relative_fileloc": relative,
        "timezone": "UTC",
        "timetable": {"__type": "airflow.timetables.simple.NullTimetable", "__var": {}},
        "catchup": False,
        "fail_fast": False,
        "max_active_tasks": 16,
        "max_active_runs": 16,
        "tags": ["reference-runtime"],
        "edge_info": {},
        "dag_dependencies": [],
        "params": [],
        "tasks": operators,
    }
    if os.environ.get("REFERENCE_PARSE_BREAK") == dag_id:
        # A deliberately broken DAG, for testing that supervisor-sim's schema check names it.
        del dag["fileloc"]
        dag["catchup"] = "yes"
    return {"__version": 3, "dag": dag}


def run_parse_mode(comms: Comms, channel: LogChannel, request: dict[str, Any], bundle: Path) -> int:
    """Answer DagFileParseRequest with every DAG of the bundle, serialized, then exit."""
    log = channel.logger(RUNTIME_LOGGER)
    fileloc = str(request.get("file") or bundle)
    log.info("Parsing DAG file", file=fileloc, bundle=str(bundle))
    callbacks = request.get("callback_requests") or []
    if callbacks:
        # Airflow's runtime runs the callbacks and sends no parsing result.
        log.info("Running callbacks instead of parsing", count=len(callbacks))
        return EXIT_OK
    import_errors: dict[str, str] = {}
    serialized: list[dict[str, Any]] = []
    try:
        module = load_bundle_module(bundle)
        for dag_id in module.DAGS:
            serialized.append(
                {"data": serialize_dag(module, dag_id, fileloc, str(request["bundle_path"]))}
            )
    except Exception as exc:
        import_errors[Path(fileloc).name] = "".join(traceback.format_exception(exc))
        log.error("Could not import the bundle", exception=exception_dicts(exc))
    result = {
        "fileloc": fileloc,
        "serialized_dags": serialized,
        "warnings": [],
        "import_errors": import_errors,
        "type": "DagFileParsingResult",
    }
    _, error = comms.request(result)
    if error is not None:
        log.error("Supervisor rejected the parsing result", error=error)
        return EXIT_FATAL
    log.info("Parsed", dags=[s["data"]["dag"]["dag_id"] for s in serialized])
    return EXIT_OK


# The first frame's body type picks the mode of the whole process.
FIRST_FRAME_HANDLERS: dict[str, Callable[[Comms, LogChannel, dict[str, Any], Path], int]] = {
    "StartupDetails": run_task_mode,
    "DagFileParseRequest": run_parse_mode,
}


def serve(comms: Comms, channel: LogChannel, bundle: Path) -> int:
    log = channel.logger(RUNTIME_LOGGER)
    frame_id, body, error = comms.read_first_frame()
    if error is not None:
        log.error("First frame carried an error", error=error)
        return EXIT_FATAL
    kind = body.get("type") if body else None
    handler = FIRST_FRAME_HANDLERS.get(kind) if isinstance(kind, str) else None
    if handler is None:
        log.error("Unexpected first frame", type=kind, frame_id=frame_id)
        return EXIT_FATAL
    if frame_id != 0:
        log.warning("First frame id is not 0", frame_id=frame_id)
    return handler(comms, channel, body, bundle)


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def _address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line; argparse prints usage and exits 2 on errors."""
    parser = argparse.ArgumentParser(
        prog="runtime.py", description="Reference task runtime for supervisor-sim."
    )
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help="DAG bundle file")
    parser.add_argument(
        "--comm", type=_address, required=True, help="HOST:PORT of the comm channel"
    )
    parser.add_argument(
        "--logs", type=_address, required=True, help="HOST:PORT of the logs channel"
    )
    return parser.parse_args(argv)


def _close_quietly(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        # Both connections before any read: StartupDetails only comes once both are accepted.
        comm_sock = socket.create_connection(args.comm)
        logs_sock = socket.create_connection(args.logs)
    except OSError as exc:
        print(f"reference runtime: cannot connect to the supervisor: {exc}", file=sys.stderr)
        return EXIT_FATAL

    comms = Comms(comm_sock)
    channel = LogChannel(logs_sock)
    try:
        return serve(comms, channel, args.bundle)
    except Exception as exc:
        channel.logger(RUNTIME_LOGGER).critical(
            "Reference runtime failed", exception=exception_dicts(exc)
        )
        return EXIT_FATAL
    finally:
        # Comm first: by now every request was answered, so closing cannot reset a pending
        # reply. Logs last, so nothing logged above is lost.
        comms.close()
        channel.close()


if __name__ == "__main__":
    sys.exit(main())

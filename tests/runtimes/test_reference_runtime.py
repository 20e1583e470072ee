"""Tests for runtimes/reference/runtime.py against a tiny in-test fake supervisor.

The fake speaks the wire protocol with plain ``socket`` + ``msgpack`` + threads and does not use
supervisor_sim, so these tests check the runtime on its own. Every blocking call has a timeout:
a misbehaving runtime fails a test and cannot hang it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgpack
import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "runtimes" / "reference" / "runtime.py"
IO_TIMEOUT = 15.0  # per socket operation
EXIT_TIMEOUT = 15.0  # for the process to exit after its last frame

TI_ID = "0199a3c0-7f6e-7b1a-9c55-3f1e0d2c4b6a"
DAG_VERSION_ID = "0199a3c0-7f6e-7b1a-9c55-000000000001"
RUN_ID = "manual__2025-05-01T12:00:00+00:00"
TERMINAL_TYPES = {
    "SucceedTask",
    "TaskState",
    "RetryTask",
    "DeferTask",
    "RescheduleTask",
    "AwaitInputTask",
}
API_ERROR = {
    "type": "ErrorResponse",
    "error": "API_SERVER_ERROR",
    "detail": {"status_code": 500, "message": "Internal Server Error", "detail": {}},
}

Reply = list[Any]
Handler = Callable[[int, dict[str, Any]], Reply]


# --------------------------------------------------------------------------------------------
# Fake supervisor
# --------------------------------------------------------------------------------------------


def startup_details(
    task_id: str = "hello",
    *,
    dag_id: str = "example_dag",
    try_number: int = 1,
    should_retry: bool = False,
    xcom_keys_to_clear: list[str] | None = None,
) -> dict[str, Any]:
    """A realistic StartupDetails body, with tz-aware datetimes of all three timestamp sizes."""
    run_after = datetime(2025, 5, 1, 12, 0, 0, tzinfo=UTC)  # no sub-second part: timestamp32
    started = datetime(2025, 5, 1, 12, 0, 1, 123456, tzinfo=UTC)  # microseconds: timestamp64
    return {
        "type": "StartupDetails",
        "ti": {
            "id": TI_ID,
            "task_id": task_id,
            "dag_id": dag_id,
            "run_id": RUN_ID,
            "try_number": try_number,
            "dag_version_id": DAG_VERSION_ID,
            "map_index": -1,
            "hostname": None,
            "context_carrier": None,
            "queue": "reference",
        },
        "dag_rel_path": "example_dags.py",
        "bundle_info": {"name": "reference", "version": None},
        "start_date": started,
        "ti_context": {
            "dag_run": {
                "dag_id": dag_id,
                "run_id": RUN_ID,
                "logical_date": run_after,
                "data_interval_start": run_after - timedelta(days=1),
                "data_interval_end": run_after,
                "run_after": run_after,
                "start_date": started,
                "end_date": None,
                "clear_number": 0,
                "run_type": "manual",
                "state": "running",
                "conf": {
                    # Before 1970: only the 96-bit timestamp form can carry it.
                    "epoch_before": datetime(1969, 7, 20, 20, 17, 40, tzinfo=UTC),
                },
                "triggering_user_name": "admin",
                "consumed_asset_events": [],
                "partition_key": None,
            },
            "task_reschedule_count": 0,
            "max_tries": 1,
            "variables": None,
            "connections": None,
            "next_method": None,
            "next_kwargs": None,
            "xcom_keys_to_clear": xcom_keys_to_clear or [],
            "should_retry": should_retry,
            "start_date": None,
        },
        "sentry_integration": "",
    }


def connection_result(conn_id: str, **values: Any) -> dict[str, Any]:
    """A ConnectionResult with every required-nullable key present, as Airflow sends it."""
    conn = {
        "conn_id": conn_id,
        "conn_type": "http",
        "host": None,
        "schema": None,
        "login": None,
        "password": None,
        "port": None,
        "extra": None,
    }
    conn.update(values)
    conn["type"] = "ConnectionResult"
    return conn


def error_slot(req_id: int, body: dict[str, Any]) -> Reply:
    """Reply as the supervisor does when the API call failed."""
    return [req_id, None, API_ERROR]


@dataclass
class FakeSupervisor:
    """Canned answers for runtime requests. Unknown request types get an empty ack."""

    variables: dict[str, str | None] = field(default_factory=dict)
    connections: dict[str, dict[str, Any]] = field(default_factory=dict)
    xcoms: dict[tuple[str, str], Any] = field(default_factory=dict)  # (task_id, key) -> value
    handlers: dict[str, Handler] = field(default_factory=dict)  # per request type overrides
    # "full": [id, body, None] like Airflow 3.3.2; "short": [id] / [id, body] (msgspec
    # omit_defaults); "long": an extra trailing element that the runtime must ignore.
    reply_style: str = "full"

    def reply(self, req_id: int, body: dict[str, Any]) -> Reply:
        kind = body.get("type")
        if kind in self.handlers:
            return self.handlers[kind](req_id, body)
        result: dict[str, Any] | None = None
        if kind == "GetVariable":
            key = body["key"]
            if key in self.variables:
                result = {"type": "VariableResult", "key": key, "value": self.variables[key]}
            else:
                result = {
                    "type": "ErrorResponse",
                    "error": "VARIABLE_NOT_FOUND",
                    "detail": {"key": key},
                }
        elif kind == "GetConnection":
            conn_id = body["conn_id"]
            if conn_id in self.connections:
                result = self.connections[conn_id]
            else:
                result = {
                    "type": "ErrorResponse",
                    "error": "CONNECTION_NOT_FOUND",
                    "detail": {"conn_id": conn_id},
                }
        elif kind == "GetXCom":
            value = self.xcoms.get((body["task_id"], body["key"]))
            result = {"type": "XComResult", "key": body["key"], "value": value}
        return self._frame(req_id, result)

    def _frame(self, req_id: int, result: dict[str, Any] | None) -> Reply:
        if self.reply_style == "short":
            return [req_id] if result is None else [req_id, result]
        if self.reply_style == "long":
            return [req_id, result, None, "ignored trailing element"]
        return [req_id, result, None]


@dataclass
class Run:
    """Everything the fake supervisor saw from one runtime process."""

    returncode: int | None
    frames: list[list[Any]]  # decoded request frames, in order
    raw_frames: list[bytes]  # their msgpack payloads
    raw_logs: bytes
    stdout: str
    stderr: str

    @property
    def requests(self) -> list[dict[str, Any]]:
        return [frame[1] for frame in self.frames]

    @property
    def types(self) -> list[str]:
        return [body["type"] for body in self.requests]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [body for body in self.requests if body["type"] == kind]

    @property
    def terminals(self) -> list[dict[str, Any]]:
        return [body for body in self.requests if body["type"] in TERMINAL_TYPES]

    @property
    def logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.raw_logs.decode("utf-8").splitlines()]

    def events(self) -> list[str]:
        return [record["event"] for record in self.logs]


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    """Read n bytes; None on a clean EOF before the first byte."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            if not buf:
                return None
            raise AssertionError(f"EOF inside a frame after {len(buf)} of {n} bytes")
        buf.extend(chunk)
    return bytes(buf)


def _send_frame(sock: socket.socket, frame: list[Any]) -> None:
    payload = msgpack.packb(frame, datetime=True, use_bin_type=True)
    sock.sendall(len(payload).to_bytes(4, "big") + payload)


class Session:
    """One launched runtime: listeners, process, accepted sockets and the logs reader."""

    def __init__(
        self,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        new_session: bool = False,
    ) -> None:
        self.comm_listener = self._listen()
        self.logs_listener = self._listen()
        comm_port = self.comm_listener.getsockname()[1]
        logs_port = self.logs_listener.getsockname()[1]
        # Files, not pipes: nothing can block on a full pipe buffer. Closed in close().
        self.stdout_file = tempfile.TemporaryFile()  # noqa: SIM115
        self.stderr_file = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(RUNTIME),
                *(extra_args or []),
                f"--comm=127.0.0.1:{comm_port}",
                f"--logs=127.0.0.1:{logs_port}",
            ],
            stdout=self.stdout_file,
            stderr=self.stderr_file,
            env={**os.environ, **(env or {})},
            start_new_session=new_session,
        )
        self.frames: list[list[Any]] = []
        self.raw_frames: list[bytes] = []
        self.raw_logs = bytearray()
        self.comm: socket.socket | None = None
        self.logs: socket.socket | None = None
        self._logs_thread: threading.Thread | None = None

    @staticmethod
    def _listen() -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(IO_TIMEOUT)
        return listener

    def accept(self) -> None:
        self.comm, _ = self.comm_listener.accept()
        self.logs, _ = self.logs_listener.accept()
        self.comm.settimeout(IO_TIMEOUT)
        self.logs.settimeout(IO_TIMEOUT)
        self._logs_thread = threading.Thread(target=self._drain_logs, daemon=True)
        self._logs_thread.start()

    def _drain_logs(self) -> None:
        assert self.logs is not None
        try:
            while chunk := self.logs.recv(65536):
                self.raw_logs.extend(chunk)
        except OSError:
            pass  # timeout or reset: the test sees whatever arrived

    def send_first(self, body: dict[str, Any]) -> None:
        assert self.comm is not None
        _send_frame(self.comm, [0, body, None])

    def serve(self, supervisor: FakeSupervisor) -> None:
        """Answer requests until the runtime closes the comm socket."""
        assert self.comm is not None
        while (header := _recv_exact(self.comm, 4)) is not None:
            payload = _recv_exact(self.comm, int.from_bytes(header, "big"))
            assert payload is not None, "EOF between a frame header and its body"
            frame = msgpack.unpackb(payload, timestamp=3)
            self.raw_frames.append(payload)
            self.frames.append(frame)
            _send_frame(self.comm, supervisor.reply(frame[0], frame[1]))

    def wait_for_log(self, event: str, timeout: float = IO_TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in bytes(self.raw_logs).decode("utf-8").splitlines():
                record = json.loads(line)
                if record.get("event") == event:
                    return record
            time.sleep(0.05)
        raise AssertionError(f"log event {event!r} not seen within {timeout}s")

    def finish(self) -> Run:
        try:
            returncode = self.proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            returncode = None
        if self._logs_thread is not None:
            self._logs_thread.join(timeout=IO_TIMEOUT)
        self.stdout_file.seek(0)
        self.stderr_file.seek(0)
        run = Run(
            returncode=returncode,
            frames=self.frames,
            raw_frames=self.raw_frames,
            raw_logs=bytes(self.raw_logs),
            stdout=self.stdout_file.read().decode("utf-8", "replace"),
            stderr=self.stderr_file.read().decode("utf-8", "replace"),
        )
        self.close()
        return run

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=EXIT_TIMEOUT)
        for sock in (self.comm, self.logs, self.comm_listener, self.logs_listener):
            if sock is not None:
                sock.close()
        self.stdout_file.close()
        self.stderr_file.close()


def run_runtime(
    first_frame: dict[str, Any],
    supervisor: FakeSupervisor | None = None,
    *,
    env: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
) -> Run:
    """Launch the runtime, send the first frame, answer requests, and collect everything."""
    session = Session(extra_args=extra_args, env=env)
    try:
        session.accept()
        session.send_first(first_frame)
        session.serve(supervisor or FakeSupervisor())
        return session.finish()
    finally:
        session.close()


def run_task(task_id: str, supervisor: FakeSupervisor | None = None, **kwargs: Any) -> Run:
    env = kwargs.pop("env", None)
    extra_args = kwargs.pop("extra_args", None)
    return run_runtime(
        startup_details(task_id, **kwargs), supervisor, env=env, extra_args=extra_args
    )


def peer_supervisor(**overrides: Any) -> FakeSupervisor:
    """A supervisor that knows peer_var, api_token and peer_conn."""
    sup = FakeSupervisor(
        variables={"peer_var": "peer value", "api_token": "tok-SECRET-123"},
        connections={
            "peer_conn": connection_result(
                "peer_conn", host="db.example", login="alice", password="s3cr3t-pw", port=5432
            )
        },
    )
    for name, value in overrides.items():
        setattr(sup, name, value)
    return sup


def assert_clean_exit(run: Run) -> None:
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr


def only_terminal(run: Run) -> dict[str, Any]:
    assert len(run.terminals) == 1, run.types
    assert run.requests[-1] is run.terminals[0], "the terminal message must be the last request"
    return run.terminals[0]


# --------------------------------------------------------------------------------------------
# Outcomes
# --------------------------------------------------------------------------------------------


def test_hello_sends_exactly_one_succeed_task_and_exits_zero():
    """hello ends with exactly one SucceedTask carrying only the allowed keys, then exit 0."""
    run = run_task("hello")
    assert_clean_exit(run)
    assert run.types == ["SucceedTask"]
    terminal = only_terminal(run)
    # SucceedTask is extra="forbid" on the supervisor side: no other keys may appear.
    assert set(terminal) == {
        "type",
        "state",
        "end_date",
        "task_outlets",
        "outlet_events",
        "rendered_map_index",
    }
    assert terminal["state"] == "success"
    assert terminal["task_outlets"] == [] and terminal["outlet_events"] == []
    assert terminal["end_date"].tzinfo is not None
    assert "Hello from the reference runtime" in run.events()


def test_task_start_prints_one_human_line_to_stdout():
    """The runtime prints a human-readable start line to stdout."""
    run = run_task("hello")
    assert "reference runtime: running example_dag.hello try 1" in run.stdout


def test_fail_sends_task_state_failed():
    """A task that raises ends with TaskState failed and a logged structured exception."""
    run = run_task("fail")
    assert_clean_exit(run)
    terminal = only_terminal(run)
    assert terminal["type"] == "TaskState"
    assert terminal["state"] == "failed"
    assert set(terminal) == {"type", "state", "end_date", "rendered_map_index"}
    record = next(r for r in run.logs if r["event"] == "Task failed with exception")
    assert record["level"] == "error"
    assert record["exception"][0]["exc_type"] == "RuntimeError"
    assert record["exception"][0]["exc_value"] == "this task always fails"
    assert record["exception"][0]["frames"], "the traceback frames must be included"


def test_fail_with_should_retry_sends_retry_task():
    """With ti_context.should_retry a failure becomes RetryTask with the error as the reason."""
    run = run_task("fail", should_retry=True)
    assert_clean_exit(run)
    terminal = only_terminal(run)
    assert terminal["type"] == "RetryTask"
    assert set(terminal) == {
        "type",
        "state",
        "end_date",
        "rendered_map_index",
        "retry_delay_seconds",
        "retry_reason",
    }
    assert terminal["state"] == "up_for_retry"
    assert terminal["retry_reason"] == "this task always fails"


def test_retry_reason_is_truncated_to_500_chars(tmp_path):
    """RetryTask.retry_reason is cut to 500 characters, as the Python runtime does."""
    bundle = tmp_path / "bundle.py"
    bundle.write_text(
        "def boom(ctx):\n    raise RuntimeError('x' * 2000)\n\nDAGS = {'d': {'boom': boom}}\n"
    )
    run = run_task("boom", dag_id="d", should_retry=True, extra_args=[f"--bundle={bundle}"])
    assert_clean_exit(run)
    assert only_terminal(run)["retry_reason"] == "x" * 500


def test_retry_task_asks_for_retry_then_succeeds_on_second_try():
    """retry asks for a retry on try 1 and succeeds on try 2."""
    first = run_task("retry", try_number=1, should_retry=True)
    assert only_terminal(first)["type"] == "RetryTask"
    second = run_task("retry", try_number=2, should_retry=False)
    assert_clean_exit(second)
    assert second.types == ["SetXCom", "SucceedTask"]


def test_skip_sends_task_state_skipped():
    """A task raising SkipTask ends with TaskState skipped."""
    run = run_task("skip")
    assert_clean_exit(run)
    terminal = only_terminal(run)
    assert (terminal["type"], terminal["state"]) == ("TaskState", "skipped")


@pytest.mark.parametrize(("dag_id", "task_id"), [("example_dag", "nope"), ("other_dag", "hello")])
def test_unknown_dag_or_task_sends_task_state_removed(dag_id, task_id):
    """An unknown dag_id or task_id is reported as TaskState removed, with exit 0."""
    run = run_task(task_id, dag_id=dag_id)
    assert_clean_exit(run)
    terminal = only_terminal(run)
    assert (terminal["type"], terminal["state"]) == ("TaskState", "removed")
    assert any(r["level"] == "error" and "not found" in r["event"] for r in run.logs)


def test_no_terminal_exits_with_requested_code_without_terminal_message():
    """no_terminal closes its sockets and exits with REFERENCE_EXIT_CODE, sending nothing."""
    run = run_task("no_terminal", env={"REFERENCE_EXIT_CODE": "3"})
    assert run.returncode == 3
    assert run.frames == []


def test_sleep_task_logs_progress_and_succeeds():
    """sleep sleeps for REFERENCE_SLEEP_S, logs progress, and then succeeds."""
    started = time.monotonic()
    run = run_task("sleep", env={"REFERENCE_SLEEP_S": "0.6"})
    assert time.monotonic() - started >= 0.6
    assert_clean_exit(run)
    assert run.types == ["SucceedTask"]
    assert run.events().count("Sleeping") >= 2


# --------------------------------------------------------------------------------------------
# Wire format
# --------------------------------------------------------------------------------------------


def test_request_ids_start_at_zero_and_increase_by_one():
    """Request ids are 0, 1, 2, ... in sending order."""
    run = run_task("read_var_conn", peer_supervisor())
    assert_clean_exit(run)
    assert len(run.frames) == 4
    assert [frame[0] for frame in run.frames] == list(range(len(run.frames)))


def test_requests_are_three_element_arrays_with_nil_carrier():
    """Every request is [id, body, None], like Airflow's Python runtime sends."""
    run = run_task("read_var_conn", peer_supervisor())
    for payload in run.raw_frames:
        frame = msgpack.unpackb(payload, timestamp=0)
        assert isinstance(frame, list) and len(frame) == 3
        assert isinstance(frame[0], int) and isinstance(frame[1], dict) and frame[2] is None
        assert payload[0] == 0x93, "a fixarray of 3 elements"


def test_datetimes_are_sent_as_msgpack_timestamp_ext():
    """Datetimes leave the runtime as msgpack timestamp extensions (type -1), not strings."""
    run = run_task("hello")
    raw = run.raw_frames[-1]
    decoded = msgpack.unpackb(raw, timestamp=0)
    end_date = decoded[1]["end_date"]
    assert isinstance(end_date, msgpack.Timestamp)
    now = datetime.now(UTC)
    assert abs(end_date.to_datetime() - now) < timedelta(seconds=60)
    # ext -1 is preceded by d6 (32-bit), d7 (64-bit) or c7 0c (96-bit).
    assert re.search(rb"(\xd6|\xd7|\xc7\x0c)\xff", raw)


def test_startup_datetimes_of_every_timestamp_size_are_decoded():
    """StartupDetails dates in 32-, 64- and 96-bit timestamp form decode to UTC datetimes."""
    first = startup_details("hello")
    packed = msgpack.packb([0, first, None], datetime=True)
    for marker in (b"\xd6\xff", b"\xd7\xff", b"\xc7\x0c\xff"):
        assert marker in packed, "the fixture must exercise every timestamp size"
    run = run_runtime(first, env={"AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG"})
    assert_clean_exit(run)
    record = next(r for r in run.logs if r["event"] == "StartupDetails received")
    assert record["start_date"] == "2025-05-01T12:00:01.123456+00:00"


def test_short_one_element_acks_and_two_element_results_are_accepted():
    """Replies shaped [id] and [id, body] (msgspec omit_defaults) work like full ones."""
    run = run_task("read_var_conn", peer_supervisor(reply_style="short"))
    assert_clean_exit(run)
    assert run.types == ["GetVariable", "GetConnection", "SetXCom", "SucceedTask"]


def test_extra_trailing_reply_elements_are_ignored():
    """Replies with more than three elements are accepted and the extras are ignored."""
    run = run_task("read_var_conn", peer_supervisor(reply_style="long"))
    assert_clean_exit(run)
    assert only_terminal(run)["type"] == "SucceedTask"


def test_reply_with_wrong_id_is_a_fatal_protocol_error():
    """A reply whose id differs from the request id stops the runtime with exit 1."""

    def wrong_id(req_id: int, body: dict[str, Any]) -> Reply:
        return [req_id + 7, {"type": "VariableResult", "key": body["key"], "value": "v"}, None]

    run = run_task("read_var_conn", peer_supervisor(handlers={"GetVariable": wrong_id}))
    assert run.returncode == 1
    assert run.terminals == [], "no terminal message may follow an out-of-sync reply"
    assert any("does not match request id" in json.dumps(r) for r in run.logs)


# --------------------------------------------------------------------------------------------
# Requests and replies
# --------------------------------------------------------------------------------------------


def test_read_var_conn_pushes_expected_xcom():
    """read_var_conn reads peer_var and peer_conn and pushes {var, host} as return_value."""
    run = run_task("read_var_conn", peer_supervisor())
    assert_clean_exit(run)
    assert run.requests[0] == {"type": "GetVariable", "key": "peer_var"}
    assert run.requests[1] == {"type": "GetConnection", "conn_id": "peer_conn"}
    assert run.of_type("SetXCom") == [
        {
            "type": "SetXCom",
            "key": "return_value",
            "value": {"var": "peer value", "host": "db.example"},
            "dag_id": "example_dag",
            "run_id": RUN_ID,
            "task_id": "read_var_conn",
            "map_index": -1,
            "mapped_length": None,
            "dag_result": False,
        }
    ]
    assert run.of_type("MaskSecret") == []
    record = next(r for r in run.logs if r["event"] == "Read connection")
    assert (record["host"], record["login"]) == ("db.example", "alice")


def test_pull_xcom_sums_the_upstream_value():
    """pull_xcom asks for push_xcom's return_value in the same run and pushes the sum."""
    sup = FakeSupervisor(xcoms={("push_xcom", "return_value"): {"numbers": [1, 2, 3]}})
    run = run_task("pull_xcom", sup)
    assert_clean_exit(run)
    get = run.of_type("GetXCom")[0]
    assert (get["dag_id"], get["run_id"], get["task_id"], get["key"]) == (
        "example_dag",
        RUN_ID,
        "push_xcom",
        "return_value",
    )
    assert run.of_type("SetXCom")[0]["value"] == 6
    assert only_terminal(run)["type"] == "SucceedTask"


def test_pull_xcom_fails_when_upstream_value_is_missing():
    """A missing XCom (XComResult with nil value) reads as None and pull_xcom fails."""
    run = run_task("pull_xcom", FakeSupervisor())
    assert_clean_exit(run)
    assert only_terminal(run)["state"] == "failed"


def test_push_xcom_pushes_its_return_value():
    """push_xcom pushes {"numbers": [1, 2, 3]} as return_value before SucceedTask."""
    run = run_task("push_xcom")
    assert run.types == ["SetXCom", "SucceedTask"]
    assert run.requests[0]["value"] == {"numbers": [1, 2, 3]}


def test_xcom_keys_to_clear_are_deleted_before_the_task_runs():
    """Each key in ti_context.xcom_keys_to_clear gets a DeleteXCom before any task request."""
    run = run_task("push_xcom", xcom_keys_to_clear=["return_value", "extra"])
    assert_clean_exit(run)
    assert run.types == ["DeleteXCom", "DeleteXCom", "SetXCom", "SucceedTask"]
    assert run.requests[0] == {
        "type": "DeleteXCom",
        "key": "return_value",
        "dag_id": "example_dag",
        "run_id": RUN_ID,
        "task_id": "push_xcom",
        "map_index": -1,
    }
    assert run.requests[1]["key"] == "extra"


def test_variable_not_found_in_body_fails_the_task_cleanly():
    """A VARIABLE_NOT_FOUND ErrorResponse in the body fails the task, with exit 0."""
    run = run_task("read_var_conn", FakeSupervisor())
    assert_clean_exit(run)
    assert run.types == ["GetVariable", "TaskState"]
    assert only_terminal(run)["state"] == "failed"
    record = next(r for r in run.logs if r["event"] == "Task failed with exception")
    assert record["exception"][0]["exc_type"] == "NotFound"
    assert "VARIABLE_NOT_FOUND" in record["exception"][0]["exc_value"]


def test_error_slot_reply_fails_the_task_not_the_process():
    """A non-nil error slot raises inside the task: TaskState failed, exit 0, no traceback."""
    run = run_task("read_var_conn", peer_supervisor(handlers={"GetConnection": error_slot}))
    assert_clean_exit(run)
    assert run.types == ["GetVariable", "GetConnection", "TaskState"]
    assert only_terminal(run)["state"] == "failed"
    record = next(r for r in run.logs if r["event"] == "Task failed with exception")
    assert record["exception"][0]["exc_type"] == "SupervisorError"
    assert "API_SERVER_ERROR" in record["exception"][0]["exc_value"]


def test_rejected_terminal_message_exits_one():
    """If the terminal message's reply carries an error the runtime exits 1."""
    run = run_task("hello", FakeSupervisor(handlers={"SucceedTask": error_slot}))
    assert run.returncode == 1
    assert run.types == ["SucceedTask"]
    assert any("rejected the terminal" in r["event"] for r in run.logs)


def test_custom_bundle_can_use_the_whole_task_api(tmp_path):
    """--bundle loads another file. put_variable, mask_secret, xcom_push and request send the
    documented bodies."""
    bundle = tmp_path / "my_dags.py"
    bundle.write_text(
        "def t(ctx):\n"
        "    ctx.put_variable('k', {'a': 1})\n"
        "    ctx.put_variable('k2', 'plain', description='why')\n"
        "    ctx.mask_secret('hunter22')\n"
        "    ctx.xcom_push('custom', [1, 2])\n"
        "    body, error = ctx.request({'type': 'GetDagRunState', 'dag_id': 'd', 'run_id': 'r'})\n"
        "    ctx.log.info('state', body=body, error=error)\n"
        "\n"
        "DAGS = {'my_dag': {'t': t}}\n"
    )
    state = {"GetDagRunState": lambda i, b: [i, {"type": "DagRunStateResult", "state": "running"}]}
    run = run_task(
        "t", FakeSupervisor(handlers=state), dag_id="my_dag", extra_args=[f"--bundle={bundle}"]
    )
    assert_clean_exit(run)
    assert run.requests[:5] == [
        {"type": "PutVariable", "key": "k", "value": '{"a": 1}', "description": None},
        {"type": "PutVariable", "key": "k2", "value": "plain", "description": "why"},
        {"type": "MaskSecret", "value": "hunter22", "name": None},
        {
            "type": "SetXCom",
            "key": "custom",
            "value": [1, 2],
            "dag_id": "my_dag",
            "run_id": RUN_ID,
            "task_id": "t",
            "map_index": -1,
            "mapped_length": None,
            "dag_result": False,
        },
        {"type": "GetDagRunState", "dag_id": "d", "run_id": "r"},
    ]
    record = next(r for r in run.logs if r["event"] == "state")
    assert record["body"] == {"type": "DagRunStateResult", "state": "running"}
    assert record["error"] is None
    assert run.types[-1] == "SucceedTask"


def test_use_secret_logs_secrets_unmasked_for_the_supervisor_to_mask():
    """use_secret sends the password and token as plain log fields; masking is not its job."""
    run = run_task("use_secret", peer_supervisor())
    assert_clean_exit(run)
    assert any(r.get("password") == "s3cr3t-pw" for r in run.logs)
    assert any(r.get("api_token") == "tok-SECRET-123" for r in run.logs)
    assert "s3cr3t-pw" in run.stdout
    assert run.of_type("MaskSecret") == []


# --------------------------------------------------------------------------------------------
# Logs
# --------------------------------------------------------------------------------------------


def test_log_lines_are_json_with_timestamp_level_event_first():
    """Every log line is a JSON object that starts with timestamp, level, event and logger and
    carries the TI context."""
    run = run_task("hello")
    assert run.raw_logs.endswith(b"\n")
    assert run.logs, "at least one log line is expected"
    for record in run.logs:
        assert list(record)[:4] == ["timestamp", "level", "event", "logger"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", record["timestamp"])
        assert record["level"] in {"debug", "info", "warning", "error", "critical"}
        assert record["logger"] in {"reference_runtime", "task"}
        assert record["ti_id"] == TI_ID
        assert (record["dag_id"], record["task_id"], record["run_id"]) == (
            "example_dag",
            "hello",
            RUN_ID,
        )
        assert (record["try_number"], record["map_index"]) == (1, -1)
    hello = next(r for r in run.logs if r["event"] == "Hello from the reference runtime")
    assert hello["logger"] == "task"
    events = run.events()
    assert events.index("::group::Pre Execute") < events.index("::endgroup::")


def test_logging_level_env_filters_records():
    """Debug records appear only when AIRFLOW__LOGGING__LOGGING_LEVEL allows them."""
    default = run_task("hello")
    assert all(r["level"] != "debug" for r in default.logs)
    debug = run_task("hello", env={"AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG"})
    assert any(r["level"] == "debug" for r in debug.logs)
    quiet = run_task("fail", env={"AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR"})
    assert {r["level"] for r in quiet.logs} == {"error"}


def test_namespace_levels_override_the_default_level():
    """AIRFLOW__LOGGING__NAMESPACE_LEVELS can silence one logger and keep the others."""
    run = run_task("hello", env={"AIRFLOW__LOGGING__NAMESPACE_LEVELS": "reference_runtime=ERROR"})
    assert {r["logger"] for r in run.logs} == {"task"}


# --------------------------------------------------------------------------------------------
# Startup and command line
# --------------------------------------------------------------------------------------------


def test_missing_logs_argument_is_a_usage_error():
    """Without --logs the runtime prints a usage error to stderr and exits 2."""
    proc = subprocess.run(
        [sys.executable, str(RUNTIME), "--comm=127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT,
    )
    assert proc.returncode == 2
    assert "--logs" in proc.stderr
    assert "usage:" in proc.stderr


def test_malformed_address_is_a_usage_error():
    """A --comm value that is not HOST:PORT is a usage error with exit 2."""
    proc = subprocess.run(
        [sys.executable, str(RUNTIME), "--comm=nowhere", "--logs=127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT,
    )
    assert proc.returncode == 2
    assert "HOST:PORT" in proc.stderr


def test_parse_request_first_frame_answers_with_serialized_dags():
    """A DagFileParseRequest first frame is answered with a DagFileParsingResult, then exit 0."""
    first = {
        "type": "DagFileParseRequest",
        "file": "/bundles/reference/example_dags.py",
        "bundle_path": "/bundles/reference",
        "bundle_name": "reference",
        "callback_requests": [],
    }
    run = run_runtime(first)
    assert run.returncode == 0
    (frame,) = run.frames
    body = frame[1]
    assert body["type"] == "DagFileParsingResult"
    assert body["fileloc"] == first["file"]
    dag = body["serialized_dags"][0]["data"]
    assert dag["__version"] == 3 and dag["dag"]["dag_id"] == "example_dag"
    assert dag["dag"]["relative_fileloc"] == "example_dags.py"


def test_unknown_first_frame_type_exits_one():
    """A first frame that is neither StartupDetails nor DagFileParseRequest exits 1."""
    run = run_runtime({"type": "VariableResult", "key": "x", "value": "y"})
    assert run.returncode == 1
    assert run.frames == []
    assert any(r["event"] == "Unexpected first frame" for r in run.logs)


def test_runtime_connects_both_channels_before_the_first_frame():
    """The runtime opens both connections even though nothing is sent until both are accepted."""
    session = Session()
    try:
        session.accept()  # both accepts succeed before any frame was sent
        assert session.proc.poll() is None
        session.send_first(startup_details("hello"))
        session.serve(FakeSupervisor())
        run = session.finish()
    finally:
        session.close()
    assert_clean_exit(run)


def _process_alive(pid: int) -> bool:
    """True if pid exists and is not a zombie (a zombie may linger if init does not reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_ignore_sigterm_survives_sigterm_until_the_group_is_killed():
    """ignore_sigterm keeps running after SIGTERM and it and its grandchild die on SIGKILL of
    the group."""
    session = Session(new_session=True)  # own process group, so killpg cannot hit pytest
    grandchild: int | None = None
    try:
        session.accept()
        session.send_first(startup_details("ignore_sigterm"))
        record = session.wait_for_log("Ignoring SIGTERM")
        grandchild = record["grandchild_pid"]
        assert _process_alive(grandchild)
        os.kill(session.proc.pid, signal.SIGTERM)
        time.sleep(0.5)
        assert session.proc.poll() is None, "SIGTERM must be ignored"
        os.killpg(session.proc.pid, signal.SIGKILL)
        assert session.proc.wait(timeout=EXIT_TIMEOUT) == -signal.SIGKILL
        deadline = time.monotonic() + 5
        while _process_alive(grandchild) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _process_alive(grandchild), "the grandchild is in the same process group"
    finally:
        session.close()
        if grandchild is not None:
            try:
                os.kill(grandchild, signal.SIGKILL)  # never leak the sleep 300
            except ProcessLookupError:
                pass


def test_comm_eof_while_waiting_for_a_reply_exits_one_with_a_logged_error():
    """If the supervisor closes the comm socket mid-request the runtime logs it and exits 1."""
    session = Session()
    try:
        session.accept()
        session.send_first(startup_details("read_var_conn"))
        assert session.comm is not None
        header = _recv_exact(session.comm, 4)
        assert header is not None
        _recv_exact(session.comm, int.from_bytes(header, "big"))
        session.comm.close()  # no reply: the runtime sees EOF while reading the length
        session.comm = None
        run = session.finish()
    finally:
        session.close()
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert any("EOFError" in json.dumps(r) for r in run.logs)

"""The fault matrix: every way a runtime or the API can misbehave, one row per test.

Every row must show: bounded time (``trio.fail_after``), a diagnostic naming what went wrong,
the final state Airflow's table gives, a complete transcript (footer present, every comm byte
accounted for), logs drained, the child's whole process group gone, and no descriptor leaked.
docs/reliability.md lists the rows with what Airflow 3.3 does and what supervisor-sim does.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import trio
from _session_helpers import SCRIPTED, SUCCEED, run_task

from supervisor_sim.api import Fault, RetryPolicy
from supervisor_sim.transcript import read_transcript

FAILED = {"type": "TaskState", "state": "failed", "end_date": "$now"}
ROW_DEADLINE = 30  # seconds; no row may take longer


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _group_gone(run: Any) -> bool:
    child = run.session.child
    return child is None or not child.group_alive()


async def row(store: Any, tmp_path: Path, task: str = "hello", **kw: Any) -> tuple[Any, Any]:
    """Run one row under a deadline with a transcript, and check the invariants every row has."""
    fds = _fds()
    path = tmp_path / "row.jsonl"
    kw.setdefault("runtime", SCRIPTED)
    with trio.fail_after(ROW_DEADLINE):
        run = await run_task(store, task, transcript=path, out=tmp_path / "seen.json", **kw)
    t = read_transcript(path)
    assert t.footer is not None and t.truncated is None, "transcript must end with a footer"
    assert t.problems == []
    assert _group_gone(run), "the runtime's process group outlived the session"
    # Every comm byte is in the transcript: frames (4-byte header + payload), bad-frame bytes,
    # or counted as discarded.
    accounted = [
        r
        for r in t.of("process")
        if r.get("event") == "channel-bytes" and r.get("channel") == "comm"
    ]
    if accounted:
        got = accounted[0]
        framed = sum(4 + r["len"] for r in t.frames("in") if not r.get("raw_redacted"))
        loose = sum(
            v.get("raw_len") or len(base64.b64decode(v["raw_b64"]))
            for v in t.of("violation")
            if v.get("raw_b64")
        )
        # Bytes consumed by violations past the caps are counted ("unrecorded"), not kept.
        expected = framed + loose + got["discarded"] + got.get("unrecorded", 0)
        assert got["received"] == expected, (got, framed, loose)
    assert _fds() <= fds, "a file descriptor leaked"
    return run, t


def _seen(tmp_path: Path) -> dict[str, Any]:
    p = tmp_path / "seen.json"
    return json.loads(p.read_text()) if p.exists() else {}


def _rules(run: Any) -> list[str]:
    return [v.rule for v in run.outcome.violations]


# --- connection ------------------------------------------------------------------------------


class TestConnection:
    async def test_never_connects(self, store, tmp_path):
        """No connection within the startup timeout: error, no HTTP, TI queued, child gone."""
        run, _ = await row(store, tmp_path, env={"SCRIPTED_NO_CONNECT": "60"}, startup_timeout=0.5)
        assert "did not connect within" in run.outcome.error
        assert run.outcome.final_state is None
        assert store.get_ti_state(run.ti.id) == "queued"

    async def test_connects_only_comm(self, store, tmp_path):
        """Only --comm connected: the error names --logs."""
        run, _ = await row(store, tmp_path, env={"SCRIPTED_ONLY": "comm"}, startup_timeout=0.5)
        assert "(--logs never connected)" in run.outcome.error

    async def test_connects_only_logs(self, store, tmp_path):
        """Only --logs connected: the error names --comm."""
        run, _ = await row(store, tmp_path, env={"SCRIPTED_ONLY": "logs"}, startup_timeout=0.5)
        assert "(--comm never connected)" in run.outcome.error

    async def test_foreign_connection_is_rejected_and_the_child_still_runs(self, store, tmp_path):
        """A process outside the child's tree connecting first is refused; the child succeeds."""

        def connect_and_wait(port: int) -> None:
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.settimeout(10)
                s.recv(1)  # returns b"" when the supervisor closes the rejected connection

        def intruder(event: Any) -> None:
            if event.kind == "process" and event.data.get("event") == "spawn":
                threading.Thread(
                    target=connect_and_wait, args=(event.data["comm_port"],), daemon=True
                ).start()

        run, _ = await row(
            store,
            tmp_path,
            steps=[{"send": SUCCEED}],
            sinks=[intruder],
            env={"SCRIPTED_CONNECT_DELAY": "0.5"},
        )
        assert "foreign-connection" in _rules(run)
        assert run.outcome.final_state == "success"


# --- bad frames ------------------------------------------------------------------------------


class TestBadFrames:
    async def test_garbage_bytes(self, store, tmp_path):
        """Bytes that are not a frame: their header announces too much, they are discarded."""
        run, _ = await row(store, tmp_path, steps=[{"raw": b"GARBAGE GARBAGE!".hex()}, {"exit": 1}])
        assert "frame-too-large" in _rules(run) or "truncated-frame" in _rules(run)
        assert run.outcome.final_state == "failed"

    async def test_four_gib_length_header(self, store, tmp_path):
        """A 4 GiB header is refused at once, without allocating, and named."""
        run, _ = await row(store, tmp_path, steps=[{"raw": "ffffffff" + "00" * 64}, {"exit": 1}])
        v = next(v for v in run.outcome.violations if v.rule == "frame-too-large")
        assert "4294967295 bytes" in v.message

    async def test_zero_length_frame_then_success(self, store, tmp_path):
        """A zero-length frame is reported and skipped; the next request is still served."""
        run, _ = await row(store, tmp_path, steps=[{"raw": "00000000"}, {"send": SUCCEED}])
        assert _rules(run) == ["zero-length-frame"]
        assert run.outcome.final_state == "success"

    async def test_truncated_frame_then_eof(self, store, tmp_path):
        """Half a frame then EOF: truncated-frame, and the partial bytes are in the transcript."""
        run, t = await row(store, tmp_path, steps=[{"raw": "00000010" + "93"}, {"exit": 1}])
        v = next(r for r in t.of("violation") if r["rule"] == "truncated-frame")
        assert base64.b64decode(v["raw_b64"]) == bytes.fromhex("0000001093")
        assert run.outcome.final_state == "failed"

    async def test_payload_not_an_array(self, store, tmp_path):
        """A map instead of an array: not-an-array, and nothing to reply to."""
        payload = bytes.fromhex("81a474797065a3466f6f")  # {"type": "Foo"}
        frame = len(payload).to_bytes(4, "big") + payload
        run, _ = await row(store, tmp_path, steps=[{"raw": frame.hex()}, {"send": SUCCEED}])
        assert "not-an-array" in _rules(run)
        assert run.outcome.final_state == "success"

    @pytest.mark.parametrize(
        ("body", "rule"),
        [
            ({"type": "NoSuchMessage"}, "invalid-request:unknown-type"),
            ({"type": "GetVariable"}, "invalid-request:missing-required-field"),
            ({**SUCCEED, "extra_key": 1}, "invalid-request:unknown-field"),
            ({**SUCCEED, "end_date": "2026-01-01T00:00:00"}, "invalid-request:naive-datetime"),
        ],
        ids=["unknown-type", "missing-field", "forbidden-key", "naive-datetime"],
    )
    async def test_invalid_request_is_answered_with_an_error(self, store, tmp_path, body, rule):
        """An invalid request gets an error reply (Airflow: none, the runtime hangs)."""
        run, _ = await row(store, tmp_path, steps=[{"send": body}, {"send": SUCCEED}])
        assert _rules(run) == [rule]
        reply = _seen(tmp_path)["replies"][0]
        assert reply[1] is None and reply[2]["type"] == "ErrorResponse"
        assert run.outcome.final_state == "success"


# --- child behaviour -------------------------------------------------------------------------


class TestChildBehaviour:
    async def test_dies_mid_request(self, store, tmp_path):
        """Half a request written, then the process dies: truncated-frame, final state failed."""
        run, _ = await row(store, tmp_path, steps=[{"raw": "0000002093c0"}, {"exit": 3}])
        assert "truncated-frame" in _rules(run)
        assert run.outcome.exit_code == 3
        assert run.outcome.final_state == "failed"

    async def test_dies_right_after_its_terminal_message(self, store, tmp_path):
        """SucceedTask sent without waiting, then exit 0: the success is still recorded."""
        run, _ = await row(store, tmp_path, steps=[{"send": SUCCEED, "no_wait": True}, {"exit": 0}])
        assert run.outcome.final_state == "success"
        assert store.get_ti_state(run.ti.id) == "success"

    async def test_exits_zero_without_terminal_message(self, store, tmp_path):
        """Exit 0 with no terminal message: success per Airflow's table, flagged."""
        run, _ = await row(store, tmp_path, steps=[{"exit": 0}])
        assert run.outcome.final_state == "success"
        assert "no-terminal-message" in _rules(run)

    async def test_exits_nonzero_after_succeed_task(self, store, tmp_path):
        """Exit 1 after a delivered success: Airflow's table says failed (the server refuses)."""
        run, _ = await row(store, tmp_path, steps=[{"send": SUCCEED}, {"exit": 1}])
        assert run.outcome.final_state == "failed"
        assert store.get_ti_state(run.ti.id) == "success"

    async def test_ignores_sigterm(self, store, tmp_path):
        """A child ignoring SIGTERM past the overtime is SIGKILLed with its group."""
        run, _ = await row(
            store,
            tmp_path,
            steps=[{"ignore_sigterm": True}, {"grandchild": 300}, {"send": SUCCEED}, {"sleep": 60}],
        )
        signals = [r["signal"] for r in run.events("process", event="signal")]
        assert signals[:2] == ["SIGTERM", "SIGKILL"]
        assert (
            psutil.pid_exists(_seen(tmp_path)["grandchild"]) is False
            or psutil.Process(_seen(tmp_path)["grandchild"]).status() == psutil.STATUS_ZOMBIE
        )

    async def test_grandchild_holds_the_sockets_open(self, store, tmp_path):
        """Sockets held by a grandchild after exit are closed after the cleanup timeout."""
        run, _ = await row(
            store,
            tmp_path,
            steps=[{"send": SUCCEED}, {"grandchild_holding": 300}, {"exit": 0}],
            socket_cleanup_timeout=0.5,
        )
        notes = [e["message"] for e in run.events("note")]
        assert any("channels still open" in n for n in notes)
        assert run.outcome.final_state == "success"

    async def test_floods_logs_and_stdout(self, store, tmp_path):
        """100 MB of log lines and stdout are drained to the end; the run completes."""
        run, t = await row(
            store, tmp_path, steps=[{"flood_logs": 50}, {"flood_stdout": 50}, {"send": SUCCEED}]
        )
        assert run.outcome.final_state == "success"
        logs = [
            r
            for r in t.of("process")
            if r.get("event") == "channel-bytes" and r["channel"] == "logs"
        ]
        assert logs[0]["received"] >= 49_000_000
        assert len(t.of("log")) >= 9_000

    async def test_ten_megabyte_log_line_is_cut_with_a_marker(self, store, tmp_path):
        """A 10 MB line is kept up to the cap, marked, and reported."""
        run, t = await row(
            store, tmp_path, steps=[{"flood_logs": 10.1, "line": 10_000_000}, {"send": SUCCEED}]
        )
        assert "log-line-too-long" in _rules(run)
        assert any(r["line"]["event"].endswith("[truncated]") for r in t.of("log"))

    async def test_invalid_utf8_log_line(self, store, tmp_path):
        """Invalid UTF-8 on the logs channel is kept with replacement characters, flagged."""
        bad = b'{"level": "info", "event": "caf\xe9"}\n'
        run, t = await row(store, tmp_path, steps=[{"log_hex": bad.hex()}, {"send": SUCCEED}])
        assert "log-invalid-utf8" in _rules(run)
        assert "caf\ufffd" in json.dumps(list(t.of("log")), ensure_ascii=False)

    async def test_log_line_with_a_lone_surrogate_escape(self, store, tmp_path):
        """A JSON escape of a lone surrogate (valid JSON, not encodable as UTF-8) is kept."""
        line = b'{"level": "info", "event": "half \\ud800 a pair"}\n'
        run, t = await row(store, tmp_path, steps=[{"log_hex": line.hex()}, {"send": SUCCEED}])
        assert run.outcome.final_state == "success"
        assert any(r["line"]["event"] == "half \ud800 a pair" for r in t.of("log"))

    async def test_log_stream_without_final_newline(self, store, tmp_path):
        """A last log line with no newline is still processed at EOF."""
        line = b'{"level": "info", "event": "the last words"}'
        _run, t = await row(
            store,
            tmp_path,
            steps=[{"send": SUCCEED}, {"log_hex": line.hex()}, {"close": "logs"}, {"exit": 0}],
        )
        assert any(r["line"]["event"] == "the last words" for r in t.of("log"))

    async def test_requests_after_the_terminal_message_are_served(self, store, tmp_path):
        """A request after SucceedTask is answered normally, as Airflow does."""
        _run, _ = await row(
            store,
            tmp_path,
            steps=[{"send": SUCCEED}, {"send": {"type": "GetVariable", "key": "peer_var"}}],
        )
        assert _seen(tmp_path)["replies"][1][1]["value"] == "hello-from-var"


# --- API faults ------------------------------------------------------------------------------


class TestApiFaults:
    async def test_5xx_then_success_is_retried(self, store, tmp_path):
        """A 503 on GET variable is retried and the runtime gets the value."""
        fault = Fault(
            method="GET",
            path_regex=r"/variables/peer_var$",
            status=503,
            body={"detail": "unavailable"},
            times=1,
        )
        run, _ = await row(
            store,
            tmp_path,
            faults=[fault],
            steps=[{"send": {"type": "GetVariable", "key": "peer_var"}}, {"send": SUCCEED}],
        )
        assert _seen(tmp_path)["replies"][0][1]["value"] == "hello-from-var"
        assert [e["status"] for e in run.http("GET", "peer_var")] == [503, 200]

    async def test_timeout_becomes_an_error_reply(self, store, tmp_path):
        """A call that never answers in time is an API_SERVER_ERROR in the error slot."""
        fault = Fault(method="GET", path_regex=r"/variables/peer_var$", delay_s=5, times=10)
        retry = RetryPolicy(attempts=2, wait_min=0.01, wait_max=0.02, timeout=0.3)
        _run, _ = await row(
            store,
            tmp_path,
            faults=[fault],
            retry=retry,
            steps=[{"send": {"type": "GetVariable", "key": "peer_var"}}, {"send": SUCCEED}],
        )
        error = _seen(tmp_path)["replies"][0][2]
        assert error["error"] == "API_SERVER_ERROR"
        assert error["detail"]["exception_type"] == "ReadTimeout"

    async def test_heartbeat_409_kills(self, store, tmp_path):
        """409 on heartbeat: SERVER_TERMINATED and the group is killed."""
        fault = Fault(
            method="PUT",
            path_regex=r"/heartbeat$",
            status=409,
            times=100,
            body={"detail": {"reason": "not_running", "message": "no", "current_state": "failed"}},
        )
        run, _ = await row(store, tmp_path, faults=[fault], steps=[{"sleep": 30}])
        assert run.outcome.final_state == "server_terminated"

    async def test_run_404_means_no_start(self, store, tmp_path):
        """404 on /run: the child is killed, nothing is sent to it, nothing reported."""
        fault = Fault(
            method="PATCH",
            path_regex=r"/run$",
            status=404,
            body={"detail": {"reason": "not_found", "message": "Task Instance not found"}},
        )
        run, _ = await row(store, tmp_path, faults=[fault], steps=[{"sleep": 30}])
        assert run.outcome.started is False and "404" in run.outcome.error

    async def test_connection_refused_for_the_whole_run(self, store, tmp_path):
        """An API that refuses connections: /run fails after its retries; the child is killed."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # closed again: nothing listens there
        http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/execution/")
        run, _ = await row(
            store,
            tmp_path,
            http=http,
            steps=[{"sleep": 30}],
            retry=RetryPolicy(attempts=2, wait_min=0.01, wait_max=0.02, timeout=1),
        )
        assert run.outcome.started is False
        assert "ConnectError" in run.outcome.error

    async def test_slow_api_keeps_heartbeats_on_time_and_replies_in_order(self, store, tmp_path):
        """While one call takes 1 s, heartbeats keep their 0.1 s cadence; replies stay ordered."""
        fault = Fault(method="GET", path_regex=r"/variables/peer_var$", delay_s=1.0)
        run, _ = await row(
            store,
            tmp_path,
            faults=[fault],
            heartbeat_interval=0.1,
            steps=[
                {"send": {"type": "GetVariable", "key": "peer_var"}},
                {"send": {"type": "GetVariable", "key": "api_token"}},
                {"send": SUCCEED},
            ],
        )
        replies = _seen(tmp_path)["replies"]
        assert [r[0] for r in replies] == [0, 1, 2]
        events = run.journal_events
        slow = next(e for e in events if e.kind == "http" and "peer_var" in e.data["path"])
        beats_during = [
            e
            for e in events
            if e.kind == "http"
            and e.data["path"].endswith("/heartbeat")
            and slow.t - 1.0 < e.t < slow.t
        ]
        assert len(beats_during) >= 5


class TestSupervisorSignals:
    async def test_a_child_ignoring_the_forwarded_signal_is_killed_after_the_grace(
        self, store, tmp_path
    ):
        """SIGTERM forwarded to a child that ignores it: after the grace, SIGTERM then SIGKILL."""
        import signal as _signal

        import _session_helpers

        _session_helpers.LAST_SESSION = None
        started = trio.Event()

        def on_event(event: Any) -> None:
            if event.kind == "frame" and event.data.get("type") == "StartupDetails":
                started.set()

        async def interrupt() -> None:
            await started.wait()
            await trio.sleep(0.3)  # let the child install its SIG_IGN
            _session_helpers.LAST_SESSION.forward_signal(_signal.SIGTERM)

        async with trio.open_nursery() as n:
            n.start_soon(interrupt)
            run, _ = await row(
                store,
                tmp_path,
                steps=[{"ignore_sigterm": True}, {"sleep": 60}],
                sinks=[on_event],
                signal_grace=0.5,
            )
        signals = [(r["signal"], r["target"]) for r in run.events("process", event="signal")]
        assert signals[0] == ("SIGTERM", "child")
        assert ("SIGKILL", "group") in signals
        assert run.outcome.interrupted is True

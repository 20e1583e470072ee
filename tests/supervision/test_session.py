"""A task session end to end: real children, real loopback sockets, the real stub over SQLite."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import psutil
from _session_helpers import SCRIPTED, SUCCEED, run_task

from supervisor_sim.api import Fault
from supervisor_sim.protocol import decode_response


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class TestLifecycle:
    async def test_hello_succeeds_and_the_server_records_success(self, store):
        """A runtime that sends SucceedTask and exits 0 ends in success, reported immediately."""
        run = await run_task(store, "hello")
        assert run.outcome.final_state == "success"
        assert run.outcome.exit_code == 0
        assert store.get_ti_state(run.ti.id) == "success"
        assert run.outcome.violations == []

    async def test_startup_details_is_the_first_frame_with_id_0_in_three_elements(self, store):
        """StartupDetails goes out first as [0, body, nil], after /run, carrying the TI."""
        run = await run_task(store, "hello")
        frames = run.events("frame")
        first = frames[0]
        assert first["direction"] == "out" and first["type"] == "StartupDetails"
        decoded = decode_response(first["payload"])
        assert decoded.id == 0 and decoded.elements == 3 and decoded.error is None
        assert decoded.body["ti"]["id"] == run.ti.id
        assert decoded.body["ti_context"]["dag_run"]["run_after"].tzinfo is not None
        kinds = run.kinds()
        run_call = kinds.index(("http", f"/execution/task-instances/{run.ti.id}/run"))
        assert run_call < kinds.index(("frame", "StartupDetails"))

    async def test_run_call_comes_after_both_connections(self, store):
        """PATCH /run is made only once both --comm and --logs are connected."""
        run = await run_task(store, "hello")
        kinds = run.kinds()
        connects = [i for i, k in enumerate(kinds) if k == ("process", "connect")]
        assert len(connects) == 2
        run_call = kinds.index(("http", f"/execution/task-instances/{run.ti.id}/run"))
        assert max(connects) < run_call

    async def test_failure_is_reported_after_the_process_exits(self, store):
        """TaskState(failed) is acked at once and PATCHed as failed only after exit."""
        run = await run_task(store, "fail")
        assert run.outcome.final_state == "failed"
        assert store.get_ti_state(run.ti.id) == "failed"
        kinds = run.kinds()
        exit_at = kinds.index(("process", "exit"))
        state_calls = [
            i
            for i, k in enumerate(kinds)
            if k == ("http", f"/execution/task-instances/{run.ti.id}/state")
        ]
        assert state_calls and all(i > exit_at for i in state_calls)

    async def test_retry_then_success_on_the_next_try(self, store):
        """With tries left, the first try ends up_for_retry and the next try succeeds."""
        first = await run_task(store, "retry", max_tries=1)
        assert first.outcome.final_state == "up_for_retry"
        second = await run_task(store, "retry", run_id=first.ti.run_id, max_tries=1)
        assert second.ti.try_number == 2
        assert second.ti.id != first.ti.id
        assert second.outcome.final_state == "success"

    async def test_nonzero_exit_without_terminal_message_is_failed(self, store):
        """Exit 3 with no terminal message and no retries left: final state failed, PATCHed."""
        run = await run_task(store, "no_terminal", env={"REFERENCE_EXIT_CODE": "3"})
        assert run.outcome.exit_code == 3
        assert run.outcome.final_state == "failed"
        assert store.get_ti_state(run.ti.id) == "failed"

    async def test_nonzero_exit_with_retries_left_reports_nothing(self, store):
        """Exit 3 with should_retry: final state up_for_retry and no state call, as in Airflow."""
        run = await run_task(store, "no_terminal", env={"REFERENCE_EXIT_CODE": "3"}, max_tries=2)
        assert run.outcome.final_state == "up_for_retry"
        assert run.http("PATCH", "/state") == []
        assert store.get_ti_state(run.ti.id) == "running"

    async def test_exit_zero_without_terminal_message_is_a_violation(self, store):
        """Exit 0 and no terminal message: success by Airflow's table, nothing reported, flagged."""
        run = await run_task(store, "no_terminal")
        assert run.outcome.final_state == "success"
        assert run.http("PATCH", "/state") == []
        assert [v.rule for v in run.outcome.violations] == ["no-terminal-message"]


class TestKills:
    async def test_heartbeat_409_kills_the_child_as_server_terminated(self, store):
        """A heartbeat answered 409 ends the try: SIGTERM to the group, SERVER_TERMINATED."""
        fault = Fault(
            method="PUT",
            path_regex=r"/heartbeat$",
            status=409,
            times=100,
            body={
                "detail": {
                    "reason": "not_running",
                    "message": "TI is no longer in the running state and task should terminate",
                    "current_state": "failed",
                }
            },
        )
        run = await run_task(store, "sleep", env={"REFERENCE_SLEEP_S": "30"}, faults=[fault])
        assert run.outcome.final_state == "server_terminated"
        signals = [d["signal"] for d in run.events("process", event="signal")]
        assert signals[0] == "SIGTERM"
        assert run.http("PATCH", "/state") == []

    async def test_heartbeats_are_sent_while_the_child_runs(self, store):
        """A 1 s task at a 0.2 s interval gets several heartbeats, all answered 204."""
        run = await run_task(store, "sleep", env={"REFERENCE_SLEEP_S": "1"})
        beats = run.http("PUT", "/heartbeat")
        assert len(beats) >= 3
        assert {b["status"] for b in beats} == {204}

    async def test_overtime_kills_a_child_ignoring_sigterm_and_its_grandchildren(
        self, store, tmp_path: Path
    ):
        """A child alive past the overtime after SucceedTask gets SIGTERM, then SIGKILL, and
        nothing of its process group survives."""
        out = tmp_path / "seen.json"
        steps = [{"ignore_sigterm": True}, {"grandchild": 300}, {"send": SUCCEED}, {"sleep": 60}]
        run = await run_task(store, "hello", runtime=SCRIPTED, steps=steps, out=out)
        signals = [d["signal"] for d in run.events("process", event="signal")]
        assert signals[:2] == ["SIGTERM", "SIGKILL"]
        assert run.outcome.exit_code == -signal.SIGKILL
        grandchild = json.loads(out.read_text())["grandchild"]
        assert _gone(grandchild)
        # Exit != 0 after a delivered success: Airflow's table says failed, which the server
        # refuses (409) because the TI is already success.
        assert run.outcome.final_state == "failed"
        assert store.get_ti_state(run.ti.id) == "success"


class TestStartup:
    async def test_child_that_never_connects_times_out_and_ti_stays_queued(self, store):
        """No connection within the startup timeout: a clear error, no HTTP call, TI queued."""
        run = await run_task(
            store, "hello", runtime=SCRIPTED, env={"SCRIPTED_NO_CONNECT": "30"}, startup_timeout=0.5
        )
        assert run.outcome.started is False
        assert "did not connect within 0.5s" in run.outcome.error
        assert "--comm and --logs never connected" in run.outcome.error
        assert run.http() == []
        assert store.get_ti_state(run.ti.id) == "queued"

    async def test_child_exiting_before_connecting_is_reported_with_its_code(self, store):
        """A child that exits first: 'process exited with 3 before connecting'."""
        run = await run_task(
            store, "hello", runtime=SCRIPTED, env={"SCRIPTED_NO_CONNECT": "0", "SCRIPTED_EXIT": "3"}
        )
        assert run.outcome.started is False
        assert "process exited with 3 before connecting" in run.outcome.error
        assert store.get_ti_state(run.ti.id) == "queued"

    async def test_only_comm_connected_names_the_missing_channel(self, store):
        """A child that connects only --comm is named as missing --logs."""
        runtime = [
            sys.executable,
            "-c",
            "import socket,sys,time; a=[x for x in sys.argv if x.startswith('--comm=')]"
            "[0][7:].rsplit(':',1); s=socket.create_connection((a[0],int(a[1])));"
            " time.sleep(30)",
        ]
        run = await run_task(store, "hello", runtime=runtime, startup_timeout=0.5)
        assert "--logs never connected" in run.outcome.error

    async def test_run_refused_kills_the_child_without_reporting_state(self, store):
        """/run answered 409: the child is SIGKILLed, no StartupDetails, no state call."""
        fault = Fault(
            method="PATCH",
            path_regex=r"/run$",
            status=409,
            body={
                "detail": {
                    "reason": "invalid_state",
                    "message": "TI was not in a state where it could be marked as running",
                    "previous_state": "failed",
                }
            },
        )
        run = await run_task(store, "sleep", env={"REFERENCE_SLEEP_S": "30"}, faults=[fault])
        assert run.outcome.started is False
        assert "409" in run.outcome.error
        assert run.events("frame") == []
        assert next(d["signal"] for d in run.events("process", event="signal")) == "SIGKILL"


class TestRequests:
    async def test_missing_variable_is_a_body_error_response(self, store, tmp_path: Path):
        """GetVariable of a missing key replies [id, ErrorResponse(VARIABLE_NOT_FOUND), nil]."""
        out = tmp_path / "seen.json"
        steps = [{"send": {"type": "GetVariable", "key": "nope"}}, {"send": SUCCEED}]
        await run_task(store, "hello", runtime=SCRIPTED, steps=steps, out=out)
        reply = json.loads(out.read_text())["replies"][0]
        assert reply == [
            0,
            {"error": "VARIABLE_NOT_FOUND", "detail": {"key": "nope"}, "type": "ErrorResponse"},
            None,
        ]

    async def test_missing_xcom_reads_as_none(self, store, tmp_path: Path):
        """GetXCom of a missing XCom replies XComResult with value nil, not an error."""
        out = tmp_path / "seen.json"
        steps = [
            {
                "send": {
                    "type": "GetXCom",
                    "key": "k",
                    "dag_id": "example_dag",
                    "run_id": "nope",
                    "task_id": "t",
                }
            },
            {"send": SUCCEED},
        ]
        await run_task(store, "hello", runtime=SCRIPTED, steps=steps, out=out)
        reply = json.loads(out.read_text())["replies"][0]
        assert reply == [0, {"key": "k", "value": None, "type": "XComResult"}, None]

    async def test_invalid_request_gets_an_error_reply_and_a_violation(self, store, tmp_path):
        """A request Airflow would drop unanswered is answered with an error and flagged."""
        out = tmp_path / "seen.json"
        bad = {"type": "SucceedTask", "end_date": "$now", "bogus": 1}
        steps = [{"send": bad}, {"send": SUCCEED}]
        run = await run_task(store, "hello", runtime=SCRIPTED, steps=steps, out=out)
        reply = json.loads(out.read_text())["replies"][0]
        assert reply[0] == 0 and reply[1] is None
        assert reply[2]["type"] == "ErrorResponse"
        assert "SucceedTask.bogus" in reply[2]["detail"]["problems"][0]
        rules = [v.rule for v in run.outcome.violations]
        assert rules == ["invalid-request:unknown-field"]
        assert "never answers" in run.outcome.violations[0].airflow
        assert run.outcome.final_state == "success"

    async def test_airflow_strict_leaves_an_invalid_request_unanswered(self, store, tmp_path):
        """With airflow_strict, an invalid request gets no reply, exactly as in Airflow."""
        out = tmp_path / "seen.json"
        steps = [{"send": {"type": "NoSuchMessage"}, "timeout": 1}, {"send": SUCCEED}]
        run = await run_task(
            store, "hello", runtime=SCRIPTED, steps=steps, out=out, airflow_strict=True
        )
        seen = json.loads(out.read_text())
        assert any("timed out" in e for e in seen["errors"])
        assert [v.rule for v in run.outcome.violations] == ["invalid-request:unknown-type"]

    async def test_secrets_are_masked_in_logs(self, store):
        """A connection password and a sensitive variable's value never reach the log output."""
        run = await run_task(store, "use_secret")
        text = json.dumps([e["record"] for e in run.events("log")])
        assert "s3cret-pw" not in text
        assert "tok-very-secret-123" not in text
        assert "***" in text

    async def test_bad_log_lines_are_kept_and_flagged(self, store):
        """Non-JSON, level-less and unknown-level log lines are kept and reported, not fatal."""
        steps = [
            {"log": "not json"},
            {"log": '{"event": "no level"}'},
            {"log": '{"event": "x", "level": "INFO"}'},
            {"send": SUCCEED},
        ]
        run = await run_task(store, "hello", runtime=SCRIPTED, steps=steps)
        rules = sorted(v.rule for v in run.outcome.violations)
        assert rules == ["log-missing-level", "log-not-json", "log-unknown-level"]
        events = [e["record"]["event"] for e in run.events("log", source="logs")]
        assert events == ["not json", "no level", "x"]
        assert run.outcome.final_state == "success"


def test_scripted_child_is_executable_by_this_interpreter():
    """The scripted helper runs under the interpreter running the tests."""
    assert os.path.exists(SCRIPTED[1])

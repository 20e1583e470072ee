"""Fault plans in real sessions: the supervisor meets injected failures and outside events as
Airflow's does, and every one is a note record."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from _session_helpers import FAST, REFERENCE

from supervisor_sim.api import FaultPlan, RetryPolicy, StubStore, TokenIssuer
from supervisor_sim.supervision import Event, Journal, SupervisorConfig, TaskOutcome, TaskSession
from supervisor_sim.testing import stub_transport, task_client, task_spec

RETRY = RetryPolicy(attempts=5, wait_min=0.01, wait_max=0.01, timeout=2)


async def run_planned(
    store: StubStore, task_id: str, *specs: str, env: dict[str, str] | None = None
) -> tuple[TaskOutcome, list[Event]]:
    """One try of example_dag.``task_id`` on the stub with the fault plan of ``specs``."""
    plan = FaultPlan.parse(specs)
    plan.store = store
    record = store.prepare_task_instance("example_dag", task_id)
    journal = Journal()
    recorded: list[Event] = []
    journal.sinks.append(recorded.append)
    plan.on_record = lambda f: journal.emit("note", level="warning", message=f["what"], fault=f)
    transport = stub_transport(store, TokenIssuer())
    transport.fault_plan = plan
    config = replace(SupervisorConfig(), **FAST)
    async with task_client(transport, record, journal, retry=RETRY) as api:
        session = TaskSession(
            task_spec(record, REFERENCE, env=env), api, config=config, journal=journal
        )
        outcome = await session.run()
    return outcome, recorded


def http(events: list[Event], part: str) -> list[dict[str, Any]]:
    return [e.data for e in events if e.kind == "http" and part in e.data["path"]]


def faults(events: list[Event]) -> list[dict[str, Any]]:
    """The faults applied (not the outcome records that follow a retried call)."""
    return [f for f in _plan_records(events) if f["what"] != "outcome"]


def outcomes(events: list[Event]) -> list[dict[str, Any]]:
    """What came of each call a retryable fault hit, once the client's retries were over."""
    return [f for f in _plan_records(events) if f["what"] == "outcome"]


def _plan_records(events: list[Event]) -> list[dict[str, Any]]:
    return [e.data["fault"] for e in events if e.kind == "note" and "fault" in e.data]


def signals(events: list[Event]) -> list[str]:
    return [e.data["signal"] for e in events if e.kind == "process" and e.data["event"] == "signal"]


async def test_api_500s_are_retried_until_the_call_succeeds(store):
    """GetVariable:500@1 and @2: the client's retries reach the third attempt, the task succeeds."""
    outcome, events = await run_planned(
        store, "read_var_conn", "GetVariable:500@1", "GetVariable:500@2"
    )
    assert outcome.final_state == "success"
    calls = http(events, "/variables/peer_var")
    assert [(c["status"], c["attempt"]) for c in calls] == [(500, 1), (500, 2), (200, 3)]
    assert [f["what"] for f in faults(events)] == ["status 500", "status 500"]
    assert [(o["outcome"], o["when"]) for o in outcomes(events)] == [("answered", "attempt 3 of 5")]


async def test_connection_resets_use_all_five_attempts(store):
    """A reset on every GetVariable: five attempts, each recorded with its error, then given up."""
    _outcome, events = await run_planned(store, "read_var_conn", "GetVariable:reset")
    calls = http(events, "/variables/peer_var")
    assert [c["attempt"] for c in calls] == [1, 2, 3, 4, 5]
    assert all(c["status"] is None and "Connection reset" in c["error"] for c in calls)
    assert len(faults(events)) == 5
    assert [(o["outcome"], o["when"]) for o in outcomes(events)] == [("failed", "attempt 5 of 5")]


async def test_a_slow_api_delays_but_changes_nothing(store):
    """*:delay=0.05s: every call waits, the task still succeeds."""
    outcome, events = await run_planned(store, "hello", "*:delay=0.05s")
    assert outcome.final_state == "success"
    assert {f["what"] for f in faults(events)} == {"delay 0.05s"}


async def test_ti_failed_from_outside_ends_in_sigterm_and_server_terminated(store):
    """event=ti-failed: the next heartbeat is 409 not_running, SIGTERM, SERVER_TERMINATED."""
    outcome, events = await run_planned(
        store, "sleep", "event=ti-failed@0.5s", env={"REFERENCE_SLEEP_S": "30"}
    )
    assert outcome.final_state == "server_terminated"
    beat = next(b for b in http(events, "/heartbeat") if b["status"] != 204)
    assert beat["status"] == 409
    assert signals(events)[0] == "SIGTERM"
    assert http(events, "/state") == []
    assert faults(events)[0]["what"] == "event ti-failed"


async def test_a_runtime_ignoring_sigterm_is_killed_after_the_escalation_delay(store):
    """ti-failed while the runtime ignores SIGTERM: SIGTERM, then SIGKILL."""
    outcome, events = await run_planned(store, "ignore_sigterm", "event=ti-failed@0.5s")
    assert outcome.final_state == "server_terminated"
    assert signals(events)[:2] == ["SIGTERM", "SIGKILL"]


async def test_cleared_deleted_and_run_deleted_answer_410_and_404(store):
    """Cleared: the old try id is gone (410); deleted TI or DAG run: 404; each kills the try."""
    for event, status in (("ti-cleared", 410), ("ti-deleted", 404), ("dagrun-deleted", 404)):
        outcome, events = await run_planned(
            store, "sleep", f"event={event}@0.3s", env={"REFERENCE_SLEEP_S": "30"}
        )
        assert outcome.final_state == "server_terminated", event
        assert [b["status"] for b in http(events, "/heartbeat")][-1] == status, event


async def test_hostname_changed_is_409_running_elsewhere(store):
    """ti-hostname-changed: the heartbeat is 409 running_elsewhere and the try is killed."""
    outcome, events = await run_planned(
        store, "sleep", "event=ti-hostname-changed@0.3s", env={"REFERENCE_SLEEP_S": "30"}
    )
    assert outcome.final_state == "server_terminated"
    assert b"running_elsewhere" in http(events, "/heartbeat")[-1]["response_body"]


async def test_expired_token_fails_three_heartbeats_then_sigterm(store):
    """token-expiry after 2 calls: heartbeats get 403, three failures, SIGTERM; state from exit."""
    outcome, events = await run_planned(
        store, "sleep", "token-expiry=2calls", env={"REFERENCE_SLEEP_S": "30"}
    )
    statuses = [b["status"] for b in http(events, "/heartbeat")]
    assert statuses[0] == 204 and statuses[1:4] == [403, 403, 403]
    assert signals(events)[0] == "SIGTERM"
    assert outcome.final_state == "failed"


async def test_variable_deleted_after_a_request_is_gone_for_the_next(store):
    """event=variable-deleted:peer_var@GetVariable: the first read finds it, the store no more."""
    _outcome, events = await run_planned(
        store, "read_var_conn", "event=variable-deleted:peer_var@GetVariable"
    )
    assert http(events, "/variables/peer_var")[0]["status"] == 200
    assert store.variables.get("peer_var") is None
    assert faults(events)[0]["detail"] == "variable peer_var deleted"


def _shape(events: list[Event]) -> list[Any]:
    """The run without times, ids and pids: what must be identical between two seeded runs."""
    out: list[Any] = []
    for e in events:
        if e.kind == "http" and not e.data["path"].endswith("/heartbeat"):
            path = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}|manual__[^/]+", "ID", e.data["path"])
            out.append(("http", e.data["method"], path, e.data["status"], e.data["attempt"]))
        elif e.kind == "note" and "fault" in e.data and "heartbeat" not in e.data["fault"]["path"]:
            fault = {k: v for k, v in e.data["fault"].items() if k != "path"}
            out.append(("fault", fault))
    return out


async def test_a_seeded_plan_gives_the_same_run_twice(store):
    """With seed=7 and a probability, two runs inject the same faults on the same calls."""
    specs = ("*:500@p=0.3", "seed=7")  # heartbeats are timed: compared without them
    _, first = await run_planned(store, "read_var_conn", *specs)
    _, second = await run_planned(store, "read_var_conn", *specs)
    assert _shape(first) == _shape(second)
    assert any(s[0] == "fault" for s in _shape(first))

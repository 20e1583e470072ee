"""A terminal call the server refuses leaves the try running, as in Airflow: heartbeats go on,
the next 409 kills the runtime, and the try ends server_terminated (never success)."""

from __future__ import annotations

import json
from dataclasses import replace

from _session_helpers import FAST, SCRIPTED, SUCCEED

from supervisor_sim.api import FaultPlan, StubStore, TokenIssuer
from supervisor_sim.supervision import Event, Journal, SupervisorConfig, TaskSession
from supervisor_sim.testing import stub_transport, task_client, task_spec


async def test_a_refused_succeed_keeps_heartbeats_and_ends_server_terminated(store: StubStore):
    """SucceedTask answered 409 (the TI was marked failed meanwhile): no overtime watch, the
    heartbeat after it gets 409, SIGTERM, final state server_terminated, the message replayed
    once at exit."""
    # The first state call and every heartbeat after the first are refused, as a server that
    # holds the TI failed refuses them.
    plan = FaultPlan.parse(
        ["PATCH /task-instances/*/state:409", "PUT /task-instances/*/heartbeat:409@2+"]
    )
    plan.store = store
    record = store.prepare_task_instance("example_dag", "hello")
    journal = Journal()
    recorded: list[Event] = []
    journal.sinks.append(recorded.append)
    transport = stub_transport(store, TokenIssuer())
    transport.fault_plan = plan
    # A long overtime: were it started, it would not be what ends the run.
    config = replace(SupervisorConfig(), **{**FAST, "task_success_overtime": 60.0})
    steps = [{"send": SUCCEED}, {"sleep": 30}, {"exit": 0}]
    env = {"SCRIPTED_STEPS": json.dumps(steps)}
    async with task_client(transport, record, journal) as api:
        session = TaskSession(
            task_spec(record, SCRIPTED, env=env), api, config=config, journal=journal
        )
        outcome = await session.run()
    assert outcome.final_state == "server_terminated"
    states = [e.data for e in recorded if e.kind == "http" and e.data["path"].endswith("/state")]
    assert [s["status"] for s in states] == [409, 409]  # the call, then its replay at exit
    beats = [
        e.data["status"] for e in recorded if e.kind == "http" and "heartbeat" in e.data["path"]
    ]
    assert beats[0] == 204 and 409 in beats[1:]
    signals = [
        e.data["signal"] for e in recorded if e.kind == "process" and e.data["event"] == "signal"
    ]
    assert signals[:1] == ["SIGTERM"]
    notes = " ".join(str(e.data.get("message")) for e in recorded if e.kind == "note")
    assert "overtime" not in notes

"""Heartbeats and terminal messages take turns, as in Airflow's one-loop supervisor: a heartbeat
being retried when the runtime reports success is over before the state call goes out, so it can
never reach the API after it (and get the 409 that would kill a task that succeeded)."""

from __future__ import annotations

import json
from dataclasses import replace

from _session_helpers import FAST, SCRIPTED, SUCCEED

from supervisor_sim.api import FaultPlan, RetryPolicy, StubStore, TokenIssuer
from supervisor_sim.supervision import Event, Journal, SupervisorConfig, TaskSession
from supervisor_sim.testing import stub_transport, task_client, task_spec

# The first heartbeat's 503 is retried after 2 s; the runtime reports success 0.5 s in and
# lives until after that retry (so that, were they not taking turns, it would follow the state
# call and get 409). Its first log line is what starts the first heartbeat, as in Airflow.
RETRY = RetryPolicy(attempts=3, wait_min=2.0, wait_max=2.0, timeout=10)
STEPS = [
    {"log": '{"level": "info", "event": "starting"}'},
    {"sleep": 0.5},
    {"send": SUCCEED},
    {"sleep": 2.5},
    {"exit": 0},
]


async def test_a_heartbeat_retried_during_success_finishes_before_the_state_call(store: StubStore):
    """Heartbeat 503 on its first attempt, SucceedTask during the back-off: the heartbeat's
    retry comes first, then the state call, and the try ends success, never server_terminated."""
    plan = FaultPlan.parse(["PUT /task-instances/*/heartbeat:503@1"])
    plan.store = store
    record = store.prepare_task_instance("example_dag", "hello")
    journal = Journal()
    events: list[Event] = []
    journal.sinks.append(events.append)
    plan.on_record = lambda f: journal.emit("note", level="warning", message=f["what"], fault=f)
    transport = stub_transport(store, TokenIssuer())
    transport.fault_plan = plan
    config = replace(
        SupervisorConfig(), **{**FAST, "heartbeat_interval": 5.0, "task_success_overtime": 10.0}
    )
    spec = task_spec(record, SCRIPTED, env={"SCRIPTED_STEPS": json.dumps(STEPS)})
    async with task_client(transport, record, journal, retry=RETRY) as api:
        outcome = await TaskSession(spec, api, config=config, journal=journal).run()

    calls = [
        (e.data["method"], e.data["path"].rsplit("/", 1)[-1], e.data["status"])
        for e in events
        if e.kind == "http" and "/task-instances/" in e.data["path"]
    ]
    heartbeats = [i for i, c in enumerate(calls) if c[1] == "heartbeat"]
    [state_call] = [i for i, c in enumerate(calls) if c[1] == "state"]
    # The race was there to be lost: the heartbeat began before the runtime reported success.
    assert heartbeats and heartbeats[0] < state_call, calls
    assert [calls[i][2] for i in heartbeats] == [503, 204], calls
    assert all(i < state_call for i in heartbeats), calls
    assert outcome.final_state == "success", (outcome, calls)
    assert outcome.exit_code == 0

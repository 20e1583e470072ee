"""The first heartbeat comes when Airflow's would: on its loop's first pass, once the child was
first heard from (its bytes served), or ``min_heartbeat_interval`` after the start call - not
the moment the runtime is given its task."""

from __future__ import annotations

import json
from dataclasses import replace

from _session_helpers import FAST, SCRIPTED, SUCCEED

from supervisor_sim.api import StubStore, TokenIssuer
from supervisor_sim.supervision import Event, Journal, SupervisorConfig, TaskSession
from supervisor_sim.testing import stub_transport, task_client, task_spec


async def _calls(store: StubStore, steps: list[dict], interval: float) -> list[tuple[str, float]]:
    """(last path segment, seconds since /run) of each task-instance call of one try."""
    record = store.prepare_task_instance("example_dag", "hello")
    journal = Journal()
    events: list[Event] = []
    journal.sinks.append(events.append)
    config = replace(SupervisorConfig(), **{**FAST, "heartbeat_interval": interval})
    spec = task_spec(record, SCRIPTED, env={"SCRIPTED_STEPS": json.dumps(steps)})
    async with task_client(stub_transport(store, TokenIssuer()), record, journal) as api:
        outcome = await TaskSession(spec, api, config=config, journal=journal).run()
    assert outcome.exit_code == 0, outcome
    calls = [e for e in events if e.kind == "http" and "/task-instances/" in e.data["path"]]
    t0 = calls[0].t
    return [(e.data["path"].rsplit("/", 1)[-1], e.t - t0) for e in calls]


async def test_a_silent_child_that_succeeds_gets_no_heartbeat(store: StubStore):
    """A child that says nothing until its SucceedTask is never heartbeated (Airflow's first
    select returns with that message, which sets the terminal state)."""
    steps = [{"sleep": 1.0}, {"send": SUCCEED}, {"exit": 0}]
    calls = await _calls(store, steps, interval=30.0)
    assert [name for name, _ in calls] == ["run", "state"], calls


async def test_the_first_heartbeat_follows_the_childs_first_bytes(store: StubStore):
    """A log line 0.5 s in brings the first heartbeat then, not at the start and not one
    interval later."""
    steps = [
        {"sleep": 0.5},
        {"log": '{"level": "info", "event": "hello"}'},
        {"sleep": 0.5},
        {"send": SUCCEED},
        {"exit": 0},
    ]
    calls = await _calls(store, steps, interval=30.0)
    assert [name for name, _ in calls] == ["run", "heartbeat", "state"], calls
    assert calls[1][1] >= 0.5, calls


async def test_a_silent_child_is_heartbeated_one_interval_after_the_start(store: StubStore):
    """Silence for longer than the interval: the first heartbeat comes an interval after the
    start call, as Airflow's first select times out."""
    steps = [{"sleep": 1.6}, {"send": SUCCEED}, {"exit": 0}]
    calls = await _calls(store, steps, interval=0.5)
    names = [name for name, _ in calls]
    assert names[0] == "run" and names[-1] == "state", calls
    beats = [t for name, t in calls if name == "heartbeat"]
    assert beats and beats[0] >= 0.5, calls

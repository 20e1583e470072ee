"""Heartbeats that fall due while trio's loop is busy are sent by the next reader that runs
(``supervisor_sim.supervision._pacer``): at most one per due time, never early, and only where
the client answers without a checkpoint."""

from __future__ import annotations

import gc
import itertools
import json
import math
from dataclasses import replace

import pytest
import trio
from _session_helpers import FAST, SCRIPTED, SUCCEED

from supervisor_sim.api import FaultPlan, StubStore, TokenIssuer
from supervisor_sim.supervision import Event, Journal, SupervisorConfig, TaskSession
from supervisor_sim.supervision._pacer import Pacer
from supervisor_sim.supervision._task import TaskWorkload
from supervisor_sim.testing import stub_transport, task_client, task_spec

INTERVAL = 0.05
#: Lock-step GetVariable requests for about a second: the comm reader is always busy.
BUSY = [
    {"send": {"type": "GetVariable", "key": "peer_var"}, "repeat": 3000},
    {"send": SUCCEED},
    {"exit": 0},
]


class _Beats:
    def __init__(self) -> None:
        self.sent: list[float] = []

    def send(self, when: float) -> None:
        self.sent.append(when)


async def test_due_entries_are_sent_in_due_order_and_only_once_due():
    """``run_due`` sends what is due, earliest first, and leaves what is not."""
    pacer = Pacer()
    beats = _Beats()
    now = trio.current_time()
    for when in (now + 60, now - 2, now - 1):
        pacer.due(when, beats.send)
    assert pacer.next_due == now - 2
    pacer.run_due()
    assert beats.sent == [now - 2, now - 1]
    assert pacer.next_due == now + 60
    pacer.run_due()
    assert beats.sent == [now - 2, now - 1]


async def test_an_entry_does_not_keep_its_session_alive():
    """Entries hold their sender weakly: a session gone before its due time is skipped."""
    pacer = Pacer()
    beats = _Beats()
    pacer.due(trio.current_time() - 1, beats.send)
    del beats
    gc.collect()
    pacer.run_due()
    assert pacer.next_due == math.inf


async def test_an_empty_pacer_is_never_due():
    """With nothing registered the readers' comparison is always false."""
    pacer = Pacer()
    pacer.run_due()
    assert pacer.next_due == math.inf


async def _run_busy(
    store: StubStore, monkeypatch: pytest.MonkeyPatch, faults: list[str] | None = None
) -> tuple[list[float], int]:
    """(heartbeat start times, heartbeats a comm reader sent) of one try whose child is never
    idle."""
    inline = 0
    original = TaskWorkload._heartbeat_inline

    def counting(self: TaskWorkload, when: float) -> None:
        nonlocal inline
        before = self._hb_due
        original(self, when)
        # Sent, and by a reader (a heartbeat task also goes through the pacer when it wakes).
        if self._hb_due != before and "_comm_reader" in trio.lowlevel.current_task().name:
            inline += 1

    monkeypatch.setattr(TaskWorkload, "_heartbeat_inline", counting)
    record = store.prepare_task_instance("example_dag", "hello")
    journal = Journal()
    events: list[Event] = []
    journal.sinks.append(events.append)
    transport = stub_transport(store, TokenIssuer())
    if faults:
        plan = FaultPlan.parse(faults)
        plan.store = store
        transport.fault_plan = plan
    config = replace(SupervisorConfig(), **{**FAST, "heartbeat_interval": INTERVAL})
    spec = task_spec(record, SCRIPTED, env={"SCRIPTED_STEPS": json.dumps(BUSY)})
    async with task_client(transport, record, journal) as api:
        outcome = await TaskSession(spec, api, config=config, journal=journal).run()
    assert outcome.final_state == "success", outcome
    starts = [
        e.t - e.data["duration_s"]
        for e in events
        if e.kind == "http" and e.data["path"].endswith("/heartbeat")
    ]
    return starts, inline


async def test_a_busy_reader_sends_due_heartbeats_once_each_and_never_early(
    store: StubStore, monkeypatch: pytest.MonkeyPatch
):
    """Beside a reader that is never idle, some heartbeats go out from the reader, and
    consecutive ones are at least the interval apart whichever way each was sent."""
    starts, inline = await _run_busy(store, monkeypatch)
    assert len(starts) >= 5, starts
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # A record's start is taken after the call was built, the due time before: they differ
    # by a few microseconds (more in a GC pause), never by a duplicate's whole interval.
    assert min(gaps) >= INTERVAL - 1e-3, gaps
    assert inline >= 1, (inline, len(starts))


async def test_with_a_fault_planned_heartbeats_stay_with_their_task(
    store: StubStore, monkeypatch: pytest.MonkeyPatch
):
    """A fault plan can hold a heartbeat back (a delay, retries with back-off), so no reader
    sends one: all of them are the heartbeat task's, still an interval apart."""
    starts, inline = await _run_busy(store, monkeypatch, ["GET /variables/nothing:500@1"])
    assert len(starts) >= 5, starts
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= INTERVAL - 1e-3, gaps
    assert inline == 0

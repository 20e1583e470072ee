"""Every fault and outside event a plan applies says why: the ``why`` of its record (the note in
the transcript) is a sentence on what Airflow would do, never empty (it once read
``(DeleteXCom:500@1+: )``); ``when`` says which call or time took it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from supervisor_sim.api import FaultPlan, StubStore
from supervisor_sim.api._faults import EVENTS

VAR = "/execution/variables/peer_var"
CONN = "/execution/connections/peer_conn"
BEAT = ("PUT", "/execution/task-instances/{ti}/heartbeat")

#: spec -> (the call it is applied on, words its why must hold)
REQUEST_FAULTS: dict[str, tuple[tuple[str, str], str]] = {
    "GetVariable:500@1": (("GET", VAR), "retries"),
    "GetVariable:503": (("GET", VAR), "retries"),
    "GetVariable:500@p=1": (("GET", VAR), "retries"),
    "DeleteXCom:500@1+": (("DELETE", "/execution/xcoms/d/r/t/k"), "retries"),
    "GetVariable:422": (("GET", VAR), "does not retry a 4xx"),
    "GetVariable:403": (("GET", VAR), "does not retry a 4xx"),
    "GetVariable:404": (("GET", VAR), "does not retry a 4xx"),
    "SucceedTask:409": (("PATCH", "/execution/task-instances/{ti}/state"), "no longer running"),
    "PUT /task-instances/*/heartbeat:409@1": (BEAT, "SIGTERM"),
    "PUT /task-instances/*/heartbeat:410": (BEAT, "SIGTERM"),
    "PUT /task-instances/*/heartbeat:503": (BEAT, "max_failed_heartbeats"),
    "GetVariable:delay=0.5s": (("GET", VAR), "execution_api_timeout"),
    "GetVariable:reset@1": (("GET", VAR), "retries"),
    "GetConnection:timeout": (("GET", CONN), "retries"),
    "GetVariable:malformed": (("GET", VAR), "cannot decode"),
    "token-expiry=0calls": (("GET", VAR), "403 Invalid auth token"),
    "token-expiry=0s": (("GET", VAR), "403 Invalid auth token"),
}  # fmt: skip

#: event kind -> (its spec, words its why must hold)
EVENT_FAULTS: dict[str, tuple[str, str]] = {
    "ti-failed": ("event=ti-failed@0s", "409 not_running"),
    "ti-success": ("event=ti-success@0s", "409 not_running"),
    "ti-up_for_retry": ("event=ti-up_for_retry@0s", "409 not_running"),
    "ti-cleared": ("event=ti-cleared@0s", "restarting"),
    "ti-deleted": ("event=ti-deleted@0s", "404"),
    "ti-hostname-changed": ("event=ti-hostname-changed@0s", "running_elsewhere"),
    "dagrun-deleted": ("event=dagrun-deleted@0s", "404"),
    "variable-set": ("event=variable-set:peer_var=new@GetVariable", "new value"),
    "variable-deleted": ("event=variable-deleted:peer_var@GetVariable", "VARIABLE_NOT_FOUND"),
    "connection-deleted": ("event=connection-deleted:peer_conn@GetVariable", "CONNECTION_NOT_"),
}  # fmt: skip


@pytest.fixture
def store() -> Iterator[tuple[StubStore, str]]:
    """A stub store with a running task instance of example_dag.hello."""
    s = StubStore(":memory:")
    record = s.prepare_task_instance("example_dag", "hello")
    s.tis.update(record.id, state="running")
    try:
        yield s, record.id
    finally:
        s.close()


def applied(spec: str, store: StubStore, ti: str, calls: list[tuple[str, str]]) -> list[Any]:
    """The records ``spec``'s plan gives for ``calls`` (``{ti}`` is the task instance's id)."""
    plan = FaultPlan.parse([spec])
    records: list[dict[str, Any]] = []
    plan.store, plan.on_record = store, records.append
    for method, path in calls:
        plan.before(method, path.format(ti=ti))
    return records


def assert_says_why(record: dict[str, Any], words: str) -> None:
    why = record.get("why", "")
    assert why.strip(), f"empty why: {record}"
    assert len(why) > 60 and words in why, record
    assert why == why.strip() and not why.endswith((":", ";", ",")), record


def test_every_fault_kind_is_covered():
    """The tables name every outside event, every request action and token expiry."""
    assert set(EVENT_FAULTS) == set(EVENTS)
    plans = [FaultPlan.parse([spec]) for spec in REQUEST_FAULTS]
    actions = {rule.action for plan in plans for rule in plan.rules}
    assert actions == {"status", "delay", "reset", "timeout", "malformed"}
    assert any(plan.expiry is not None for plan in plans)


@pytest.mark.parametrize("spec", list(REQUEST_FAULTS))
def test_request_fault_record_says_why_and_when(store: tuple[StubStore, str], spec: str):
    """Each request fault's record has a why naming what Airflow does next, and a when."""
    s, ti = store
    call, words = REQUEST_FAULTS[spec]
    records = applied(spec, s, ti, [call])
    assert len(records) == 1, (spec, records)
    assert_says_why(records[0], words)
    assert records[0]["when"].startswith(("call 1", "after 0")), records[0]


@pytest.mark.parametrize("kind", list(EVENT_FAULTS))
def test_outside_event_record_says_why_and_when(store: tuple[StubStore, str], kind: str):
    """Each outside event's record has a why naming what Airflow does next, and a when."""
    s, ti = store
    s.set_variable("peer_var", "old")
    spec, words = EVENT_FAULTS[kind]
    # A call that carries the TI's id (so the plan knows it), the trigger, then the next call.
    calls = [BEAT, ("GET", VAR), ("GET", CONN)]
    records = applied(spec, s, ti, calls)
    assert [r["what"] for r in records] == [f"event {kind}"], records
    assert_says_why(records[0], words)
    assert records[0]["when"] in ("at 0s", "after GetVariable"), records[0]
    assert "no task instance" not in records[0]["detail"], records[0]

"""Durations and datetimes in terminal requests, under Airflow's supervisor and supervisor-sim.

The recorder child sends the same terminal request under both supervisors against the real
Execution API, as test_real_supervisor_parity.py does for its scenarios:

* ``DeferTask`` / ``AwaitInputTask`` whose timeout the runtime wrote as ``PT600S`` /
  ``PT3600S``: Airflow forwards them re-serialized by pydantic (``PT10M``, ``PT1H``), and so
  must supervisor-sim;
* ``RescheduleTask`` with its dates as strings (one with a space for the ``T``), which pydantic
  re-spells before they reach the API;
* ``TaskState`` with a naive ``end_date``: Airflow's comms model declares a plain ``datetime``
  there, so its supervisor takes the request (and ignores the field); supervisor-sim must too,
  rather than calling it invalid, and both leave the TI ``failed``.

Compared: the HTTP calls in order with their bodies (ids normalised, timestamps kept where they
carry the difference), the frames the child received, and the TI's final state in the DB.
"""

from __future__ import annotations

from typing import Any

import pytest

from ._airflow import RealAirflow
from ._helpers import Run, Scenario, run_both, send

pytestmark = pytest.mark.real_airflow

NOW = "$now"
SCENARIOS = [
    Scenario("defer-pt600s", "sleep", [send({
        "type": "DeferTask", "state": "deferred", "classpath": "fidelity.triggers.Never",
        "trigger_kwargs": {"moment": "later"}, "trigger_timeout": "PT600S",
        "next_method": "execute_complete", "next_kwargs": {}, "rendered_map_index": None,
    })]),
    Scenario("defer-seconds", "sleep", [send({
        "type": "DeferTask", "state": "deferred", "classpath": "fidelity.triggers.Never",
        "trigger_kwargs": {}, "trigger_timeout": 90061.5, "next_method": "execute_complete",
        "next_kwargs": {},
    })]),
    Scenario("await-input-pt3600s", "sleep", [send({
        "type": "AwaitInputTask", "state": "awaiting_input", "timeout": "PT3600S",
        "next_method": "execute_complete", "next_kwargs": {}, "rendered_map_index": None,
    })]),
    Scenario("reschedule-string-dates", "sleep", [send({
        "type": "RescheduleTask", "state": "up_for_reschedule",
        "reschedule_date": "2030-01-01 00:00:00+00:00", "end_date": "2026-01-01T00:00:00.5+01:00",
    })]),
    Scenario("task-state-naive-end-date", "fail", [
        send({"type": "TaskState", "state": "failed", "end_date": "2026-01-01T00:00:00",
              "rendered_map_index": None}),
        {"exit": 1},
    ]),
]  # fmt: skip
NAMES = [s.name for s in SCENARIOS]
BY_NAME = {s.name: s for s in SCENARIOS}
FORWARDED = {"trigger_timeout", "timeout", "reschedule_date", "end_date"}


@pytest.fixture(scope="module")
def runs(
    airflow: RealAirflow, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Run, Run]]:
    """scenario -> (run under Airflow's supervisor, run under supervisor-sim)."""
    tmp = tmp_path_factory.mktemp("fidelity_requests")
    return run_both(airflow, tmp, SCENARIOS, prefix="fid")


def _state_bodies(run: Run, name: str) -> list[dict[str, Any]]:
    """The PATCH .../state bodies' durations and dates that came from the runtime, as sent (no
    normalising). A ``TaskState``'s end_date is the supervisor's own exit time, not forwarded."""
    request = next(step["send"] for step in BY_NAME[name].steps or [] if "send" in step)
    keys = (FORWARDED & set(request)) - ({"end_date"} if request["type"] == "TaskState" else set())
    return [
        {k: v for k, v in c["request_json"].items() if k in keys | {"state"}}
        for c in run.calls
        if c["method"] == "PATCH" and c["path"].endswith("/state")
    ]


@pytest.mark.parametrize("name", NAMES)
def test_terminal_durations_and_dates_reach_the_api_as_airflow_sends_them(
    runs: dict[str, tuple[Run, Run]], name: str
) -> None:
    """The state call carries the durations and datetimes exactly as Airflow's supervisor
    writes them (``PT600S`` arrives as ``PT10M``); every other call matches too."""
    theirs, ours = runs[name]
    assert theirs.outcome["error"] is None, theirs.outcome
    assert _state_bodies(ours, name) == _state_bodies(theirs, name)
    assert ours.compared_calls() == theirs.compared_calls()


@pytest.mark.parametrize("name", NAMES)
def test_the_child_receives_what_airflows_supervisor_sends(
    runs: dict[str, tuple[Run, Run]], name: str
) -> None:
    """Every terminal request is answered alike: no error frame for the naive end_date."""
    theirs, ours = runs[name]
    assert theirs.frames is not None and ours.frames is not None
    assert ours.compared_frames() == theirs.compared_frames()


@pytest.mark.parametrize("name", NAMES)
def test_the_task_instance_ends_in_the_same_state(
    runs: dict[str, tuple[Run, Run]], name: str
) -> None:
    """Airflow's DB holds the same state after either supervisor, and supervisor-sim reports
    it and records no violation."""
    theirs, ours = runs[name]
    assert ours.state == theirs.state
    assert ours.outcome["final_state"] == ours.state
    assert ours.outcome["violations"] == []


def test_a_duration_written_in_seconds_is_forwarded_as_pydantic_writes_it(
    runs: dict[str, tuple[Run, Run]],
) -> None:
    """90061.5 seconds reaches the API as ``P1DT1H1M1.5S`` from both supervisors."""
    theirs, ours = runs["defer-seconds"]
    theirs_sent = _state_bodies(theirs, "defer-seconds")
    assert [b["trigger_timeout"] for b in theirs_sent] == ["P1DT1H1M1.5S"]
    assert _state_bodies(ours, "defer-seconds") == theirs_sent
    assert ours.outcome["final_state"] == theirs.state == "deferred"

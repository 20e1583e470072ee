"""``supervisor_sim.testing``: a session on the stub in this process, wired as run-task wires it."""

from __future__ import annotations

from pathlib import Path

from _session_helpers import REFERENCE

from supervisor_sim.api import Fault, TokenIssuer, ti_wire
from supervisor_sim.supervision import Event, Journal, TaskSession
from supervisor_sim.testing import run_stub_task, stub_store, stub_transport, task_client, task_spec


async def test_a_stub_run_reads_the_fixtures_and_records_every_exchange(fixtures_file: Path):
    """A task that reads a fixture variable succeeds; its calls are http events of the run."""
    seen: list[Event] = []
    sessions: list[TaskSession] = []
    run = await run_stub_task(
        stub_store(fixtures_file),
        "example_dag",
        "read_var_conn",
        REFERENCE,
        sinks=[seen.append],
        on_session=sessions.append,
    )
    assert run.outcome.final_state == "success", run.outcome.error
    assert sessions == [run.session]
    assert seen == run.recorded
    assert [d["status"] for d in run.http("GET", "/variables/peer_var")] == [200]
    assert run.http("PATCH", "/run")[0]["status"] == 200
    startup = run.events("frame", type="StartupDetails")
    assert startup[0]["body"]["ti"]["queue"] == run.record.queue == "default"


async def test_a_fault_on_run_keeps_the_task_from_starting():
    """An injected 404 on PATCH /run: the try does not start, and the run says why."""
    fault = Fault(method="PATCH", path_regex=r"/run$", status=404)
    run = await run_stub_task(stub_store(), "example_dag", "hello", REFERENCE, faults=[fault])
    assert run.outcome.started is False
    assert "404" in (run.outcome.error or "")


async def test_the_pieces_build_the_session_run_stub_task_builds():
    """task_spec carries ti_wire's TaskInstance; task_client calls the stub in-process as the
    try (its token is checked)."""
    store, journal = stub_store(), Journal()
    record = store.prepare_task_instance("example_dag", "hello")
    spec = task_spec(record, REFERENCE, env={"X": "1"}, dag_rel_path="example_dag.py")
    assert spec.ti == ti_wire(record) and spec.env == {"X": "1"}
    transport = stub_transport(store, TokenIssuer())
    async with task_client(transport, record, journal) as api:
        assert api.answers_inline
        outcome = await TaskSession(spec, api, journal=journal).run()
    assert outcome.final_state == "success", outcome.error
    assert journal.counts["http"] >= 2

"""Run task sessions against the embedded stub Execution API, in this process.

For tests, benchmarks and tools that drive a runtime without the command line. Everything is
built from the public names of ``supervisor_sim.api`` and ``supervisor_sim.supervision``, the way
``supervisor-sim run-task`` builds a session on the stub: a ``StubStore`` seeded from fixtures, a
queued task instance, a ``TaskSpec`` that carries it, an ``ExecutionAPIClient`` on the stub with a
workload token, and a ``Journal`` whose events are kept. ``run_stub_task`` does all of it for
one try::

    import trio
    from supervisor_sim.testing import run_stub_task, stub_store

    store = stub_store("fixtures.toml")
    run = trio.run(run_stub_task, store, "example_dag", "hello", ["./my-runtime"])
    assert run.outcome.final_state == "success", run.outcome.error
    print(run.http("GET", "/variables/"))

The pieces are public as well, for a caller that wires sessions its own way (many at once on
one stub, a session with hooks): ``stub_store``, ``task_spec``, ``stub_transport`` and
``task_client``. Signals are not forwarded and no transcript is written; a caller that wants one
adds a ``supervisor_sim.transcript.TranscriptWriter`` to the journal in ``on_session``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from .api import (
    ExecutionAPIClient,
    Fault,
    Fixtures,
    RetryPolicy,
    StubStore,
    StubTransport,
    TaskInstanceRecord,
    TokenIssuer,
    load_fixtures,
    stub_http,
    ti_wire,
)
from .supervision import (
    Event,
    Journal,
    SupervisorConfig,
    TaskOutcome,
    TaskSession,
    TaskSpec,
    journal_exchanges,
)

__all__ = [
    "StubRun",
    "run_stub_task",
    "stub_store",
    "stub_transport",
    "task_client",
    "task_spec",
]

Sink = Callable[[Event], None]


def stub_store(
    fixtures: Fixtures | str | os.PathLike[str] | None = None,
    state: str | os.PathLike[str] = ":memory:",
) -> StubStore:
    """A stub store at ``state`` (in memory by default) seeded with ``fixtures``, given as
    ``Fixtures`` or as the path of a fixtures TOML file. Example::

        store = stub_store("fixtures.toml")
        record = store.prepare_task_instance("example_dag", "hello")  # state "queued"
    """
    if not isinstance(fixtures, Fixtures):
        fixtures = load_fixtures(fixtures) if fixtures is not None else Fixtures()
    store = StubStore(state)
    store.seed(fixtures)
    return store


def task_spec(
    record: TaskInstanceRecord,
    runtime: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    dag_rel_path: str = ".",
) -> TaskSpec:
    """The spec of one try of ``record``: its StartupDetails TaskInstance (``api.ti_wire``) and
    the runtime command (``--comm``/``--logs`` are appended when it starts). Example::

        spec = task_spec(record, ["./my-runtime"], env={"MY_DEBUG": "1"})
        spec.ti["queue"]  # "default", as the record says
    """
    return TaskSpec(
        ti=ti_wire(record),
        runtime=list(runtime),
        env=dict(env or {}),
        cwd=cwd,
        dag_rel_path=dag_rel_path,
    )


def stub_transport(
    store: StubStore, tokens: TokenIssuer | None = None, faults: Iterable[Fault] = ()
) -> StubTransport:
    """The stub over ``store``: it checks the tokens ``tokens`` issued (any token without) and
    fails the requests ``faults`` match. One transport may serve many sessions. Example::

        transport = stub_transport(store, faults=[Fault("GET", "/variables/", status=500)])
    """
    transport = StubTransport(store, tokens=tokens)
    transport.faults.extend(faults)
    return transport


def task_client(
    transport: StubTransport,
    record: TaskInstanceRecord,
    journal: Journal,
    *,
    retry: RetryPolicy | None = None,
    http: httpx.AsyncClient | None = None,
) -> ExecutionAPIClient:
    """The Execution API client of ``record``'s session: it calls ``transport`` in-process (or,
    given ``http``, that server instead), authenticates with a workload token from the
    transport's issuer (none without), retries by ``retry`` (default: Airflow's) and records
    every exchange as an ``http`` event of ``journal``. Close it when the session ends.
    Example, many sessions on one stub::

        transport = stub_transport(store, TokenIssuer())
        for record in records:
            journal = Journal()
            api = task_client(transport, record, journal)
            sessions.append(TaskSession(task_spec(record, runtime), api, journal=journal))
    """
    tokens = transport.tokens
    return ExecutionAPIClient(
        http or stub_http(transport),
        in_process=transport if http is None else None,
        token=tokens.issue(record.id, scope="workload") if tokens is not None else "",
        retry=retry or RetryPolicy(),
        on_exchange=journal_exchanges(journal),
    )


@dataclass
class StubRun:
    """One try run by ``run_stub_task``: how it ended, the session and everything it emitted."""

    outcome: TaskOutcome
    session: TaskSession
    journal: Journal
    store: StubStore
    record: TaskInstanceRecord
    #: Every event the journal emitted, in order.
    recorded: list[Event] = field(default_factory=list)

    def events(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        """The data of the events of ``kind`` whose fields equal ``match``."""
        return [
            e.data
            for e in self.recorded
            if e.kind == kind and all(e.data.get(k) == v for k, v in match.items())
        ]

    def http(self, method: str | None = None, path_part: str = "") -> list[dict[str, Any]]:
        """The HTTP exchanges with ``method`` (any without) whose path contains ``path_part``."""
        return [
            d
            for d in self.events("http")
            if (method is None or d["method"] == method) and path_part in d["path"]
        ]

    def kinds(self) -> list[tuple[str, Any]]:
        """Each event as (kind, what): the frame type, process event or HTTP path."""
        return [
            (e.kind, e.data.get("event") or e.data.get("type") or e.data.get("path"))
            for e in self.recorded
        ]


async def run_stub_task(
    store: StubStore,
    dag_id: str,
    task_id: str,
    runtime: Sequence[str],
    *,
    run_id: str | None = None,
    max_tries: int = 0,
    env: Mapping[str, str] | None = None,
    config: SupervisorConfig | None = None,
    retry: RetryPolicy | None = None,
    faults: Iterable[Fault] = (),
    sinks: Iterable[Sink] = (),
    http: httpx.AsyncClient | None = None,
    on_session: Callable[[TaskSession], None] | None = None,
) -> StubRun:
    """Queue the next try of ``dag_id.task_id`` in ``store`` and supervise it with ``runtime``.

    ``sinks`` see every event after it is recorded; ``http`` replaces the stub client (another
    server, one that fails); ``on_session`` is called with the session before it runs (to keep
    it for signalling, or to add a sink that needs its masker). ``http`` is closed at the end.
    Example::

        run = await run_stub_task(store, "example_dag", "hello", ["./my-runtime"], max_tries=1)
        run.outcome.final_state  # "success", "up_for_retry", ...
        run.http("PATCH", "/run")[0]["status"]  # 200
    """
    record = store.prepare_task_instance(dag_id, task_id, run_id=run_id, max_tries=max_tries)
    journal = Journal()
    recorded: list[Event] = []
    journal.sinks.append(recorded.append)
    journal.sinks.extend(sinks)
    transport = stub_transport(store, TokenIssuer(), faults)
    async with task_client(transport, record, journal, retry=retry, http=http) as api:
        session = TaskSession(
            task_spec(record, runtime, env=env), api, config=config, journal=journal
        )
        if on_session is not None:
            on_session(session)
        outcome = await session.run()
    return StubRun(outcome, session, journal, store, record, recorded)

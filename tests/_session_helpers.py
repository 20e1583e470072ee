"""A tiny helper that runs a real runtime child through a real ``TaskSession`` over real
loopback sockets, against the stub Execution API."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = [sys.executable, str(ROOT / "runtimes" / "reference" / "runtime.py")]
SCRIPTED = [sys.executable, str(ROOT / "tests" / "children" / "scripted.py")]

#: Short intervals so timing behaviour is exercised without sleeping through Airflow's defaults.
#: The session run_task built most recently (tests that signal a running session use it).
LAST_SESSION: Any = None

FAST = dict(
    startup_timeout=5.0,
    heartbeat_interval=0.2,
    task_success_overtime=1.0,
    kill_escalation_delay=0.5,
    socket_cleanup_timeout=2.0,
)


@dataclass
class Run:
    outcome: Any
    journal: Any
    store: Any
    ti: Any

    def events(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        return [
            e.data
            for e in self.journal_events
            if e.kind == kind and all(e.data.get(k) == v for k, v in match.items())
        ]

    @property
    def journal_events(self) -> list[Any]:
        return self.journal.recorded

    def http(self, method: str | None = None, path_part: str = "") -> list[dict[str, Any]]:
        return [
            d
            for d in self.events("http")
            if (method is None or d["method"] == method) and path_part in d["path"]
        ]

    def kinds(self) -> list[tuple[str, Any]]:
        return [
            (e.kind, e.data.get("event") or e.data.get("type") or e.data.get("path"))
            for e in self.journal_events
        ]


async def run_task(
    store: Any,
    task_id: str,
    *,
    runtime: list[str] | None = None,
    dag_id: str = "example_dag",
    env: dict[str, str] | None = None,
    steps: list[dict[str, Any]] | None = None,
    out: Path | None = None,
    run_id: str | None = None,
    max_tries: int = 0,
    faults: list[Any] = (),
    transcript: Path | None = None,
    http: httpx.AsyncClient | None = None,
    retry: Any = None,
    sinks: list[Any] = (),
    **config: Any,
) -> Run:
    """Prepare a queued TI in ``store`` and supervise one try of it with a real child."""
    from supervisor_sim.api import ExecutionAPIClient, RetryPolicy, StubTransport, TokenIssuer
    from supervisor_sim.supervision import Journal, SupervisorConfig, TaskSession, TaskSpec

    record = store.prepare_task_instance(dag_id, task_id, run_id=run_id, max_tries=max_tries)
    child_env = dict(env or {})
    if steps is not None:
        child_env["SCRIPTED_STEPS"] = json.dumps(steps)
    if out is not None:
        child_env["SCRIPTED_OUT"] = str(out)
    ti = {
        "id": record.id,
        "task_id": record.task_id,
        "dag_id": record.dag_id,
        "run_id": record.run_id,
        "try_number": record.try_number,
        "dag_version_id": record.dag_version_id,
        "map_index": record.map_index,
    }
    journal = Journal()
    journal.recorded = []  # type: ignore[attr-defined]
    journal.sinks.append(journal.recorded.append)  # type: ignore[attr-defined]
    tokens = TokenIssuer()
    transport = StubTransport(store, tokens=tokens)
    transport.faults.extend(faults)

    def on_exchange(ex: Any) -> None:
        journal.emit(
            "http",
            method=ex.method,
            path=ex.path,
            status=ex.status,
            error=ex.error,
            cause=ex.cause,
            request_body=ex.request_body,
        )

    journal.sinks.extend(sinks)
    cfg = replace(SupervisorConfig(), **{**FAST, **config})
    if http is None:
        http = httpx.AsyncClient(base_url="http://stub.invalid/execution/", transport=transport)
    async with http:
        api = ExecutionAPIClient(
            http,
            token=tokens.issue(record.id, scope="workload"),
            retry=retry or RetryPolicy(attempts=2, wait_min=0.01, wait_max=0.02, timeout=5),
            on_exchange=on_exchange,
        )
        spec = TaskSpec(ti=ti, runtime=runtime or REFERENCE, env=child_env)
        session = TaskSession(spec, api, config=cfg, journal=journal)
        global LAST_SESSION
        LAST_SESSION = session
        writer = None
        if transcript is not None:
            from supervisor_sim.transcript import TranscriptWriter

            header = {"task": {"ti": ti}, "runtime": list(spec.runtime)}
            writer = TranscriptWriter(transcript, header, redact=session.masker.redact)
            journal.sinks.insert(0, writer)
        outcome = None
        try:
            outcome = await session.run()
        finally:
            if writer is not None:
                writer.close(
                    {
                        "final_state": outcome.final_state if outcome else None,
                        "exit_code": outcome.exit_code if outcome else None,
                    }
                )
    run = Run(outcome, journal, store, record)
    run.session = session  # type: ignore[attr-defined]
    return run

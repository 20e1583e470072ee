"""Running a real runtime child through a real ``TaskSession`` over real loopback sockets,
against the stub Execution API (``supervisor_sim.testing``), with test-friendly defaults."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from supervisor_sim.api import Fault, RetryPolicy, StubStore, TaskInstanceRecord
from supervisor_sim.supervision import Event, SupervisorConfig, TaskSession
from supervisor_sim.testing import StubRun, run_stub_task

if TYPE_CHECKING:
    from supervisor_sim.transcript import TranscriptWriter

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = [sys.executable, str(ROOT / "runtimes" / "reference" / "runtime.py")]
SCRIPTED = [sys.executable, str(ROOT / "tests" / "children" / "scripted.py")]

#: The session run_task built most recently (tests that signal a running session use it).
LAST_SESSION: TaskSession | None = None

#: Short intervals so timing behaviour is exercised without sleeping through Airflow's defaults.
#: The terminal message of a scripted runtime that succeeds (``{"send": SUCCEED}``).
SUCCEED = {
    "type": "SucceedTask",
    "state": "success",
    "end_date": "$now",
    "task_outlets": [],
    "outlet_events": [],
}


FAST = dict(
    startup_timeout=5.0,
    heartbeat_interval=0.2,
    task_success_overtime=1.0,
    kill_escalation_delay=0.5,
    socket_cleanup_timeout=2.0,
)
#: Retries that give up quickly.
QUICK_RETRY = RetryPolicy(attempts=2, wait_min=0.01, wait_max=0.02, timeout=5)


class Run(StubRun):
    """A ``StubRun`` under the names the tests use."""

    @property
    def ti(self) -> TaskInstanceRecord:
        return self.record

    @property
    def journal_events(self) -> list[Event]:
        return self.recorded


async def run_task(
    store: StubStore,
    task_id: str,
    *,
    runtime: list[str] | None = None,
    dag_id: str = "example_dag",
    env: dict[str, str] | None = None,
    steps: list[dict[str, Any]] | None = None,
    out: Path | None = None,
    run_id: str | None = None,
    max_tries: int = 0,
    faults: Sequence[Fault] = (),
    transcript: Path | None = None,
    http: httpx.AsyncClient | None = None,
    retry: RetryPolicy | None = None,
    sinks: Sequence[Callable[[Event], None]] = (),
    **config: Any,
) -> Run:
    """Prepare a queued TI in ``store`` and supervise one try of it with a real child.

    ``steps``/``out``: the scripted child's script and where it writes what it saw;
    ``transcript``: record the run there; ``config``: SupervisorConfig fields over ``FAST``."""
    child_env = dict(env or {})
    if steps is not None:
        child_env["SCRIPTED_STEPS"] = json.dumps(steps)
    if out is not None:
        child_env["SCRIPTED_OUT"] = str(out)
    writer: TranscriptWriter | None = None

    def adopt(session: TaskSession) -> None:
        global LAST_SESSION
        LAST_SESSION = session
        if transcript is not None:
            nonlocal writer
            from supervisor_sim.transcript import TranscriptWriter

            header = {"task": {"ti": dict(session.spec.ti)}, "runtime": list(session.spec.runtime)}
            writer = TranscriptWriter(transcript, header, redact=session.masker.redact)
            session.journal.sinks.insert(0, writer)

    run: StubRun | None = None
    try:
        run = await run_stub_task(
            store,
            dag_id,
            task_id,
            runtime or REFERENCE,
            run_id=run_id,
            max_tries=max_tries,
            env=child_env,
            config=replace(SupervisorConfig(), **{**FAST, **config}),
            retry=retry or QUICK_RETRY,
            faults=faults,
            sinks=sinks,
            http=http,
            on_session=adopt,
        )
    finally:
        if writer is not None:
            outcome = run.outcome if run else None
            writer.close(
                {
                    "final_state": outcome.final_state if outcome else None,
                    "exit_code": outcome.exit_code if outcome else None,
                }
            )
    return Run(**vars(run))

"""run-dag: every task of a DAG run, in dependency order, many children at once in one process.

Airflow's scheduler decides which task instance may run next and its executor runs each under
its own supervisor process. Here one trio program plays both: a ready task starts a
``TaskSession`` of its own (own child, transcript and logs) as soon as a parallelism slot is free.
Trigger rule ``all_success``: a task runs when all its upstream tasks succeeded; a failed
upstream makes it ``upstream_failed``, a skipped one ``skipped``. Retries follow the try's final
state (``up_for_retry``) after the retry delay; a mapped task expands over its upstream's list
XCom into one task instance per element.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import trio

from ..api import ExecutionAPIClient, StubStore, TaskInstanceRecord
from ..protocol import DagStructure
from ..supervision import TaskOutcome

__all__ = ["AirflowBackend", "DagRunner", "Expansion", "RunBackend", "StubBackend", "TaskResult"]

FINISHED = {
    "success",
    "failed",
    "upstream_failed",
    "skipped",
    "removed",
    "server_terminated",
    "not_started",
}


@dataclass
class TaskResult:
    """The outcome of one task (all its tries; for a mapped task, all its map indexes)."""

    task_id: str
    state: str = "none"
    tries: int = 0
    map_indexes: list[int] = field(default_factory=list)
    exit_codes: list[int | None] = field(default_factory=list)
    transcripts: list[str] = field(default_factory=list)
    violations: int = 0
    started: float | None = None
    ended: float | None = None
    error: str | None = None
    #: A try of it was running when run-dag was interrupted (its runtime got the signal).
    stopped: bool = False

    @property
    def duration_s(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return round(self.ended - self.started, 3)


@dataclass(frozen=True)
class Expansion:
    """What expanding a mapped task gave: its map indexes, or (none and) the state it got
    without running, and why."""

    map_indexes: list[int]
    state: str | None = None
    reason: str | None = None


#: Runs one try of one task instance: (record) -> (outcome, transcript path or None).
RunOne = Callable[[TaskInstanceRecord], Awaitable[tuple[TaskOutcome, str | None]]]


class RunBackend(Protocol):
    """Where task instances and XComs of the DAG run live: the stub's store, or a real Airflow."""

    async def prepare(self, task_id: str, map_index: int, max_tries: int) -> TaskInstanceRecord:
        """A queued task instance for the next try of ``task_id`` in the run."""
        ...

    async def xcom(self, task_id: str, map_index: int = -1) -> Any:
        """The ``return_value`` XCom of a task in the run, a JSON value (None when there is
        none)."""
        ...

    async def expand(self, task_id: str, mapped_over: str) -> Expansion:
        """Expand a mapped task over its upstream's ``return_value``, once that is done."""
        ...


async def _expand_over_xcom(backend: RunBackend, mapped_over: str) -> Expansion:
    value = await backend.xcom(mapped_over)
    if not isinstance(value, list):
        return Expansion(
            [],
            "failed",
            f"cannot map over {mapped_over}: its return_value XCom is "
            f"{type(value).__name__}, not a list",
        )
    if not value:
        return Expansion([], "skipped")  # Airflow: a zero-length map is skipped
    return Expansion(list(range(len(value))))


class StubBackend:
    """The embedded stub: task instances and XComs in its SQLite store."""

    def __init__(self, store: StubStore, dag_id: str, run_id: str) -> None:
        self.store, self.dag_id, self.run_id = store, dag_id, run_id

    async def prepare(self, task_id: str, map_index: int, max_tries: int) -> TaskInstanceRecord:
        return self.store.prepare_task_instance(
            self.dag_id, task_id, run_id=self.run_id, map_index=map_index, max_tries=max_tries
        )

    async def xcom(self, task_id: str, map_index: int = -1) -> Any:
        return self.store.get_xcom(self.dag_id, self.run_id, task_id, "return_value", map_index)

    async def expand(self, task_id: str, mapped_over: str) -> Expansion:
        return await _expand_over_xcom(self, mapped_over)


class AirflowBackend:
    """A real Airflow: task instances queued by ``airflow_queue_ti.py`` (Airflow's own code,
    shipped in this package and run with that Airflow's Python, kept open in batch mode), XComs
    read over the Execution API.

    There is no scheduler in this picture, so the queue tool does what it would: trigger the
    run, expand a mapped task with Airflow's own ``TaskMap.expand_mapped_task`` once its
    upstream is done, then queue each task instance's next try when run-dag finds it ready.
    """

    def __init__(
        self, proc: trio.Process, api: ExecutionAPIClient, dag_id: str, run_id: str
    ) -> None:
        self.proc = proc
        self.api = api
        self.dag_id = dag_id
        self.run_id = run_id
        self._lock = trio.Lock()
        self._buffer = b""

    async def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        async with self._lock:
            await self.proc.stdin.send_all(json.dumps(request).encode() + b"\n")
            with trio.fail_after(120):
                while b"\n" not in self._buffer:
                    chunk = await self.proc.stdout.receive_some()
                    if not chunk:
                        raise RuntimeError("the Airflow queue tool exited")
                    self._buffer += chunk
            line, self._buffer = self._buffer.split(b"\n", 1)
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    async def expand(self, task_id: str, mapped_over: str) -> Expansion:
        answer = await self._ask({"dag_id": self.dag_id, "expand": task_id, "run_id": self.run_id})
        return Expansion(
            [int(i) for i in answer["map_indexes"]], answer.get("state"), answer.get("reason")
        )

    async def prepare(self, task_id: str, map_index: int, max_tries: int) -> TaskInstanceRecord:
        answer = await self._ask(
            {
                "dag_id": self.dag_id,
                "tasks": [task_id],
                "run_id": self.run_id,
                "map_index": map_index,
            }
        )
        ti = answer["tis"][0]
        return TaskInstanceRecord(
            id=ti["ti_id"],
            dag_id=ti["dag_id"],
            task_id=ti["task_id"],
            run_id=ti["run_id"],
            map_index=ti.get("map_index", -1),
            try_number=ti["try_number"],
            max_tries=ti.get("max_tries", max_tries),
            dag_version_id=ti["dag_version_id"],
            queue=ti.get("queue", "default"),
            state="queued",
        )

    async def xcom(self, task_id: str, map_index: int = -1) -> Any:
        path = (
            f"xcoms/{quote(self.dag_id, safe='')}/{quote(self.run_id, safe='')}/"
            f"{quote(task_id, safe='')}/return_value"
        )
        params = {"map_index": map_index} if map_index >= 0 else {}
        try:
            response = await self.api.request("GET", path, params=params, cause="run-dag")
        except Exception:
            return None
        return response.json().get("value")


class DagRunner:
    """Schedules a DAG run's tasks over a runner of single tries."""

    def __init__(
        self,
        structure: DagStructure,
        backend: RunBackend,
        run_one: RunOne,
        *,
        run_id: str,
        parallelism: int = 4,
        retry_delay: float | None = None,
        on_change: Callable[[TaskResult], None] | None = None,
    ) -> None:
        self.structure = structure
        self.backend = backend
        self.run_one = run_one
        self.run_id = run_id
        self.limiter = trio.CapacityLimiter(max(1, parallelism))
        self.retry_delay = retry_delay
        self.on_change = on_change
        self.results = {tid: TaskResult(tid) for tid in structure.order()}
        self.stopping = False
        self._changed = trio.Event()
        self._stopped = trio.Event()
        self.peak_running = 0
        self._running = 0

    def stop(self) -> None:
        """Start no new task instances (Ctrl+C); running ones finish or are interrupted (the
        caller signals them), and a retry waiting out its delay is not run. A task that never
        ran ends ``not_run``."""
        self.stopping = True
        self._stopped.set()
        self._wake()

    def _wake(self) -> None:
        self._changed.set()

    def _set(self, result: TaskResult, state: str) -> None:
        result.state = state
        if state in FINISHED and result.ended is None:
            result.ended = time.monotonic()
        if self.on_change is not None:
            self.on_change(result)
        self._wake()

    def _decide(self, tid: str) -> str | None:
        """'run', a final state to set without running, or None to keep waiting."""
        ups = [self.results[u].state for u in self.structure.tasks[tid].upstream]
        if any(s not in FINISHED for s in ups):
            return None
        if any(s in ("failed", "upstream_failed", "server_terminated", "not_started") for s in ups):
            return "upstream_failed"
        if any(s in ("skipped", "removed") for s in ups):
            return "skipped"
        return "run"

    async def run(self) -> dict[str, TaskResult]:
        started = time.monotonic()
        self.started = started
        async with trio.open_nursery() as nursery:
            pending = list(self.results)
            while pending:
                self._changed = trio.Event()
                for tid in list(pending):
                    if self.stopping:
                        break
                    decision = self._decide(tid)
                    if decision is None:
                        continue
                    pending.remove(tid)
                    if decision == "run":
                        nursery.start_soon(self._run_task, tid)
                    else:
                        self._set(self.results[tid], decision)
                if self.stopping:
                    for tid in pending:
                        if self.results[tid].state == "none":
                            self.results[tid].state = "not_run"
                    break
                if pending:
                    await self._changed.wait()
        self.wall_s = round(time.monotonic() - started, 3)
        return self.results

    async def _run_task(self, tid: str) -> None:
        node = self.structure.tasks[tid]
        result = self.results[tid]
        self._set(result, "queued")
        indexes = [-1]
        if node.mapped_over:
            try:
                expansion = await self.backend.expand(tid, node.mapped_over)
            except Exception as exc:
                result.error = f"could not expand {tid}: {exc}"
                self._set(result, "failed")
                return
            if not expansion.map_indexes:
                result.error = expansion.reason
                self._set(result, expansion.state or "failed")
                return
            indexes = expansion.map_indexes
        result.map_indexes = [i for i in indexes if i >= 0]
        states: list[str] = []
        async with trio.open_nursery() as nursery:
            for index in indexes:
                nursery.start_soon(self._run_instance, tid, index, states)
        if self.stopping and not states:
            self._set(result, "not_run")
        elif self.stopping and "up_for_retry" in states and len(states) == 1:
            self._set(result, "up_for_retry")  # its next try was not run
        elif (
            self.stopping
            and len(states) < len(indexes)
            and all(s in ("success", "skipped") for s in states)
        ):
            self._set(result, "not_run")  # some map indexes never ran
        elif all(s == "success" for s in states):
            self._set(result, "success")
        elif all(s in ("skipped", "success") for s in states) and "skipped" in states:
            self._set(result, "skipped" if len(states) == 1 else "success")
        elif any(s == "removed" for s in states) and len(states) == 1:
            self._set(result, "removed")
        else:
            self._set(result, "failed")

    async def _run_instance(self, tid: str, map_index: int, states: list[str]) -> None:
        node = self.structure.tasks[tid]
        result = self.results[tid]
        delay = self.retry_delay if self.retry_delay is not None else node.retry_delay
        while True:
            if self.stopping:
                return
            async with self.limiter:
                if self.stopping:
                    return
                try:
                    record = await self.backend.prepare(tid, map_index, node.retries)
                except Exception as exc:
                    result.error = f"could not queue {tid}: {exc}"
                    states.append("failed")
                    return
                if self.stopping:  # interrupted while the backend queued it
                    return
                self._running += 1
                self.peak_running = max(self.peak_running, self._running)
                if result.started is None:
                    result.started = time.monotonic()
                self._set(result, "running")
                try:
                    outcome, transcript = await self.run_one(record)
                finally:
                    self._running -= 1
            if transcript:
                result.transcripts.append(transcript)
            if outcome.interrupted and not outcome.started:
                return  # interrupted before its runtime was given the task: not a try, not run
            result.tries += 1
            result.exit_codes.append(outcome.exit_code)
            result.violations += outcome.violation_count
            if outcome.interrupted:
                result.stopped = True
            state = outcome.final_state or "not_started"
            if outcome.error and not result.error:
                result.error = outcome.error
            if outcome.never_reported:
                # Exit 0 with no terminal message: Airflow's supervisor reports nothing, the TI
                # stays running, and the scheduler fails it once its heartbeats stop
                # ([scheduler] task_instance_heartbeat_timeout), retrying it when tries remain.
                # Its downstream tasks never see a success.
                state = "up_for_retry" if result.tries <= node.retries else "failed"
                result.error = result.error or _NEVER_REPORTED
            if state == "up_for_retry" and not self.stopping:
                self._set(result, "up_for_retry")
                with trio.move_on_after(delay if math.isfinite(delay) else 0):
                    await self._stopped.wait()  # Ctrl+C: the retry is not run
                if not self.stopping:
                    continue
            states.append(state)
            return


_NEVER_REPORTED = (
    "the runtime exited 0 without a terminal message: Airflow's TI stays running until the "
    "scheduler fails it as a zombie (task_instance_heartbeat_timeout), retrying it if tries remain"
)

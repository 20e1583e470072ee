"""The task workload: one task try, supervised as Airflow 3.3's supervisor does it.

After both connections: ``PATCH .../run`` -> ``[0, StartupDetails, nil]`` -> requests (the
terminal messages change the try's state), heartbeats and, after a terminal message, the
success-overtime watch -> at exit, the final state from Airflow's table, reported unless it was
sent already. Unlike Airflow's single-threaded loop, heartbeats run in their own task, so a slow
API call for one request never delays them.
"""

from __future__ import annotations

import getpass
import math
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Unpack

import httpx
import trio

from ..api import APIStatusError, ExecutionAPIClient, ServerResponseError
from ..protocol import CATALOGUE, TERMINAL, TO_SUPERVISOR, as_pydantic_json, materialize
from ._dispatch import Dispatcher, Reply, json_default, jsonify
from ._hooks import StartFailed, Workload
from ._pacer import current_pacer
from ._process import ChildProcess
from ._session import Session, SessionOptions
from ._violations import violation

__all__ = [
    "SERVER_TERMINATED",
    "STATES_SENT_DIRECTLY",
    "TaskSession",
    "TaskSpec",
    "TaskState",
    "TaskWorkload",
    "airflow_hostname",
    "state_payload",
]

SERVER_TERMINATED = "server_terminated"
#: Final states Airflow never reports at exit: they were sent directly (supervisor.py).
STATES_SENT_DIRECTLY = frozenset(
    {"success", "up_for_retry", "deferred", "up_for_reschedule", "awaiting_input",
     SERVER_TERMINATED}
)  # fmt: skip
#: Terminal messages after which the success overtime runs (``task_success_overtime``).
_OVERTIME_AFTER = frozenset({"SucceedTask", "RetryTask"})
_HITL_TRIGGERER_ONLY = frozenset({"UpdateHITLDetail", "GetHITLDetailResponse"})


def airflow_hostname(name: str = "") -> str:
    """The host name Airflow's supervisor reports in /run and heartbeats.

    Airflow's default ``[core] hostname_callable`` is its own patched ``getfqdn``: the canonical
    name from ``getaddrinfo(gethostname(), AI_CANONNAME)``, which can differ from
    ``socket.getfqdn()`` (on many containers one says ``localhost``, the other the host name).
    """
    name = name.strip()
    if not name or name == "0.0.0.0":
        name = socket.gethostname()
    try:
        infos = socket.getaddrinfo(name, None, 0, socket.SOCK_DGRAM, 0, socket.AI_CANONNAME)
    except OSError:
        return name
    for info in infos:
        if info[3]:
            return info[3]
    return name


@dataclass(frozen=True)
class TaskSpec:
    """What to run: the task instance as the supervisor's workload names it, and the runtime."""

    ti: Mapping[str, Any]
    runtime: Sequence[str]
    dag_rel_path: str = "."
    bundle_info: Mapping[str, Any] = field(
        default_factory=lambda: {"name": "dags-folder", "version": None}
    )
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    hostname: str = field(default_factory=lambda: airflow_hostname())
    sentry_integration: str = ""


@dataclass
class TaskState:
    """What the supervisor knows about the try's outcome (Airflow's WatchedSubprocess fields)."""

    ti_id: str
    should_retry: bool = False
    terminal_state: str | None = None
    #: A terminal message whose state call failed; replayed once at exit.
    pending: tuple[str, dict[str, Any]] | None = None
    task_end_time: float | None = None
    rendered_map_index: str | None = None

    def final_state(self, exit_code: int | None) -> str:
        """Airflow's final-state table: what the try ended as, from the terminal state the
        server accepted (a terminal call it refused sets none) and the exit code."""
        if exit_code == 0:
            return self.terminal_state or "success"
        if self.terminal_state == SERVER_TERMINATED:
            return SERVER_TERMINATED
        if self.should_retry:
            return "up_for_retry"
        return "failed"


def state_payload(body: dict[str, Any]) -> dict[str, Any]:
    """The PATCH .../state body for a terminal message: its fields with defaults, minus type,
    durations and datetimes spelled as Airflow's pydantic models write them."""
    model = CATALOGUE[body["type"]].model
    payload: dict[str, Any] = {}
    for f in model.fields:
        if f.name == "type":
            continue
        if f.name in body:
            payload[f.name] = body[f.name]
        elif not f.required:
            payload[f.name] = f.default
    if body["type"] == "SucceedTask":
        payload["task_outlets"] = payload.get("task_outlets") or []
        payload["outlet_events"] = payload.get("outlet_events") or []
    if body["type"] == "RetryTask" and isinstance(payload.get("retry_reason"), str):
        payload["retry_reason"] = payload["retry_reason"][:500]
    return jsonify(as_pydantic_json(payload, body["type"]))


async def _reraise(exc: BaseException) -> None:
    raise exc


class _Turn:
    """A ``trio.Lock`` taken without a checkpoint when it is free. A heartbeat that wakes when
    it is due goes straight to its call instead of yielding once more: in a burst, where one
    pass of trio's loop runs a request for each of 1,000 sessions, every yield is a pass."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = trio.Lock()

    async def __aenter__(self) -> None:
        try:
            self._lock.acquire_nowait()
        except trio.WouldBlock:
            await self._lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()

    def try_take(self) -> bool:
        """Take the turn if it is free (no checkpoint); ``give_back`` ends it."""
        try:
            self._lock.acquire_nowait()
        except trio.WouldBlock:
            return False
        return True

    def give_back(self) -> None:
        self._lock.release()


class TaskWorkload(Workload):
    """A task try: StartupDetails after ``/run``, heartbeats, terminal messages, final state."""

    accepted_types = TO_SUPERVISOR
    spec: TaskSpec

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec
        self.ti_id = str(spec.ti["id"])
        self.state = TaskState(ti_id=self.ti_id)
        # Airflow's supervisor is one loop: a heartbeat, with all its retries and back-off, is
        # over before the next message is read, and no heartbeat goes out while a terminal
        # message is being reported. Here heartbeats run in their own task, so the two take
        # turns on this lock (first come, first served: neither can starve the other). Without
        # it a heartbeat retried during a SucceedTask's state call reached the API after it, got
        # 409 (the TI was no longer running) and killed a task that had succeeded.
        self._api_turn = _Turn()
        # Heartbeats: when the next one is due (trio time), failures in a row, and whether they
        # stopped (a kill was decided).
        self._hb_due = math.inf
        self._hb_failed = 0
        self._hb_stopped = False
        self._hb_path = f"task-instances/{self.ti_id}/heartbeat"

    def bind(self, session: Session) -> None:
        super().bind(session)
        self.api = session.api
        self.journal = session.journal
        self.dispatcher = Dispatcher(session.api, self.ti_id)
        self.dispatcher.register(
            {name: self._terminal for name in TERMINAL if name != "TaskState"}
            | {"TaskState": self._task_state}
        )

    # --- the first frame -------------------------------------------------------------------------

    async def begin(self) -> dict[str, Any]:
        """PATCH /run, then StartupDetails; any failure of /run is a ``StartFailed``."""
        child = self.session.child
        assert child is not None
        try:
            ti_context = await self._start_call(child)
        except Exception as exc:  # Airflow: any failure of /run kills the child, no state.
            raise StartFailed(
                f"PATCH task-instances/{self.ti_id}/run failed: {_why(exc)}"
            ) from None
        self.state.should_retry = bool(ti_context.get("should_retry"))
        return self.startup_details(ti_context)

    async def _start_call(self, child: ChildProcess) -> dict[str, Any]:
        payload = {
            "state": "running",
            "hostname": self.spec.hostname,
            "unixname": getpass.getuser(),
            "pid": child.pid,
            "start_date": json_default(datetime.now(UTC)),
        }
        resp = await self.api.request(
            "PATCH", f"task-instances/{self.ti_id}/run", json_body=payload, cause="start"
        )
        return resp.json()

    def startup_details(self, ti_context: dict[str, Any]) -> dict[str, Any]:
        """The StartupDetails body for the ``/run`` response ``ti_context``."""
        context = materialize(ti_context, "TIRunContext")
        return {
            "ti": materialize(dict(self.spec.ti), "TaskInstance"),
            "dag_rel_path": self.spec.dag_rel_path,
            "bundle_info": dict(self.spec.bundle_info),
            # A task resuming from a deferral keeps its original start date.
            "start_date": context.get("start_date") or datetime.now(UTC),
            "ti_context": context,
            "sentry_integration": self.spec.sentry_integration,
            "type": "StartupDetails",
        }

    # --- requests --------------------------------------------------------------------------------

    async def answer(self, body: dict[str, Any], frame_id: int, cause: int) -> Reply:
        type_name = body["type"]
        if type_name in _HITL_TRIGGERER_ONLY:
            self.journal.violation(
                violation(
                    "triggerer-only-request",
                    f"{type_name} is only handled by the triggerer, never by a task supervisor",
                    frame_id=frame_id,
                )
            )
        elif type_name == "ResendLoggingFD":
            self.journal.violation(
                violation(
                    "fork-mode-only-request",
                    "ResendLoggingFD passes a file descriptor with SCM_RIGHTS, which needs "
                    "the AF_UNIX comm socket of Airflow's fork mode; this runtime is connected "
                    "over TCP",
                    frame_id=frame_id,
                )
            )
        elif not self.dispatcher.handles(type_name):
            self.journal.emit(
                "note",
                level="warning",
                message=f"{type_name} is valid but supervisor-sim does not serve "
                "it yet; answering with an error frame",
            )
        if self.state.terminal_state is not None:
            self.journal.emit(
                "note",
                level="debug",
                message=f"{type_name} after the terminal message (Airflow serves these normally)",
            )
        return await self.dispatcher.dispatch(body, cause=cause)

    async def _task_state(self, body: dict[str, Any], cause: Any) -> Reply:
        # Reported with PATCH .../state only after the process exits (docs/requests.md). Taken
        # after a heartbeat in progress is over, as in Airflow's loop (see ``_api_turn``).
        async with self._api_turn:
            state = self.state
            state.terminal_state = body["state"]
            state.task_end_time = self.journal.now()
            state.rendered_map_index = body.get("rendered_map_index")
        self._start_overtime()
        return None, None

    async def _terminal(self, body: dict[str, Any], cause: Any) -> Reply:
        name = body["type"]
        payload = state_payload(body)
        state = self.state
        if name in _OVERTIME_AFTER:
            state.task_end_time = self.journal.now()
        if "rendered_map_index" in CATALOGUE[name].model.by_name:
            state.rendered_map_index = body.get("rendered_map_index")
        # As Airflow's _send_terminal_state_msg: the message is kept for a replay at exit, and
        # the terminal state — which stops heartbeats and starts the overtime watch — is only
        # taken once the server accepted it. A refused call (409: the TI was marked failed
        # meanwhile) leaves the try running: heartbeats go on, get 409, and the task is killed.
        state.pending = (name, payload)
        async with self._api_turn:  # after a heartbeat in progress, retries and all
            await self.api.request(
                "PATCH", f"task-instances/{self.ti_id}/state", json_body=payload, cause=cause
            )
            state.terminal_state = payload["state"]
        state.pending = None
        if name in _OVERTIME_AFTER:
            self._start_overtime()
        return None, None

    # --- duties ----------------------------------------------------------------------------------

    def start_duties(self, nursery: trio.Nursery) -> None:
        child = self.session.child
        assert child is not None
        nursery.start_soon(self._heartbeat, child)

    async def _heartbeat(self, child: ChildProcess) -> None:
        cfg = self.session.config
        # As Airflow: the first attempt is made on the loop's first pass, once its first select
        # returns - after the child's first bytes were served (a terminal message among them
        # means none at all), or min_heartbeat_interval of silence after the start call. Not at
        # once: a TI changed in the DB meanwhile would get its 409 from a heartbeat here and
        # from the terminal call there.
        with trio.move_on_after(cfg.heartbeat_interval):
            await self.session.first_activity.wait()
        pacer = current_pacer()
        self._hb_due = trio.current_time()
        while child.alive and self.state.terminal_state is None and not self._hb_stopped:
            if trio.current_time() < self._hb_due:
                # Not due yet (or sent by a reader meanwhile, which moved the due time on).
                pacer.due(self._hb_due, self._heartbeat_inline)
                with trio.move_on_at(self._hb_due):
                    await child.exited.wait()
                continue
            # Due: this one too goes through the pacer when the client answers inline (and
            # its entry leaves the heap with it); else this task sends it below.
            pacer.run_due()
            if trio.current_time() < self._hb_due:
                continue
            kill: str | None = None
            async with self._api_turn:
                # A terminal message may have been reported while this waited its turn, or a
                # reader may have sent this heartbeat.
                if not child.alive or self.state.terminal_state is not None or self._hb_stopped:
                    return
                if trio.current_time() < self._hb_due:
                    continue
                # As Airflow: the next attempt is due min_heartbeat_interval after this one
                # *started* (not after its answer), so a slow answer or a busy loop does not
                # push every later heartbeat back.
                self._hb_due = trio.current_time() + cfg.heartbeat_interval
                error: Exception | None = None
                try:
                    await self.api.request(
                        "PUT", self._hb_path, json_body=self._hb_body(child), cause="heartbeat"
                    )
                except (APIStatusError, httpx.HTTPError) as exc:
                    error = exc
                kill = self._heartbeat_answered(child, error)
            if kill is not None:
                await self._heartbeat_kill(kill)
                return

    def _heartbeat_inline(self, when: float) -> None:
        """The heartbeat due at ``when``, sent now from a reader (``Pacer``), if it still is
        due and the client answers it without a checkpoint; else left to the heartbeat task."""
        child = self.session.child
        if (
            when != self._hb_due
            or self._hb_stopped
            or child is None
            or not child.alive
            or self.state.terminal_state is not None
            or not self.api.answers_inline
            or not self._api_turn.try_take()
        ):
            return
        try:
            due = trio.current_time() + self.session.config.heartbeat_interval
            error: Exception | None = None
            try:
                if (
                    self.api.request_now(
                        "PUT", self._hb_path, json_body=self._hb_body(child), cause="heartbeat"
                    )
                    is None
                ):
                    return  # nothing was sent
            except APIStatusError as exc:
                error = exc
            self._hb_due = due
            kill = self._heartbeat_answered(child, error)
        except Exception as exc:  # a bug: this session's to raise, not the reader's
            self._hb_stopped = True
            self.session.start_soon(_reraise, exc)
            return
        finally:
            self._api_turn.give_back()
        if kill is not None:
            self._hb_stopped = True
            self.session.start_soon(self._heartbeat_kill, kill)

    def _hb_body(self, child: ChildProcess) -> dict[str, Any]:
        return {"hostname": self.spec.hostname, "pid": child.pid}

    def _heartbeat_answered(self, child: ChildProcess, error: Exception | None) -> str | None:
        """Count a heartbeat's outcome as Airflow does; why to kill the child, if it must be."""
        cfg = self.session.config
        if error is None:
            self._hb_failed = 0
            return None
        if isinstance(error, ServerResponseError):
            if error.status_code in (404, 409, 410) and child.alive:
                self.journal.emit(
                    "note",
                    level="error",
                    message="Server indicated the task shouldn't be running "
                    f"anymore ({error.status_code}: {error.reason})",
                )
                self.state.terminal_state = SERVER_TERMINATED
                return "server terminated the task"
            self._hb_failed += 1
        else:
            self._hb_failed += 1
            self.journal.emit(
                "note",
                level="warning",
                message=(
                    f"heartbeat failed ({self._hb_failed}/{cfg.max_failed_heartbeats}): "
                    f"{_why(error)}"
                ),
            )
        if self._hb_failed >= cfg.max_failed_heartbeats and child.alive:
            self.journal.emit(
                "note", level="error", message="Too many failed heartbeats; terminating process"
            )
            return "too many failed heartbeats"
        return None

    async def _heartbeat_kill(self, kill: str) -> None:
        # Outside the turn: as Airflow's kill(), which goes on serving the runtime's messages
        # (a terminal one included) during the escalation.
        self._hb_stopped = True
        server_terminated = self.state.terminal_state == SERVER_TERMINATED
        await self.session.kill(kill)
        if server_terminated:  # whatever was reported meanwhile, as Airflow's
            self.state.terminal_state = SERVER_TERMINATED
            self.journal.emit("note", level="error", message="Task killed!")

    def _start_overtime(self) -> None:
        self.session.start_soon(self._overtime_watch)

    async def _overtime_watch(self) -> None:
        child = self.session.child
        assert child is not None
        with trio.move_on_after(self.session.config.task_success_overtime):
            await child.exited.wait()
        if child.alive:
            self.journal.emit(
                "note",
                level="warning",
                message="Task success overtime reached; terminating process",
            )
            await self.session.kill("task_success_overtime reached")

    # --- the end ---------------------------------------------------------------------------------

    async def finish(self, exit_code: int | None) -> str:
        state = self.state
        final = state.final_state(exit_code)
        if state.pending is not None:
            name, payload = state.pending
            self.journal.emit("note", message=f"re-sending the undelivered {name} state call")
            try:
                await self.api.request(
                    "PATCH", f"task-instances/{self.ti_id}/state", json_body=payload, cause="exit"
                )
            except Exception as exc:
                self.journal.emit(
                    "note",
                    level="error",
                    message=f"{name} could not be delivered; TI may be stuck on "
                    f"the server: {_why(exc)}",
                )
                return final
            # Delivered now: the server holds the message's state, so that is the outcome.
            return str(payload["state"])
        if final not in STATES_SENT_DIRECTLY:
            payload = {
                "state": final,
                "end_date": json_default(datetime.now(UTC)),
                "rendered_map_index": state.rendered_map_index,
            }
            try:
                await self.api.request(
                    "PATCH", f"task-instances/{self.ti_id}/state", json_body=payload, cause="exit"
                )
            except Exception as exc:
                self.journal.emit(
                    "note",
                    level="error",
                    message=f"reporting the final state {final!r} failed: {_why(exc)}",
                )
        elif exit_code == 0 and state.terminal_state is None:
            self.journal.violation(
                violation(
                    "no-terminal-message",
                    "the runtime exited 0 without sending a terminal message (SucceedTask, "
                    "TaskState, ...)",
                )
            )
        return final


class TaskSession(Session):
    """Supervises one child for one task try: a ``Session`` running a ``TaskWorkload``.
    ``await session.run()`` returns the outcome."""

    workload: TaskWorkload

    def __init__(
        self, spec: TaskSpec, api: ExecutionAPIClient, **options: Unpack[SessionOptions]
    ) -> None:
        super().__init__(TaskWorkload(spec), api, **options)

    @property
    def spec(self) -> TaskSpec:
        return self.workload.spec

    @property
    def state(self) -> TaskState:
        return self.workload.state


def _why(exc: BaseException) -> str:
    if isinstance(exc, ServerResponseError):
        return f"HTTP {exc.status_code}: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"

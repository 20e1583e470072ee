"""One task try, supervised as Airflow 3.3's supervisor does it (supervisor-behaviour.md).

spawn (own process group; or adopt a runtime started earlier, as ``run-task`` does) -> accept
--comm and --logs (either order, ownership-checked, within the startup timeout) ->
``PATCH .../run`` -> ``[0, StartupDetails, nil]`` -> requests, logs, heartbeats and overtime,
concurrently -> exit -> channels drained -> final state reported.

The session owns a nursery and the child's process group: cancelling the session kills the
group, and nothing it started outlives it. Unlike Airflow's single-threaded loop, heartbeats run
in their own task, so a slow API call for one request never delays them.
"""

from __future__ import annotations

import getpass
import json
import signal
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import trio

from ..api import APIStatusError, ExecutionAPIClient, ServerResponseError
from ..protocol import (
    TO_SUPERVISOR,
    FrameDecoder,
    LineSplitter,
    ProtocolError,
    SecretsMasker,
    decode_request,
    encode_response,
    is_sensitive_name,
    materialize,
    validate_body,
)
from ._config import SupervisorConfig
from ._dispatch import (
    SERVER_TERMINATED,
    STATES_SENT_DIRECTLY,
    Dispatcher,
    TaskState,
    error_response,
    json_default,
)
from ._events import Journal, Violation
from ._io import receive_some, send_all
from ._logs import parse_log_line, stream_record
from ._process import ChildProcess, Launch, StartupError, start_runtime, tree_owns_connection

__all__ = ["TaskOutcome", "TaskSession", "TaskSpec"]

_HITL_TRIGGERER_ONLY = {"UpdateHITLDetail", "GetHITLDetailResponse"}


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
class TaskOutcome:
    """How a try ended, in the terms of Airflow's final-state table."""

    final_state: str | None
    exit_code: int | None
    started: bool
    duration_s: float
    error: str | None = None
    interrupted: bool = False
    violations: list[Violation] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    ti_id: str | None = None


class TaskSession:
    """Supervises one child for one task try. ``await session.run()`` returns the outcome."""

    #: Comm readers running in this process. Only a lone one spins (``comm_spin``): with several
    #: sessions another one usually has work, and a spin would keep the loop from seeing it.
    _comm_readers = 0

    def __init__(
        self,
        spec: TaskSpec,
        api: ExecutionAPIClient,
        *,
        config: SupervisorConfig | None = None,
        journal: Journal | None = None,
        launch: Launch | None = None,
    ) -> None:
        """``launch``: the runtime already started for this spec and config (``start_runtime``
        with ``spec.runtime``, ``spec.env``, ``spec.cwd``), which the session adopts; without
        one the session starts it. Either way the session owns it once ``run`` is called."""
        self.spec = spec
        self.api = api
        self.config = config or SupervisorConfig()
        self.journal = journal or Journal()
        self.masker = SecretsMasker(min_length=self.config.min_length_masked_secret)
        self.state = TaskState(ti_id=str(spec.ti["id"]))
        self.state.on_terminal.append(self._on_terminal)
        self.dispatcher = Dispatcher(api, self.state, self.masker, self.journal.now)
        # Learn secrets from API responses before anyone records them (Airflow registers them
        # when it fetches them for the runtime), so no transcript or log ever holds them.
        self._downstream_exchange = api.on_exchange
        api.on_exchange = self._on_exchange
        self.child: ChildProcess | None = None
        self._launch = launch
        self._nursery: trio.Nursery | None = None
        self._open_channels = 0
        self._channels_closed = trio.Event()
        self._signals_received = 0
        self._interrupted = False
        self._killing = False

    # --- public ----------------------------------------------------------------------------------

    def _on_exchange(self, exchange: Any) -> None:
        learn_secrets(self.masker, exchange)
        if self._downstream_exchange is not None:
            self._downstream_exchange(exchange)

    def forward_signal(self, sig: int) -> None:
        """Airflow forwards SIGINT/SIGTERM to the child and keeps supervising; a second signal
        here starts the kill escalation, so an unresponsive child cannot hold the terminal."""
        self._interrupted = True
        self._signals_received += 1
        child = self.child
        name = signal.Signals(sig).name
        if child is None or not child.alive:
            self.journal.emit("note", message=f"received {name}; no child to forward it to")
            return
        if self._signals_received == 1:
            child.send(sig, group=False)
            if self._nursery is not None:
                self._nursery.start_soon(self._signal_grace_watch, name)
            self.journal.emit(
                "process",
                event="signal",
                signal=name,
                target="child",
                reason=f"forwarded {name} received by supervisor-sim",
            )
        elif self._nursery is not None:
            self._nursery.start_soon(self._kill, f"second {name}: escalating")

    def abort(self, reason: str) -> None:
        """Stop the try from outside: kill the child's group (SIGTERM, then SIGKILL)."""
        self.journal.emit("note", level="warning", message=f"aborting: {reason}")
        if self._nursery is not None:
            self._nursery.start_soon(self._kill, reason)

    async def run(self) -> TaskOutcome:
        started_at = self.journal.now()
        outcome = TaskOutcome(
            final_state=None, exit_code=None, started=False, duration_s=0.0, ti_id=self.state.ti_id
        )
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    await self._run(nursery, outcome)
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            if self._launch is not None:  # never adopted (the session ended before it could)
                self._launch.close()
                self._launch = None
            if self.child is not None:
                with trio.CancelScope(shield=True):
                    await self._cleanup_group()
        outcome.duration_s = round(self.journal.now() - started_at, 6)
        outcome.violations = list(self.journal.violations)
        outcome.counts = dict(self.journal.counts)
        outcome.interrupted = self._interrupted
        return outcome

    # --- lifecycle -------------------------------------------------------------------------------

    async def _run(self, nursery: trio.Nursery, outcome: TaskOutcome) -> None:
        cfg = self.config
        if self._launch is None:
            # The launch run-task makes before loading trio, here in a worker thread (as trio's
            # open_process runs Popen) so that a slow fork never stalls the other sessions of
            # this process. Kept in self._launch until adopted: run() closes it otherwise.
            self._launch = await trio.to_thread.run_sync(
                start_runtime, self.spec.runtime, self.spec.env, self.spec.cwd, cfg
            )
        launch = self._launch
        argv = launch.argv
        if launch.error is not None:
            outcome.error = launch.error
            self.journal.emit("process", event="spawn-failed", argv=argv, error=launch.error)
            self._launch = None
            launch.close()
            return
        # Adoption: from here the listeners and the child are the session's (no checkpoint
        # until self.child is set, so a cancellation cannot fall between the two).
        comm_sock, logs_sock = launch.take_listeners()
        comm_listener = trio.SocketListener(trio.socket.from_stdlib_socket(comm_sock))
        logs_listener = trio.SocketListener(trio.socket.from_stdlib_socket(logs_sock))
        child = ChildProcess.adopt(launch)
        self.child = child
        self._launch = None
        self.journal.emit(
            "process",
            event="spawn",
            argv=argv,
            pid=child.pid,
            comm_port=launch.comm_port,
            logs_port=launch.logs_port,
        )
        nursery.start_soon(self._reap, child)
        self._channel_opened()
        nursery.start_soon(self._pump_stream, child.stdout, "stdout")
        self._channel_opened()
        nursery.start_soon(self._pump_stream, child.stderr, "stderr")
        # The startup and task timeouts count from here, when this session starts watching
        # the child, also for a child started earlier (run-task starts it before loading
        # trio): our own start-up never counts against the runtime, which in Airflow meets a
        # supervisor that is ready to accept as it spawns. Such a child had ~0.1 s more.
        if cfg.task_timeout is not None:
            nursery.start_soon(self._task_timeout, cfg.task_timeout)

        try:
            comm, logs = await self._accept(comm_listener, logs_listener, child)
        except StartupError as exc:
            outcome.error = str(exc)
            self.journal.emit("note", level="error", message=str(exc))
            # Airflow: SIGTERM, then SIGKILL after task_startup_timeout more seconds.
            await child.kill(
                signal.SIGTERM,
                escalation_delay=cfg.startup_timeout,
                on_signal=self._signal_note("did not connect"),
            )
            await child.exited.wait()
            outcome.exit_code = child.returncode
            return
        finally:
            # Shielded: aclose() closes, then checkpoints, and a cancelled session would raise
            # there, before the second listener is closed.
            with trio.CancelScope(shield=True):
                await comm_listener.aclose()
                await logs_listener.aclose()

        async with comm, logs:
            if not await self._begin(comm, child, outcome):
                return
            outcome.started = True

            async with trio.open_nursery() as io:
                self._channel_opened()
                io.start_soon(self._comm_reader, comm)
                self._channel_opened()
                io.start_soon(self._logs_reader, logs)
                self._duties(io, child)
                await child.exited.wait()
                with trio.move_on_after(cfg.socket_cleanup_timeout) as cleanup:
                    await self._channels_closed.wait()
                if cleanup.cancelled_caught:
                    self.journal.emit(
                        "note",
                        level="warning",
                        message="channels still open "
                        f"{cfg.socket_cleanup_timeout:g}s after the process "
                        "exited; closing them",
                    )
                io.cancel_scope.cancel()

        outcome.exit_code = child.returncode
        outcome.final_state = await self._report_final_state(child.returncode)

    # --- what makes this a task session (ParseSession overrides these) -------------------------

    #: The request types this session accepts (a union of the catalogue).
    accepted_types: tuple[str, ...] = TO_SUPERVISOR

    async def _begin(
        self, comm: trio.SocketStream, child: ChildProcess, outcome: TaskOutcome
    ) -> bool:
        """After both connections: PATCH /run, then StartupDetails. False when /run failed."""
        try:
            ti_context = await self._start_call(child)
        except Exception as exc:  # Airflow: any failure of /run kills the child, no state.
            outcome.error = f"PATCH task-instances/{self.state.ti_id}/run failed: {_why(exc)}"
            self.journal.emit("note", level="error", message=outcome.error)
            child.send(signal.SIGKILL)
            self.journal.emit(
                "process",
                event="signal",
                signal="SIGKILL",
                target="group",
                reason="the start call failed",
            )
            with trio.move_on_after(5):
                await child.exited.wait()
            outcome.exit_code = child.returncode
            return False
        self.state.should_retry = bool(ti_context.get("should_retry"))
        await self._send_startup(comm, ti_context)
        return True

    def _duties(self, io: trio.Nursery, child: ChildProcess) -> None:
        io.start_soon(self._heartbeat, child)

    async def _answer(self, body: dict[str, Any], frame_id: int, cause: Any) -> Any:
        """Reply (body, error) to one valid request."""
        type_name = body["type"]
        if type_name in _HITL_TRIGGERER_ONLY:
            self.journal.violation(
                Violation(
                    "triggerer-only-request",
                    f"{type_name} is only handled by the triggerer, never by a task supervisor",
                    "Airflow answers with an error frame: API_SERVER_ERROR 'Unhandled request'",
                    frame_id=frame_id,
                )
            )
        elif type_name == "ResendLoggingFD":
            self.journal.violation(
                Violation(
                    "fork-mode-only-request",
                    "ResendLoggingFD passes a file descriptor with SCM_RIGHTS, which needs "
                    "the AF_UNIX comm socket of Airflow's fork mode; this runtime is connected "
                    "over TCP",
                    "Airflow's send_fds fails on a TCP socket: the runtime gets an error "
                    "frame and "
                    "a socketpair leaks",
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

    async def _accept(
        self,
        comm_listener: trio.SocketListener,
        logs_listener: trio.SocketListener,
        child: ChildProcess,
    ) -> tuple[trio.SocketStream, trio.SocketStream]:
        accepted: dict[str, trio.SocketStream] = {}

        async def accept_one(
            name: str, listener: trio.SocketListener, scope: trio.CancelScope
        ) -> None:
            while True:
                stream = await listener.accept()
                peer = stream.socket.getpeername()
                local = stream.socket.getsockname()
                if self.config.check_ownership and not await self._owned(child, peer, local):
                    self.journal.emit(
                        "process",
                        event="reject",
                        channel=name,
                        peer=f"{peer[0]}:{peer[1]}",
                        reason="connection does not come from the child's process tree",
                    )
                    self.journal.violation(
                        Violation(
                            "foreign-connection",
                            f"a process outside the runtime's process tree connected to --{name} "
                            f"from {peer[0]}:{peer[1]}; the connection was closed",
                            "Airflow closes it with a warning and keeps waiting",
                        )
                    )
                    await stream.aclose()
                    continue
                accepted[name] = stream
                self.journal.emit(
                    "process", event="connect", channel=name, peer=f"{peer[0]}:{peer[1]}"
                )
                if len(accepted) == 2:
                    scope.cancel()
                return

        async def watch_exit(scope: trio.CancelScope) -> None:
            await child.exited.wait()
            scope.cancel()

        with trio.move_on_after(self.config.startup_timeout):
            async with trio.open_nursery() as n:
                n.start_soon(accept_one, "comm", comm_listener, n.cancel_scope)
                n.start_soon(accept_one, "logs", logs_listener, n.cancel_scope)
                n.start_soon(watch_exit, n.cancel_scope)
        if len(accepted) == 2:
            return accepted["comm"], accepted["logs"]
        for stream in accepted.values():
            await stream.aclose()
        missing = " and ".join(f"--{n}" for n in ("comm", "logs") if n not in accepted)
        if child.returncode is not None:
            raise StartupError(
                f"process exited with {child.returncode} before connecting "
                f"({missing} never connected)"
            )
        raise StartupError(
            f"process did not connect within {self.config.startup_timeout:g}s "
            f"({missing} never connected)"
        )

    async def _owned(self, child: ChildProcess, peer: Any, local: Any) -> bool:
        # The child's side of the socket may not be visible in /proc yet: retry like Airflow,
        # for ownership_check_timeout counted from the first answer, so that time spent
        # queueing for a worker thread (many children starting at once) does not count.
        deadline = None
        while True:
            if await trio.to_thread.run_sync(tree_owns_connection, child.pid, peer, local):
                return True
            now = trio.current_time()
            if deadline is None:
                deadline = now + self.config.ownership_check_timeout
            if now >= deadline:
                return False
            await trio.sleep(0.05)

    async def _start_call(self, child: ChildProcess) -> dict[str, Any]:
        payload = {
            "state": "running",
            "hostname": self.spec.hostname,
            "unixname": getpass.getuser(),
            "pid": child.pid,
            "start_date": json_default(datetime.now(UTC)),
        }
        resp = await self.api.request(
            "PATCH", f"task-instances/{self.state.ti_id}/run", json_body=payload, cause="start"
        )
        return resp.json()

    async def _send_startup(self, comm: trio.SocketStream, ti_context: dict[str, Any]) -> None:
        context = materialize(ti_context, "TIRunContext")
        body = {
            "ti": materialize(dict(self.spec.ti), "TaskInstance"),
            "dag_rel_path": self.spec.dag_rel_path,
            "bundle_info": dict(self.spec.bundle_info),
            # A task resuming from a deferral keeps its original start date.
            "start_date": context.get("start_date") or datetime.now(UTC),
            "ti_context": context,
            "sentry_integration": self.spec.sentry_integration,
            "type": "StartupDetails",
        }
        await self._send(comm, 0, body, None)

    # --- channels --------------------------------------------------------------------------------

    def _channel_opened(self) -> None:
        self._open_channels += 1

    def _channel_closed(self, name: str) -> None:
        self._open_channels -= 1
        self.journal.emit("process", event="eof", channel=name)
        if self._open_channels == 0:
            self._channels_closed.set()

    async def _send(self, comm: trio.SocketStream, req_id: int, body: Any, error: Any) -> None:
        data = encode_response(req_id, body, error)
        self.journal.emit(
            "frame",
            direction="out",
            id=req_id,
            type=(body or error or {}).get("type") if (body or error) else None,
            body=body,
            error=error,
            payload=data[4:],
        )
        try:
            await send_all(comm, data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.journal.emit(
                "note",
                level="warning",
                message=f"could not deliver the reply to request {req_id}: "
                "the comm connection is closed",
            )

    async def _comm_reader(self, comm: trio.SocketStream) -> None:
        decoder = FrameDecoder(max_frame_size=self.config.max_frame_size)
        received = 0
        TaskSession._comm_readers += 1
        try:
            while True:
                spin = self.config.comm_spin if TaskSession._comm_readers == 1 else 0.0
                try:
                    data = await receive_some(comm, spin=spin)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break
                if not data:
                    break
                received += len(data)
                decoder.feed(data)
                while True:
                    try:
                        raw = decoder.next_frame()
                    except ProtocolError as exc:
                        # What the bad frame consumed is kept (a length header's 4 bytes; an
                        # oversized payload is counted, not buffered).
                        self._frame_violation(exc, exc.raw)
                        continue
                    if raw is None:
                        break
                    await self._on_request(comm, raw.payload, raw.offset)
        finally:
            TaskSession._comm_readers -= 1
            tail = decoder.pending()
            try:
                decoder.end_of_stream()
            except ProtocolError as exc:
                self._frame_violation(exc, tail)
            self.journal.emit(
                "process",
                event="channel-bytes",
                channel="comm",
                received=received,
                discarded=decoder.bytes_discarded,
            )
            self._channel_closed("comm")

    def _frame_violation(self, exc: ProtocolError, raw: bytes) -> None:
        self.journal.violation(
            Violation(
                exc.rule,
                f"{exc.message} (byte offset {exc.offset})",
                _AIRFLOW_ON_BAD_FRAME.get(
                    exc.rule,
                    "Airflow's supervisor does not catch this: the exception ends supervise_task",
                ),
                frame_id=exc.request_id,
                raw=raw or None,
            )
        )

    async def _on_request(self, comm: trio.SocketStream, payload: bytes, offset: int) -> None:
        if getattr(self.api, "answers_inline", False):
            # The reply goes out before this request's records are written (Journal.holding).
            with self.journal.holding():
                await self._handle_request(comm, payload, offset)
        else:
            await self._handle_request(comm, payload, offset)

    async def _handle_request(self, comm: trio.SocketStream, payload: bytes, offset: int) -> None:
        try:
            frame = decode_request(payload, offset)
        except ProtocolError as exc:
            self.journal.emit(
                "frame",
                direction="in",
                id=exc.request_id,
                type=None,
                body=None,
                payload=payload,
                offset=offset,
                error=str(exc),
            )
            self._frame_violation(exc, b"")  # the bytes are in the frame record above
            if exc.request_id is not None and not self.config.airflow_strict:
                await self._send(
                    comm,
                    exc.request_id,
                    None,
                    error_response(
                        "GENERIC_ERROR", {"status_code": 400, "message": f"malformed frame: {exc}"}
                    ),
                )
            return
        event = self.journal.emit(
            "frame",
            direction="in",
            id=frame.id,
            type=frame.type,
            body=frame.body,
            payload=payload,
            offset=offset,
            elements=frame.elements,
            context_carrier=frame.context_carrier,
        )
        problems = validate_body(frame.body, self.accepted_types)
        if problems:
            for problem in problems:
                self.journal.violation(
                    Violation(
                        f"invalid-request:{problem.rule}",
                        str(problem),
                        "Airflow logs 'Unable to decode message' and never answers: the runtime "
                        "blocks forever waiting for the reply",
                        path=problem.path,
                        frame_id=frame.id,
                    )
                )
            if self.config.airflow_strict:
                self.journal.emit(
                    "note",
                    level="warning",
                    message=f"request {frame.id} dropped unanswered (--airflow-strict)",
                )
                return
            await self._send(
                comm,
                frame.id,
                None,
                error_response(
                    "GENERIC_ERROR",
                    {
                        "status_code": 400,
                        "message": "invalid request (Airflow would drop it and never reply)",
                        "problems": [str(p) for p in problems],
                    },
                ),
            )
            return
        assert frame.body is not None
        body, error = await self._answer(frame.body, frame.id, event.seq)
        await self._send(comm, frame.id, body, error)

    async def _logs_reader(self, logs: trio.SocketStream) -> None:
        # The socket itself is closed by its owner (the `async with comm, logs` block).
        await self._read_lines(logs, "logs", close=False)

    def _log_line(self, line: Any, source: str) -> None:
        if source == "logs":
            record, violations = parse_log_line(line)
        else:
            record, violations = stream_record(line, source)
        record = self.masker.redact(record)
        self.journal.emit("log", source=source, record=record)
        for v in violations:
            self.journal.violation(v)

    async def _pump_stream(self, stream: trio.abc.ReceiveStream, name: str) -> None:
        await self._read_lines(stream, name, close=True)  # a pipe: close it, or its fd leaks

    async def _read_lines(self, stream: trio.abc.ReceiveStream, name: str, *, close: bool) -> None:
        """Read a line-oriented channel (logs, stdout, stderr) to EOF, recording every line."""
        splitter = LineSplitter(max_line_length=self.config.max_log_line)
        received = 0
        try:
            while True:
                try:
                    data = await receive_some(stream)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break
                if not data:
                    break
                received += len(data)
                for line in splitter.feed(data):
                    self._log_line(line, name)
        finally:
            if close:
                with trio.CancelScope(shield=True):
                    await stream.aclose()
            last = splitter.end_of_stream()
            if last is not None:
                self._log_line(last, name)
            self.journal.emit("process", event="channel-bytes", channel=name, received=received)
            self._channel_closed(name)

    # --- duties --------------------------------------------------------------------------------

    async def _reap(self, child: ChildProcess) -> None:
        code = await child.wait()
        data: dict[str, Any] = {"event": "exit", "exit_code": code}
        if code < 0:
            sig = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            data["signal"] = sig
            if sig in child.signals_sent:
                data["message"] = f"Process terminated by {sig} (sent by the supervisor)"
            elif sig == "SIGSEGV":
                data["message"] = "Process terminated by SIGSEGV (segmentation fault)"
            elif sig == "SIGKILL":
                data["message"] = "Process terminated by signal. Likely out of memory error (OOM)."
            else:
                data["message"] = "Process terminated by signal."
        elif code > 0:
            data["message"] = "Process exited abnormally"
        self.journal.emit("process", **data)

    async def _heartbeat(self, child: ChildProcess) -> None:
        cfg = self.config
        failed = 0
        path = f"task-instances/{self.state.ti_id}/heartbeat"
        while child.alive and self.state.terminal_state is None:
            try:
                await self.api.request(
                    "PUT",
                    path,
                    json_body={"hostname": self.spec.hostname, "pid": child.pid},
                    cause="heartbeat",
                )
                failed = 0
            except ServerResponseError as exc:
                if exc.status_code in (404, 409, 410) and child.alive:
                    self.journal.emit(
                        "note",
                        level="error",
                        message="Server indicated the task shouldn't be running "
                        f"anymore ({exc.status_code}: {exc.message})",
                    )
                    self.state.terminal_state = SERVER_TERMINATED
                    await self._kill("server terminated the task")
                    self.journal.emit("note", level="error", message="Task killed!")
                    return
                failed += 1
            except (APIStatusError, httpx.HTTPError) as exc:
                failed += 1
                self.journal.emit(
                    "note",
                    level="warning",
                    message=f"heartbeat failed ({failed}/{cfg.max_failed_heartbeats}): {_why(exc)}",
                )
            if failed >= cfg.max_failed_heartbeats and child.alive:
                self.journal.emit(
                    "note", level="error", message="Too many failed heartbeats; terminating process"
                )
                await self._kill("too many failed heartbeats")
                return
            with trio.move_on_after(cfg.heartbeat_interval):
                await child.exited.wait()

    def _on_terminal(self, state: str, overtime: bool) -> None:
        if overtime and self._nursery is not None:
            self._nursery.start_soon(self._overtime_watch)

    async def _overtime_watch(self) -> None:
        child = self.child
        assert child is not None
        with trio.move_on_after(self.config.task_success_overtime):
            await child.exited.wait()
        if child.alive:
            self.journal.emit(
                "note",
                level="warning",
                message="Task success overtime reached; terminating process",
            )
            await self._kill("task_success_overtime reached")

    async def _signal_grace_watch(self, name: str) -> None:
        """Airflow keeps supervising a child that ignores a forwarded signal, forever; here the
        child gets ``signal_grace`` seconds, then the kill escalation, so nothing hangs."""
        child = self.child
        assert child is not None
        with trio.move_on_after(self.config.signal_grace):
            await child.exited.wait()
        if child.alive:
            self.journal.emit(
                "note",
                level="warning",
                message=f"the runtime is still alive {self.config.signal_grace:g}s after the "
                f"forwarded {name}; terminating it",
            )
            await self._kill(f"ignored the forwarded {name}")

    async def _task_timeout(self, seconds: float) -> None:
        child = self.child
        assert child is not None
        with trio.move_on_after(seconds):
            await child.exited.wait()
        if child.alive:
            self.journal.emit(
                "note",
                level="error",
                message=f"task timeout of {seconds:g}s reached; terminating process",
            )
            await self._kill("--timeout reached")

    async def _kill(self, reason: str) -> None:
        child = self.child
        if child is None or self._killing:
            return
        self._killing = True
        await child.kill(
            signal.SIGTERM,
            escalation_delay=self.config.kill_escalation_delay,
            on_signal=self._signal_note(reason),
        )

    def _signal_note(self, reason: str):
        def note(sig: str) -> None:
            self.journal.emit("process", event="signal", signal=sig, target="group", reason=reason)

        return note

    async def _cleanup_group(self) -> None:
        child = self.child
        assert child is not None
        try:
            if child.alive:
                # The session is being torn down (cancelled, or it failed): the child goes too.
                await child.kill(
                    signal.SIGTERM,
                    escalation_delay=min(self.config.kill_escalation_delay, 2.0),
                    on_signal=self._signal_note("session ended"),
                )
                with trio.move_on_after(2):
                    await child.wait()  # reaps it, also if the session's reaper was cancelled
            sent = await child.reap_group()
            if sent:
                self.journal.emit(
                    "process",
                    event="signal",
                    signal="+".join(sent),
                    target="group",
                    reason="processes left in the runtime's process group after the session",
                )
        finally:
            child.close()

    async def _report_final_state(self, exit_code: int | None) -> str:
        state = self.state
        if state.pending is not None:
            name, payload = state.pending
            self.journal.emit("note", message=f"re-sending the undelivered {name} state call")
            try:
                await self.api.request(
                    "PATCH", f"task-instances/{state.ti_id}/state", json_body=payload, cause="exit"
                )
            except Exception as exc:
                self.journal.emit(
                    "note",
                    level="error",
                    message=f"{name} could not be delivered; TI may be stuck on "
                    f"the server: {_why(exc)}",
                )
            return payload["state"]
        if exit_code == 0:
            final = state.terminal_state or "success"
        elif state.terminal_state == SERVER_TERMINATED:
            final = SERVER_TERMINATED
        elif state.should_retry:
            final = "up_for_retry"
        else:
            final = "failed"
        if final not in STATES_SENT_DIRECTLY:
            payload = {
                "state": final,
                "end_date": json_default(datetime.now(UTC)),
                "rendered_map_index": state.rendered_map_index,
            }
            try:
                await self.api.request(
                    "PATCH", f"task-instances/{state.ti_id}/state", json_body=payload, cause="exit"
                )
            except Exception as exc:
                self.journal.emit(
                    "note",
                    level="error",
                    message=f"reporting the final state {final!r} failed: {_why(exc)}",
                )
        elif exit_code == 0 and state.terminal_state is None:
            self.journal.violation(
                Violation(
                    "no-terminal-message",
                    "the runtime exited 0 without sending a terminal message (SucceedTask, "
                    "TaskState, ...)",
                    "Airflow reports nothing: the task instance stays 'running' until the "
                    "scheduler's heartbeat timeout fails it",
                )
            )
        return final


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


def learn_secrets(masker: SecretsMasker, exchange: Any) -> None:
    """Register the secrets an Execution API exchange carries, as Airflow's supervisor does."""
    path: str = exchange.path
    if "/connections/" in path and exchange.status == 200:
        try:
            data = json.loads(exchange.response_body)
        except ValueError:
            return
        if isinstance(data, dict):
            masker.add(data.get("password"))
            masker.add(data.get("extra"))
    elif "/variables/" in path and not path.endswith("/variables/keys"):
        key = path.rsplit("/variables/", 1)[1]  # already decoded (the URL's path)
        if not is_sensitive_name(key):
            return
        raw = exchange.response_body if exchange.status == 200 else exchange.request_body
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            return
        if isinstance(data, dict):
            masker.add(data.get("value") if "value" in data else data.get("val"))


_AIRFLOW_ON_BAD_FRAME = {
    "zero-length-frame": "Airflow's supervisor treats length 0 as 'no length yet' and spins "
    "forever on the readable socket",
    "frame-too-large": "Airflow allocates the announced length and waits for it (no limit)",
    "truncated-frame": "Airflow silently discards the partial frame at EOF",
}


def _why(exc: BaseException) -> str:
    if isinstance(exc, ServerResponseError):
        return f"HTTP {exc.status_code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"

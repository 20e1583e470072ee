"""A supervised runtime child, whatever it runs: launch, connect back, serve, watch, reap.

spawn (own process group; or adopt a runtime started earlier, as ``run-task`` does) -> accept
--comm and --logs (either order, ownership-checked, within the startup timeout) -> the
workload's first frame -> requests, logs and the workload's duties, concurrently -> exit ->
channels drained -> the workload's final state.

What runs — a task try (``TaskSession``) or a DAG file parse (``ParseSession``) — is the
session's ``Workload`` (``_hooks``); the session itself knows nothing of either. It owns a
nursery and the child's process group: cancelling the session kills the group, and nothing it
started outlives it. docs/architecture.md describes the whole.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict

import trio

from ..api import Exchange, ExecutionAPIClient
from ..protocol import (
    FrameDecoder,
    Line,
    LineSplitter,
    Problem,
    ProtocolError,
    SecretsMasker,
    decode_request,
    encode_response,
    packb,
    validate_body,
)
from ._config import SupervisorConfig
from ._dispatch import Reply, error_response
from ._events import Journal, Violation
from ._heap import session_ended, session_started
from ._hooks import SessionHooks, StartFailed, Workload
from ._io import Spin, receive_some, send_all
from ._logs import parse_log_line, stream_record
from ._pacer import current_pacer, pace
from ._process import ChildProcess, Launch, StartupError, start_runtime_in_launcher, tree_owned
from ._redaction import Redactor
from ._secrets import learn_from_exchange, learn_from_request
from ._violations import frame_violation, violation

__all__ = ["Session", "SessionFactory", "TaskOutcome"]

#: A comm reader yields to the scheduler after this many frames read from one chunk: a flood
#: of requests (thousands arrive in one 64 KiB read) must not keep the heartbeat waiting.
_FRAMES_PER_YIELD = 16
#: Likewise for lines of the logs channel, stdout and stderr.
_LINES_PER_YIELD = 64


@dataclass
class TaskOutcome:
    """How a session ended (a task try or a parse), in the terms of Airflow's final-state table."""

    final_state: str | None
    exit_code: int | None
    started: bool
    duration_s: float
    error: str | None = None
    interrupted: bool = False
    #: The violations recorded in full (up to the limits' caps), masked.
    violations: list[Violation] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    ti_id: str | None = None
    #: Violations past the caps, only counted: rule -> how many more.
    violations_suppressed: dict[str, int] = field(default_factory=dict)

    @property
    def violation_count(self) -> int:
        """Every violation the runtime made, recorded or only counted."""
        return len(self.violations) + sum(self.violations_suppressed.values())

    @property
    def never_reported(self) -> bool:
        """Whether the try exited 0 without a terminal message: the final state is ``success``
        (Airflow's ``final_state`` for exit 0), but, ``success`` being one of the states a
        runtime sends itself, no one tells the API, and Airflow's TI stays ``running`` until the
        scheduler fails it (the ``no-terminal-message`` violation)."""
        return self.final_state == "success" and any(
            v.rule == "no-terminal-message" for v in self.violations
        )


class SessionOptions(TypedDict, total=False):
    """What a session takes besides its workload and API client: the keyword arguments of
    ``Session``, ``TaskSession`` and ``ParseSession`` alike."""

    config: SupervisorConfig | None
    journal: Journal | None
    launch: Launch | None
    hooks: SessionHooks | None


class Session:
    """Supervises one runtime child through one ``workload``; ``await session.run()`` returns
    the outcome.

    ``launch``: the runtime already started for the workload's spec and this config
    (``start_runtime`` with ``spec.runtime``, ``spec.env``, ``spec.cwd``), which the session
    adopts; without one the session starts it. Either way the session owns it once ``run`` is
    called. ``hooks``: where the session departs from Airflow on purpose (``SessionHooks``).
    """

    #: Whether ``forward_signal`` also notes ``interrupt_hint`` in the journal (run-task, where
    #: a person pressed Ctrl+C and sees this one session; run-dag says it once for all).
    explain_interrupts = False

    #: Comm readers running in this process. Only a lone one spins (``comm_spin``): with several
    #: sessions another one usually has work, and a spin would keep the loop from seeing it.
    _comm_readers = 0

    def __init__(
        self,
        workload: Workload,
        api: ExecutionAPIClient,
        *,
        config: SupervisorConfig | None = None,
        journal: Journal | None = None,
        launch: Launch | None = None,
        hooks: SessionHooks | None = None,
    ) -> None:
        self.workload = workload
        self.api = api
        self.config = config or SupervisorConfig()
        self.journal = journal or Journal()
        self.masker = SecretsMasker(min_length=self.config.min_length_masked_secret)
        #: Masks everything the journal is given with ``masker`` (docs/reliability.md,
        #: "Secrets"); ``redactor.keep_received`` is ``--no-redact``.
        self.redactor = Redactor(self.masker)
        self.journal.redactor = self.redactor
        self.hooks = hooks
        self.child: ChildProcess | None = None
        #: The --comm connection once accepted, and how many bytes were read from it so far.
        self.comm: trio.SocketStream | None = None
        self.comm_received = 0
        self._launch = launch
        self._nursery: trio.Nursery | None = None
        self._open_channels = 0
        self._channels_closed = trio.Event()
        #: Set once the child was first heard from (any bytes on any channel, served) or has
        #: exited: Airflow's first heartbeat waits for its loop's first select to return.
        self.first_activity = trio.Event()
        self._signals_received = 0
        self._interrupted = False
        #: The first signal received (``forward_signal``), and whether a launch is in flight.
        self._first_signal: int | None = None
        self._launching = False
        #: The runtime was given its work (the workload's first frame was sent).
        self.started = False
        self._killing = False
        self._accepted_types = workload.accepted_types
        workload.bind(self)
        # The request path, bound once: without hooks it calls the workload and the writer
        # directly, so hooks cost nothing when there are none.
        self._answer: Callable[[dict[str, Any], int, int], Awaitable[Reply]] = workload.answer
        self._send: Callable[[Any, int, Any, Any], Awaitable[None]] = self._write_reply
        self._on_request: Callable[[Any, bytes, int], Awaitable[None]] = self._request
        if hooks is not None:
            hooks.bind(self)
            self._answer = self._hooked_answer
            self._send = self._hooked_send
            self._on_request = self._hooked_request
        # Learn secrets from API responses before anyone records them (Airflow registers them
        # when it fetches them for the runtime), so no transcript or log ever holds them.
        self._downstream_exchange = api.on_exchange
        api.on_exchange = self._on_exchange

    # --- public ----------------------------------------------------------------------------------

    def _on_exchange(self, exchange: Exchange) -> None:
        learn_from_exchange(self.masker, exchange)
        if self._downstream_exchange is not None:
            self._downstream_exchange(exchange)

    def forward_signal(self, sig: int) -> None:
        """Airflow forwards SIGINT/SIGTERM to the child and keeps supervising. Here each further
        signal goes one step up the kill ladder, so an unresponsive child cannot hold the
        terminal: the second starts the kill escalation at once (SIGTERM to the group, SIGKILL
        ``kill_escalation_delay`` later, or SIGKILL now if that escalation already began), a
        third and any later one SIGKILL the group now. ``interrupt_hint`` says the same in
        words.

        A signal that comes before the runtime runs is kept: a session not launched yet never
        launches it, and one whose launch is in flight either never starts it (the launcher had
        not come to it) or, the process being created, delivers it on adoption as it would to
        a running runtime (``_stop_unstarted``) and never gives it its task.

        SIGHUP (the terminal closed; Airflow does not handle it and dies, leaving the runtime
        running) is handled as SIGTERM, and forwarded as SIGTERM: the runtime never had the
        terminal (its own process group, no stdin), and SIGTERM is what runtimes shut down
        gracefully on."""
        self._interrupted = True
        self._signals_received += 1
        if self._first_signal is None:
            self._first_signal = sig
        child = self.child
        name = signal.Signals(sig).name
        # Debug notes: the outcome says what became of the session, and the command what it
        # does for all of them (one line, not one per session of a run-dag).
        if child is None:
            if self._launching or self._launch is not None:
                message = (
                    f"received {name} while the runtime was being started; it will not be "
                    f"given the task: not started, or sent {name} as soon as it exists"
                )
            else:
                message = f"received {name} before the runtime was started; it will not start"
            self.journal.emit("note", level="debug", message=message)
            return
        if not child.alive:
            message = f"received {name}; the runtime has already exited"
            self.journal.emit("note", level="debug", message=message)
            return
        self._deliver_signal(self._signals_received, sig)

    @staticmethod
    def interrupt_hint(
        count: int,
        sig: int,
        config: SupervisorConfig,
        target: str = "the runtime",
        *,
        killing: bool = False,
        also: str | None = None,
    ) -> str:
        """One line for the user: what the ``count``-th signal ``sig`` does to ``target`` (a
        runtime, or "the 3 running tasks") under ``config``, and what pressing Ctrl+C again does
        (``forward_signal``'s ladder; ``killing``: the kill escalation already began). ``also``:
        what else it does, said first."""
        name = signal.Signals(sig).name
        delay = f"{config.kill_escalation_delay:g}s"
        if count == 2 and killing:
            count = 3
        if count == 1:
            sent = "SIGTERM" if sig == signal.SIGHUP else name
            label = f"interrupt ({name})"
            what = (
                f"{sent} forwarded to {target}; if still running after "
                f"{config.signal_grace:g}s: SIGTERM, then SIGKILL {delay} later; press Ctrl+C "
                "again to terminate now"
            )
        elif count == 2:
            label = f"second interrupt ({name})"
            what = (
                f"terminating {target} now (SIGTERM, then SIGKILL {delay} later); press Ctrl+C "
                "again to kill at once"
            )
        else:
            label = f"interrupt {count} ({name})"
            what = f"killing {target} now (SIGKILL)"
        return f"{label}: {also}; {what}" if also else f"{label}: {what}"

    def _deliver_signal(self, count: int, sig: int) -> None:
        """Step ``count`` of ``forward_signal``'s ladder, for the live child."""
        child = self.child
        assert child is not None
        name = signal.Signals(sig).name
        if self.explain_interrupts:
            hint = self.interrupt_hint(count, sig, self.config, killing=self._killing)
            self.journal.emit("note", level="warning", message=hint)
        if count == 1:
            sent = signal.SIGTERM if sig == signal.SIGHUP else sig
            child.send(sent, group=False)
            if self._nursery is not None:
                self._nursery.start_soon(self._signal_grace_watch, name)
            self.journal.emit(
                "process",
                event="signal",
                signal=signal.Signals(sent).name,
                target="child",
                reason=f"forwarded {name} received by supervisor-sim"
                if sent == sig
                else f"{name} received by supervisor-sim, forwarded as SIGTERM",
            )
        elif count == 2 and not self._killing:
            if self._nursery is not None:
                self._nursery.start_soon(self.kill, f"second {name}: escalating")
        elif child.send(signal.SIGKILL):
            self.journal.emit(
                "process",
                event="signal",
                signal="SIGKILL",
                target="group",
                reason=f"{name} number {count}: killing at once",
            )

    def abort(self, reason: str) -> None:
        """Stop the run from outside: kill the child's group (SIGTERM, then SIGKILL)."""
        self.journal.emit("note", level="warning", message=f"aborting: {reason}")
        if self._nursery is not None:
            self._nursery.start_soon(self.kill, reason)

    async def run(self) -> TaskOutcome:
        started_at = self.journal.now()
        outcome = TaskOutcome(
            final_state=None,
            exit_code=None,
            started=False,
            duration_s=0.0,
            ti_id=self.workload.ti_id,
        )
        session_started()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    await self._run(nursery, outcome)
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            try:
                if self._launch is not None:  # never adopted (the session ended before it could)
                    self._launch.close()
                    self._launch = None
                if self.child is not None:
                    with trio.CancelScope(shield=True):
                        await self._cleanup_group()
            finally:
                session_ended()
                pace()  # a session's end is work in a pass too: heartbeats due meanwhile
        self.journal.note_suppressed()
        if outcome.error is not None:
            outcome.error = self.redactor.text(outcome.error)  # it may quote the API
        outcome.duration_s = round(self.journal.now() - started_at, 6)
        outcome.violations = list(self.journal.violations)
        outcome.violations_suppressed = dict(self.journal.suppressed)
        outcome.counts = dict(self.journal.counts)
        outcome.interrupted = self._interrupted
        return outcome

    # --- what a workload (or hooks) may use ------------------------------------------------------

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``fn(*args)`` beside the session until the session ends. Before ``run`` there
        is no child to watch, and this does nothing."""
        if self._nursery is not None:
            self._nursery.start_soon(fn, *args)

    async def kill(self, reason: str) -> None:
        """Kill the child's group: SIGTERM, then SIGKILL after ``kill_escalation_delay`` (once;
        a second call while one runs does nothing)."""
        child = self.child
        if child is None or self._killing:
            return
        self._killing = True
        await child.kill(
            signal.SIGTERM,
            escalation_delay=self.config.kill_escalation_delay,
            on_signal=self._signal_note(reason),
        )

    async def send(
        self, req_id: int, body: dict[str, Any] | None, error: dict[str, Any] | None
    ) -> None:
        """Send the reply to request ``req_id`` on --comm (through the hooks, if any)."""
        await self._send(self.comm, req_id, body, error)

    async def write_reply(
        self, req_id: int, body: dict[str, Any] | None, error: dict[str, Any] | None
    ) -> None:
        """Record and write a reply as Airflow's supervisor does: ``[id, body, error]``."""
        await self._write_reply(self.comm, req_id, body, error)

    async def write(self, data: bytes, req_id: int) -> None:
        """Write a frame's bytes to --comm as they are (``req_id``: what it answers, to name in
        the note should the connection be closed)."""
        if self.comm is None:
            raise RuntimeError("--comm is not connected yet")
        try:
            await send_all(self.comm, data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._undelivered(req_id)

    # --- lifecycle -------------------------------------------------------------------------------

    async def _run(self, nursery: trio.Nursery, outcome: TaskOutcome) -> None:
        cfg = self.config
        if self._launch is None:
            if self._interrupted:  # a signal came before the session ran: nothing is started
                outcome.error = self._not_started_note()
                return
            # The launch run-task makes before loading trio, here in the launcher thread (off
            # the trio thread, so that a slow fork never stalls the other sessions of this
            # process; always the same long-lived thread, for PR_SET_PDEATHSIG: _process.py).
            # Kept in self._launch until adopted: run() closes it otherwise. A signal that
            # comes while the launch waits for the launcher calls it off (None: not started).
            spec = self.workload.spec
            self._launching = True
            try:
                self._launch = await start_runtime_in_launcher(
                    spec.runtime, spec.env, spec.cwd, cfg, cancelled=lambda: self._interrupted
                )
            finally:
                self._launching = False
            if self._launch is None:
                outcome.error = self._not_started_note()
                return
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
        if self._interrupted:
            # Signalled while it was being started (or before run-task's early start was
            # adopted): it never gets its task, and the signals received so far, now.
            await self._stop_unstarted(child, [comm_listener, logs_listener], outcome, True)
            return
        # The startup and task timeouts count from here, when this session starts watching
        # the child, also for a child started earlier (run-task starts it before loading
        # trio): our own start-up never counts against the runtime, which in Airflow meets a
        # supervisor that is ready to accept as it spawns. Such a child had ~0.1 s more.
        if cfg.task_timeout is not None:
            nursery.start_soon(self._task_timeout, cfg.task_timeout)

        try:
            comm, logs = await self._accept(comm_listener, logs_listener, child)
        except StartupError as exc:
            if self._interrupted:  # it exited of the signal, most likely: that is the news
                await self._stop_unstarted(child, [], outcome, False)
                return
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

        if self._interrupted:  # signalled while it connected: it does not get the task now
            await self._stop_unstarted(child, [comm, logs], outcome, False)
            return
        async with comm, logs:
            self.comm = comm
            try:
                first = await self.workload.begin()
            except StartFailed as exc:  # Airflow: the child is killed, no state is reported.
                outcome.error = str(exc)
                self.journal.emit("note", level="error", message=outcome.error)
                child.send(signal.SIGKILL)
                self.journal.emit(
                    "process",
                    event="signal",
                    signal="SIGKILL",
                    target="group",
                    reason=exc.kill_reason,
                )
                with trio.move_on_after(5):
                    await child.exited.wait()
                outcome.exit_code = child.returncode
                return
            if self.hooks is not None:
                first = self.hooks.first_frame(first)
            await self._send(comm, 0, first, None)
            outcome.started = self.started = True

            async with trio.open_nursery() as io:
                self._channel_opened()
                io.start_soon(self._comm_reader, comm)
                self._channel_opened()
                io.start_soon(self._logs_reader, logs)
                self.workload.start_duties(io)
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
        outcome.final_state = await self.workload.finish(child.returncode)

    def _not_started_note(self) -> str:
        assert self._first_signal is not None
        name = signal.Signals(self._first_signal).name
        message = f"interrupted ({name}) before the runtime was started; it was not started"
        self.journal.emit("note", level="debug", message=message)
        return message

    async def _stop_unstarted(
        self,
        child: ChildProcess,
        sockets: list[trio.SocketListener] | list[trio.SocketStream],
        outcome: TaskOutcome,
        deliver: bool,
    ) -> None:
        """A runtime that exists but was interrupted before it was given its task: ``sockets``
        (its listeners, or its connections) are closed, so it is never served; ``deliver``: it
        did not exist when the signals came, and gets them now as a running runtime would
        (``forward_signal``'s ladder, grace and escalation included). Then it is waited for
        (the reaper records its exit)."""
        assert self._first_signal is not None
        name = signal.Signals(self._first_signal).name
        with trio.CancelScope(shield=True):
            for sock in sockets:
                await sock.aclose()
        if deliver:
            for count in range(1, self._signals_received + 1):
                self._deliver_signal(count, self._first_signal)
        await child.exited.wait()
        outcome.exit_code = child.returncode
        outcome.error = (
            f"interrupted ({name}) while the runtime was being started; it was stopped before "
            "it was given the task"
        )
        self.journal.emit("note", level="debug", message=outcome.error)

    async def _accept(
        self,
        comm_listener: trio.SocketListener,
        logs_listener: trio.SocketListener,
        child: ChildProcess,
    ) -> tuple[trio.SocketStream, trio.SocketStream]:
        accepted: dict[str, trio.SocketStream] = {}
        rejections = _Rejections(self.journal)

        async def connect(
            name: str, listener: trio.SocketListener, scope: trio.CancelScope
        ) -> None:
            stream = await self._first_owned(name, listener, child, rejections)
            accepted[name] = stream
            try:
                peer = stream.socket.getpeername()
            except OSError:  # already reset: the reader will see it closed
                peer = ("?", "?")
            self.journal.emit("process", event="connect", channel=name, peer=f"{peer[0]}:{peer[1]}")
            if len(accepted) == 2:
                scope.cancel()

        async def watch_exit(scope: trio.CancelScope) -> None:
            await child.exited.wait()
            scope.cancel()

        try:
            with trio.move_on_after(self.config.startup_timeout):
                async with trio.open_nursery() as n:
                    n.start_soon(connect, "comm", comm_listener, n.cancel_scope)
                    n.start_soon(connect, "logs", logs_listener, n.cancel_scope)
                    n.start_soon(watch_exit, n.cancel_scope)
        except BaseException:
            for stream in accepted.values():
                stream.socket.close()
            raise
        finally:
            rejections.summarise()
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

    async def _first_owned(
        self,
        name: str,
        listener: trio.SocketListener,
        child: ChildProcess,
        rejections: _Rejections,
    ) -> trio.SocketStream:
        """The first connection to ``listener`` that comes from the child's process tree.

        Nothing that connects can hold the child's connection back: every connection is
        accepted as it arrives, and all those waiting are checked together in one pass (a
        worker thread, ``tree_owned``), again whenever more arrive and every ``_RECHECK`` s.
        A connection found in the tree wins at once; one whose other end nobody holds any more
        is closed at once; one held elsewhere is checked again for ``ownership_check_timeout``
        (as Airflow: the lookup may not see a socket yet) counted from its first answer, so
        that time spent queueing for a worker thread does not count, then closed. Beyond
        ``_PENDING_CAP`` waiting connections the oldest are closed, so a flood of intruders
        costs a bounded number of descriptors and checks.
        """
        if not self.config.check_ownership:
            return await listener.accept()
        arrivals, arrived = trio.open_memory_channel[trio.SocketStream](_ACCEPT_QUEUE)
        pending: list[_Candidate] = []
        winner: _Candidate | None = None

        async def accept_all() -> None:
            while True:
                stream = await listener.accept()
                try:
                    await arrivals.send(stream)
                except BaseException:  # the wait is over: nobody will look at it
                    rejections.close(name, stream, None, f"--{name} is no longer accepting")
                    raise

        def take(stream: trio.SocketStream) -> None:
            try:
                peer, local = stream.socket.getpeername(), stream.socket.getsockname()
            except OSError:  # reset by its peer before it could be looked at
                rejections.close(name, stream, None, "the connection was gone before the check")
                return
            pending.append(_Candidate(stream, peer, local))

        try:
            async with trio.open_nursery() as n:
                n.start_soon(accept_all)
                while winner is None:
                    with trio.move_on_after(_RECHECK if pending else math.inf):
                        take(await arrived.receive())
                    while True:
                        try:
                            take(arrived.receive_nowait())
                        except trio.WouldBlock:
                            break
                    if not pending:
                        continue
                    verdicts = await trio.to_thread.run_sync(
                        tree_owned, child.pid, [(c.peer, c.local) for c in pending]
                    )
                    now = trio.current_time()
                    waiting: list[_Candidate] = []
                    for candidate, owned in zip(pending, verdicts, strict=True):
                        if owned and winner is None:
                            winner = candidate
                        elif owned:
                            rejections.close(
                                name, candidate.stream, candidate.peer, f"--{name} is connected"
                            )
                        elif owned is None:  # its holder closed it: nobody to wait for
                            rejections.close(
                                name,
                                candidate.stream,
                                candidate.peer,
                                "closed by its peer before its owner was found",
                            )
                        else:
                            if candidate.deadline is None:
                                candidate.deadline = now + self.config.ownership_check_timeout
                            if now >= candidate.deadline:
                                rejections.foreign(name, candidate)
                            else:
                                waiting.append(candidate)
                    while len(waiting) > _PENDING_CAP:
                        rejections.foreign(name, waiting.pop(0))
                    pending = waiting
                n.cancel_scope.cancel()
        except BaseException:
            if winner is not None:
                winner.stream.socket.close()
            raise
        finally:
            # Whatever is left was never found in the tree (or never looked at: the channel is
            # taken, or the wait is over).
            for candidate in pending:
                rejections.foreign(name, candidate)
            pending.clear()
            while True:
                try:
                    stream = arrived.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                rejections.close(name, stream, None, f"--{name} is no longer accepting")
        return winner.stream

    # --- channels --------------------------------------------------------------------------------

    def _channel_opened(self) -> None:
        self._open_channels += 1

    def _channel_closed(self, name: str) -> None:
        self._open_channels -= 1
        self.journal.emit("process", event="eof", channel=name)
        if self._open_channels == 0:
            self._channels_closed.set()

    async def _write_reply(
        self, comm: Any, req_id: int, body: dict[str, Any] | None, error: dict[str, Any] | None
    ) -> None:
        data = encode_response(req_id, body, error)
        payload = data[4:]
        redactor = self.redactor
        # The transcript masks the strings of a reply; an error (which the console shows too)
        # is masked here, whole, in a copy (the runtime gets the real one). A reply body's keys
        # are the API's.
        if (
            error is not None
            and not redactor.keep_received
            and (redactor.holds_secret(payload) or redactor.hides_secret(error))
        ):
            body, error = redactor.value(body), redactor.value(error)
            self.journal.emit(
                "frame",
                direction="out",
                id=req_id,
                type=(body or error or {}).get("type") if (body or error) else None,
                body=body,
                error=error,
                payload=packb([req_id, body, error]),
                raw_redacted=True,
            )
        else:
            self.journal.emit(
                "frame",
                direction="out",
                id=req_id,
                type=(body or error or {}).get("type") if (body or error) else None,
                body=body,
                error=error,
                payload=payload,
            )
        try:
            await send_all(comm, data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._undelivered(req_id)

    def _undelivered(self, req_id: int) -> None:
        self.journal.emit(
            "note",
            level="warning",
            message=f"could not deliver the reply to request {req_id}: "
            "the comm connection is closed",
        )

    async def _comm_reader(self, comm: trio.abc.Stream) -> None:
        decoder = FrameDecoder(max_frame_size=self.config.max_frame_size)
        received = 0
        pacer = current_pacer()
        adaptive = Spin(self.config.comm_spin)
        Session._comm_readers += 1
        try:
            while True:
                spin = adaptive if Session._comm_readers == 1 else 0.0
                try:
                    data = await receive_some(comm, spin=spin)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break
                if not data:
                    break
                received += len(data)
                self.comm_received = received
                if pacer.next_due <= trio.current_time():
                    pacer.run_due()  # heartbeats due meanwhile, any session's (_pacer.py)
                decoder.feed(data)
                frames = 0
                while True:
                    frames += 1
                    if frames > _FRAMES_PER_YIELD:  # many frames in one read: let others run
                        frames = 0
                        await trio.lowlevel.checkpoint()
                    try:
                        raw = decoder.next_frame()
                    except ProtocolError as exc:
                        # What the bad frame consumed is kept (a length header's 4 bytes; an
                        # oversized payload is counted, not buffered).
                        self.journal.violation(frame_violation(exc, exc.raw))
                        continue
                    if raw is None:
                        break
                    await self._on_request(comm, raw.payload, raw.offset)
                self.first_activity.set()
        finally:
            Session._comm_readers -= 1
            tail = decoder.pending()
            try:
                decoder.end_of_stream()
            except ProtocolError as exc:
                self.journal.violation(frame_violation(exc, tail))
            counted: dict[str, Any] = {"discarded": decoder.bytes_discarded}
            if self.journal.suppressed_bytes:
                # Consumed by violations past the caps: counted, not kept.
                counted["unrecorded"] = self.journal.suppressed_bytes
            self.journal.emit(
                "process", event="channel-bytes", channel="comm", received=received, **counted
            )
            self._channel_closed("comm")

    async def _request(self, comm: Any, payload: bytes, offset: int) -> None:
        if getattr(self.api, "answers_inline", False):
            # The reply goes out before this request's records are written (Journal.holding).
            journal = self.journal
            held = journal.hold()
            try:
                await self._handle_request(comm, payload, offset)
            finally:
                journal.release(held)
        else:
            await self._handle_request(comm, payload, offset)

    async def _handle_request(self, comm: Any, payload: bytes, offset: int) -> None:
        redactor = self.redactor
        try:
            frame = decode_request(payload, offset)
        except ProtocolError as exc:
            recorded: dict[str, Any] = {"payload": payload}
            if redactor.redacts_received and redactor.holds_secret(payload):
                # The bytes as received, but for the secrets in them.
                recorded = {"payload": redactor.bytes(payload), "raw_redacted": True}
            self.journal.emit(
                "frame",
                direction="in",
                id=exc.request_id,
                type=None,
                body=None,
                offset=offset,
                error=redactor.text(str(exc)),
                **recorded,
            )
            self.journal.violation(frame_violation(exc, b""))  # the bytes are in the record
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
        # Before the frame is recorded, in every mode: the record then masks what it asks to.
        learn_from_request(self.masker, frame.body)
        # The transcript masks strings; a secret in the type, a map key or a bin value is
        # masked here, in a copy recorded as an encoding of the masked values (the request is
        # served as it came).
        masked = not redactor.keep_received and redactor.request_hides_secret(
            frame.type, frame.body, frame.context_carrier
        )
        if masked:
            body = redactor.value(frame.body)
            carrier = redactor.value(frame.context_carrier)
            event = self.journal.emit(
                "frame",
                direction="in",
                id=frame.id,
                type=redactor.value(frame.type),
                body=body,
                payload=packb([frame.id, body, carrier]),
                raw_redacted=True,
                offset=offset,
                elements=frame.elements,
                context_carrier=carrier,
            )
        else:
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
        problems = validate_body(frame.body, self._accepted_types)
        if problems:
            described = (
                self._masked_problems(problems, body)
                if masked
                else [(p.path, str(p)) for p in problems]
            )
            for problem, (path, text) in zip(problems, described, strict=True):
                self.journal.violation(
                    violation(
                        "invalid-request",
                        text,
                        variant=problem.rule,
                        path=path,
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
                        "problems": [text for _, text in described],
                    },
                ),
            )
            return
        assert frame.body is not None
        body, error = await self._answer(frame.body, frame.id, event.seq)
        await self._send(comm, frame.id, body, error)

    def _masked_problems(self, problems: list[Problem], masked_body: Any) -> list[tuple[str, str]]:
        """(path, sentence) for each problem of a body that held a secret, as its masked copy
        describes them: a sentence quotes at most 60 characters of a value, and a secret cut
        there is one the masker cannot recognise. A problem the copy does not have (masking
        changed the value) is named without a quote."""
        redactor = self.redactor
        clean: dict[tuple[str, str], str] = {}
        for q in validate_body(masked_body, self._accepted_types):
            clean.setdefault((q.rule, q.path), str(q))
        out = []
        for p in problems:
            path = redactor.text(p.path)
            text = clean.get((p.rule, path)) or f"{path}: {p.rule} (not quoted: it holds a secret)"
            out.append((path, text))
        return out

    # The request path with hooks (a session without hooks never runs these).

    async def _hooked_request(self, comm: Any, payload: bytes, offset: int) -> None:
        assert self.hooks is not None
        self.hooks.on_frame(payload, offset)
        await self._request(comm, payload, offset)

    async def _hooked_answer(self, body: dict[str, Any], frame_id: int, cause: int) -> Reply:
        assert self.hooks is not None
        reply = await self.hooks.answer(body, frame_id, cause)
        if reply is None:
            reply = await self.workload.answer(body, frame_id, cause)
        return reply

    async def _hooked_send(
        self, comm: Any, req_id: int, body: dict[str, Any] | None, error: dict[str, Any] | None
    ) -> None:
        assert self.hooks is not None
        await self.hooks.send(req_id, body, error)

    async def _logs_reader(self, logs: trio.SocketStream) -> None:
        # The socket itself is closed by its owner (the `async with comm, logs` block).
        await self._read_lines(logs, "logs", close=False)

    def _log_line(self, line: Line, source: str) -> None:
        if self.hooks is not None:
            self.hooks.on_log_line(line, source)
        if source == "logs":
            record, violations = parse_log_line(line)
        else:
            record, violations = stream_record(line, source)
        # Masked before anything sees it, as Airflow's supervisor does, map keys too.
        record = self.redactor.value(record)
        self.journal.emit("log", source=source, record=record)
        for v in violations:
            self.journal.violation(v)

    async def _pump_stream(self, stream: trio.abc.ReceiveStream, name: str) -> None:
        await self._read_lines(stream, name, close=True)  # a pipe: close it, or its fd leaks

    async def _read_lines(self, stream: trio.abc.ReceiveStream, name: str, *, close: bool) -> None:
        """Read a line-oriented channel (logs, stdout, stderr) to EOF, recording every line."""
        splitter = LineSplitter(max_line_length=self.config.max_log_line)
        received = 0
        pacer = current_pacer()
        try:
            while True:
                try:
                    data = await receive_some(stream)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break
                if not data:
                    break
                received += len(data)
                if pacer.next_due <= trio.current_time():
                    pacer.run_due()
                lines = 0
                for line in splitter.feed(data):
                    self._log_line(line, name)
                    lines += 1
                    if lines >= _LINES_PER_YIELD:  # a flood in one read: let others run
                        lines = 0
                        await trio.lowlevel.checkpoint()
                self.first_activity.set()
        finally:
            if close:
                with trio.CancelScope(shield=True):
                    await stream.aclose()
            last = splitter.end_of_stream()
            if last is not None:
                self._log_line(last, name)
            self.journal.emit("process", event="channel-bytes", channel=name, received=received)
            self._channel_closed(name)

    # --- the process -----------------------------------------------------------------------------

    async def _reap(self, child: ChildProcess) -> None:
        code = await child.wait()
        self.first_activity.set()
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
            await self.kill(f"ignored the forwarded {name}")

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
            await self.kill("--timeout reached")

    def _signal_note(self, reason: str) -> Callable[[str], None]:
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


#: Ownership checks at start-up (``Session._first_owned``): connections waiting for a verdict
#: per channel beyond which the oldest are closed, connections accepted but not yet looked at,
#: and the seconds between checks of those still waiting.
_PENDING_CAP = 64
_ACCEPT_QUEUE = 256
_RECHECK = 0.05
#: Rejected connections recorded one by one per session; the rest are counted in one record.
_REJECTIONS_RECORDED = 20


@dataclass
class _Candidate:
    """A connection accepted at start-up, waiting for its ownership verdict."""

    stream: trio.SocketStream
    peer: Any
    local: Any
    #: When its checks end (set by its first verdict).
    deadline: float | None = None


class _Rejections:
    """The connections a session closed at start-up: each recorded (a ``reject`` process
    event, and a ``foreign-connection`` violation for one that did not come from the child's
    tree) up to ``_REJECTIONS_RECORDED``, then counted, and the count recorded once."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.recorded = 0
        self.unrecorded: dict[str, int] = {}
        self.foreign_unrecorded = 0

    def foreign(self, name: str, candidate: _Candidate) -> None:
        peer = candidate.peer
        if self.close(
            name,
            candidate.stream,
            peer,
            "connection does not come from the child's process tree",
        ):
            self.journal.violation(
                violation(
                    "foreign-connection",
                    f"a process outside the runtime's process tree connected to --{name} "
                    f"from {peer[0]}:{peer[1]}; the connection was closed",
                )
            )
        else:
            self.foreign_unrecorded += 1

    def close(self, name: str, stream: trio.SocketStream, peer: Any, reason: str) -> bool:
        """Close ``stream``; True when it was recorded one by one."""
        stream.socket.close()
        if self.recorded >= _REJECTIONS_RECORDED:
            self.unrecorded[name] = self.unrecorded.get(name, 0) + 1
            return False
        self.recorded += 1
        self.journal.emit(
            "process",
            event="reject",
            channel=name,
            peer=f"{peer[0]}:{peer[1]}" if peer else None,
            reason=reason,
        )
        return True

    def summarise(self) -> None:
        """Record what was only counted, once."""
        for name, count in self.unrecorded.items():
            self.journal.emit(
                "process",
                event="reject",
                channel=name,
                count=count,
                reason=f"{count} more connections closed, not recorded one by one",
            )
        if self.foreign_unrecorded:
            self.journal.violation(
                violation(
                    "foreign-connection",
                    f"{self.foreign_unrecorded} more connections from outside the runtime's "
                    "process tree were closed (only the first "
                    f"{_REJECTIONS_RECORDED} rejections are recorded one by one)",
                )
            )
        self.unrecorded.clear()
        self.foreign_unrecorded = 0


#: Makes the session ``supervise`` runs, given the API client it built for it.
SessionFactory = Callable[[ExecutionAPIClient], Session]

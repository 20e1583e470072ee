"""One proxied task try: start the runtime, connect it through, forward, record, pass the end on.

The order mirrors what the runtime would do alone, so that Airflow cannot tell the difference:
the proxy connects to Airflow's --comm (or --logs) only once the runtime has connected to the
proxy's, so a runtime that dies before connecting still dies before connecting (Airflow then
makes no ``/run`` call and the TI stays queued). Signals the proxy receives go to the runtime's
process group; when the runtime has exited and its channels are drained, the proxy ends as the
runtime did: the same exit status, or the same signal raised on itself.
"""

from __future__ import annotations

import os
import resource
import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ._channels import Link, Pipe
from ._launch import Runtime, listen, owned_by_runtime, parse_address, start

if TYPE_CHECKING:
    from ._recorder import Recorder

__all__ = ["FORWARDED_SIGNALS", "ProxySettings", "exit_like", "run_proxy"]

#: What the proxy passes on to the runtime's process group instead of dying of it.
FORWARDED_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
_CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class ProxySettings:
    """What one proxied run needs.

    ``runtime``: the real runtime command (without --comm/--logs); ``comm``, ``logs``:
    Airflow's addresses (``HOST:PORT``); ``folder``: where transcripts go, one file per try;
    ``transcript``: one file instead; neither: forward only. ``cleanup_timeout``: how long the
    runtime's channels may stay open after it exited (Airflow's ``socket_cleanup_timeout``).
    """

    runtime: Sequence[str]
    comm: str
    logs: str
    folder: Path | None = None
    transcript: Path | None = None
    redact: bool = True
    cleanup_timeout: float = 60.0


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


def _exit_record(code: int, forwarded: list[str]) -> dict[str, Any]:
    data: dict[str, Any] = {"event": "exit", "exit_code": code}
    if code < 0:
        name = _signal_name(-code)
        data["signal"] = name
        if name in forwarded:
            data["message"] = f"Process terminated by {name} (forwarded by the proxy)"
        elif name == "SIGKILL":
            data["message"] = "Process terminated by signal. Likely out of memory error (OOM)."
        else:
            data["message"] = "Process terminated by signal."
    elif code > 0:
        data["message"] = "Process exited abnormally"
    return data


def _sensitive_names() -> list[str]:
    # Airflow's masker also hides variables named by [core] sensitive_var_conn_names.
    value = os.environ.get("AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES", "")
    return [n.strip() for n in value.split(",") if n.strip()]


def _min_length() -> int:
    try:
        return int(os.environ.get("AIRFLOW__LOGGING__MIN_LENGTH_MASKED_SECRET", "5"))
    except ValueError:
        return 5


def run_proxy(settings: ProxySettings, *, command: Sequence[str] | None = None) -> int:
    """Run the runtime behind the proxy until it has exited and its channels are drained;
    return its exit status (negative: the signal that ended it). ``ValueError`` for an
    address that is not ``HOST:PORT``."""
    comm_addr, logs_addr = parse_address(settings.comm), parse_address(settings.logs)
    # A file-size limit must end the recording, never the proxy (the write fails with EFBIG).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    say = say_once_on(2)
    listeners = {"comm": listen(), "logs": listen()}
    ports = {name: sock.getsockname()[1] for name, sock in listeners.items()}
    runtime = start(settings.runtime, ports["comm"], ports["logs"])
    recorder: Recorder | None = None
    # From here a signal is the runtime's: the handlers go in before anything slow.
    signalled: list[str] = []
    wakeup_r, wakeup_w = socket.socketpair()
    wakeup_r.setblocking(False)
    wakeup_w.setblocking(False)
    previous_wakeup = signal.set_wakeup_fd(wakeup_w.fileno(), warn_on_full_buffer=False)

    def forward(sig: int, _frame: Any) -> None:
        name = _signal_name(sig)
        signalled.append(name)
        sent = runtime.signal_group(sig)
        if sent:
            runtime.signals.append(name)
        if recorder is not None:  # None until the recorder is made, just below
            recorder.process(
                event="signal",
                signal=name,
                target="group" if sent else "none",
                reason=f"{name} received by the proxy, forwarded"
                if sent
                else f"{name} received by the proxy; no runtime left to forward it to",
            )

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    recording = settings.folder is not None or settings.transcript is not None
    if recording:
        # Loaded once the runtime is started: its own start-up overlaps these imports.
        from ._recorder import Recorder

        recorder = Recorder(
            folder=settings.folder,
            path=settings.transcript,
            header={
                "command": list(command if command is not None else sys.argv),
                "runtime": list(settings.runtime),
                "api": "proxy",
                # Recorded from Airflow's supervisor itself, which drops an invalid request
                # unanswered: a replay does the same.
                "config": {"airflow_strict": True},
                "proxy": {
                    "comm": settings.comm,
                    "logs": settings.logs,
                    "pid": os.getpid(),
                },
            },
            redact=settings.redact,
            say=say,
            sensitive_names=_sensitive_names(),
            min_length=_min_length(),
        )
    note = recorder.note_function() if recorder is not None else _ignore
    if runtime.error is not None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(previous_wakeup)
        for sock in (*listeners.values(), wakeup_r, wakeup_w):
            sock.close()
        say(runtime.error)
        if recorder is not None:
            recorder.process(event="spawn-failed", argv=runtime.argv, error=runtime.error)
            recorder.close({"exit_code": 127, "final_state": None})
        return 127
    if recorder is not None:
        recorder.process(
            event="spawn",
            argv=runtime.argv,
            pid=runtime.pid,
            comm_port=ports["comm"],
            logs_port=ports["logs"],
        )
    assert runtime.stdout is not None and runtime.stderr is not None
    changed = threading.Event()
    pipes = [
        Pipe("stdout", runtime.stdout, 1, note, changed),
        Pipe("stderr", runtime.stderr, 2, note, changed),
    ]
    links: list[Link] = []
    try:
        code = _supervise(
            runtime, listeners, {"comm": comm_addr, "logs": logs_addr}, links, note, recorder,
            wakeup_r, changed,
        )  # fmt: skip
        if recorder is not None:
            recorder.process(**_exit_record(code, runtime.signals))
        _drain(links, pipes, settings.cleanup_timeout, recorder, changed)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(previous_wakeup)
        wakeup_r.close()
        wakeup_w.close()
        for sock in listeners.values():
            sock.close()
        for link in links:
            link.close()
        if runtime.pidfd is not None:
            os.close(runtime.pidfd)
    if recorder is not None:
        footer: dict[str, Any] = {"exit_code": code}
        if signalled:
            # Airflow signalled the try (a kill after a heartbeat answered 409, overtime, or its
            # own shutdown): its verdict is Airflow's, which the proxy does not see.
            footer["final_state"] = None
            footer["signals_received"] = signalled
        recorder.close(footer)
    return code


def _ignore(key: str, data: bytes) -> None:
    return None


def _supervise(
    runtime: Runtime,
    listeners: dict[str, socket.socket],
    upstream: dict[str, tuple[str, int]],
    links: list[Link],
    note: Any,
    recorder: Recorder | None,
    wakeup: socket.socket,
    changed: threading.Event,
) -> int:
    """Accept the runtime's connections (each joined to Airflow's as it comes), then wait for
    the runtime's exit; the signal handlers run in between. Returns the exit status."""
    proc = runtime.proc
    assert proc is not None
    with selectors.DefaultSelector() as sel:
        sel.register(wakeup, selectors.EVENT_READ, "wakeup")
        if runtime.pidfd is not None:
            sel.register(runtime.pidfd, selectors.EVENT_READ, "exit")
        for name, sock in listeners.items():
            sel.register(sock, selectors.EVENT_READ, name)
        while proc.poll() is None:
            timeout = None if runtime.pidfd is not None else 0.05
            for key, _ in sel.select(timeout):
                what = key.data
                if what == "wakeup":
                    try:
                        while wakeup.recv(512):
                            pass
                    except OSError:
                        pass
                elif what in listeners and _accept(
                    what, listeners[what], runtime, upstream[what], links, note, recorder, changed
                ):
                    sel.unregister(listeners[what])
                    listeners.pop(what).close()
    return proc.returncode


def _accept(
    name: str,
    listener: socket.socket,
    runtime: Runtime,
    upstream: tuple[str, int],
    links: list[Link],
    note: Any,
    recorder: Recorder | None,
    changed: threading.Event,
) -> bool:
    """Accept one connection on ``listener``; the runtime's is joined to Airflow's. True when
    the channel is done with (joined, or Airflow could not be reached)."""
    try:
        conn, peer = listener.accept()
    except OSError:
        return False
    where = f"{peer[0]}:{peer[1]}"
    if not owned_by_runtime(runtime.pid, conn):
        conn.close()
        if recorder is not None:
            recorder.process(event="reject", channel=name, peer=where)
        return False
    if recorder is not None:
        recorder.process(event="connect", channel=name, peer=where)
    try:
        airflow = socket.create_connection(upstream, timeout=_CONNECT_TIMEOUT)
        airflow.settimeout(None)
    except OSError as exc:
        conn.close()
        message = f"cannot connect --{name} to Airflow at {upstream[0]}:{upstream[1]}: {exc}"
        if recorder is not None:
            recorder.note("error", message)
        say_once_on(2)(message)
        return True
    conn.settimeout(None)
    if recorder is not None:
        local = airflow.getsockname()
        recorder.process(
            event="connect-upstream",
            channel=name,
            peer=f"{upstream[0]}:{upstream[1]}",
            local=f"{local[0]}:{local[1]}",
        )
    links.append(Link(name, conn, airflow, note, changed))
    return True


def _drain(
    links: list[Link],
    pipes: list[Pipe],
    cleanup_timeout: float,
    recorder: Recorder | None,
    changed: threading.Event,
) -> None:
    """After the runtime's exit: close each channel whose runtime side has ended (its end of
    stream was forwarded); wait up to ``cleanup_timeout`` for the others, which something the
    runtime left behind still holds, then close them."""
    deadline = time.monotonic() + cleanup_timeout
    channels: list[Link | Pipe] = [*links, *pipes]
    while True:
        changed.clear()
        for link in links:
            if link.runtime_done.is_set():
                link.close()
        waiting = [w for w in channels if not w.done.is_set()]
        left = deadline - time.monotonic()
        if not waiting or left <= 0:
            break
        changed.wait(left)
    if waiting and recorder is not None:
        names = ", ".join(w.name for w in waiting)
        recorder.note(
            "warning", f"{names} still open {cleanup_timeout:g}s after the runtime exited; closed"
        )
    for link in links:
        link.close()


def say_once_on(fd: int) -> Callable[[str], None]:
    """A ``say`` writing ``supervisor-sim proxy: <message>`` as one line to ``fd`` (one
    write, so it never lands inside a line of the runtime's own output written at once)."""

    def say(message: str) -> None:
        try:
            os.write(fd, f"supervisor-sim proxy: {message}\n".encode("utf-8", "replace"))
        except OSError:
            pass

    return say


def exit_like(code: int) -> NoReturn:
    """End this process as the runtime ended: its exit status, or the signal that killed it
    raised here (no core dump), else ``128 + N``."""
    sys.stdout.flush()
    sys.stderr.flush()
    if code >= 0:
        os._exit(code & 0xFF)
    sig = -code
    try:
        _, hard = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    except (ValueError, OSError):
        pass
    for step in (
        lambda: signal.signal(sig, signal.SIG_DFL),  # refused for SIGKILL: it has no handler
        lambda: signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig}),
        lambda: signal.raise_signal(sig),
    ):
        try:
            step()
        except (ValueError, OSError):
            pass
    os._exit(128 + sig)

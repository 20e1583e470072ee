"""The real runtime behind the proxy: its listeners, its process, the connections it makes.

The runtime is started as Airflow's coordinator starts it (``RUNTIME_CMD --comm=H:P
--logs=H:Q``, Airflow's environment and working directory, stdin inherited), but with the
proxy's own loopback ports, in a process group of its own and with its stdout and stderr piped
through the proxy. On Linux it also gets ``PR_SET_PDEATHSIG``: if Airflow SIGKILLs the proxy
(the end of its kill escalation), the kernel SIGKILLs the runtime at once, as Airflow's SIGKILL
would have without the proxy in between.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ...supervision import tree_owned

__all__ = ["Runtime", "listen", "owned_by_runtime", "parse_address", "start"]

#: How long a connection may take to show up as the runtime tree's (Airflow: 1 s, 50 ms steps).
OWNERSHIP_WAIT = 1.0
_OWNERSHIP_POLL = 0.05
_PR_SET_PDEATHSIG = 1


def parse_address(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) as a socket address; ``ValueError`` names the problem."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def listen() -> socket.socket:
    """A loopback listener on a free port (not inherited by the runtime)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass
class Runtime:
    """The started runtime: its argv (with the proxy's ``--comm/--logs``) and process, and the
    read ends of its stdout and stderr; ``error`` instead when it could not be started."""

    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    stdout: int | None = None
    stderr: int | None = None
    pidfd: int | None = None
    error: str | None = None
    #: The signals forwarded to its process group, by name, in order.
    signals: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal_group(self, sig: int) -> bool:
        """Send ``sig`` to the runtime's process group; False when nothing is left to signal.
        Safe in a signal handler (one system call, no lock)."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return False
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel to SIGKILL the child when this process dies
    (Linux), or None where there is no such request."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the proxy died before the request took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def start(runtime: Sequence[str], comm_port: int, logs_port: int) -> Runtime:
    """Start ``runtime`` with ``--comm/--logs`` on the proxy's ports, in its own process group,
    stdout and stderr piped, everything else as the proxy has it (environment, working
    directory, stdin)."""
    argv = [*runtime, f"--comm=127.0.0.1:{comm_port}", f"--logs=127.0.0.1:{logs_port}"]
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    result = Runtime(argv)
    try:
        result.proc = subprocess.Popen(
            argv,
            stdout=out_w,
            stderr=err_w,
            process_group=0,
            preexec_fn=_die_with_parent(),
        )
    except (OSError, subprocess.SubprocessError) as exc:
        os.close(out_r)
        os.close(err_r)
        strerror = getattr(exc, "strerror", None)
        result.error = f"cannot start the runtime {argv[0]!r}: {strerror or exc}"
        return result
    finally:
        os.close(out_w)
        os.close(err_w)
    result.stdout, result.stderr = out_r, err_r
    if hasattr(os, "pidfd_open"):
        try:
            result.pidfd = os.pidfd_open(result.proc.pid)
        except OSError:  # a kernel before 5.3, or a sandbox that refuses it
            pass
    return result


def owned_by_runtime(pid: int, conn: socket.socket) -> bool:
    """Whether the accepted connection comes from the runtime's process tree, as Airflow's
    coordinator checks it (a fresh connection may take a moment to show)."""
    try:
        peer, local = conn.getpeername(), conn.getsockname()
    except OSError:
        return False
    deadline = time.monotonic() + OWNERSHIP_WAIT
    while True:
        if tree_owned(pid, [(peer, local)])[0]:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_OWNERSHIP_POLL)

"""The runtime child: launched in its own process group, killed with escalation, reaped.

A session owns its child's process group: every signal goes to the whole group (so wrapper
scripts and grandchildren get it too), and nothing in the group outlives the session.

The launch itself (``start_runtime``: two loopback listeners, then ``subprocess.Popen``) needs
only the standard library, so that ``run-task`` can start the runtime before it imports trio and
the layers: the runtime's own start-up then overlaps with ours, and a ``Session`` adopts the
``Launch`` (a session without one makes the same launch itself). ``ChildProcess`` wraps the
adopted ``Popen`` for trio; this module imports trio where it is used, never at import time.

psutil is imported only where it is used (processes left in the group after the child exited,
a runtime whose sockets belong to a descendant, platforms without /proc): a task whose runtime
connects by itself and leaves nothing behind never loads it.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import queue
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import trio

    from ._config import SupervisorConfig

__all__ = [
    "Address",
    "ChildProcess",
    "Launch",
    "StartupError",
    "runtime_env",
    "start_runtime",
    "start_runtime_in_launcher",
    "tree_owned",
    "tree_owns_connection",
]


class StartupError(Exception):
    """The child could not be started or did not connect back in time."""


def runtime_env(extra: Mapping[str, str], config: SupervisorConfig) -> dict[str, str]:
    """The runtime's environment: ours, the task's own variables, and Airflow's [logging]
    levels from ``config`` (a ``SupervisorConfig``)."""
    return {
        **os.environ,
        **extra,
        "AIRFLOW__LOGGING__LOGGING_LEVEL": config.logging_level,
        "AIRFLOW__LOGGING__NAMESPACE_LEVELS": config.namespace_levels,
    }


def _listen() -> socket.socket:
    """A loopback listener on a free port, set up as ``trio.open_tcp_listeners`` sets one up
    (SO_REUSEADDR; the largest backlog the kernel allows). Not inherited by children."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(0xFFFF)
    except BaseException:
        sock.close()
        raise
    return sock


class Launch:
    """A runtime started but not yet supervised: its --comm/--logs listeners and its process
    (``error`` instead of a process when it could not be started).

    ``start_runtime`` makes one; a ``Session`` adopts it, taking the listeners with
    ``take_listeners`` and the process with ``ChildProcess.adopt``. Whatever nobody took,
    ``close`` stops: the process group killed and the process reaped, every descriptor closed.
    """

    def __init__(self, argv: Sequence[str], comm: socket.socket, logs: socket.socket) -> None:
        self.argv = list(argv)
        self.comm_port: int = comm.getsockname()[1]
        self.logs_port: int = logs.getsockname()[1]
        self.proc: subprocess.Popen[bytes] | None = None
        self.error: str | None = None
        self._listeners: tuple[socket.socket, socket.socket] | None = (comm, logs)
        # The read ends of stdout and stderr, then a pidfd (Linux) to wait for the exit with;
        # None once a session took the process (or ``close`` stopped it).
        self._fds: list[int | None] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def take_listeners(self) -> tuple[socket.socket, socket.socket]:
        """Hand the two listening sockets (comm, logs) over to the caller."""
        listeners, self._listeners = self._listeners, None
        assert listeners is not None, "the listeners were already taken"
        return listeners

    def take_process(self) -> tuple[subprocess.Popen[bytes], int, int, int | None]:
        """Hand the process over: (Popen, stdout fd, stderr fd, pidfd or None). The caller now
        closes the descriptors and reaps the process."""
        fds, self._fds = self._fds, None
        assert self.proc is not None and fds is not None, "no process to take"
        stdout, stderr, pidfd = fds
        assert stdout is not None and stderr is not None
        return self.proc, stdout, stderr, pidfd

    def kill_group(self) -> None:
        """SIGKILL to the process group, if the process was started and is not reaped yet.
        Fit for a signal handler: no lock, nothing but the system call."""
        proc = self.proc
        if proc is not None and proc.returncode is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def close(self) -> None:
        """Stop what was not adopted: kill the process group and reap the process (the
        runtime was never told anything, so SIGKILL, as when the start call fails), then close
        the pipes, pidfd and listeners. Idempotent; what a session took is not touched.
        SIGINT, SIGTERM and SIGHUP wait until it is done, so a second Ctrl+C cannot cut it
        short."""
        blocked = signal.pthread_sigmask(
            signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
        )
        try:
            fds, self._fds = self._fds, None
            if fds is not None:
                if self.proc is not None:
                    self.kill_group()
                    try:
                        self.proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:  # pragma: no cover - stuck in the kernel
                        pass
                    _wait_group_gone(self.proc.pid, timeout=5.0)
                for fd in fds:
                    if fd is not None:
                        os.close(fd)
            listeners, self._listeners = self._listeners, None
            for sock in listeners or ():
                sock.close()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def group_alive(pgid: int) -> bool:
    """Is any live (non-zombie) process left in process group ``pgid``?"""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    # killpg also succeeds while only unreaped zombies remain; those hold nothing open.
    import psutil

    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


def _wait_group_gone(pgid: int, timeout: float) -> None:
    """Until no live process is left in group ``pgid`` (or ``timeout`` passed): SIGKILL reaches
    a grandchild asynchronously, after its parent has already been reaped, and what the caller
    does next (report "stopped", exit) must not race it."""
    deadline = time.monotonic() + timeout
    while group_alive(pgid) and time.monotonic() < deadline:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.005)


def start_runtime(
    runtime: Sequence[str], env: Mapping[str, str], cwd: str | None, config: SupervisorConfig
) -> Launch:
    """Open the --comm and --logs listeners and start ``runtime`` with them appended, in a new
    process group, with stdout and stderr piped, no stdin, and ``runtime_env(env, config)``.

    A runtime that cannot be started (no such file, not executable) gives a ``Launch`` whose
    ``error`` says why; the session reports it as Airflow's supervisor would.
    """
    comm = _listen()
    try:
        logs = _listen()
    except BaseException:
        comm.close()
        raise
    comm_arg = f"--comm=127.0.0.1:{comm.getsockname()[1]}"
    logs_arg = f"--logs=127.0.0.1:{logs.getsockname()[1]}"
    launch = Launch([*runtime, comm_arg, logs_arg], comm, logs)
    try:
        _start_process(launch, runtime_env(env, config), cwd)
    except BaseException:
        launch.close()
        raise
    return launch


def _start_process(launch: Launch, env: Mapping[str, str], cwd: str | None) -> None:
    # Pipes made here, as trio's open_process makes them: the read ends are ours alone (not
    # inherited by any child), the write ends the child's alone once Popen has run.
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    launch._fds = [out_r, err_r, None]
    argv, hook = _with_parent_death_signal(launch.argv, env, cwd)
    try:
        launch.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out_w,
            stderr=err_w,
            env=dict(env),
            cwd=cwd,
            process_group=0,
            preexec_fn=hook,
        )
    except OSError as exc:
        launch.error = f"cannot start runtime {launch.argv[0]!r}: {exc.strerror or exc}"
        return
    finally:
        os.close(out_w)
        os.close(err_w)
    if hasattr(os, "pidfd_open"):
        try:
            launch._fds[2] = os.pidfd_open(launch.proc.pid)
        except OSError:  # a kernel before 5.3, or a sandbox that refuses it
            pass


# --- the runtime dies with its supervisor (Linux) ----------------------------------------------
#
# PR_SET_PDEATHSIG(SIGKILL) makes the kernel SIGKILL the runtime when its parent dies, also by
# SIGKILL, where no handler of ours runs. The "parent" is the *thread* that forked: a runtime
# forked by a thread that later exits (trio's worker threads end after 10 s idle) would be
# killed with it. So a runtime is forked either by the main thread (run-task's early start) or
# by the one launcher thread below, which lives as long as the process; from any other thread
# the signal is not set (nothing is better than a spurious kill). The setting is not inherited
# by the runtime's own children: docs/reliability.md says what that leaves uncovered.

#
# Two ways to set it. A ``preexec_fn`` makes CPython fork instead of vfork: a fork of a large
# supervisor costs milliseconds of its CPU per launch (3-6 ms at 150 MB, measured in
# docs/performance.md), which at 1,000 children starves the trio thread. So where util-linux's
# ``setpriv`` can set it, the runtime is started as ``setpriv --pdeathsig KILL -- RUNTIME...``
# with no preexec_fn (vfork; setpriv then execs the runtime, same pid, same argv as the runtime
# sees it). setpriv cannot check getppid() after its prctl, so a supervisor SIGKILLed in the
# microseconds between the vfork and setpriv's prctl leaves that one runtime orphaned (it loses
# its --comm peer); the preexec_fn path closes that window, at the fork's price.

_PR_SET_PDEATHSIG = 1


def _prctl() -> Callable[..., int] | None:
    """libc's prctl, or None (not Linux, no libc to load)."""
    if not _PRCTL and sys.platform.startswith("linux"):
        try:
            import ctypes

            _PRCTL.append(ctypes.CDLL(None, use_errno=True).prctl)
        except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
            _PRCTL.append(None)
    return _PRCTL[0] if _PRCTL else None


_PRCTL: list[Callable[..., int] | None] = []


def _parent_death_signal(parent: int | None = None) -> Callable[[], None] | None:
    """The ``preexec_fn`` that sets PR_SET_PDEATHSIG(SIGKILL) in the child, or None where it
    cannot be set safely (not Linux; not the main thread or the launcher thread).

    It also handles the parent dying before the prctl: the child then already has another
    parent (``getppid`` is not ``parent``, this process by default), no signal will ever come,
    and it kills itself."""
    forker = threading.current_thread()
    if forker is not threading.main_thread() and forker is not _LAUNCHER.thread:
        return None
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid() if parent is None else parent
    kill, sigkill, getppid, getpid = os.kill, int(signal.SIGKILL), os.getppid, os.getpid

    def in_child() -> None:
        prctl(_PR_SET_PDEATHSIG, sigkill, 0, 0, 0)
        if getppid() != parent:
            kill(getpid(), sigkill)

    return in_child


def _with_parent_death_signal(
    argv: list[str], env: Mapping[str, str], cwd: str | None
) -> tuple[list[str], Callable[[], None] | None]:
    """The argv to start and the preexec_fn to start it with, so that the runtime gets
    PR_SET_PDEATHSIG: through setpriv where it can (no preexec_fn, so vfork), else the hook."""
    hook = _parent_death_signal()
    if hook is None:
        return argv, None
    setpriv = _setpriv()
    if setpriv is None or not _plainly_executable(argv[0], env, cwd):
        return argv, hook
    return [setpriv, "--pdeathsig", "KILL", "--", *argv], None


def _plainly_executable(program: str, env: Mapping[str, str], cwd: str | None) -> bool:
    """Would exec'ing ``program`` start it directly: found, a regular file, executable, an ELF
    or a ``#!`` script? Anything else goes through Popen itself, whose OSError (no such file,
    permission denied, exec format error) the session reports as it always has; through setpriv
    it would be setpriv's exit 127 instead (and glibc's execvp would run a ``#!``-less file with
    /bin/sh, where Popen refuses it)."""
    if os.sep in program:
        path = program if cwd is None else os.path.join(cwd, program)
    else:
        import shutil

        found = shutil.which(program, path=env.get("PATH", os.defpath))
        if found is None:
            return False
        path = found
    try:
        with open(path, "rb") as f:
            if not os.path.isfile(path) or not os.access(path, os.X_OK):
                return False
            head = f.read(4)
    except OSError:
        return False
    return head.startswith(b"#!") or head == b"\x7fELF"


def _setpriv() -> str | None:
    """The path of a setpriv that knows --pdeathsig (util-linux 2.33 and newer), or None; looked
    up once per process."""
    if not _SETPRIV:
        import shutil

        found = shutil.which("setpriv")
        if found is not None:
            try:
                probe = subprocess.run(
                    [found, "--pdeathsig", "KILL", "--", found, "--version"],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=10,
                )
                if probe.returncode != 0:
                    found = None
            except (OSError, subprocess.SubprocessError):
                found = None
        _SETPRIV.append(found)
    return _SETPRIV[0]


_SETPRIV: list[str | None] = []


class _Launcher:
    """The one long-lived thread that forks the runtimes started under trio.

    Popen runs off the trio thread (a fork of a large process takes milliseconds) but always
    in this thread, which never exits before the process does, so PR_SET_PDEATHSIG fires when
    the supervisor dies, never when some worker thread goes idle. Launches are made one after
    another, in the order asked."""

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:  # a forked child has no copy of the thread
        self.thread = None
        self._jobs = queue.SimpleQueue()
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._serve, name="supervisor-sim-launcher", daemon=True
                )
                self.thread.start()
        self._jobs.put(job)

    def _serve(self) -> None:
        while True:
            self._jobs.get()()


_LAUNCHER = _Launcher()


async def start_runtime_in_launcher(
    runtime: Sequence[str],
    env: Mapping[str, str],
    cwd: str | None,
    config: SupervisorConfig,
    *,
    cancelled: Callable[[], bool] | None = None,
) -> Launch | None:
    """``start_runtime`` in the launcher thread, awaited from trio. Not cancellable (as
    ``trio.to_thread.run_sync``): the launch is always returned, for the caller to adopt or
    close. ``cancelled`` is asked (in the launcher thread) when the launcher comes to this
    launch, after those queued before it: true, and nothing is started (None; a Ctrl+C while
    many sessions wait for the launcher starts none of them)."""
    import trio

    token = trio.lowlevel.current_trio_token()
    done = trio.Event()
    result: list[Launch | BaseException | None] = []

    def job() -> None:
        try:
            if cancelled is not None and cancelled():
                result.append(None)
            else:
                result.append(start_runtime(runtime, env, cwd, config))
        except BaseException as exc:  # handed to the caller
            result.append(exc)
        token.run_sync_soon(done.set)

    _LAUNCHER.submit(job)
    with trio.CancelScope(shield=True):
        await done.wait()
    (outcome,) = result
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


class ChildProcess:
    """A running runtime child and its process group, supervised under trio."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        argv: Sequence[str],
        stdout: int,
        stderr: int,
        pidfd: int | None = None,
    ) -> None:
        import trio

        self.proc = proc
        self.argv = list(argv)
        self.pid = proc.pid
        self.pgid = proc.pid  # started with process_group=0: the child leads its own group
        self.stdout: trio.lowlevel.FdStream = trio.lowlevel.FdStream(stdout)
        self.stderr: trio.lowlevel.FdStream = trio.lowlevel.FdStream(stderr)
        self.exited = trio.Event()
        self.returncode: int | None = None
        self.signals_sent: list[str] = []
        self._pidfd = pidfd
        self._wait_lock = trio.Lock()

    @classmethod
    def adopt(cls, launch: Launch) -> ChildProcess:
        """Take over a launched runtime: its process, pipes and pidfd."""
        proc, stdout, stderr, pidfd = launch.take_process()
        return cls(proc, launch.argv, stdout, stderr, pidfd)

    @property
    def alive(self) -> bool:
        return self.returncode is None

    async def wait(self) -> int:
        """Reap the child; sets ``returncode`` (negative for a signal, as psutil reports it).
        Any number of tasks may wait; cancelling one leaves the others waiting."""
        async with self._wait_lock:
            if self.proc.poll() is None:
                await self._exit_reported()
                # Already exited: returns at once (a pidfd is readable once the child is a
                # zombie; waitid(WNOWAIT) likewise leaves it to be reaped here).
                self.proc.wait()
            self.close_pidfd()
        code = self.proc.returncode
        assert code is not None
        self.returncode = code
        self.exited.set()
        return code

    async def _exit_reported(self) -> None:
        import trio

        if self._pidfd is not None:
            await trio.lowlevel.wait_readable(self._pidfd)
        elif hasattr(os, "waitid"):
            # As trio does without a pidfd: a thread waits without reaping, and is abandoned
            # (it ends when the child does) if the wait is cancelled.
            try:
                await trio.to_thread.run_sync(
                    os.waitid, os.P_PID, self.pid, os.WEXITED | os.WNOWAIT, abandon_on_cancel=True
                )
            except ChildProcessError:
                pass
        else:  # pragma: no cover - no pidfd and no waitid
            while self.proc.poll() is None:
                await trio.sleep(0.02)

    def close_pidfd(self) -> None:
        fd, self._pidfd = self._pidfd, None
        if fd is not None:
            import trio

            trio.lowlevel.notify_closing(fd)
            os.close(fd)

    def close(self) -> None:
        """Close the pipes and the pidfd, whoever was meant to (the session's cleanup calls it
        last; a closed stream or pidfd is left alone)."""
        self.stdout.close()
        self.stderr.close()
        self.close_pidfd()

    def send(self, sig: int, *, group: bool = True) -> bool:
        """Signal the group (or the child alone); False when there was nobody to signal."""
        try:
            if group:
                os.killpg(self.pgid, sig)
            else:
                os.kill(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        self.signals_sent.append(signal.Signals(sig).name)
        return True

    def group_alive(self) -> bool:
        """Is any live (non-zombie) process left in the child's process group?"""
        return group_alive(self.pgid)

    async def kill(
        self,
        first: int = signal.SIGTERM,
        *,
        escalation_delay: float,
        on_signal: Callable[[str], None] | None = None,
    ) -> None:
        """Airflow's ``kill(sig, force=True)``: each step of the ladder from ``first`` to SIGKILL
        goes to the group, waiting ``escalation_delay`` for the child to exit between steps."""
        import trio

        ladder: list[int] = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]
        for sig in ladder[ladder.index(first) :]:
            if not self.alive:
                return
            if self.send(sig) and on_signal is not None:
                on_signal(signal.Signals(sig).name)
            if sig == signal.SIGKILL:
                return
            with trio.move_on_after(escalation_delay):
                await self.wait()  # reaps it, should nobody else be waiting for it

    async def reap_group(self, grace: float = 0.5) -> list[str]:
        """After the child exited: TERM then KILL whatever is left of its process group."""
        import trio

        sent: list[str] = []
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not self.group_alive():
                break
            if self.send(sig):
                sent.append(signal.Signals(sig).name)
            with trio.move_on_after(grace):
                while self.group_alive():
                    await trio.sleep(0.02)
        return sent


#: An address as ``getpeername``/``getsockname`` give it: (host, port[, flowinfo, scope]).
Address = tuple[str, int] | tuple[str, int, int, int]


def _socket_inode(peer: Address, local: Address) -> int | None:
    """The inode of the TCP socket whose local end is ``peer`` and remote end ``local`` (the
    child's end of a connection we accepted); None if unseen."""
    inode = _socket_inode_diag(peer, local)
    if inode is None:
        return _socket_inodes_proc([(peer, local)])[0]
    return inode or None


# sock_diag (linux/sock_diag.h, linux/inet_diag.h), the interface `ss` uses.
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_INET_DIAG_NOCOOKIE = 0xFFFFFFFF
_NLMSG_HEADER = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_INODE_OFFSET = _NLMSG_HEADER.size + 68  # inet_diag_msg: 4 bytes, sockid (48), 4 u32, inode
_NLMSG_ERROR = 2
_ERRNO = struct.Struct("=i")  # an NLMSG_ERROR's payload starts with -errno


def _socket_inode_diag(
    peer: Address, local: Address, nl: socket.socket | None = None
) -> int | None:
    """``_socket_inode`` through the kernel's sock_diag exact lookup: one hash lookup (~0.1 ms).
    Reading /proc/net/tcp makes the kernel walk every TCP socket of the machine, ~3 ms a table
    even when it has a few lines. ``nl``: a sock_diag socket to reuse (a batch of lookups,
    ``_diag_socket``).

    0 when the kernel says no process holds that end: no such connection (ENOENT), or its
    socket is an orphan or in TIME_WAIT (inode 0: its holder closed it). None when the lookup
    is unavailable (the caller then reads /proc, the ground truth)."""
    if not hasattr(socket, "AF_NETLINK"):
        return None
    (src_host, src_port), (dst_host, dst_port) = _norm(peer), _norm(local)
    try:
        src, dst = ipaddress.ip_address(src_host), ipaddress.ip_address(dst_host)
    except ValueError:
        return None
    if src.version != dst.version:
        return None
    family = socket.AF_INET if src.version == 4 else socket.AF_INET6
    # inet_diag_req_v2: family, protocol, ext, pad, states; then inet_diag_sockid: the socket's
    # own (src) and remote (dst) ends in network order, interface, cookie (none).
    request = struct.pack("=BBBxI", family, socket.IPPROTO_TCP, 0, 0xFFFFFFFF)
    request += struct.pack("!HH", src_port, dst_port)
    request += src.packed.ljust(16, b"\0") + dst.packed.ljust(16, b"\0")
    request += struct.pack("=III", 0, _INET_DIAG_NOCOOKIE, _INET_DIAG_NOCOOKIE)
    global _diag_seq
    _diag_seq = seq = _diag_seq % 0xFFFFFFFF + 1
    header = _NLMSG_HEADER.pack(
        _NLMSG_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, seq, 0
    )
    try:
        if nl is None:
            with _diag_socket() as own:
                reply = _diag_exchange(own, header + request, seq)
        else:
            reply = _diag_exchange(nl, header + request, seq)
    except OSError:
        return None
    _, kind, _, _, _ = _NLMSG_HEADER.unpack_from(reply)
    if kind == _NLMSG_ERROR and len(reply) >= _NLMSG_HEADER.size + _ERRNO.size:
        error = -_ERRNO.unpack_from(reply, _NLMSG_HEADER.size)[0]
        return 0 if error == errno.ENOENT else None
    if kind != _SOCK_DIAG_BY_FAMILY or len(reply) < _INODE_OFFSET + 4:
        return None
    return int(struct.unpack_from("=I", reply, _INODE_OFFSET)[0])


_diag_seq = 0


def _diag_exchange(nl: socket.socket, request: bytes, seq: int) -> bytes:
    """Send one sock_diag request and return its reply, skipping any late reply to an earlier
    request on the same socket (one whose wait timed out)."""
    nl.sendto(request, (0, 0))
    while True:
        reply = nl.recv(8192)
        if len(reply) >= _NLMSG_HEADER.size and _NLMSG_HEADER.unpack_from(reply)[3] == seq:
            return reply


def _diag_socket() -> socket.socket:
    """A sock_diag socket. The kernel answers an exact lookup at once; the timeout only bounds
    a kernel that never does."""
    nl = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG)
    nl.settimeout(1.0)
    return nl


def _socket_inodes_proc(connections: Sequence[tuple[Address, Address]]) -> list[int | None]:
    """``_socket_inode`` of each (peer, local) from /proc/net/tcp and tcp6, read once for all."""
    wanted: dict[tuple[int, int], list[int]] = {}
    for i, (peer, local) in enumerate(connections):
        wanted.setdefault((_norm(peer)[1], _norm(local)[1]), []).append(i)
    found: list[int | None] = [None] * len(connections)
    left = len(connections)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not left:
            break
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            l_ip, l_port = fields[1].split(":")
            r_ip, r_port = fields[2].split(":")
            # Cheap port test first; addresses only for the (rare) port matches.
            indices = wanted.get((int(l_port, 16), int(r_port, 16)))
            if not indices:
                continue
            ends = (_hex_ip(l_ip), _hex_ip(r_ip))
            for i in indices:
                peer, local = connections[i]
                if found[i] is None and ends == (_norm(peer)[0], _norm(local)[0]):
                    found[i] = int(fields[9])
                    left -= 1
    return found


def _hex_ip(text: str) -> str:
    """An address as /proc/net/tcp{,6} prints it (32-bit words in host order), normalised."""
    raw = b"".join(bytes.fromhex(text[i : i + 8])[::-1] for i in range(0, len(text), 8))
    host = str(ipaddress.ip_address(raw))
    return _norm((host, 0))[0]


def _sockets_held(pid: int) -> set[str]:
    """The sockets among the descriptors of process ``pid`` (``socket:[INODE]``), as far as
    we may read them."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return set()
    held = set()
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            held.add(target)
    return held


def tree_owns_connection(pid: int, peer: Address, local: Address) -> bool:
    """Does the process ``pid`` or a descendant hold the TCP connection ``peer`` -> ``local``?"""
    return bool(tree_owned(pid, [(peer, local)])[0])


def tree_owned(pid: int, connections: Sequence[tuple[Address, Address]]) -> list[bool | None]:
    """For each accepted connection (peer, local): does the process ``pid`` or a descendant
    hold its other end? True, False (not found in the tree: another process holds it, or the
    lookup does not see it yet), or None when no process holds it any more (its holder
    closed it: nobody to wait for).

    One pass for the whole batch, so connections that arrive together (a crowd of intruders
    and, somewhere among them, the runtime) cost one look at the process tree. Linux fast
    path: find each connection's socket inode (sock_diag, else /proc/net/tcp read once), then
    look for them among the child's file descriptors, then its descendants' (only when some
    are still unfound). psutil's ``net_connections`` parses every TCP socket of the machine
    once per process of the tree (~15 ms a check); this is ~0.2 ms for one connection and
    ~0.1 ms more for each other.
    """
    if not connections:
        return []
    if not os.path.exists("/proc/net/tcp"):
        return _tree_owned_psutil(pid, connections)
    # Per connection: its socket's inode, 0 when nobody holds it, None when unknown yet.
    inodes: list[int | None] = [None] * len(connections)
    if hasattr(socket, "AF_NETLINK"):
        try:
            with _diag_socket() as nl:
                inodes = [_socket_inode_diag(peer, local, nl) for peer, local in connections]
        except OSError:  # no sock_diag here (a sandbox without netlink): /proc only
            pass
    unseen = [i for i, inode in enumerate(inodes) if inode is None]
    if unseen:
        for i, inode in zip(
            unseen, _socket_inodes_proc([connections[i] for i in unseen]), strict=True
        ):
            inodes[i] = inode
    # The sockets still to find in the tree: "socket:[INODE]" -> the connections holding it.
    targets: dict[str, list[int]] = {}
    for i, inode in enumerate(inodes):
        if inode:
            targets.setdefault(f"socket:[{inode}]", []).append(i)
    owned: list[bool | None] = [None if inode == 0 else False for inode in inodes]
    if not targets:
        return owned

    def claim(holder: int) -> None:
        for target in _sockets_held(holder) & targets.keys():
            for i in targets.pop(target):
                owned[i] = True

    claim(pid)
    if targets:
        import psutil

        try:
            children = psutil.Process(pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return owned
        for child in children:
            claim(child.pid)
            if not targets:
                break
    return owned


def _tree_owned_psutil(
    pid: int, connections: Sequence[tuple[Address, Address]]
) -> list[bool | None]:
    """``tree_owned`` without /proc: the check Airflow's coordinator makes with psutil, with
    IPv4-mapped IPv6 addresses normalised to plain IPv4, the tree's connections listed once."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return [False for _ in connections]
    held: set[tuple[tuple[str, int], tuple[str, int]]] = set()
    for proc in procs:
        try:
            conns = proc.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        for conn in conns:
            if conn.laddr and conn.raddr:
                held.add((_norm(conn.laddr), _norm(conn.raddr)))
    return [(_norm(peer), _norm(local)) in held for peer, local in connections]


def _norm(addr: tuple) -> tuple[str, int]:
    host, port = addr[0], addr[1]
    if host.startswith("::ffff:") and "." not in host:  # ::ffff:7f00:1 as ipaddress prints it
        host = str(ipaddress.IPv6Address(host).ipv4_mapped)
    elif host.startswith("::ffff:"):
        host = host[7:]
    elif host.startswith("::") and host.count(".") == 3:
        host = host[2:]
    return host, int(port)

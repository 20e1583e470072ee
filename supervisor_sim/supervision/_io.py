"""Socket reads and writes for a session's channels, with fewer scheduler passes than trio's.

trio's ``SocketStream.receive_some`` yields to the scheduler after every successful read, and
``send_all`` always does. A session's comm channel is lock-step: one small request, one small
reply, ~120 µs apart, so those passes are a visible share of a round trip. Here a read is
tried first (the next request is often already there, since a session records the previous one
after replying), may poll for a few tens of microseconds (``spin``) while nothing else is
runnable, and only then waits for readability; a reply is written with one non-blocking
``write`` and falls back to ``send_all`` only for what did not fit.

trio's guarantees are kept: every call is a cancellation point, a socket closed by another
task wakes its reader with ``ClosedResourceError``, and a reader that keeps finding data still
yields to the scheduler at least every ``YIELD_EVERY`` reads, so a flood of frames cannot starve
the heartbeat or the log readers. Other streams (pipes, in-memory test streams, wrappers) use
the stream's own methods.
"""

from __future__ import annotations

import os
import time
from typing import Any

import trio

__all__ = ["YIELD_EVERY", "Spin", "receive_some", "send_all"]

#: A reader yields to the scheduler at least once per this many immediate reads.
YIELD_EVERY = 8
_immediate_reads = 0


class Spin:
    """A comm reader's polling budget, adapted to how soon its runtime sends the next request.

    It starts at ``cap``. A read that spun its whole budget, slept, and got the request within
    ``cap`` of starting to spin would have been served by a longer spin: the budget grows to
    cover that wait (up to ``cap``). One whose request came later still (a runtime doing real
    work between requests) wasted its spin: the budget halves, down to ``FLOOR``. A spin that
    finds its request costs nothing extra, so a catch leaves the budget as it is. A lock-step
    runtime is then polled about as long as it takes to answer, and a slow one hardly at all.
    """

    __slots__ = ("cap", "limit")

    #: The smallest budget: one that still catches a runtime answering at once.
    FLOOR = 10e-6

    def __init__(self, cap: float) -> None:
        self.cap = cap
        self.limit = cap

    def missed(self, waited: float) -> None:
        """The budget ran out; the request came ``waited`` seconds after the spin began."""
        if waited <= self.cap:
            self.limit = min(self.cap, max(self.limit, waited * 1.25))
        else:
            self.limit = max(min(self.FLOOR, self.cap), self.limit * 0.5)


async def receive_some(
    stream: trio.abc.ReceiveStream, max_bytes: int = 65536, *, spin: float | Spin = 0.0
) -> bytes | bytearray:
    """Like ``stream.receive_some(max_bytes)``: bytes, or ``b""`` at end of stream.

    With ``spin`` (seconds, or a ``Spin`` that adapts them), a read that finds nothing keeps
    polling the socket that long before sleeping, but only while no other task is runnable: the
    next lock-step request usually comes within tens of microseconds, and waking a sleeping
    process costs more than that here.
    """
    global _immediate_reads
    if not isinstance(stream, trio.SocketStream):
        return await stream.receive_some(max_bytes)
    sock = stream.socket
    fd = _fileno(sock)
    adaptive: Spin | None = None
    if isinstance(spin, Spin):
        adaptive, budget = spin, spin.limit
    else:
        budget = spin
    started = 0.0
    data: bytes | None
    try:
        data = os.read(fd, max_bytes)
    except (BlockingIOError, InterruptedError):
        data = None
        if budget > 0 and _runnable() == 0:
            started = time.perf_counter()
            deadline = started + budget
            while data is None and time.perf_counter() < deadline:
                try:
                    data = os.read(fd, max_bytes)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:
                    raise trio.BrokenResourceError(f"receive failed: {exc}") from exc
    except OSError as exc:  # ECONNRESET
        raise trio.BrokenResourceError(f"receive failed: {exc}") from exc
    if data is not None:
        # Found at once or by the spin: either way the loop has not run, so yield now and then,
        # or a runtime that always answers in time would keep every timer (a heartbeat's sleep)
        # from firing.
        _immediate_reads += 1
        if _immediate_reads % YIELD_EVERY:
            await trio.lowlevel.checkpoint_if_cancelled()
        else:
            await trio.lowlevel.checkpoint()
        return data
    while True:
        await trio.lowlevel.wait_readable(sock)  # a checkpoint
        fd = _fileno(sock)
        try:
            data = os.read(fd, max_bytes)
        except (BlockingIOError, InterruptedError):
            continue  # a spurious wake-up
        except OSError as exc:
            raise trio.BrokenResourceError(f"receive failed: {exc}") from exc
        if adaptive is not None and started:
            adaptive.missed(time.perf_counter() - started)
        return data


async def send_all(stream: trio.abc.SendStream, data: bytes) -> None:
    """Like ``stream.send_all(data)``; a reply that fits the socket buffer never yields."""
    sent = 0
    if isinstance(stream, trio.SocketStream):
        try:
            sent = os.write(_fileno(stream.socket), data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            raise trio.BrokenResourceError(f"send failed: {exc}") from exc
    if sent < len(data):
        await stream.send_all(memoryview(data)[sent:])


def _runnable_public() -> int:
    return trio.lowlevel.current_statistics().tasks_runnable


def _runnable_private() -> int:
    try:
        return len(_RUN_CONTEXT.runner.runq)
    except AttributeError:  # outside a run, or trio changed: the public call says
        return _runnable_public()


def _trio_run_context() -> Any:
    try:
        from trio._core import _run_context

        return _run_context.GLOBAL_RUN_CONTEXT
    except (ImportError, AttributeError):  # pragma: no cover - another trio layout
        return None


# How many tasks are runnable, asked once per spin: the public statistics build a record of
# five figures (~3 us here, a noticeable share of a round trip); trio's run queue is what they
# count. A trio without that queue gets the public call.
_RUN_CONTEXT = _trio_run_context()
_runnable = _runnable_private if _RUN_CONTEXT is not None else _runnable_public


def _fileno(sock: trio.socket.SocketType) -> int:
    fd = sock.fileno()
    if fd < 0:
        raise trio.ClosedResourceError("the socket was closed")
    return fd

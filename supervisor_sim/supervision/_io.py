"""Socket reads and writes for a session's channels, one scheduler pass cheaper than trio's.

trio's ``SocketStream`` tries every ``recv`` before waiting and yields to the scheduler after
every successful one. On the comm channel a request always arrives well after the last reply
went out, so the first try nearly always fails and the extra yield is pure cost: ~8 µs of a
~130 µs round trip. These helpers wait for readability first and then read once, and try a
plain non-blocking write before ``send_all``. Both keep trio's semantics: waiting is a
checkpoint (cancellable), and a socket closed by another task wakes the waiter with
``ClosedResourceError``. Streams without a socket (pipes, in-memory test streams) use the
stream's own methods.
"""

from __future__ import annotations

import os

import trio

__all__ = ["receive_some", "send_all"]


async def receive_some(stream: trio.abc.ReceiveStream, max_bytes: int = 65536) -> bytes:
    """Like ``stream.receive_some(max_bytes)``: bytes, or ``b""`` at end of stream."""
    sock = getattr(stream, "socket", None)
    if sock is None:
        return await stream.receive_some(max_bytes)
    while True:
        fd = sock.fileno()
        if fd < 0:
            raise trio.ClosedResourceError("the socket was closed")
        await trio.lowlevel.wait_readable(sock)
        try:
            return os.read(fd, max_bytes)
        except (BlockingIOError, InterruptedError):
            continue  # a spurious wake-up
        except OSError as exc:  # ECONNRESET, EBADF after a close from elsewhere
            if sock.fileno() < 0:
                raise trio.ClosedResourceError("the socket was closed") from None
            raise trio.BrokenResourceError(f"receive failed: {exc}") from exc


async def send_all(stream: trio.abc.SendStream, data: bytes) -> None:
    """Like ``stream.send_all(data)``; a reply that fits the socket buffer never yields."""
    sock = getattr(stream, "socket", None)
    sent = 0
    if sock is not None:
        fd = sock.fileno()
        if fd < 0:
            raise trio.ClosedResourceError("the socket was closed")
        try:
            sent = os.write(fd, data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            raise trio.BrokenResourceError(f"send failed: {exc}") from exc
    if sent < len(data):
        await stream.send_all(memoryview(data)[sent:])

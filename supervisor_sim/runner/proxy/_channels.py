"""Forwarding: every byte both ways, unchanged, in order, each direction on its own thread.

One thread per direction with blocking sockets is the shortest path a byte can take through a
Python process: the kernel wakes the thread waiting in ``recv`` and it calls ``sendall`` at
once (bench/proxy_bench.py compares it with trio). Each direction keeps its own flow control,
as a direct connection does: a peer that stops reading blocks only the direction it stops.

What arrives is handed to ``note`` before it is forwarded, so a reply can never be noted
before the request it answers (the recorder keeps that order). An end of stream is forwarded
as one (``shutdown(SHUT_WR)``): a runtime that half-closes --comm looks the same to Airflow.
A connection reset, or a peer that cannot be written to, closes the channel on both sides.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable

__all__ = ["Link", "Note", "Pipe"]

#: Called with (key, data) for every chunk read, before it is forwarded; b"" at end of stream.
Note = Callable[[str, bytes], None]

_CHUNK = 65536


def _start(target: Callable[[], None], name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


class Link:
    """A TCP channel (comm or logs) between the runtime and Airflow, forwarded both ways.

    Data from the runtime is noted as ``<name>-in``, data from Airflow as ``<name>-out``."""

    def __init__(
        self,
        name: str,
        runtime: socket.socket,
        airflow: socket.socket,
        note: Note,
        changed: threading.Event,
    ) -> None:
        self.name = name
        self._changed = changed
        self.runtime = runtime
        self.airflow = airflow
        self._note = note
        self._lock = threading.Lock()
        self._open = 2  # directions still forwarding
        self.closed = False
        #: Set once the runtime's side reached its end of stream (or broke).
        self.runtime_done = threading.Event()
        self.done = threading.Event()
        for sock in (runtime, airflow):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self._threads = [
            _start(lambda: self._pump(runtime, airflow, f"{name}-in"), f"proxy {name} in"),
            _start(lambda: self._pump(airflow, runtime, f"{name}-out"), f"proxy {name} out"),
        ]

    def _pump(self, src: socket.socket, dst: socket.socket, key: str) -> None:
        recv = src.recv
        send = dst.sendall
        note = self._note
        broken = False
        try:
            while True:
                data = recv(_CHUNK)
                if not data:
                    break
                note(key, data)
                send(data)
        except OSError:
            broken = True
        note(key, b"")
        if src is self.runtime:
            self.runtime_done.set()
            self._changed.set()
        if broken:
            self.close()
        else:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        with self._lock:
            self._open -= 1
            last = self._open == 0
        if last:
            self.close()
            self.done.set()
            self._changed.set()

    def close(self) -> None:
        """Close both sides (whatever is still being forwarded stops). Idempotent."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
        for sock in (self.runtime, self.airflow):
            try:
                # Wakes a thread blocked in recv on it; close alone would not.
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


class Pipe:
    """The runtime's stdout or stderr, copied to the proxy's own (Airflow's pipe), noted as
    ``name``. A destination that cannot be written any more is dropped, the source still read,
    so the runtime never blocks on a stream nobody reads."""

    def __init__(self, name: str, fd: int, out: int, note: Note, changed: threading.Event) -> None:
        self.name = name
        self._changed = changed
        self._fd = fd
        self._out: int | None = out
        self._note = note
        self.done = threading.Event()
        self._thread = _start(self._pump, f"proxy {name}")

    def _pump(self) -> None:
        read, write, note = os.read, os.write, self._note
        fd = self._fd
        try:
            while True:
                try:
                    data = read(fd, _CHUNK)
                except OSError:
                    break
                if not data:
                    break
                note(self.name, data)
                if self._out is not None:
                    try:
                        view = memoryview(data)
                        while view:
                            view = view[write(self._out, view) :]
                    except OSError:
                        self._out = None
            note(self.name, b"")
        finally:
            try:
                os.close(fd)
            except OSError:
                pass
            self.done.set()
            self._changed.set()

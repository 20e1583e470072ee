"""Heartbeats that fall due while the loop is busy, sent by whichever reader runs next.

trio runs every runnable task once per pass of its loop, in no order of urgency. When 1,000
runtimes make their requests at the same moment, one pass serves a request for each of them
(~100 ms), and a heartbeat that fell due meanwhile waits for the end of that pass, then for its
turn in the next one: late by up to two passes. So each session's heartbeat task also puts its
due time here, and the readers, before they serve what they read, send the heartbeats that are
due (``run_due``): in a burst a heartbeat goes out within one request's time of its due time.

Only calls the API client can answer without a checkpoint are sent this way (the embedded
stub, no fault planned: ``ExecutionAPIClient.request_now``); any other heartbeat stays with its
task, which sends it when it wakes. Both ways send the same call, at most one per due time.
"""

from __future__ import annotations

import heapq
import itertools
import math
import weakref
from collections.abc import Callable

import trio

__all__ = ["Pacer", "current_pacer", "pace"]


class Pacer:
    """Due heartbeats of one trio run: (due time, send) entries, the earliest first."""

    __slots__ = ("_heap", "_order", "next_due")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, weakref.WeakMethod[Callable[[float], None]]]] = []
        self._order = itertools.count()
        #: The earliest due time (``math.inf``: none), for a reader's one comparison.
        self.next_due = math.inf

    def due(self, when: float, send: Callable[[float], None]) -> None:
        """``send(when)`` once ``when`` (trio time) has passed, from the next ``run_due``.
        ``send`` (a bound method, held weakly: an ended session is not kept alive by its last
        entry) checks that it is still wanted: an entry is never taken back."""
        heapq.heappush(self._heap, (when, next(self._order), weakref.WeakMethod(send)))
        self.next_due = self._heap[0][0]

    def run_due(self) -> None:
        """Send every heartbeat that is due now (called from a reader, between requests, and
        by each heartbeat task when it wakes: so every entry goes once it is due)."""
        now = trio.current_time()
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, ref = heapq.heappop(heap)
            send = ref()
            if send is not None:
                send(when)
        self.next_due = heap[0][0] if heap else math.inf


_PACER: trio.lowlevel.RunVar[Pacer] = trio.lowlevel.RunVar("supervisor_sim_pacer")


def current_pacer() -> Pacer:
    """This trio run's pacer (one per process run: every session's readers share it)."""
    try:
        return _PACER.get()
    except LookupError:
        pacer = Pacer()
        _PACER.set(pacer)
        return pacer


def pace() -> None:
    """Send the heartbeats that are due now, from wherever a long stretch of work ends."""
    pacer = current_pacer()
    if pacer.next_due <= trio.current_time():
        pacer.run_due()

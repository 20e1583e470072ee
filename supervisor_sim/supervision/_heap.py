"""Keep the garbage collector's full passes short while many sessions run in one process.

CPython collects its oldest generation each time that generation has grown by a quarter, and
such a pass walks every object the process tracks. With 1,000 sessions starting in one
``run-dag`` the heap grows from ~45 to ~150 MB, and the passes that growth triggers took
50-235 ms each (``bench/scale.py`` with ``BENCH_GC_OUT``): every heartbeat and reply due
meanwhile waited that long, the largest part of the heartbeats' lateness while children start.

So while at least ``FREEZE_FROM`` sessions run, what survived a middle-generation pass is moved
out of the collector's sight (``gc.freeze()``, at most every ``FREEZE_EVERY`` seconds): the
full passes then walk only what came since. Frozen objects are never collected, and an ended
session leaves ~90 of them in cycles (~13 KB; measured at 1,000 sessions), so the freeze is
undone and one full pass reclaims them (``gc.unfreeze(); gc.collect()``), what is left being
frozen again: once no session runs (nobody waits on the loop then), and when ``RESET_AFTER``
times as many sessions have ended as ever ran at once since the last reset (a process that is
never idle: its frozen garbage stays within that many sessions' worth).
"""

from __future__ import annotations

import gc
import time
from typing import Any

__all__ = ["running_sessions", "session_ended", "session_started"]

#: Fewer sessions than this change nothing (their passes are short anyway).
FREEZE_FROM = 50
#: Seconds between two freezes.
FREEZE_EVERY = 0.5
#: Reset after this many times the high mark of running sessions have ended.
RESET_AFTER = 4

_running = 0
_high = 0  # the most sessions running at once since the last reset
_ended = 0  # sessions ended since the last reset
_last_freeze = 0.0
_hooked = False


def session_started() -> None:
    """A session of this process began."""
    global _running, _high, _hooked
    _running += 1
    _high = max(_high, _running)
    if _running >= FREEZE_FROM and not _hooked:
        gc.callbacks.append(_after_collection)
        _hooked = True


def session_ended() -> None:
    """That session is over (its child reaped, its records written)."""
    global _running, _ended, _hooked
    _running -= 1
    _ended += 1
    if not _hooked:
        return
    if _running == 0:
        gc.callbacks.remove(_after_collection)
        _hooked = False
        _reset()
    elif _ended >= RESET_AFTER * _high:
        _reset()


def running_sessions() -> int:
    """How many sessions of this process are running now."""
    return _running


def _after_collection(phase: str, info: dict[str, Any]) -> None:
    # Called by the collector at the end of a pass, when it is done with its lists: merging
    # them into the permanent generation is what gc.freeze() does from anywhere else. (A
    # gc.collect() from here would do nothing: one is in progress.)
    global _last_freeze
    if phase != "stop" or info["generation"] != 1 or _running < FREEZE_FROM:
        return
    now = time.monotonic()
    if now - _last_freeze >= FREEZE_EVERY:
        _last_freeze = now
        gc.freeze()


def _reset() -> None:
    global _high, _ended
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    _high, _ended = _running, 0

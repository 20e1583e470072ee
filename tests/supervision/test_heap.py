"""While many sessions run, the collector's full passes skip what was frozen, and nothing
frozen outlives the busy period: cycles left by ended sessions are collected once none runs,
or after ``RESET_AFTER`` times the high mark of sessions have ended in a process never idle."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from supervisor_sim.supervision import _heap


class _Cycle:
    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def heap(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh policy state, frozen objects released after the test."""
    for name, value in (("_running", 0), ("_high", 0), ("_ended", 0), ("_last_freeze", 0.0)):
        monkeypatch.setattr(_heap, name, value)
    monkeypatch.setattr(_heap, "_hooked", False)
    monkeypatch.setattr(_heap, "FREEZE_EVERY", 0.0)
    yield
    if _heap._after_collection in gc.callbacks:
        gc.callbacks.remove(_heap._after_collection)
    gc.unfreeze()


def _churn_young() -> None:
    """Enough allocations for the collector's young passes to run (a middle one among them)."""
    keep = []
    for _ in range(50):
        keep.append([[] for _ in range(1000)])
        gc.collect(1)


def test_few_sessions_freeze_nothing(heap: None):
    """Below FREEZE_FROM sessions the collector is left alone."""
    gc.unfreeze()
    for _ in range(_heap.FREEZE_FROM - 1):
        _heap.session_started()
    _churn_young()
    assert gc.get_freeze_count() == 0
    assert _heap._after_collection not in gc.callbacks
    for _ in range(_heap.FREEZE_FROM - 1):
        _heap.session_ended()


def test_many_sessions_freeze_and_their_cycles_are_collected_once_none_runs(heap: None):
    """With FREEZE_FROM sessions, middle passes freeze what survived; a cycle frozen then is
    collected when the last session ends, and the callback is gone."""
    gc.unfreeze()
    for _ in range(_heap.FREEZE_FROM):
        _heap.session_started()
    cycle = _Cycle()
    alive = weakref.ref(cycle)
    _churn_young()
    assert gc.get_freeze_count() > 0
    del cycle
    gc.collect()
    assert alive() is not None, "a frozen cycle is not collected while sessions run"
    for _ in range(_heap.FREEZE_FROM):
        _heap.session_ended()
    assert alive() is None
    assert _heap._after_collection not in gc.callbacks


def test_a_process_never_idle_resets_after_enough_sessions_ended(heap: None):
    """Sessions that keep ending while others run: after RESET_AFTER x the high mark have
    ended, the frozen cycles are collected though sessions still run."""
    gc.unfreeze()
    n = _heap.FREEZE_FROM
    for _ in range(n):
        _heap.session_started()
    cycle = _Cycle()
    alive = weakref.ref(cycle)
    _churn_young()
    del cycle
    for _ in range(_heap.RESET_AFTER * n - 1):
        _heap.session_ended()
        _heap.session_started()
    assert alive() is not None
    _heap.session_ended()
    _heap.session_started()
    assert alive() is None
    assert _heap.running_sessions() == n
    for _ in range(n):
        _heap.session_ended()

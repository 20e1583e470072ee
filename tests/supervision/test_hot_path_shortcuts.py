"""The round-trip path's shortcuts answer exactly what the calls they replace answer."""

from __future__ import annotations

from urllib.parse import quote as stdlib_quote

import pytest
import trio
from hypothesis import given, strategies as st

from supervisor_sim.supervision._dispatch import quote
from supervisor_sim.supervision._events import Journal
from supervisor_sim.supervision._io import _runnable


async def test_runnable_count_is_trios_own_count() -> None:
    """The spin's runnable count equals trio's tasks_runnable, with and without ready tasks."""
    assert _runnable() == trio.lowlevel.current_statistics().tasks_runnable
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(trio.lowlevel.checkpoint)
        # The three new tasks are queued and have not run yet.
        assert _runnable() == trio.lowlevel.current_statistics().tasks_runnable >= 3


@given(st.text(max_size=300) | st.binary(max_size=40), st.sampled_from(["", "/"]))
def test_cached_quote_is_urllib_quote(text: str | bytes, safe: str) -> None:
    """Quoting through the cache gives urllib's result, twice in a row."""
    assert quote(text, safe=safe) == stdlib_quote(text, safe=safe)
    assert quote(text, safe=safe) == stdlib_quote(text, safe=safe)


def test_cached_quote_refuses_what_urllib_refuses() -> None:
    """A key that is not text fails with urllib's own error, not the cache's."""
    with pytest.raises(TypeError, match="quote"):
        quote(["not", "text"])  # type: ignore[arg-type]


def test_event_times_are_whole_microseconds() -> None:
    """An event's time is already rounded to the microsecond: round(t, 6) leaves it as it is."""
    journal = Journal(started=0.0)  # large times, as in a long run, have the most digits
    for _ in range(2000):
        event = journal.emit("note", message="x")
        assert repr(event.t) == repr(round(event.t, 6))
    journal = Journal()
    for _ in range(2000):
        event = journal.emit("note", message="x")
        assert repr(event.t) == repr(round(event.t, 6))


def test_hold_and_release_deliver_once_in_order() -> None:
    """Events emitted under a hold reach the sinks at release, in order; a nested hold defers."""
    seen: list[int] = []
    journal = Journal(sinks=[lambda e: seen.append(e.seq)])
    outer = journal.hold()
    journal.emit("note", message="a")
    inner = journal.hold()
    assert inner is None
    journal.emit("note", message="b")
    journal.release(inner)
    assert seen == []
    journal.release(outer)
    assert seen == [1, 2]
    journal.emit("note", message="c")
    assert seen == [1, 2, 3]

"""Signs of life while tasks run, on a terminal only.

``StatusLine``: run-task's last line while the task runs — elapsed time, heartbeats sent,
requests served — redrawn about four times a second and cleared before anything else is
written (every other writer goes through ``StatusLine.stream``), and for good before the
summary. Standard library and trio only.

``DagTracker`` and ``dag_view``: run-dag's live view, which always fits the screen — counts by
state, then the running and failed tasks first, cut to the terminal's height with "... N more" —
and, once the run is over, ``print_report``: every task once, then for each failed task its
reason and transcript. rich is imported when those are called.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO, cast

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table

    from ..api import TaskInstanceRecord
    from ..runner import TaskResult
    from ..supervision import Event, TaskOutcome
    from ._console import Diagnosis

__all__ = ["DagTracker", "StatusLine", "dag_view", "print_report"]

_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_CLEAR = "\r\x1b[K"
#: The first frame a supervisor sends is not an answer to a request.
_OPENING_FRAMES = frozenset({"StartupDetails", "DagFileParseRequest"})


def _elapsed(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s"


class _ClearingStream:
    """A text stream that takes the status line off the screen before anything is written."""

    def __init__(self, stream: TextIO, status: StatusLine) -> None:
        self._stream = stream
        self._status = status

    def write(self, text: str) -> int:
        status = self._status
        if status.shown:
            status.clear()
        # Drawn only at the start of a line: \r would otherwise overwrite a partial one.
        status.at_line_start = text.endswith("\n") if text else status.at_line_start
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class StatusLine:
    """A journal sink counting heartbeats and served requests, and the line showing them.

    ``run`` (a trio task: spawn it as a system task, so that it never wraps the session's own
    errors in an exception group) redraws every ``interval`` seconds until ``stop``.
    """

    def __init__(
        self, stream: TextIO, label: str, *, colors: bool = True, interval: float = 0.25
    ) -> None:
        self._stream = stream
        self.label = label
        self.colors = colors
        self.interval = interval
        self.started = time.monotonic()
        self.heartbeats = 0
        self.requests = 0
        self.pid: int | None = None
        self.shown = False
        self.at_line_start = True
        self._frame = 0
        self._stopped = False
        self._scope: Any = None
        #: What every other writer of the terminal writes to while the line may be shown.
        self.stream = cast("TextIO", _ClearingStream(stream, self))

    def __call__(self, event: Event) -> None:
        kind = event.kind
        if kind == "frame":
            d = event.data
            if d.get("direction") == "out" and d.get("type") not in _OPENING_FRAMES:
                self.requests += 1
        elif kind == "http":
            d = event.data
            if d.get("cause") == "heartbeat" and (d.get("attempt") or 1) == 1:
                self.heartbeats += 1
        elif kind == "process" and event.data.get("event") == "spawn":
            self.pid = event.data.get("pid")

    def text(self) -> str:
        beats = "heartbeat" if self.heartbeats == 1 else "heartbeats"
        served = "request" if self.requests == 1 else "requests"
        spinner = _SPINNER[self._frame % len(_SPINNER)]
        return (
            f"{spinner} {self.label} running {_elapsed(time.monotonic() - self.started)} · "
            f"{self.heartbeats} {beats} sent · {self.requests} {served} served"
            + (f" · pid {self.pid}" if self.pid else "")
        )

    def draw(self) -> None:
        if self._stopped or not self.at_line_start:
            return
        self._frame += 1
        text = self.text()
        try:
            width = os.get_terminal_size(self._stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            width = 80
        if len(text) >= width:  # a wrapped line could not be cleared with \r
            text = text[: max(width - 2, 0)] + "…"
        if self.colors:
            text = f"\x1b[2m{text}\x1b[0m"
        try:
            self._stream.write(_CLEAR + text)
            self._stream.flush()
        except (OSError, ValueError):
            self._stopped = True
            return
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.shown = False
            try:
                self._stream.write(_CLEAR)
                self._stream.flush()
            except (OSError, ValueError):
                pass

    async def run(self) -> None:
        import trio

        with trio.CancelScope() as self._scope:
            if self._stopped:
                return
            while True:
                self.draw()
                await trio.sleep(self.interval)

    def stop(self) -> None:
        """No more drawing; the line is cleared."""
        self._stopped = True
        if self._scope is not None:
            self._scope.cancel()
        self.clear()


# --- run-dag ---------------------------------------------------------------------------------

_STYLE = {
    "success": "green",
    "failed": "red",
    "upstream_failed": "red",
    "running": "cyan",
    "up_for_retry": "yellow",
    "skipped": "magenta",
    "queued": "blue",
}
#: The order of the live view: what needs looking at first.
_PRIORITY = {"running": 0, "failed": 1, "up_for_retry": 2, "upstream_failed": 3, "queued": 4}


@dataclass
class _Try:
    map_index: int
    try_number: int
    outcome: TaskOutcome
    transcript: str | None
    diagnosis: Diagnosis | None


@dataclass
class _Task:
    running: set[int] = field(default_factory=set)
    tries: dict[int, int] = field(default_factory=dict)
    #: Each map index's last try (the one that decided its state).
    last: dict[int, _Try] = field(default_factory=dict)


class DagTracker:
    """What run-dag's view shows beyond the runner's results: which map indexes run now, the
    tries of each, and each instance's last outcome with its diagnosis and transcript."""

    def __init__(self) -> None:
        self.tasks: dict[str, _Task] = {}
        self.started = time.monotonic()

    def _task(self, task_id: str) -> _Task:
        return self.tasks.setdefault(task_id, _Task())

    def try_started(self, record: TaskInstanceRecord) -> None:
        task = self._task(record.task_id)
        task.running.add(record.map_index)
        task.tries[record.map_index] = task.tries.get(record.map_index, 0) + 1

    def try_ended(
        self,
        record: TaskInstanceRecord,
        outcome: TaskOutcome | None,
        transcript: str | None,
        diagnosis: Diagnosis | None,
    ) -> None:
        task = self._task(record.task_id)
        task.running.discard(record.map_index)
        if outcome is not None and outcome.interrupted and not outcome.started:
            # Interrupted before its runtime was given the task: not a try (as the runner).
            task.tries[record.map_index] -= 1
            if not task.tries[record.map_index]:
                del task.tries[record.map_index]
        elif outcome is not None:
            task.last[record.map_index] = _Try(
                record.map_index, record.try_number, outcome, transcript, diagnosis
            )

    def tries(self, result: TaskResult) -> int:
        """Tries of the task, or for a mapped task of its most-tried map index."""
        task = self.tasks.get(result.task_id)
        if task is None or not task.tries:
            return result.tries
        return max(task.tries.values())

    def failed_tries(self, task_id: str) -> list[_Try]:
        task = self.tasks.get(task_id)
        if task is None:
            return []
        return [t for _, t in sorted(task.last.items()) if t.outcome.final_state != "success"]


def _ranges(indexes: Iterable[int]) -> str:
    """``0-3,7`` for [0, 1, 2, 3, 7]."""
    out: list[str] = []
    run: list[int] = []
    for i in sorted(indexes):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def _map_cell(result: TaskResult, tracker: DagTracker) -> str:
    if not result.map_indexes:
        return ""
    cell = _ranges(result.map_indexes)
    task = tracker.tasks.get(result.task_id)
    if task is not None and task.running and result.state == "running":
        cell += f" ({_ranges(task.running)} running)"
    return cell


def _duration_cell(result: TaskResult, now: float) -> str:
    if result.duration_s is not None:
        return f"{result.duration_s:.2f}s"
    if result.started is not None and result.state in ("running", "up_for_retry", "queued"):
        return f"{now - result.started:.1f}s"
    return ""


def _state_cell(state: str) -> str:
    style = _STYLE.get(state, "")
    return f"[{style}]{state}[/{style}]" if style else state


def _table(results: Iterable[TaskResult], tracker: DagTracker, title: str | None) -> Table:
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("task", no_wrap=True, overflow="ellipsis")
    table.add_column("state", no_wrap=True)
    table.add_column("tries", justify="right", no_wrap=True)
    table.add_column("map", no_wrap=True, overflow="ellipsis")
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("violations", justify="right", no_wrap=True)
    now = time.monotonic()
    for r in results:
        tries = tracker.tries(r)
        table.add_row(
            r.task_id,
            _state_cell(r.state),
            str(tries) if tries else "",
            _map_cell(r, tracker),
            _duration_cell(r, now),
            str(r.violations or ""),
        )
    return table


def _counts(results: Iterable[TaskResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in results:
        state = "waiting" if r.state == "none" else r.state
        counts[state] = counts.get(state, 0) + 1
    return counts


def _counts_line(counts: Mapping[str, int]) -> str:
    order = ["running", "queued", "up_for_retry", "success", "failed", "upstream_failed"]
    keys = [k for k in order if k in counts] + sorted(k for k in counts if k not in order)
    return " · ".join(f"{_state_cell(k)} {counts[k]}" for k in keys)


def dag_view(
    title: str, results: Mapping[str, TaskResult], tracker: DagTracker, height: int
) -> RenderableType:
    """The live view of a DAG run, at most ``height`` lines: a title with the elapsed time,
    the counts by state, and the tasks that need looking at first (running, failed, retrying,
    queued, then the rest in DAG order), the others summed up in "... N more"."""
    from rich.console import Group
    from rich.text import Text

    ordered = sorted(results.values(), key=lambda r: _PRIORITY.get(r.state, len(_PRIORITY)))
    head = Text.from_markup(
        f"[bold]{title}[/bold] · {_elapsed(time.monotonic() - tracker.started)} · "
        f"{len(ordered)} tasks"
    )
    counts = Text.from_markup(_counts_line(_counts(ordered)))
    # Title, counts, the table's header and rule, "... N more", and the cursor's line.
    rows = max(height - 6, 1)
    shown, hidden = ordered[:rows], ordered[rows:]
    if len(hidden) == 1:  # the "more" line would take the row it hides
        shown, hidden = ordered, []
    parts: list[RenderableType] = [head, counts, _table(shown, tracker, None)]
    if hidden:
        more = _counts(hidden)
        parts.append(
            Text.from_markup(
                f"... {len(hidden)} more: "
                + ", ".join(f"{_state_cell(k)} {n}" for k, n in sorted(more.items()))
            )
        )
    return Group(*parts)


def _reason(t: _Try) -> str:
    if t.diagnosis is not None:
        reason = t.diagnosis.reason(t.outcome)
        if reason:
            return reason
    if t.outcome.error:
        return t.outcome.error
    state = t.outcome.final_state or "not started"
    return f"final state {state}, exit code {t.outcome.exit_code}"


def print_report(
    console: Console,
    title: str,
    results: Mapping[str, TaskResult],
    tracker: DagTracker,
    upstream: Mapping[str, Iterable[str]],
    interrupt: Mapping[str, Any] | None = None,
) -> None:
    """The run's end: every task once, then each failed task with its reason and transcript
    (a mapped task per failed map index), what was left upstream_failed by whom, and after an
    interrupt (``interrupt``: run-dag's ``--json`` object of it) which tasks it stopped and
    which never started."""
    from rich.markup import escape

    from ._console import printable, shown_path

    console.print(f"[bold]{escape(title)}[/bold]", soft_wrap=True)
    console.print(_table(results.values(), tracker, None))
    failed = [r for r in results.values() if r.state == "failed"]
    if failed:
        console.print(f"[bold red]{len(failed)} failed[/bold red] (why, then the transcript)")
    for r in failed:
        tries = tracker.failed_tries(r.task_id)
        if not tries:
            console.print(
                f"  [bold]{escape(r.task_id)}[/bold]  {escape(printable(r.error or 'failed'))}"
            )
            continue
        for t in tries:
            name = r.task_id + (f"[{t.map_index}]" if t.map_index >= 0 else "")
            why = escape(printable(_reason(t)))
            console.print(f"  [bold]{escape(name)}[/bold] try {t.try_number}  [red]{why}[/red]")
            if t.transcript:
                console.print(f"    {escape(shown_path(t.transcript))}", soft_wrap=True)
    blocked = [r for r in results.values() if r.state == "upstream_failed"]
    if blocked:
        names = []
        for r in blocked:
            by = [u for u in upstream.get(r.task_id, ()) if results[u].state in _BLOCKING]
            names.append(f"{r.task_id} (after {', '.join(by)})" if by else r.task_id)
        console.print(f"[red]upstream_failed[/red] {len(blocked)}: " + escape(", ".join(names)))
    if interrupt is not None:
        parts = []
        for key, what in (
            ("stopped", "stopped while running"),
            ("not_run", "never started"),
            ("retry_not_run", "next try not run"),
        ):
            tasks: list[str] = interrupt.get(key) or []
            if tasks:
                more = f" and {len(tasks) - _NAMED} more" if len(tasks) > _NAMED + 1 else ""
                shown = tasks[:_NAMED] if more else tasks
                parts.append(f"{what} {len(tasks)}: {', '.join(shown)}{more}")
        console.print(
            f"[bold yellow]interrupted[/bold yellow] by {escape(str(interrupt['signal']))}"
            + (": " + escape("; ".join(parts)) if parts else "; every task had ended"),
            soft_wrap=True,
        )


#: Tasks named one by one in the report's interrupt line; the rest are counted.
_NAMED = 8

_BLOCKING = frozenset({"failed", "upstream_failed", "not_started", "server_terminated"})

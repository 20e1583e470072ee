"""A runtime's structured exception (``error_detail``) back as the traceback Python would print.

Airflow's task runner logs an exception as structlog's ``dict_tracebacks`` do: a list of stacks,
the exception raised first and then what caused it, each ``{exc_type, exc_value, exc_notes,
syntax_error, is_cause, frames: [{filename, lineno, name}], is_group, exceptions}``. Airflow's
supervisor forwards that list as ``error_detail``; other runtimes send what they like, so every
part is optional here and whatever is not of the expected shape is shown as it is, never raised.
Standard library only: the console imports it for every failed task.
"""

from __future__ import annotations

from typing import Any

__all__ = ["exception_summary", "render_traceback"]

_CAUSE = "The above exception was the direct cause of the following exception:"
_CONTEXT = "During handling of the above exception, another exception occurred:"
#: Frames shown per stack; a deep recursion keeps its first and last frames.
MAX_FRAMES = 60
#: Nested exception groups shown before the rest is elided.
MAX_DEPTH = 8


def exception_summary(detail: Any) -> str | None:
    """``"ExcType: message"`` of the exception that was raised last (the first stack), or None
    when ``detail`` names none."""
    stacks = _stacks(detail)
    if not stacks or not isinstance(stacks[0], dict):
        return None
    return _exception_line(stacks[0]) or None


def render_traceback(detail: Any) -> list[str]:
    """The lines Python's ``traceback.print_exception`` would print for ``detail``: causes
    first, then the exception raised last."""
    if isinstance(detail, str):
        return detail.splitlines()
    return _render_trace(_stacks(detail), 0)


def _stacks(detail: Any) -> list[Any]:
    if isinstance(detail, list):
        return detail
    if isinstance(detail, dict):
        # A Trace ({"stacks": [...]}) or a single stack.
        stacks = detail.get("stacks")
        return stacks if isinstance(stacks, list) else [detail]
    return [] if detail is None else [detail]


def _render_trace(stacks: list[Any], depth: int) -> list[str]:
    lines: list[str] = []
    # stacks[i + 1] caused stacks[i] (is_cause) or was being handled when it was raised.
    for i in range(len(stacks) - 1, -1, -1):
        if i < len(stacks) - 1:
            later = stacks[i + 1]
            lines += ["", _CAUSE if isinstance(later, dict) and later.get("is_cause") else _CONTEXT]
            lines.append("")
        lines += _render_stack(stacks[i], depth)
    return lines


def _render_stack(stack: Any, depth: int) -> list[str]:
    if not isinstance(stack, dict):
        return [repr(stack)]
    group = bool(stack.get("is_group"))
    lines: list[str] = []
    frames = stack.get("frames")
    if isinstance(frames, list) and frames:
        title = "Exception Group Traceback" if group else "Traceback"
        lines.append(f"{title} (most recent call last):")
        lines += _render_frames(frames)
    syntax = stack.get("syntax_error")
    if isinstance(syntax, dict):
        lines += _render_syntax_error(syntax)
    lines.append(_exception_line(stack) or "<exception without a type>")
    notes = stack.get("exc_notes")
    if isinstance(notes, list):
        lines += [str(note) for note in notes]
    subs = stack.get("exceptions")
    if group and isinstance(subs, list) and subs:
        if depth >= MAX_DEPTH:
            lines.append(f"  ... {len(subs)} nested exceptions not shown")
            return lines
        for n, sub in enumerate(subs, 1):
            lines.append(f"  +---------------- {n} ----------------")
            lines += ["    | " + line for line in _render_trace(_stacks(sub), depth + 1)]
        lines.append("    +------------------------------------")
    return lines


def _render_frames(frames: list[Any]) -> list[str]:
    shown = frames
    elided = 0
    if len(frames) > MAX_FRAMES:
        head = MAX_FRAMES // 3
        shown = [*frames[:head], None, *frames[-(MAX_FRAMES - head) :]]
        elided = len(frames) - MAX_FRAMES
    lines: list[str] = []
    previous: str | None = None
    repeats = 0
    for frame in shown:
        if frame is None:
            lines.append(f"  [... {elided} more frames ...]")
            previous, repeats = None, 0
            continue
        text = _frame_lines(frame)
        if text[0] == previous:
            # Python prints a frame repeated more than three times once, with a count.
            repeats += 1
            if repeats >= 3:
                continue
        else:
            if repeats >= 3:
                lines.append(f"  [Previous line repeated {repeats - 2} more times]")
            previous, repeats = text[0], 0
        lines += text
    if repeats >= 3:
        lines.append(f"  [Previous line repeated {repeats - 2} more times]")
    return lines


def _frame_lines(frame: Any) -> list[str]:
    if not isinstance(frame, dict):
        return [f"  {frame!r}"]
    out = [
        f'  File "{frame.get("filename", "?")}", line {frame.get("lineno", "?")}, '
        f"in {frame.get('name', '?')}"
    ]
    source = frame.get("line")
    if isinstance(source, str) and source.strip():
        out.append("    " + source.strip())
    return out


def _render_syntax_error(syntax: dict[str, Any]) -> list[str]:
    lines = [f'  File "{syntax.get("filename", "?")}", line {syntax.get("lineno", "?")}']
    source = syntax.get("line")
    if isinstance(source, str) and source.strip():
        stripped = source.rstrip("\n")
        indent = len(stripped) - len(stripped.lstrip())
        lines.append("    " + stripped.strip())
        offset = syntax.get("offset")
        if isinstance(offset, int) and offset > indent:
            lines.append("    " + " " * (offset - 1 - indent) + "^")
    return lines


def _exception_line(stack: dict[str, Any]) -> str:
    exc_type = stack.get("exc_type")
    value = stack.get("exc_value")
    name = str(exc_type) if exc_type else ""
    if value in (None, ""):
        return name
    return f"{name}: {value}" if name else str(value)

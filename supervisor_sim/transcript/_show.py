"""``supervisor-sim show``: a transcript as a terminal timeline.

One line per event: time since start, direction, type, id and a short summary. HTTP calls are
indented under the frame that caused them; violations stand out. Colour only on a terminal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from ..protocol import render_traceback, to_jsonable
from ._reader import Transcript, frame_body

__all__ = ["render_timeline"]

_COLOURS = {
    "in": "36",
    "out": "32",
    "http": "90",
    "log": "37",
    "violation": "31;1",
    "process": "33",
    "note": "35",
}


#: JSON values that hold no tagged value (``{"$ts": ...}``) and are their own decoding.
_PLAIN = frozenset({str, int, float, bool, type(None)})


def _printable(text: str) -> str:
    """``text`` with control characters escaped (``\\x1b``, ``\\r``, ``\\x07`` shown as such): a
    transcript is someone else's recording, and its log lines must not clear the screen, move
    the cursor, set the window title or write the clipboard of whoever reads it."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _c(text: str, kind: str, colour: bool) -> str:
    code = _COLOURS.get(kind)
    return f"\x1b[{code}m{text}\x1b[0m" if colour and code else text


def _json(value: Any) -> str:
    """``value`` as JSON text; a map with keys JSON cannot have (bytes, tuples, datetimes) is
    shown in its tagged form, ``{"$map": [[key, value], ...]}``."""
    try:
        return json.dumps(value, default=str)
    except TypeError:
        return json.dumps(to_jsonable(value), default=str)


def _summary(body: Any, limit: int = 90) -> str:
    if not isinstance(body, dict):
        return ""
    parts = []
    for k, v in body.items():
        if k in ("type", "ti_context"):
            continue
        if k == "ti" and isinstance(v, dict):
            v = f"{v.get('dag_id')}.{v.get('task_id')} try {v.get('try_number')}"
        text = v if isinstance(v, str) else _json(v)
        if len(text) > 40:
            text = text[:37] + "..."
        parts.append(f"{k}={text}")
    out = " ".join(parts)
    return out if len(out) <= limit else out[: limit - 3] + "..."


def _line(record: dict[str, Any]) -> tuple[str, str]:
    kind = record["record"]
    t = f"{record.get('t', 0):9.3f}s"
    if kind == "frame":
        arrow = "runtime → sup " if record["dir"] == "in" else "sup → runtime "
        typ = record.get("type") or ("ack" if record["dir"] == "out" else "?")
        body = record.get("body")
        if not (
            type(body) is dict and len(body) > 1 and _PLAIN.issuperset(map(type, body.values()))
        ):
            body = frame_body(record)  # tagged values decoded; a body of plain values has none
        extra = _summary(body)
        if record.get("error"):
            err = record["error"]
            extra = (
                f"error={err.get('error') if isinstance(err, dict) else err} "
                + json.dumps(err.get("detail") if isinstance(err, dict) else None, default=str)[:60]
            )
        if record.get("decode_error"):
            extra = f"UNDECODABLE: {record['decode_error']}"
        return record["dir"], f"{t}  {arrow} {typ:<26} #{record.get('id')!s:<4} {extra}"
    if kind == "http":
        status = record.get("status") if record.get("status") is not None else record.get("error")
        q = f"?{record['query']}" if record.get("query") else ""
        return "http", f"{t}      ↳ {record['method']} {record['path']}{q} → {status}"
    if kind == "log":
        line = record.get("line", {})
        level = str(line.get("level", "info")).upper()
        text = f"{t}  log[{record.get('source')}] {level:<7} {line.get('event', '')}"
        detail = line.get("error_detail") if isinstance(line, dict) else None
        if detail:
            # The runtime's structured exception, as the traceback Python would have printed.
            text += "".join(f"\n{'':13}{row}" for row in render_traceback(detail))
        return "log", text
    if kind == "violation":
        return "violation", (
            f"{t}  VIOLATION {record.get('rule')}: {record.get('message')}\n"
            f"{'':13}Airflow: {record.get('airflow')}"
        )
    if kind == "process":
        detail = " ".join(
            f"{k}={v}" for k, v in record.items() if k not in ("record", "seq", "t", "event")
        )
        return "process", f"{t}  process {record.get('event')} {detail}"
    return kind, f"{t}  {kind} {record.get('level', '')} {record.get('message', '')}"


def render_timeline(
    transcript: Transcript,
    *,
    only: str | None = None,
    types: Iterable[str] = (),
    grep: str | None = None,
    colour: bool = False,
) -> list[str]:
    """The timeline as lines (without trailing newlines)."""
    wanted_types = set(types)
    pattern = re.compile(grep) if grep else None
    h = transcript.header
    task = h.get("task", {})
    out = [
        f"transcript {transcript.path}",
        f"  task      {task.get('dag_id')}.{task.get('task_id')} try "
        f"{task.get('try_number')} run {task.get('run_id')}",
        f"  runtime   {' '.join(h.get('runtime', []))}",
        f"  recorded  {h.get('created')} by supervisor-sim {h.get('tool_version')}"
        f"{' (secrets redacted)' if h.get('redacted') else ''}",
    ]
    if transcript.truncated:
        out.append(f"  TRUNCATED {transcript.truncated}")
    for problem in transcript.problems:
        out.append(f"  problem   {problem}")
    out = [_printable(line) for line in out]
    out.append("")
    kinds = {"frames": {"frame"}, "http": {"http"}, "logs": {"log"}}.get(only or "")
    for record in transcript.records:
        kind = record["record"]
        if kinds is not None and kind not in kinds:
            continue
        if wanted_types and (kind != "frame" or record.get("type") not in wanted_types):
            continue
        style, text = _line(record)
        if pattern and not pattern.search(text):
            continue
        out.append(_c(_printable(text), style, colour))
    footer = transcript.footer
    if footer is not None and not (only or wanted_types or grep):
        out.append("")
        counts = footer.get("counts")
        tally = (
            ", ".join(f"{n} {k}" for k, n in counts.items())
            if isinstance(counts, dict)
            else str(counts or "")
        )
        out.append(
            f"final state {footer.get('final_state')}, exit code {footer.get('exit_code')}"
            + (f"; records: {tally}" if tally else "")
        )
    return out

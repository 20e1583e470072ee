"""A transcript as one self-contained HTML page: a sequence diagram of the session.

Three lanes (Runtime, supervisor-sim, Execution API) with an arrow per frame and per HTTP
request and response, in ``seq`` order; the HTTP calls a request caused sit inside that
request's exchange (a tinted band and an activation bar on the supervisor's lifeline, from the
request to its reply). Log lines are in a margin column at their time position, violations are
red bands across the page, process events are notes on the runtime lane. Clicking an arrow (or
opening the page with ``#select=SEQ``) shows the full record in a details panel. The page can
search the records (their type, body and log text), filter them by type, channel and level, and
jump from one error or violation to the next (docs/transcript.md, "HTML view").

It opens a 100,000-frame transcript in well under two seconds (bench/html_scale.py) because it
only ever draws the rows in view (virtual scrolling) and carries the records compactly:

- an index (``<script type="application/json" id="transcript-index">``): per record its kind,
  time, ``seq``, type, level, flags (error, heartbeat), place in an exchange, and the record
  that answers or caused it, as flat columns (strings of one character per record, lists of
  small numbers);
- the records themselves, as JSON Lines compressed with zlib and written in base64, in chunks of
  ``CHUNK`` records (``<script type="application/octet-stream" class="records-chunk">``); the
  page inflates them with the browser's ``DecompressionStream`` (the chunks the first screen
  needs first, the others in the background) and parses a record only when it draws or shows
  it;
- the text search looks in, one line per record, in chunks of the same size
  (``class="search-chunk"``).

The page has no external resource: its CSS and JS (package data: ``_assets/view.css`` and
``_assets/view.js``) are inlined. The index is JSON with ``<``, ``>`` and ``&`` written as
``\\u`` escapes and the chunks are base64, so no recorded string can close its element; the
script sets text with ``textContent`` only, and the header is rendered here, every value
HTML-escaped. Without JavaScript the header is shown with a notice.

Arrow elements carry ``data-kind`` (``request``, ``reply``, ``http-request``,
``http-response``), ``data-type`` (the frame's message type, ``ack`` for an empty reply, or
``METHOD path`` for HTTP) and ``data-seq`` (the record's ``seq``; both arrows of one HTTP call
share it). Every frame sent to the runtime is a ``reply`` arrow, StartupDetails included.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import os
import re
import shlex
import stat
import zlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any, TypeGuard

from ..protocol import exception_summary, render_traceback
from ._reader import Transcript

__all__ = ["CHUNK", "render_html", "runtime_label", "script_json", "write_html"]

#: Records per compressed chunk: small enough that the first screen waits for little, large
#: enough that a 100,000-frame transcript is a few dozen chunks.
CHUNK = 8192

_PLACEHOLDER = re.compile(r"%%([A-Z]+)%%")

_STATE_CLASSES = {
    "success": "ok",
    "failed": "bad",
    "upstream_failed": "bad",
    "removed": "bad",
    "server_terminated": "bad",
    "up_for_retry": "warn",
    "up_for_reschedule": "warn",
    "deferred": "info",
    "awaiting_input": "info",
    "skipped": "muted",
}

# Log levels as the level filter orders them (1 debug ... 5 critical); unknown ones are info.
_LEVELS = {
    "notset": "1", "trace": "1", "debug": "1", "info": "2", "warn": "3", "warning": "3",
    "error": "4", "exception": "4", "critical": "5", "fatal": "5",
}  # fmt: skip
_ERROR_LEVELS = {"4", "5"}
_LOG_KINDS = {"logs": "L", "stdout": "S", "stderr": "E"}

# Flag bits of a record in the index (one character: chr(48 + bits)).
_F_ERROR = 1
_F_HEARTBEAT = 2


def render_html(transcript: Transcript) -> str:
    """The whole page for ``transcript``, as one HTML string."""
    header = transcript.header
    task = header.get("task") or {}
    records = transcript.records
    # Indexed as read; sorted and indexed again only if the seqs were out of order (as written
    # they never are): the lazy reader decodes every record again on each pass.
    index, stats = _index(records, task)
    if not stats.pop("in_seq_order"):
        records = sorted(records, key=_seq_key)
        index, stats = _index(records, task)
        del stats["in_seq_order"]
    title = f"{task.get('dag_id')}.{task.get('task_id')}"
    parts = {
        "TITLE": _e(f"{title} · supervisor-sim transcript"),
        "CSS": _asset("view.css"),
        "HEADER": _header_html(transcript, index["kinds"], stats),
        "LANES": _lanes_html(header),
        "INDEX": script_json(index),
        "RECORDS": _chunks("records-chunk", (_record_line(r) for r in records), len(records)),
        "SEARCH": _chunks("search-chunk", (_search_line(r) for r in records), len(records)),
        "JS": _asset("view.js"),
    }
    # One pass, so a recorded string that looks like a placeholder stays as it is.
    return _PLACEHOLDER.sub(lambda m: parts[m.group(1)], _PAGE)


def write_html(transcript: Transcript, path: str | os.PathLike[str]) -> Path:
    """Render ``transcript`` and write the page to ``path`` (UTF-8); returns the path.

    The page holds everything the transcript holds, so it gets the transcript's own file mode,
    ``0600``, whether or not the transcript was redacted (an existing regular file is set to it
    too). A lone surrogate in a recorded string (valid in JSON, not in UTF-8) is written as its
    ``\\uXXXX`` escape, which the page's JSON reads back as the same character."""
    out = Path(path)
    data = render_html(transcript).encode("utf-8", errors="backslashreplace")
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, 0o600)
        f.write(data)
    return out


def runtime_label(argv: list[str]) -> str:
    """The runtime command, short enough for a lane label: the program's file name, and of
    every other argument that is a path its last two parts (``python reference/runtime.py``),
    cut to 40 characters."""
    if not argv:
        return ""
    parts = [os.path.basename(argv[0]) or argv[0]]
    for arg in argv[1:]:
        if "/" in arg and not arg.startswith("-"):
            arg = "/".join(p for p in arg.split("/") if p)
            arg = "/".join(arg.split("/")[-2:]) or arg
        parts.append(arg)
    text = shlex.join(parts)
    return text if len(text) <= 40 else text[:39] + "…"


def script_json(value: Any) -> str:
    """JSON safe to place inside ``<script type="application/json">``: no ``<``, ``>`` or
    ``&`` characters (they only occur inside strings, where ``\\uXXXX`` means the same), no
    line separators, and no bare NaN/Infinity (which ``JSON.parse`` rejects)."""
    text = _json(value, ascii_only=False)
    for char, repl in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, repl)
    return text


# --- the data ------------------------------------------------------------------------------------


def _no_default(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def _encoder(*, ascii_only: bool) -> Any:
    """``json.dumps(value, ensure_ascii=ascii_only, separators=(",", ":"), allow_nan=False)``
    as the C encoder built once (``dumps`` builds one per call, a third of the time spent on a
    small record), without the circular-reference check: records come from JSON, so they are
    trees. Raises ValueError or TypeError where ``dumps`` would."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has the C encoder
        return functools.partial(
            json.dumps, ensure_ascii=ascii_only, separators=(",", ":"), allow_nan=False
        )
    string = json.encoder.encode_basestring_ascii if ascii_only else json.encoder.encode_basestring
    chunks = make(None, _no_default, string, None, ":", ",", False, False, False)
    return lambda value: "".join(chunks(value, 0))


_ENCODE_ASCII = _encoder(ascii_only=True)
_ENCODE_TEXT = _encoder(ascii_only=False)


def _json(value: Any, *, ascii_only: bool) -> str:
    try:
        return str((_ENCODE_ASCII if ascii_only else _ENCODE_TEXT)(value))
    except (ValueError, TypeError, RecursionError):
        return json.dumps(
            _finite(value),
            ensure_ascii=ascii_only,
            separators=(",", ":"),
            allow_nan=False,
            default=str,
        )


def _record_line(record: dict[str, Any]) -> str:
    # ASCII: the line holds no raw newline, and a lone surrogate is its own escape.
    try:
        return str(_ENCODE_ASCII(record))
    except (ValueError, TypeError, RecursionError):
        return _json(record, ascii_only=True)


def _search_line(r: dict[str, Any]) -> str:
    """What the search looks in for one record: its type and body, or its log text."""
    kind = r.get("record")
    if kind == "frame":
        parts = [_frame_type(r), f"#{r.get('id')}", _json(r.get("body"), ascii_only=False)]
        if r.get("error") is not None:
            parts.append(_json(r.get("error"), ascii_only=False))
        if r.get("decode_error"):
            parts.append(str(r.get("decode_error")))
    elif kind == "http":
        query = f"?{r.get('query')}" if r.get("query") else ""
        parts = [f"{r.get('method')} {r.get('path')}{query}", str(r.get("status"))]
        if r.get("error"):
            parts.append(str(r.get("error")))
        for side in ("request", "response"):
            message = r.get(side)
            if isinstance(message, dict) and "json" in message:
                parts.append(_json(message["json"], ascii_only=False))
    elif kind == "log":
        line = r.get("line")
        if isinstance(line, dict):
            rest = {k: v for k, v in line.items() if k not in ("level", "logger", "event")}
            parts = [str(r.get("source")), str(line.get("level")), str(line.get("logger", "")),
                     _text(line.get("event")), _json(rest, ascii_only=False)]  # fmt: skip
        else:
            parts = [str(r.get("source")), _text(line)]
    elif kind == "violation":
        parts = ["violation", _text(r.get("rule")), _text(r.get("message")),
                 _text(r.get("airflow"))]  # fmt: skip
    elif kind == "note":
        parts = [_text(r.get("level")), _text(r.get("message"))]
    else:
        rest = {k: v for k, v in r.items() if k not in ("record", "seq", "t")}
        parts = [str(kind), _json(rest, ascii_only=False)]
    text = " ".join(parts)
    return text.replace("\n", " ").replace("\r", " ") if "\n" in text or "\r" in text else text


def _text(value: Any) -> str:
    return value if isinstance(value, str) else _json(value, ascii_only=False)


def _chunks(cls: str, lines: Iterable[str], count: int) -> str:
    """``<script>`` elements of ``CHUNK`` lines each: zlib-compressed UTF-8, base64. The
    compression runs in a thread (zlib releases the GIL) while the next lines are encoded."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        futures = []
        batch: list[str] = []
        first = 0
        for line in lines:
            batch.append(line)
            if len(batch) == CHUNK:
                futures.append(pool.submit(_chunk, cls, first, batch))
                first += len(batch)
                batch = []
        if batch or not futures:
            futures.append(pool.submit(_chunk, cls, first, batch))
        assert first + len(batch) == count
        return "\n".join(f.result() for f in futures)


def _chunk(cls: str, first: int, lines: list[str]) -> str:
    # "replace": a lone surrogate cannot be UTF-8; in the search text it becomes "?".
    data = zlib.compress("\n".join(lines).encode("utf-8", "replace"), 6)
    return (
        f'<script type="application/octet-stream" class="{cls}" data-first="{first}" '
        f'data-count="{len(lines)}">{base64.b64encode(data).decode("ascii")}</script>'
    )


_EX_MARKS = {("start", "a"): "S", ("start", "b"): "s", ("mid", "a"): "M", ("mid", "b"): "m",
             ("end", "a"): "E", ("end", "b"): "e"}  # fmt: skip


def _index(
    records: list[dict[str, Any]], task: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The columns the page draws, filters and navigates with (see the module docstring), and
    what the header says that the columns do not: the failed HTTP calls, the last time."""
    n = len(records)
    kinds: list[str] = []
    levels: list[str] = []
    flags: list[str] = []
    ex: list[str] = []
    type_ids: list[int] = []
    link = [0] * n
    times: list[int] = []
    seqs: list[float] = []
    types: dict[str, int] = {}
    type_kind: list[str] = []
    type_count: list[int] = []
    seq_index: dict[Any, int] = {}
    open_: dict[Any, int] = {}  # frame id -> request index, while its exchange is open
    parity = "b"
    last_ms = 0
    last_t: float | None = None
    http_bad = 0
    # Log lines carrying a runtime's structured exception: index -> [summary, traceback], the
    # traceback as Python would print it (render_traceback, as show and the console do). Few
    # records have one, so a sparse map costs nothing for the rest.
    tracebacks: dict[str, list[str]] = {}
    in_seq_order = True  # what sorting by _seq_key would leave as it is
    previous_seq: float = -math.inf
    for i, r in enumerate(records):
        get = r.get
        seq = get("seq")
        if _numeric(seq):
            seqs.append(seq)
            if seq not in seq_index:
                seq_index[seq] = i
            if seq < previous_seq:
                in_seq_order = False
            previous_seq = seq
        else:
            in_seq_order = False
        t = get("t")
        if _numeric(t):
            ms = round(t * 1000)
            times.append(ms - last_ms)
            last_ms = ms
            if last_t is None or t > last_t:
                last_t = t
        else:
            times.append(0)
        kind = get("record")
        bits = 0
        level = "-"
        state = ""
        if kind == "frame":
            fid = get("id")
            if isinstance(fid, dict | list):
                fid = None
            typ = get("type")
            decode_error = get("decode_error")
            if typ is None:
                typ = "undecodable" if get("dir") == "in" or decode_error else "ack"
            elif type(typ) is not str:
                typ = str(typ)
            if decode_error or get("error") is not None:
                bits = _F_ERROR
            if get("dir") == "in":
                code = "I"
                if not decode_error and fid is not None:
                    open_[fid] = i
                    state = "start"
            else:
                code = "O"
                if typ == "ErrorResponse":
                    bits = _F_ERROR
                if fid is not None and fid in open_:
                    request = open_.pop(fid)
                    link[i] = request - i
                    link[request] = i - request
                    state = "end"
        elif kind == "http":
            code = "H"
            typ = f"{get('method')} {_route(get('path'))}"
            status = get("status")
            if type(status) is not int or status >= 400:
                bits = _F_ERROR
                http_bad += 1
            elif get("error"):
                bits = _F_ERROR
            cause = get("cause")
            if cause == "heartbeat":
                bits |= _F_HEARTBEAT
            elif _numeric(cause) and cause in seq_index:
                link[i] = seq_index[cause] - i
        elif kind == "log":
            line = get("line")
            source = get("source")
            code = _LOG_KINDS.get(source, "L") if isinstance(source, str) else "L"
            typ = "log line"
            raw_level = line.get("level", "info") if isinstance(line, dict) else "info"
            level = _LEVELS.get(str(raw_level).lower(), "2")
            if level in _ERROR_LEVELS:
                bits = _F_ERROR
            detail = line.get("error_detail") if isinstance(line, dict) else None
            if detail:
                tracebacks[str(i)] = [
                    exception_summary(detail) or "",
                    "\n".join(render_traceback(detail)),
                ]
        elif kind == "violation":
            code, typ = "V", "violation"
            bits = _F_ERROR
        elif kind == "process":
            code, typ = "P", "process event"
            event = get("event")
            if event == "reject" or (
                event == "exit" and (get("exit_code") not in (0, None) or get("signal"))
            ):
                bits = _F_ERROR
        elif kind == "note":
            code, typ = "N", "supervisor note"
            level = _LEVELS.get(str(get("level", "info")).lower(), "2")
            if level in _ERROR_LEVELS:
                bits = _F_ERROR
        else:
            code, typ = "X", str(kind)
        # The exchange band: tinted from a request to its reply, alternating two tints.
        if code == "V":
            ex.append(".")
        else:
            if state == "start":
                parity = "a" if parity == "b" else "b"
            elif not state and open_:
                state = "mid"
            ex.append(_EX_MARKS[state, parity] if state else ".")
            if code == "P" and get("event") == "exit":
                open_.clear()
        type_id = types.get(typ)
        if type_id is None:
            type_id = types[typ] = len(types)
            type_kind.append(code if code in "IOH" else "X")
            type_count.append(0)
        type_count[type_id] += 1
        type_ids.append(type_id)
        kinds.append(code)
        levels.append(level)
        flags.append(_FLAG_CHARS[bits])
    index = {
        "n": n,
        "chunk": CHUNK,
        "task": {
            "ti_id": str((task.get("ti") or {}).get("id") or ""),
            "run_id": str(task.get("run_id") or ""),
        },
        "kinds": "".join(kinds),
        "levels": "".join(levels),
        "flags": "".join(flags),
        "ex": "".join(ex),
        "types": list(types),
        "type_kind": "".join(type_kind),
        "type_count": type_count,
        "type": type_ids,
        "link": link,
        "t": times,
        "seq": [s - p for s, p in zip(seqs, [0, *seqs], strict=False)],
        "tracebacks": tracebacks,
    }
    return index, {"http_bad": http_bad, "last_t": last_t, "in_seq_order": in_seq_order}


_FLAG_CHARS = [chr(48 + bits) for bits in range(4)]


def _frame_type(r: dict[str, Any]) -> str:
    typ = r.get("type")
    if typ is not None:
        return str(typ)
    if r.get("dir") == "in" or r.get("decode_error"):
        return "undecodable"
    return "ack"


def _route(path: Any) -> str:
    """An HTTP path as the type filter groups it: its first two segments."""
    segments = [s for s in str(path).split("/") if s]
    return "/" + "/".join(segments[:2]) + ("/…" if len(segments) > 2 else "")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _numeric(value: Any) -> TypeGuard[int | float]:
    """An int or a finite float (not a bool): what a ``seq`` or a ``t`` must be to be used."""
    t = type(value)
    return t is int or (t is float and value - value == 0.0)


def _seq_key(record: dict[str, Any]) -> tuple[int, float]:
    seq = record.get("seq")
    return (0, float(seq)) if _numeric(seq) else (1, 0.0)


# --- the page ------------------------------------------------------------------------------------


@functools.cache
def _asset(name: str) -> str:
    """The text of a file in ``_assets`` (package data, inlined into every page)."""
    assets = resources.files(__package__).joinpath("_assets")
    return assets.joinpath(name).read_text(encoding="utf-8")


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _header_html(transcript: Transcript, kinds: str, stats: dict[str, Any]) -> str:
    h = transcript.header
    task = h.get("task") or {}
    ti = task.get("ti") or {}
    footer = transcript.footer
    frames_in, frames_out, http = kinds.count("I"), kinds.count("O"), kinds.count("H")
    logs = kinds.count("L") + kinds.count("S") + kinds.count("E")
    violations, process = kinds.count("V"), kinds.count("P")
    http_bad = stats["http_bad"]
    last = stats["last_t"]
    duration = f"{last:.3f} s" if last is not None else "—"

    state: Any
    if footer is None:
        state, state_cls = "unknown (no footer)", "bad"
        exit_code: Any = "—"
    else:
        state = footer.get("final_state")
        state_cls = _STATE_CLASSES.get(str(state), "info")
        exit_code = footer.get("exit_code")
        state = "—" if state is None else state

    def fact(label: str, value: str, *, raw: bool = False, ident: str = "") -> str:
        id_attr = f' id="{ident}"' if ident else ""
        return f"<dt>{_e(label)}</dt> <dd{id_attr}>{value if raw else _e(value)}</dd>"

    counts = (
        f'<span class="count" title="frames the runtime sent">{frames_in:,} in</span> / '
        f'<span class="count" title="frames the supervisor sent">{frames_out:,} out</span>'
    )
    http_text = f"{http:,}" + (
        f' <span class="bad-text">({http_bad:,} failed or ≥ 400)</span>' if http_bad else ""
    )
    viol_text = f'<span class="bad-text">{violations:,}</span>' if violations else "0"
    runtime = " ".join(str(a) for a in h.get("runtime") or [])
    recorded = f"{h.get('created')} by supervisor-sim {h.get('tool_version')}"
    if h.get("redacted"):
        recorded += " · secrets redacted"
    facts = [
        fact(
            "run",
            f"{task.get('run_id')} · try {task.get('try_number')}"
            + (f" · map index {task.get('map_index')}" if task.get("map_index", -1) != -1 else ""),
        ),
        fact("task instance", str(ti.get("id", "—"))),
        fact("runtime", f"<code>{_e(runtime) or '—'}</code>", raw=True),
        fact("recorded", recorded),
        fact("Execution API", str(h.get("api", "—"))),
        fact("exit code", str(exit_code), ident="exit-code"),
        fact("duration", duration),
        fact("frames", counts, raw=True),
        fact("HTTP calls", http_text, raw=True),
        fact("log lines", f"{logs:,}"),
        fact("violations", viol_text, raw=True, ident="violation-count"),
        fact("process events", f"{process:,}"),
    ]
    banners = []
    if transcript.truncated:
        banners.append(
            '<div class="banner banner-truncated" id="banner-truncated" role="alert">'
            f"<strong>Truncated transcript.</strong> {_e(transcript.truncated)}</div>"
        )
    if transcript.problems:
        items = "".join(f"<li>{_e(p)}</li>" for p in transcript.problems)
        banners.append(
            '<div class="banner banner-problems" id="banner-problems" role="alert">'
            f"<strong>{len(transcript.problems)} problem"
            f"{'s' if len(transcript.problems) != 1 else ''} reading this transcript:</strong>"
            f"<ul>{items}</ul></div>"
        )
    return (
        '<header class="page-header">'
        '<div class="title-row">'
        f'<h1><span class="muted">task</span> {_e(task.get("dag_id"))}.'
        f"<strong>{_e(task.get('task_id'))}</strong></h1> "
        f'<span class="state state-{state_cls}" id="final-state" title="final state">'
        f"{_e(state)}</span> "
        f'<span class="path" title="transcript file">{_e(transcript.path)}</span>'
        "</div>"
        f'<dl class="facts">{" ".join(facts)}</dl>'
        f"{''.join(banners)}"
        "</header>"
    )


def _lanes_html(header: dict[str, Any]) -> str:
    argv = [str(a) for a in header.get("runtime") or []]
    api = header.get("api") or ""
    api_hint = "embedded stub" if api == "stub" else str(api)
    return (
        '<div class="lanes" id="lanes">'
        '<div class="t">t (s)</div>'
        '<div class="d">'
        f'<div class="lane lane-rt" title="{_e(shlex.join(argv))}"><b>Runtime</b> '
        f'<small id="runtime-label">{_e(runtime_label(argv))}</small></div>'
        '<div class="lane lane-sup"><b>supervisor-sim</b> <small>supervisor</small></div>'
        f'<div class="lane lane-api" title="{_e(api)}"><b>Execution API</b> '
        f"<small>{_e(api_hint)}</small></div>"
        "</div>"
        '<div class="m">Logs <small>(logs · stdout · stderr)</small></div>'
        "</div>"
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; \
style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>%%TITLE%%</title>
<style>
%%CSS%%</style>
<noscript><style>.toolbar, .content { display: none; }</style></noscript>
</head>
<body>
%%HEADER%%
<noscript><div class="banner banner-problems noscript">This page draws the sequence diagram \
with JavaScript, which is off. The facts above come from the transcript; \
<code>supervisor-sim show TRANSCRIPT</code> prints every record in a terminal.</div></noscript>
<div class="toolbar" id="toolbar">
<div class="tb-row">
<span class="search-box"><input type="search" id="search" placeholder="Search type, body, log \
text" title="Search the records' type, body and log text (/)" autocomplete="off" \
spellcheck="false" aria-label="Search">\
<button type="button" id="search-prev" title="Previous hit (Shift+Enter, N)">&#9650;</button>\
<button type="button" id="search-next" title="Next hit (Enter, n)">&#9660;</button>\
<span class="search-count" id="search-count" aria-live="polite"></span></span>
<span class="jump"><button type="button" id="prev-error" title="Previous error (E)">\
&#9664;</button><span id="error-count" class="jump-label">errors</span>\
<button type="button" id="next-error" title="Next error (e)">&#9654;</button></span>
<span class="jump"><button type="button" id="prev-violation" title="Previous violation (V)">\
&#9664;</button><span id="violation-nav" class="jump-label">violations</span>\
<button type="button" id="next-violation" title="Next violation (v)">&#9654;</button></span>
<span class="hint" title="Keyboard: / search; Enter and Shift+Enter in the box, or n and N, \
next and previous hit; e and E next and previous error; v and V next and previous violation; \
Enter opens what is selected; Esc closes it"><kbd>/</kbd> <kbd>n</kbd> <kbd>e</kbd> \
<kbd>v</kbd> <kbd>Esc</kbd></span>
<span class="legend">
<span class="lg lg-request">request</span>
<span class="lg lg-reply">reply</span>
<span class="lg lg-ack">ack</span>
<span class="lg lg-error">error</span>
<span class="lg lg-http">HTTP</span>
</span>
</div>
<div class="tb-row">
<label>type <select id="filter-type"><option value="">all types</option></select></label>
<label>level <select id="filter-level"><option value="0">all levels</option>\
<option value="2">info and up</option><option value="3">warning and up</option>\
<option value="4">error and up</option></select></label>
<span class="channels" title="Channels shown">\
<label><input type="checkbox" id="ch-comm" checked> comm</label>\
<label><input type="checkbox" id="ch-api" checked> API</label>\
<label><input type="checkbox" id="show-heartbeats" checked> heartbeats</label>\
<label><input type="checkbox" id="ch-logs" checked> logs</label>\
<label><input type="checkbox" id="ch-stdout" checked> stdout</label>\
<label><input type="checkbox" id="ch-stderr" checked> stderr</label>\
<label><input type="checkbox" id="ch-process" checked> process</label>\
<label><input type="checkbox" id="ch-notes" checked> notes</label></span>
<span class="shown" id="shown-count"></span>
</div>
</div>
<pre class="js-errors" id="js-errors" hidden></pre>
<div class="content">
<main class="diagram" id="diagram" tabindex="-1">
%%LANES%%
<div class="rows" id="rows"><div class="win" id="win"></div></div>
<div class="empty" id="empty" hidden>No record matches the filters.</div>
</main>
<aside class="details" id="details" hidden aria-live="polite">
<div class="details-head"><h2 id="details-title">Details</h2>\
<button type="button" id="details-close" title="Close (Esc)">&times;</button></div>
<div class="details-body" id="details-body"></div>
</aside>
</div>
<script type="application/json" id="transcript-index">%%INDEX%%</script>
%%RECORDS%%
%%SEARCH%%
<script>
%%JS%%</script>
</body>
</html>
"""

"""A transcript as one self-contained HTML page: a sequence diagram of the session.

Three lanes (Runtime, supervisor-sim, Execution API) with an arrow per frame and per HTTP
request and response, in ``seq`` order; the HTTP calls a request caused sit inside that
request's exchange (a tinted band and an activation bar on the supervisor's lifeline, from the
request to its reply). Log lines are in a margin column at their time position, violations are
red bands across the page, process events are notes on the runtime lane. Clicking an arrow (or
opening the page with ``#select=SEQ``) shows the full record in a details panel.

The page has no external resource: its CSS and JS (package data: ``_assets/view.css`` and
``_assets/view.js``) are inlined, and the transcript's records are embedded as JSON in a
``<script type="application/json">`` element with ``<``, ``>`` and ``&`` written as ``\\u``
escapes, so no recorded string can close the element. The script builds the rows with plain DOM
calls and sets text with ``textContent`` only; the header is rendered here, with every value
HTML-escaped.

Arrow elements carry ``data-kind`` (``request``, ``reply``, ``http-request``,
``http-response``), ``data-type`` (the frame's message type, ``ack`` for an empty reply, or
``METHOD path`` for HTTP) and ``data-seq`` (the record's ``seq``; both arrows of one HTTP call
share it). Every frame sent to the runtime is a ``reply`` arrow, StartupDetails included.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from ._reader import Transcript

__all__ = ["render_html", "write_html"]

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


def render_html(transcript: Transcript) -> str:
    """The whole page for ``transcript``, as one HTML string."""
    header = transcript.header
    task = header.get("task") or {}
    footer = transcript.footer
    records = sorted(transcript.records, key=_seq_key)
    title = f"{task.get('dag_id')}.{task.get('task_id')}"
    data = {"header": header, "records": records, "footer": footer}
    parts = {
        "TITLE": _e(f"{title} · supervisor-sim transcript"),
        "CSS": _asset("view.css"),
        "HEADER": _header_html(transcript, records),
        "LANES": _lanes_html(header),
        "DATA": script_json(data),
        "JS": _asset("view.js"),
    }
    # One pass, so a recorded string that looks like a placeholder stays as it is.
    return _PLACEHOLDER.sub(lambda m: parts[m.group(1)], _PAGE)


@functools.cache
def _asset(name: str) -> str:
    """The text of a file in ``_assets`` (package data, inlined into every page)."""
    assets = resources.files(__package__).joinpath("_assets")
    return assets.joinpath(name).read_text(encoding="utf-8")


def write_html(transcript: Transcript, path: str | os.PathLike[str]) -> Path:
    """Render ``transcript`` and write the page to ``path`` (UTF-8); returns the path.

    A lone surrogate in a recorded string (valid in JSON, not in UTF-8) is written as its
    ``\\uXXXX`` escape, which the page's JSON data reads back as the same character."""
    out = Path(path)
    out.write_text(render_html(transcript), encoding="utf-8", errors="backslashreplace")
    return out


def script_json(value: Any) -> str:
    """JSON safe to place inside ``<script type="application/json">``: no ``<``, ``>`` or
    ``&`` characters (they only occur inside strings, where ``\\uXXXX`` means the same), no
    line separators, and no bare NaN/Infinity (which ``JSON.parse`` rejects)."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError):
        text = json.dumps(
            _finite(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str
        )
    for char, repl in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, repl)
    return text


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _seq_key(record: dict[str, Any]) -> tuple[int, float]:
    seq = record.get("seq")
    return (0, float(seq)) if isinstance(seq, int | float) else (1, 0.0)


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _header_html(transcript: Transcript, records: list[dict[str, Any]]) -> str:
    h = transcript.header
    task = h.get("task") or {}
    ti = task.get("ti") or {}
    footer = transcript.footer
    frames_in = sum(1 for r in records if r.get("record") == "frame" and r.get("dir") == "in")
    frames_out = sum(1 for r in records if r.get("record") == "frame" and r.get("dir") != "in")
    http = [r for r in records if r.get("record") == "http"]
    http_bad = sum(
        1 for r in http if not isinstance(r.get("status"), int) or r.get("status", 0) >= 400
    )
    logs = sum(1 for r in records if r.get("record") == "log")
    violations = sum(1 for r in records if r.get("record") == "violation")
    process = sum(1 for r in records if r.get("record") == "process")
    times = [r["t"] for r in records if isinstance(r.get("t"), int | float)]
    duration = f"{max(times):.3f} s" if times else "—"

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
        return f"<dt>{_e(label)}</dt><dd{id_attr}>{value if raw else _e(value)}</dd>"

    counts = (
        f'<span class="count" title="frames the runtime sent">{frames_in} in</span> / '
        f'<span class="count" title="frames the supervisor sent">{frames_out} out</span>'
    )
    http_text = f"{len(http)}" + (
        f' <span class="bad-text">({http_bad} failed or ≥ 400)</span>' if http_bad else ""
    )
    viol_text = f'<span class="bad-text">{violations}</span>' if violations else f"{violations}"
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
        fact("log lines", str(logs)),
        fact("violations", viol_text, raw=True, ident="violation-count"),
        fact("process events", str(process)),
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
        f"<strong>{_e(task.get('task_id'))}</strong></h1>"
        f'<span class="state state-{state_cls}" id="final-state" title="final state">'
        f"{_e(state)}</span>"
        f'<span class="path" title="transcript file">{_e(transcript.path)}</span>'
        "</div>"
        f'<dl class="facts">{"".join(facts)}</dl>'
        f"{''.join(banners)}"
        "</header>"
    )


def _lanes_html(header: dict[str, Any]) -> str:
    runtime = [str(a) for a in header.get("runtime") or []]
    programs = [a for a in runtime if not a.startswith("-")] or runtime
    runtime_hint = os.path.basename(programs[-1]) if programs else ""
    api = header.get("api") or ""
    api_hint = "embedded stub" if api == "stub" else str(api)
    return (
        '<div class="lanes" id="lanes">'
        '<div class="t">t (s)</div>'
        '<div class="d">'
        f'<div class="lane lane-rt"><b>Runtime</b><small>{_e(runtime_hint)}</small></div>'
        '<div class="lane lane-sup"><b>supervisor-sim</b><small>supervisor</small></div>'
        f'<div class="lane lane-api"><b>Execution API</b><small>{_e(api_hint)}</small></div>'
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
</head>
<body>
%%HEADER%%
<div class="toolbar" id="toolbar">
<label><input type="checkbox" id="show-logs" checked> log lines</label>
<label><input type="checkbox" id="show-process" checked> process events</label>
<label><input type="checkbox" id="show-heartbeats" checked> heartbeats</label>
<span class="legend">
<span class="lg lg-request">request</span>
<span class="lg lg-reply">reply</span>
<span class="lg lg-ack">ack</span>
<span class="lg lg-error">error</span>
<span class="lg lg-http">HTTP</span>
</span>
<span class="hint">Click an arrow for its full body.</span>
</div>
<pre class="js-errors" id="js-errors" hidden></pre>
<noscript><p class="banner banner-problems">This page draws the diagram with JavaScript.</p>\
</noscript>
<div class="content">
<main class="diagram" id="diagram">
%%LANES%%
<div id="rows"></div>
</main>
<aside class="details" id="details" hidden aria-live="polite">
<div class="details-head"><h2 id="details-title">Details</h2>\
<button type="button" id="details-close" title="Close (Esc)">&times;</button></div>
<div class="details-body" id="details-body"></div>
</aside>
</div>
<script type="application/json" id="transcript-data">%%DATA%%</script>
<script>
%%JS%%</script>
</body>
</html>
"""

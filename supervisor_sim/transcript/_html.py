"""A transcript as one self-contained HTML page: a sequence diagram of the session.

Three lanes (Runtime, supervisor-sim, Execution API) with an arrow per frame and per HTTP
request and response, in ``seq`` order; the HTTP calls a request caused sit inside that
request's exchange (a tinted band and an activation bar on the supervisor's lifeline, from the
request to its reply). Log lines are in a margin column at their time position, violations are
red bands across the page, process events are notes on the runtime lane. Clicking an arrow (or
opening the page with ``#select=SEQ``) shows the full record in a details panel.

The page has no external resource: CSS and JS are inline, and the transcript's records are
embedded as JSON in a ``<script type="application/json">`` element with ``<``, ``>`` and ``&``
written as ``\\u`` escapes, so no recorded string can close the element. The script builds the
rows with plain DOM calls and sets text with ``textContent`` only; the header is rendered here,
with every value HTML-escaped.

Arrow elements carry ``data-kind`` (``request``, ``reply``, ``http-request``,
``http-response``), ``data-type`` (the frame's message type, ``ack`` for an empty reply, or
``METHOD path`` for HTTP) and ``data-seq`` (the record's ``seq``; both arrows of one HTTP call
share it). Every frame sent to the runtime is a ``reply`` arrow, StartupDetails included.
"""

from __future__ import annotations

import json
import math
import os
import re
from html import escape
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
        "CSS": _CSS,
        "HEADER": _header_html(transcript, records),
        "LANES": _lanes_html(header),
        "DATA": script_json(data),
        "JS": _JS,
    }
    # One pass, so a recorded string that looks like a placeholder stays as it is.
    return _PLACEHOLDER.sub(lambda m: parts[m.group(1)], _PAGE)


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
<style>%%CSS%%</style>
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
<script>%%JS%%</script>
</body>
</html>
"""

_CSS = r"""
:root {
  --fg: #1f2328; --muted: #59636e; --faint: #8c959f; --border: #d1d9e0; --panel: #f6f8fa;
  --bg: #ffffff; --life: #c8d1da;
  --c-request: #0969da; --c-reply: #1a7f37; --c-ack: #818b98; --c-http: #8250df;
  --c-warn: #9a6700; --c-warn-bg: #fff8c5; --c-err: #cf222e; --c-err-bg: #ffebe9;
  --c-4xx: #bc4c00; --c-4xx-bg: #fff1e5;
  --x-rt: 8%; --x-sup: 49%; --x-api: 91%;
  --mono: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", "Liberation Mono", Menlo,
    Consolas, monospace;
  --sans: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", "Liberation Sans", Arial,
    sans-serif;
}
* { box-sizing: border-box; }
html, body { margin: 0; padding: 0; background: var(--bg); color: var(--fg); height: 100%; }
body { font: 13px/1.4 var(--sans); display: flex; flex-direction: column; overflow: hidden; }
.page-header, .toolbar, .js-errors, noscript { flex: none; }
code, pre, .mono { font-family: var(--mono); }
.muted { color: var(--muted); font-weight: normal; }
.bad-text { color: var(--c-err); font-weight: 600; }

.page-header { padding: 14px 20px 10px; border-bottom: 1px solid var(--border);
  background: var(--panel); }
.title-row { display: flex; align-items: baseline; gap: 14px; flex-wrap: wrap; }
h1 { font-size: 19px; margin: 0; font-weight: 500; font-family: var(--mono); }
h1 strong { font-weight: 700; }
.state { font: 600 13px var(--sans); padding: 2px 10px; border-radius: 12px;
  border: 1px solid currentColor; text-transform: uppercase; letter-spacing: .03em; }
.state-ok { color: #1a7f37; background: #dafbe1; }
.state-bad { color: var(--c-err); background: var(--c-err-bg); }
.state-warn { color: var(--c-warn); background: var(--c-warn-bg); }
.state-info { color: var(--c-request); background: #ddf4ff; }
.state-muted { color: var(--muted); background: #eaeef2; }
.path { color: var(--muted); font: 12px var(--mono); margin-left: auto; overflow-wrap: anywhere; }
.facts { display: grid; grid-template-columns: max-content 1fr max-content 1fr max-content 1fr;
  gap: 3px 12px; margin: 10px 0 0; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; overflow-wrap: anywhere; }
.facts code { font-size: 12px; }
.banner { margin: 10px 0 0; padding: 8px 12px; border-radius: 6px; border: 1px solid; }
.banner ul { margin: 4px 0 0; padding-left: 20px; }
.banner-truncated { background: var(--c-warn-bg); border-color: #d4a72c; color: #4d2d00; }
.banner-problems { background: var(--c-err-bg); border-color: #ff8182; color: #82071e; }

.toolbar { display: flex; align-items: center; gap: 16px; padding: 6px 20px;
  border-bottom: 1px solid var(--border); color: var(--muted); font-size: 12px; flex-wrap: wrap; }
.toolbar label { cursor: pointer; user-select: none; }
.toolbar input { vertical-align: -2px; margin: 0 3px 0 0; }
.legend { display: flex; gap: 12px; }
.lg::before { content: ""; display: inline-block; width: 18px; height: 0; margin-right: 5px;
  vertical-align: middle; border-top: 2px solid; }
.lg-request::before { border-color: var(--c-request); }
.lg-reply::before { border-color: var(--c-reply); border-top-style: dashed; }
.lg-ack::before { border-color: var(--c-ack); border-top-style: dashed; }
.lg-error::before { border-color: var(--c-err); }
.lg-http::before { border-color: var(--c-http); }
.hint { margin-left: auto; }
.js-errors { margin: 8px 20px; padding: 8px; background: var(--c-err-bg); color: #82071e; }

.content { flex: 1; min-height: 0; position: relative; }
.diagram { position: absolute; inset: 0; overflow: auto; padding: 0 0 40px; }
.lanes, .row { display: grid; grid-template-columns: 62px minmax(480px, 1fr) minmax(300px, 31%); }
.lanes { position: sticky; top: 0; z-index: 5; background: #fff;
  border-bottom: 1px solid var(--border); height: 46px; }
.lanes .t { color: var(--muted); font-size: 11px; text-align: right; padding: 16px 8px 0 0; }
.lanes .d { position: relative; }
.lanes .m { padding: 15px 10px 0; font-weight: 600; border-left: 1px solid var(--border); }
.lanes .m small { font-weight: normal; color: var(--muted); }
.lane { position: absolute; top: 6px; transform: translateX(-50%); text-align: center;
  padding: 2px 12px; border: 1.5px solid var(--fg); border-radius: 6px; background: #fff;
  white-space: nowrap; line-height: 1.2; }
.lane b { display: block; font-size: 13px; }
.lane small { display: block; color: var(--muted); font: 10.5px var(--mono); max-width: 220px;
  overflow: hidden; text-overflow: ellipsis; }
.lane-rt { left: var(--x-rt); } .lane-sup { left: var(--x-sup); } .lane-api { left: var(--x-api); }
.lane-rt { border-color: var(--c-request); } .lane-api { border-color: var(--c-http); }

.row { content-visibility: auto; contain-intrinsic-size: auto 30px; }
.row > .t { font: 11px/30px var(--mono); color: var(--faint); text-align: right;
  padding-right: 8px; white-space: nowrap; }
.row > .d { position: relative; min-height: 30px;
  background-image: linear-gradient(var(--life), var(--life)),
    linear-gradient(var(--life), var(--life)), linear-gradient(var(--life), var(--life));
  background-size: 1px 100%; background-repeat: no-repeat;
  background-position: var(--x-rt) 0, var(--x-sup) 0, var(--x-api) 0; }
.row > .m { border-left: 1px solid var(--border); padding: 0 10px; min-width: 0; }
.row.in-ex > .d { background-color: #f2f7fe; }
.row.in-ex.ex-b > .d { background-color: #f6f3fd; }
.row.r-log > .d, .row.r-log > .t { min-height: 20px; line-height: 20px; }
.row.r-log { contain-intrinsic-size: auto 20px; }
.row.r-proc > .d, .row.r-note > .d { min-height: 24px; }
.row.r-proc > .t, .row.r-note > .t { line-height: 24px; }

.arrow { position: absolute; top: 0; height: 30px; cursor: pointer; z-index: 2; --c: var(--fg); }
.arrow:hover .label, .arrow:focus .label { text-decoration: underline; }
.arrow:focus { outline: none; }
.arrow.selected .label { background: #fff8c5; outline: 1px solid #d4a72c; border-radius: 3px; }
.span-rs { left: var(--x-rt); right: calc(100% - var(--x-sup) + 6px); }
.span-rs.rtl { left: var(--x-rt); }
.span-sa { left: calc(var(--x-sup) + 6px); right: calc(100% - var(--x-api)); }
.arrow .label { position: absolute; left: 10px; right: 10px; top: 4px; text-align: center;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; font: 12px/15px var(--mono);
  color: var(--fg); padding: 0 3px; }
.arrow .line { position: absolute; left: 0; right: 0; top: 21px; height: 2px;
  background: var(--c); }
.arrow.dashed .line { background: repeating-linear-gradient(to right, var(--c) 0 6px,
  transparent 6px 10px); }
.arrow .line::after { content: ""; position: absolute; top: -4px; width: 0; height: 0;
  border-top: 5px solid transparent; border-bottom: 5px solid transparent; }
.arrow.ltr .line::after { right: -1px; border-left: 9px solid var(--c); }
.arrow.rtl .line::after { left: -1px; border-right: 9px solid var(--c); }
.label .ty { font-weight: 700; }
.label .id, .label .sum, .label .q, .label .dur { color: var(--muted); }
.label .tag { font: 10px/13px var(--sans); padding: 0 5px; border-radius: 7px; margin-right: 5px;
  background: #eaeef2; color: var(--muted); display: inline-block; vertical-align: 1px; }
.arrow.request { --c: var(--c-request); }
.arrow.request .ty { color: var(--c-request); }
.arrow.reply { --c: var(--c-reply); }
.arrow.reply .ty { color: var(--c-reply); }
.arrow.reply.ack { --c: var(--c-ack); }
.arrow.reply.ack .ty { color: var(--c-ack); font-weight: 600; }
.arrow.reply.body-error { --c: var(--c-warn); }
.arrow.reply.body-error .ty { color: var(--c-warn); }
.arrow.err { --c: var(--c-err); }
.arrow.err .label { color: var(--c-err); }
.arrow.err .ty { color: var(--c-err); }
.arrow.err .ty::before { content: "✕ "; }
.arrow.http-request, .arrow.http-response { --c: var(--c-http); }
.arrow.http-request .ty { color: var(--c-http); }
.status { font-weight: 700; padding: 0 5px; border-radius: 3px; }
.status.s2, .status.s3 { color: #1a7f37; }
.arrow.s4 { --c: var(--c-4xx); }
.status.s4 { color: var(--c-4xx); background: var(--c-4xx-bg); outline: 1px solid #fb8f44; }
.arrow.s5, .arrow.sx { --c: var(--c-err); }
.status.s5, .status.sx { color: var(--c-err); background: var(--c-err-bg);
  outline: 1px solid #ff8182; }

.act { position: absolute; left: calc(var(--x-sup) - 5px); width: 11px; top: 0; bottom: 0;
  background: #dbe6f3; border-left: 1px solid #7d94ae; border-right: 1px solid #7d94ae;
  z-index: 1; }
.act.start { top: 21px; border-top: 1px solid #7d94ae; }
.act.end { bottom: auto; height: 23px; border-bottom: 1px solid #7d94ae; }

.note { position: absolute; top: 3px; height: 19px; font: 11.5px/17px var(--mono);
  padding: 0 7px; border-radius: 3px; border: 1px solid #d4a72c; background: #fff8c5;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; cursor: pointer; z-index: 2; }
.note.on-rt { left: calc(var(--x-rt) - 22px);
  max-width: calc(var(--x-sup) - var(--x-rt) + 10px); }
.note.on-sup { left: calc(var(--x-sup) - 22px);
  max-width: calc(var(--x-api) - var(--x-sup) + 10px); }
.note .ev { font-weight: 700; }
.note .dim { color: var(--muted); }
.note.proc-signal { background: #ffe7c4; border-color: #fb8f44; }
.note.proc-exit.exit-ok { background: #dafbe1; border-color: #4ac26b; }
.note.proc-exit.exit-bad, .note.proc-reject { background: var(--c-err-bg); border-color: #ff8182; }
.note.proc-minor { background: #f6f8fa; border-color: var(--border); color: var(--muted); }
.note.sup-note { background: #f5f0ff; border-color: #c297ff; }
.note.sup-note.lvl-warning, .note.sup-note.lvl-error { background: var(--c-err-bg);
  border-color: #ff8182; }

.log { font: 11.5px/20px var(--mono); overflow-wrap: anywhere; cursor: pointer; }
.log .src { color: var(--faint); margin-right: 6px; }
.log .lvl { font-weight: 700; margin-right: 6px; color: var(--muted); }
.log .lg-name { color: var(--faint); margin-right: 6px; }
.log .kv { color: var(--muted); margin-left: 6px; }
.log.lvl-warning .lvl { color: var(--c-warn); }
.log.lvl-error .lvl, .log.lvl-critical .lvl, .log.lvl-exception .lvl { color: var(--c-err); }
.log.lvl-error .ev, .log.lvl-critical .ev { color: #82071e; }
.log.src-stderr .src { color: var(--c-err); }
.log:hover { background: var(--panel); }

.row.r-violation { display: block; margin: 3px 0; padding: 6px 12px 7px 74px;
  background: var(--c-err-bg); border-top: 1px solid #ff8182; border-bottom: 1px solid #ff8182;
  border-left: 5px solid var(--c-err); cursor: pointer; content-visibility: visible;
  position: relative; }
.r-violation .vt { position: absolute; left: 6px; top: 7px; width: 58px; text-align: right;
  font: 11px var(--mono); color: var(--c-err); }
.r-violation .vhead { color: var(--c-err); font-weight: 700; }
.r-violation .vrule { font-family: var(--mono); background: #fff; border: 1px solid #ff8182;
  border-radius: 3px; padding: 0 5px; margin: 0 6px; }
.r-violation .vairflow { color: #82071e; margin-top: 2px; }
.r-violation .vairflow b { font-weight: 700; }
.r-violation.selected { outline: 2px solid #d4a72c; }
.row.r-gap > .d, .row.r-gap > .t { min-height: 18px; line-height: 18px; }
.row.r-gap > .d { background-image: none; text-align: center; color: var(--faint);
  font: italic 11px/18px var(--sans); }

body.hide-logs .r-log, body.hide-process .r-proc, body.hide-heartbeats .hb { display: none; }

.details { position: absolute; top: 0; right: 0; bottom: 0; width: min(640px, 46vw); z-index: 20;
  background: #fff; border-left: 1px solid var(--border);
  box-shadow: -6px 0 24px rgba(31,35,40,.15); display: flex; flex-direction: column; }
.details[hidden] { display: none; }
.details-head { display: flex; align-items: center; gap: 8px; padding: 10px 14px;
  border-bottom: 1px solid var(--border); background: var(--panel); }
.details-head h2 { font: 600 14px var(--mono); margin: 0; flex: 1; overflow-wrap: anywhere; }
.details-head button { font-size: 20px; line-height: 1; border: 0; background: none;
  cursor: pointer; color: var(--muted); padding: 2px 6px; }
.details-body { padding: 6px 14px 30px; overflow: auto; flex: 1; }
.details h3 { font-size: 12px; text-transform: uppercase; letter-spacing: .05em;
  color: var(--muted); margin: 16px 0 6px; }
.details h3 .status { text-transform: none; letter-spacing: 0; }
.kvt { border-collapse: collapse; width: 100%; font-size: 12px; }
.kvt td { padding: 2px 8px 2px 0; vertical-align: top; }
.kvt td:first-child { color: var(--muted); white-space: nowrap; width: 1%; }
.kvt td:last-child { font-family: var(--mono); overflow-wrap: anywhere; }
pre.json { margin: 0; padding: 8px 10px; background: var(--panel); border: 1px solid var(--border);
  border-radius: 6px; font: 12px/1.45 var(--mono); white-space: pre-wrap;
  overflow-wrap: anywhere; }
pre.json.err { background: var(--c-err-bg); border-color: #ff8182; }
.j-key { color: #0550ae; } .j-str { color: #0a3069; } .j-num { color: #953800; }
.j-lit { color: #cf222e; } .j-tag { color: #8250df; }
.details a { color: var(--c-request); cursor: pointer; text-decoration: none; }
.details a:hover { text-decoration: underline; }
.details .none { color: var(--faint); font-style: italic; }
.details summary { cursor: pointer; color: var(--muted); margin: 14px 0 6px; font-size: 12px; }
"""

_JS = r"""
(function () {
  "use strict";
  var errBox = document.getElementById("js-errors");
  window.addEventListener("error", function (e) {
    errBox.hidden = false;
    errBox.textContent += "JavaScript error: " + e.message + "\n";
  });

  var DATA = JSON.parse(document.getElementById("transcript-data").textContent);
  var RECS = DATA.records || [];
  var TASK = (DATA.header && DATA.header.task) || {};
  var TI_ID = TASK.ti && TASK.ti.id ? String(TASK.ti.id) : "";
  var RUN_ID = TASK.run_id ? String(TASK.run_id) : "";
  var rowsEl = document.getElementById("rows");
  var details = document.getElementById("details");
  var detailsBody = document.getElementById("details-body");
  var detailsTitle = document.getElementById("details-title");

  var REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
    301: "Moved", 302: "Found", 304: "Not Modified", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    409: "Conflict", 410: "Gone", 413: "Too Large", 422: "Unprocessable",
    429: "Too Many Requests", 500: "Server Error", 502: "Bad Gateway",
    503: "Unavailable", 504: "Gateway Timeout"};

  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined && text !== null) n.textContent = String(text);
    return n;
  }
  function add(parent, tag, cls, text) {
    var n = el(tag, cls, text);
    parent.appendChild(n);
    return n;
  }
  function isObj(v) { return v !== null && typeof v === "object" && !Array.isArray(v); }
  function tagged(v) {
    if (!isObj(v)) return null;
    var ks = Object.keys(v);
    if (ks.length !== 1 || ks[0].charAt(0) !== "$") return null;
    var k = ks[0], x = v[k];
    if (k === "$ts") return String(x);
    if (k === "$float") return String(x);
    if (k === "$bytes") return "b64:" + String(x);
    return null;
  }
  function short(v) {
    var t = tagged(v);
    if (t !== null) return t;
    if (typeof v === "string") return v;
    var s = JSON.stringify(v);
    return s === undefined ? String(v) : s;
  }
  function clip(s, n) { return s.length > n ? s.slice(0, n - 1) + "…" : s; }
  function summary(body, limit) {
    if (!isObj(body)) return "";
    var parts = [];
    Object.keys(body).forEach(function (k) {
      if (k === "type" || k === "ti_context") return;
      var v = body[k], text;
      if (k === "ti" && isObj(v)) text = v.dag_id + "." + v.task_id + " try " + v.try_number;
      else text = short(v);
      parts.push(k + "=" + clip(text, 40));
    });
    return clip(parts.join(" "), limit || 110);
  }
  function fmtT(t) { return typeof t === "number" ? t.toFixed(3) : ""; }
  // Long ids make paths unreadable in a label: whole path segments (or query values) equal to
  // the task instance id or the run id are shown as {ti} / {run_id}; the details keep them.
  var SUBST = {};
  if (TI_ID) SUBST[TI_ID] = "{ti}";
  if (RUN_ID) { SUBST[RUN_ID] = "{run_id}"; SUBST[encodeURIComponent(RUN_ID)] = "{run_id}"; }
  function shortPath(p) {
    return String(p).replace(/[^\/?&=]+/g, function (seg) {
      return Object.prototype.hasOwnProperty.call(SUBST, seg) ? SUBST[seg] : seg;
    });
  }
  function httpType(r) { return r.method + " " + r.path; }
  function statusClass(s) { return typeof s === "number" ? "s" + String(s).charAt(0) : "sx"; }

  // ---- rows -------------------------------------------------------------------------------
  var seqIndex = {};       // seq -> record index
  var arrowsBySeq = {};    // seq -> [elements]
  var frameReply = {};     // request index -> reply index
  var replyOf = {};        // reply index -> request index
  var causedBy = {};       // frame seq -> [http indexes]
  var open = {};           // frame id -> request index, while its exchange is open
  var openCount = 0;

  RECS.forEach(function (r, i) {
    if (typeof r.seq === "number") seqIndex[r.seq] = i;
    if (r.record === "http" && typeof r.cause === "number") {
      (causedBy[r.cause] = causedBy[r.cause] || []).push(i);
    }
  });

  function row(kind, t) {
    var r = el("div", "row " + kind);
    add(r, "div", "t", fmtT(t));
    var d = add(r, "div", "d");
    var m = add(r, "div", "m");
    return {row: r, d: d, m: m};
  }
  function activation(d, state) {
    if (state) d.appendChild(el("div", "act " + state));
  }
  function arrow(spec) {
    var a = el("div", "arrow " + spec.kind + " " + spec.span + " " + spec.dir +
      (spec.cls ? " " + spec.cls : ""));
    a.setAttribute("data-kind", spec.kind);
    a.setAttribute("data-type", spec.type);
    a.setAttribute("data-seq", String(spec.seq));
    a.setAttribute("data-i", String(spec.i));
    a.setAttribute("tabindex", "0");
    a.setAttribute("role", "button");
    var label = add(a, "div", "label");
    spec.label.forEach(function (part) {
      if (part && part[1] !== "" && part[1] !== null && part[1] !== undefined) {
        label.appendChild(el("span", part[0], part[1]));
        if (part[2] !== "tight") label.appendChild(document.createTextNode(" "));
      }
    });
    a.title = label.textContent.trim();
    add(a, "div", "line");
    (arrowsBySeq[spec.seq] = arrowsBySeq[spec.seq] || []).push(a);
    return a;
  }

  var frag = document.createDocumentFragment();
  var lastT = null;

  var parity = "ex-b";
  function place(parts, actState) {
    if (actState === "start") parity = parity === "ex-a" ? "ex-b" : "ex-a";
    if (openCount > 0 || actState) parts.row.classList.add("in-ex", parity);
    activation(parts.d, actState || (openCount > 0 ? "mid" : ""));
    frag.appendChild(parts.row);
  }

  RECS.forEach(function (r, i) {
    var kind = r.record;
    var t = typeof r.t === "number" ? r.t : null;
    if (t !== null && lastT !== null && t - lastT >= 1.0) {
      var g = row("r-gap", null);
      g.d.textContent = "⋯ " + (t - lastT).toFixed(2) + " s later ⋯";
      if (openCount > 0) { g.row.classList.add("in-ex", parity); activation(g.d, "mid"); }
      frag.appendChild(g.row);
    }
    if (t !== null) lastT = t;
    var p, label;

    if (kind === "frame") {
      var isIn = r.dir === "in";
      var type = r.type || (isIn ? "undecodable" : "ack");
      if (isIn) {
        label = [["ty", type], ["id", "#" + r.id]];
        var cls = "";
        if (r.decode_error) { cls = "err"; label.push(["sum", "undecodable: " + r.decode_error]); }
        else label.push(["sum", summary(r.body, 110)]);
        p = row("r-arrow r-frame", t);
        p.d.appendChild(arrow({kind: "request", span: "span-rs", dir: "ltr", type: type,
          seq: r.seq, i: i, cls: cls, label: label}));
        var state = "";
        if (!r.decode_error && r.id !== null && r.id !== undefined) {
          if (open[r.id] === undefined) openCount += 1;
          open[r.id] = i;
          state = "start";
        }
        place(p, state);
      } else {
        var rcls = "dashed";
        var err = r.error;
        if (r.decode_error) {
          rcls += " err";
          label = [["ty", type], ["id", "#" + r.id], ["sum", "undecodable: " + r.decode_error]];
        } else if (err !== undefined && err !== null) {
          rcls += " err";
          var msg = isObj(err) ? (err.error || "error") : short(err);
          var det = isObj(err) && isObj(err.detail) ? summary(err.detail, 90) : "";
          label = [["ty", "error " + msg], ["id", "#" + r.id], ["sum", det]];
        } else if (!r.type) {
          rcls += " ack";
          label = [["ty", "ack"], ["id", "#" + r.id]];
        } else if (r.type === "ErrorResponse") {
          rcls += " body-error";
          label = [["ty", "ErrorResponse"], ["id", "#" + r.id],
            ["sum", isObj(r.body) ? short(r.body.error) + " " +
              (r.body.detail ? summary(r.body.detail, 70) : "") : ""]];
        } else {
          label = [["ty", type], ["id", "#" + r.id], ["sum", summary(r.body, 100)]];
        }
        p = row("r-arrow r-frame", t);
        p.d.appendChild(arrow({kind: "reply", span: "span-rs", dir: "rtl", type: type,
          seq: r.seq, i: i, cls: rcls, label: label}));
        var ostate = "";
        if (r.id !== null && r.id !== undefined && open[r.id] !== undefined) {
          frameReply[open[r.id]] = i;
          replyOf[i] = open[r.id];
          delete open[r.id];
          openCount -= 1;
          ostate = "end";
        }
        place(p, ostate);
      }
    } else if (kind === "http") {
      var hb = r.cause === "heartbeat" ? " hb" : "";
      var q = r.query ? "?" + r.query : "";
      var tag = typeof r.cause === "number" ? "" : String(r.cause);
      p = row("r-arrow r-http" + hb, t);
      p.d.appendChild(arrow({kind: "http-request", span: "span-sa", dir: "ltr",
        type: httpType(r), seq: r.seq, i: i, cls: typeof r.cause === "number" ? "nested" : "",
        label: [["tag", tag], ["ty", r.method], ["path", shortPath(r.path), "tight"],
          ["q", clip(shortPath(q), 60)], ["id", r.attempt > 1 ? "attempt " + r.attempt : ""]]}));
      place(p, "");
      var sc = statusClass(r.status);
      var stext = typeof r.status === "number"
        ? r.status + (REASONS[r.status] ? " " + REASONS[r.status] : "")
        : "transport error";
      var dur = typeof r.duration_s === "number" ? (r.duration_s * 1000).toFixed(1) + " ms" : "";
      p = row("r-arrow r-http" + hb, null);
      p.d.appendChild(arrow({kind: "http-response", span: "span-sa", dir: "rtl",
        type: httpType(r), seq: r.seq, i: i, cls: "dashed " + sc,
        label: [["status " + sc, stext], ["sum", r.error ? clip(String(r.error), 60) : ""],
          ["dur", dur]]}));
      place(p, "");
    } else if (kind === "log") {
      var line = isObj(r.line) ? r.line : {event: short(r.line)};
      var level = String(line.level || "info").toLowerCase();
      p = row("r-log", t);
      var lg = add(p.m, "div", "log lvl-" + level + " src-" + r.source);
      lg.setAttribute("data-i", String(i));
      add(lg, "span", "src", r.source);
      add(lg, "span", "lvl", level.toUpperCase());
      if (line.logger) add(lg, "span", "lg-name", line.logger);
      add(lg, "span", "ev", short(line.event === undefined ? "" : line.event));
      var kv = [];
      var skip = {level: 1, event: 1, timestamp: 1, logger: 1, ti_id: 1, dag_id: 1, task_id: 1,
        run_id: 1, try_number: 1, map_index: 1};
      Object.keys(line).forEach(function (k) {
        if (!skip[k]) kv.push(k + "=" + clip(short(line[k]), 200));
      });
      if (kv.length) add(lg, "span", "kv", kv.join(" "));
      place(p, "");
    } else if (kind === "violation") {
      var v = el("div", "row r-violation");
      v.setAttribute("data-i", String(i));
      v.setAttribute("data-violation", String(r.rule));
      add(v, "div", "vt", fmtT(t));
      var head = add(v, "div", "vhead");
      head.appendChild(document.createTextNode("⚠ VIOLATION"));
      add(head, "span", "vrule", r.rule);
      add(head, "span", "vmsg", r.message);
      var af = add(v, "div", "vairflow");
      add(af, "b", "", "Airflow: ");
      af.appendChild(document.createTextNode(short(r.airflow === undefined ? "" : r.airflow)));
      if (r.frame_id !== undefined && r.frame_id !== null) {
        af.appendChild(document.createTextNode("  (frame #" + r.frame_id + ")"));
      }
      frag.appendChild(v);
    } else if (kind === "process") {
      p = row("r-proc", t);
      var ev = String(r.event), dim = "", ncls = "note on-rt proc-" + ev;
      if (ev === "spawn") dim = "pid " + r.pid + "  " + (r.argv || []).join(" ");
      else if (ev === "connect" || ev === "reject") dim = r.channel + " ← " + r.peer;
      else if (ev === "signal") {
        dim = r.signal + " → " + r.target + (r.reason ? "  (" + r.reason + ")" : "");
      } else if (ev === "eof") { dim = r.channel; ncls += " proc-minor"; }
      else if (ev === "channel-bytes") {
        dim = r.channel + ": " + r.received + " bytes received" +
          (r.discarded ? ", " + r.discarded + " discarded" : "");
        ncls += " proc-minor";
      } else if (ev === "exit") {
        var ok = r.exit_code === 0 && !r.signal;
        ncls += ok ? " exit-ok" : " exit-bad";
        dim = (r.exit_code !== undefined && r.exit_code !== null ? "code " + r.exit_code : "") +
          (r.signal ? " signal " + r.signal : "") + (r.message ? "  " + r.message : "");
      } else {
        dim = Object.keys(r).filter(function (k) {
          return ["record", "seq", "t", "event"].indexOf(k) < 0;
        }).map(function (k) { return k + "=" + short(r[k]); }).join(" ");
      }
      var note = add(p.d, "div", ncls);
      note.setAttribute("data-i", String(i));
      add(note, "span", "ev", ev);
      note.appendChild(document.createTextNode(" "));
      add(note, "span", "dim", dim);
      note.title = note.textContent;
      place(p, "");
      if (ev === "exit" && openCount > 0) { open = {}; openCount = 0; }
    } else if (kind === "note") {
      p = row("r-note", t);
      var nlvl = String(r.level || "info").toLowerCase();
      var sn = add(p.d, "div", "note on-sup sup-note lvl-" + nlvl);
      sn.setAttribute("data-i", String(i));
      add(sn, "span", "ev", nlvl);
      sn.appendChild(document.createTextNode(" "));
      add(sn, "span", "", short(r.message === undefined ? "" : r.message));
      sn.title = sn.textContent;
      place(p, "");
    } else {
      p = row("r-log", t);
      var o = add(p.m, "div", "log");
      o.setAttribute("data-i", String(i));
      add(o, "span", "src", String(kind));
      add(o, "span", "ev", clip(JSON.stringify(r), 300));
      place(p, "");
    }
  });
  rowsEl.appendChild(frag);

  // ---- details panel ------------------------------------------------------------------------
  function jsonPre(value, cls) {
    var pre = el("pre", "json" + (cls ? " " + cls : ""));
    var text = JSON.stringify(value, null, 2);
    if (text === undefined) text = String(value);
    if (text.length > 400000) { pre.textContent = text; return pre; }
    var re = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;
    var last = 0, m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) pre.appendChild(document.createTextNode(text.slice(last, m.index)));
      var c = m[1] ? (m[2] ? (m[1].charAt(1) === "$" ? "j-tag" : "j-key") : "j-str")
        : (m[3] ? "j-lit" : "j-num");
      pre.appendChild(el("span", c, m[1] ? m[1] : m[0]));
      if (m[2]) pre.appendChild(document.createTextNode(m[2]));
      last = re.lastIndex;
    }
    if (last < text.length) pre.appendChild(document.createTextNode(text.slice(last)));
    return pre;
  }
  function kvTable(parent, pairs) {
    var tb = add(parent, "table", "kvt");
    pairs.forEach(function (pr) {
      if (pr[1] === undefined || pr[1] === null || pr[1] === "") return;
      var tr = add(tb, "tr");
      add(tr, "td", "", pr[0]);
      var td = add(tr, "td");
      if (pr[1] instanceof Node) td.appendChild(pr[1]); else td.textContent = String(pr[1]);
    });
    return tb;
  }
  function link(i, text) {
    var a = el("a", "", text);
    a.setAttribute("data-goto", String(i));
    a.href = "#select=" + RECS[i].seq;
    return a;
  }
  function describe(i) {
    var r = RECS[i];
    if (r.record === "frame") return (r.dir === "in" ? "→ " : "← ") + (r.type || "ack") +
      " #" + r.id + " (seq " + r.seq + ")";
    if (r.record === "http") return r.method + " " + shortPath(r.path) + " → " +
      (r.status === null || r.status === undefined ? "transport error" : r.status) +
      " (seq " + r.seq + ")";
    return r.record + " (seq " + r.seq + ")";
  }
  function body(parent, title, b) {
    add(parent, "h3", "", title);
    if (!b || (!("json" in b) && !("b64" in b))) {
      add(parent, "div", "none", "(no body)");
      return;
    }
    if ("json" in b) { parent.appendChild(jsonPre(b.json)); return; }
    var text = null;
    try {
      var bin = atob(b.b64), bytes = new Uint8Array(bin.length);
      for (var k = 0; k < bin.length; k++) bytes[k] = bin.charCodeAt(k);
      text = new TextDecoder("utf-8", {fatal: true}).decode(bytes);
    } catch (e) { text = null; }
    if (text !== null) { add(parent, "div", "none", "not JSON; as UTF-8 text:");
      add(parent, "pre", "json", text); }
    else { add(parent, "div", "none", "binary, base64:"); add(parent, "pre", "json", b.b64); }
  }
  function headers(parent, h) {
    if (!isObj(h) || !Object.keys(h).length) { add(parent, "div", "none", "(no headers)"); return; }
    kvTable(parent, Object.keys(h).map(function (k) { return [k, h[k]]; }));
  }

  function showDetails(i) {
    var r = RECS[i];
    if (!r) return;
    detailsBody.textContent = "";
    var box = detailsBody;
    if (r.record === "frame") {
      detailsTitle.textContent = (r.dir === "in" ? "runtime → supervisor-sim · " :
        "supervisor-sim → runtime · ") + (r.type || (r.dir === "in" ? "undecodable" : "ack"));
      kvTable(box, [["seq", r.seq], ["t", fmtT(r.t) + " s"], ["frame id", r.id],
        ["type", r.type === null ? "null (empty ack)" : r.type], ["length", r.len + " bytes"],
        ["elements", r.elements], ["stream offset", r.offset],
        ["raw", r.raw_redacted ? "re-encoded from the redacted body" : ""],
        ["reply", frameReply[i] !== undefined ? link(frameReply[i], describe(frameReply[i])) : ""],
        ["request", replyOf[i] !== undefined ? link(replyOf[i], describe(replyOf[i])) : ""]]);
      var caused = causedBy[r.seq] || [];
      if (caused.length) {
        add(box, "h3", "", "HTTP calls it caused");
        var ul = add(box, "ul");
        caused.forEach(function (k) { add(ul, "li").appendChild(link(k, describe(k))); });
      }
      if (r.decode_error) {
        add(box, "h3", "", "Decode error");
        add(box, "pre", "json err", r.decode_error);
      }
      add(box, "h3", "", "Body");
      if (r.body === null || r.body === undefined) add(box, "div", "none", "null");
      else box.appendChild(jsonPre(r.body));
      if (r.error !== undefined && r.error !== null) {
        add(box, "h3", "", "Error slot");
        box.appendChild(jsonPre(r.error, "err"));
      }
      if (r.context_carrier !== undefined) {
        add(box, "h3", "", "Context carrier");
        box.appendChild(jsonPre(r.context_carrier));
      }
      if (r.raw) {
        var det = add(box, "details");
        add(det, "summary", "", "raw msgpack payload (base64, " + r.len + " bytes)");
        add(det, "pre", "json", r.raw);
      }
    } else if (r.record === "http") {
      detailsTitle.textContent = r.method + " " + r.path + (r.query ? "?" + r.query : "");
      var st = el("span", "status " + statusClass(r.status),
        typeof r.status === "number" ? r.status + " " + (REASONS[r.status] || "") :
        "transport error");
      kvTable(box, [["seq", r.seq], ["t", fmtT(r.t) + " s"], ["status", st],
        ["error", r.error], ["attempt", r.attempt],
        ["duration", typeof r.duration_s === "number" ?
          (r.duration_s * 1000).toFixed(2) + " ms" : ""],
        ["cause", typeof r.cause === "number" && seqIndex[r.cause] !== undefined ?
          link(seqIndex[r.cause], describe(seqIndex[r.cause])) : r.cause],
        ["path", r.path], ["query", r.query]]);
      var req = r.request || {}, res = r.response || {};
      add(box, "h3", "", "Request headers");
      headers(box, req.headers);
      body(box, "Request body", req);
      var rh = add(box, "h3", "", "Response ");
      rh.appendChild(st.cloneNode(true));
      add(box, "h3", "", "Response headers");
      headers(box, res.headers);
      body(box, "Response body", res);
    } else {
      detailsTitle.textContent = r.record + (r.event ? " · " + r.event : "") +
        (r.rule ? " · " + r.rule : "");
      kvTable(box, [["seq", r.seq], ["t", fmtT(r.t) + " s"]]);
      add(box, "h3", "", "Record");
      box.appendChild(jsonPre(r));
    }
    details.hidden = false;
    unselect();
    var targets = arrowsBySeq[r.seq] || [];
    if (!targets.length) {
      var other = rowsEl.querySelector('[data-i="' + i + '"]');
      if (other) targets = [other];
    }
    targets.forEach(function (n) { n.classList.add("selected"); });
    details.setAttribute("data-selected-seq", String(r.seq));
    return targets[0];
  }

  function unselect() {
    document.querySelectorAll(".selected").forEach(function (n) {
      n.classList.remove("selected");
    });
  }
  function select(i, scroll) {
    var target = showDetails(i);
    if (target && scroll && target.scrollIntoView) target.scrollIntoView({block: "center"});
    if (history.replaceState && RECS[i]) history.replaceState(null, "", "#select=" + RECS[i].seq);
  }
  function closeDetails() {
    details.hidden = true;
    unselect();
    if (history.replaceState) history.replaceState(null, "", location.pathname + location.search);
  }
  function fromHash() {
    var m = /(?:^#|&)select=(\d+)/.exec(location.hash || "");
    if (m && seqIndex[Number(m[1])] !== undefined) select(seqIndex[Number(m[1])], true);
  }

  rowsEl.addEventListener("click", function (e) {
    var n = e.target.closest ? e.target.closest("[data-i]") : null;
    if (n) select(Number(n.getAttribute("data-i")), false);
  });
  rowsEl.addEventListener("keydown", function (e) {
    if (e.key !== "Enter" && e.key !== " ") return;
    var n = e.target.closest ? e.target.closest("[data-i]") : null;
    if (n) { e.preventDefault(); select(Number(n.getAttribute("data-i")), false); }
  });
  detailsBody.addEventListener("click", function (e) {
    var a = e.target.closest ? e.target.closest("[data-goto]") : null;
    if (a) { e.preventDefault(); select(Number(a.getAttribute("data-goto")), true); }
  });
  document.getElementById("details-close").addEventListener("click", closeDetails);
  document.addEventListener("keydown", function (e) { if (e.key === "Escape") closeDetails(); });
  window.addEventListener("hashchange", fromHash);

  function toggle(id, cls) {
    var box = document.getElementById(id);
    var apply = function () { document.body.classList.toggle(cls, !box.checked); };
    box.addEventListener("change", apply);
    apply();
  }
  toggle("show-logs", "hide-logs");
  toggle("show-process", "hide-process");
  toggle("show-heartbeats", "hide-heartbeats");

  fromHash();
  document.body.setAttribute("data-rendered", "ok");
  document.body.setAttribute("data-records", String(RECS.length));
})();
"""

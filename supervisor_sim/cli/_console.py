"""Showing a session as it happens: runtime logs through structlog, frames and verdicts around them.

Two formats, both on stderr (stdout is kept for ``--json`` results):

* ``console``, for people: one line per event in arrival order — our time of arrival, the
  level, who said it (the runtime's logger, ``stdout``/``stderr``, or ``sup`` for
  supervisor-sim), the message — wrapped to the terminal's width, coloured on a terminal
  (``NO_COLOR`` and ``FORCE_COLOR`` are respected). The task's identity is printed once in a
  header, and a runtime's ``error_detail`` is shown as a traceback.
* ``json``, for machines: one JSON object per event, every record whole (the runtime's own
  timestamp, identity keys and ``error_detail`` included). ``--log-format auto``, the default,
  picks it whenever stderr is not a terminal.

What is shown depends on the verbosity (``1 + -v - -q``): at 0 only verdicts (violations and
the supervisor's notes), at 1 also the runtime's logs, the frames and what went wrong with the
process, at 2 (``-v``) also the supervisor's internals (connections, byte counts, EOFs, a clean
exit, empty acknowledgements, HTTP calls) and the runtime's ``::group::`` markers.

The JSON lines are written without structlog: ``import structlog`` alone loads its console
renderer, rich and asyncio (~50 ms of start-up), and the JSON format needs none of them.
``_JsonLogger`` writes exactly what the structlog chain ``configure_logging("json")`` used to
configure wrote (tests/cli/test_startup_console.py compares the two).
"""

from __future__ import annotations

import json
import os
import sys
from collections import deque
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ..supervision import Event, TaskOutcome

__all__ = [
    "ConsoleSink",
    "Diagnosis",
    "configure_logging",
    "never_reported",
    "print_summary",
    "printable",
    "shown_path",
    "terminal_width",
    "use_color",
]

#: The stream JSON lines go to, once ``configure_logging("json")`` chose that format; None
#: while the format is structlog's (configured for the console, or never configured).
_json_stream: TextIO | None = None
#: Whether the console format colours its lines, and where it writes them
#: (``configure_logging`` decides).
_colors = False
_console_stream: TextIO = sys.stderr
#: The format last chosen: what the sinks shape their events for.
_format = "console"


def use_color(stream: TextIO) -> bool:
    """Colour on a terminal, unless ``NO_COLOR`` is set; always with ``FORCE_COLOR``
    (https://no-color.org, https://force-color.org: any non-empty value counts)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def terminal_width(stream: TextIO) -> int | None:
    """The width to wrap lines at: ``COLUMNS`` when set, the terminal's when ``stream`` is
    one, else None (a file or a pipe gets lines unwrapped)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        if stream.isatty():
            return os.get_terminal_size(stream.fileno()).columns or None
    except (AttributeError, ValueError, OSError):
        pass
    return None


def configure_logging(fmt: str, stream: TextIO = sys.stderr) -> None:
    global _json_stream, _colors, _console_stream, _format
    _format = fmt
    if fmt == "json":
        _json_stream = stream
        return
    _json_stream = None
    _console_stream = stream
    import structlog

    _colors = use_color(stream)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _ConsoleRenderer(_colors, lambda: terminal_width(stream)),
        ],
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def _timestamp_first(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # The runtime's own timestamp wins over the time we re-emit it at.
    ts = event_dict.pop("_runtime_ts", None)
    if ts:
        event_dict["timestamp"] = ts
    return event_dict


def _json_fallback(obj: Any) -> Any:
    # What structlog's JSONRenderer does with a value json cannot encode.
    try:
        return obj.__structlog__()
    except AttributeError:
        return repr(obj)


class _JsonLogger:
    """A bound logger writing one JSON object per event, as structlog's chain ``merge_contextvars,
    add_log_level, TimeStamper(fmt="iso", utc=True), _timestamp_first, JSONRenderer()`` into a
    ``PrintLogger`` does: bound context, then the call's keywords, ``event``, ``level``,
    ``timestamp``. (No structlog contextvars can be bound here: nothing imported structlog.)"""

    __slots__ = ("_context", "_stream")

    def __init__(self, stream: TextIO, context: dict[str, Any]) -> None:
        self._stream = stream
        self._context = context

    def bind(self, **kw: Any) -> _JsonLogger:
        return _JsonLogger(self._stream, {**self._context, **kw})

    def _log(self, level: str, event: Any, kw: dict[str, Any]) -> None:
        event_dict = self._context.copy()
        event_dict.update(kw)
        if event is not None:
            event_dict["event"] = event
        event_dict["level"] = level
        event_dict["timestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        _timestamp_first(None, level, event_dict)
        print(json.dumps(event_dict, default=_json_fallback), file=self._stream, flush=True)

    def debug(self, event: Any = None, **kw: Any) -> None:
        self._log("debug", event, kw)

    def info(self, event: Any = None, **kw: Any) -> None:
        self._log("info", event, kw)

    def warning(self, event: Any = None, **kw: Any) -> None:
        self._log("warning", event, kw)

    def error(self, event: Any = None, **kw: Any) -> None:
        self._log("error", event, kw)

    def critical(self, event: Any = None, **kw: Any) -> None:
        self._log("critical", event, kw)


# --- the console format ----------------------------------------------------------------------

_RESET, _DIM, _BOLD = "\x1b[0m", "\x1b[2m", "\x1b[1m"
_LEVEL_STYLE = {
    "debug": "\x1b[34m",
    "info": "\x1b[32m",
    "warning": "\x1b[33m",
    "error": "\x1b[31m",
    "critical": "\x1b[1;37;41m",
}
_STATE_STYLE = {
    "success": "\x1b[32m",
    "failed": "\x1b[31m",
    "upstream_failed": "\x1b[31m",
    "up_for_retry": "\x1b[33m",
    "skipped": "\x1b[35m",
}
#: A value longer than this is cut on the console (the transcript and the JSON keep it whole).
_MAX_VALUE = 300


def printable(text: str) -> str:
    """``text`` with control characters escaped: a runtime's line must not move the cursor,
    clear the screen or recolour what follows."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        bare = value and value.isprintable() and " " not in value
        text = value if bare else json.dumps(value, ensure_ascii=False)
    elif hasattr(value, "isoformat"):
        text = str(value.isoformat())
    else:
        text = repr(value)
    text = printable(text)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


class _ConsoleRenderer:
    """structlog's last processor for the console: ``TIME LEVEL WHO MESSAGE key=value ...``,
    continuation lines (a wrapped line, a multi-line message, a traceback) indented under the
    message.

    Keys the sink sets: ``_who`` (the column after the level), ``_tag`` (which task, when
    several share the console), ``_extra`` (text after the message, cut to fit one line),
    ``_more`` (continuation lines: a traceback, Airflow's side of a violation).
    """

    def __init__(self, colors: bool, width: Callable[[], int | None]) -> None:
        self.colors = colors
        self.width = width

    def _style(self, style: str, text: str) -> str:
        return f"{style}{text}{_RESET}" if self.colors and style and text else text

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        level = str(event_dict.pop("level", method))
        who = str(event_dict.pop("_who", ""))
        tag = event_dict.pop("_tag", None)
        extra = event_dict.pop("_extra", None)
        more: list[str | tuple[str, str]] = event_dict.pop("_more", None) or []
        message = str(event_dict.pop("event", "") or "")
        who = printable(who)
        kvs = [f"{printable(str(k))}={_value_text(v)}" for k, v in event_dict.items()]
        now = datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3]
        head = f"{now} {level:<8} " + (f"[{tag}] " if tag else "") + f"{who:<6} "
        styled_head = (
            self._style(_DIM, now)
            + " "
            + self._style(_LEVEL_STYLE.get(level, ""), f"{level:<8}")
            + " "
            + (self._style(_BOLD, f"[{tag}]") + " " if tag else "")
            + self._style(_DIM if who == "sup" else "\x1b[36m", f"{who:<6}")
            + " "
        )
        width = self.width()
        indent = min(len(head), width // 2) if width else len(head)
        message_style = _BOLD if level in ("warning", "error", "critical") else ""
        lines = [printable(line) for line in message.split("\n")]
        out: list[str] = []
        first = lines[0]
        tail = " ".join(kvs)
        if extra:
            # A summary (of a frame's body) is cut to keep its event on one line.
            room = (width - len(head) - len(first) - 3 - len(tail)) if width else _MAX_VALUE
            text = printable(str(extra))
            if len(text) > room:
                text = text[: room - 1] + "…" if room > 8 else ""
            tail = f"{text} {tail}".strip()
        plain = f"{head}{first}  {tail}" if tail else f"{head}{first}"
        if width is None or len(plain) <= width:
            out.append(
                styled_head
                + self._style(message_style, first)
                + ("  " + self._style(_DIM, tail) if tail else "")
            )
        else:
            tokens = [(w, message_style) for w in first.split(" ")]
            tokens += [(kv, _DIM) for kv in kvs] if not extra else [(tail, _DIM)]
            wrapped = _wrap(tokens, width - len(head), width - indent)
            out.append(styled_head + self._render(wrapped[0]))
            out += [" " * indent + self._render(line) for line in wrapped[1:]]
        for line in [*lines[1:], *more]:
            text, style = line if isinstance(line, tuple) else (line, "")
            text = printable(text)
            out += self._continuation(text, self._style_of(style, level), indent, width)
        return "\n".join(out)

    def _style_of(self, style: str, level: str) -> str:
        if style == "level":
            return _LEVEL_STYLE.get(level, "")
        return _DIM if style == "dim" else ""

    def _continuation(self, line: str, style: str, indent: int, width: int | None) -> list[str]:
        pad = " " * indent
        if width is None or indent + len(line) <= width or width - indent < 10:
            return [pad + self._style(style, line)]
        room = width - indent
        return [pad + self._style(style, line[i : i + room]) for i in range(0, len(line), room)]

    def _render(self, line: list[tuple[str, str]]) -> str:
        return " ".join(self._style(style, text) for text, style in line)


def _wrap(tokens: list[tuple[str, str]], first: int, rest: int) -> list[list[tuple[str, str]]]:
    """Greedy filling of (text, style) tokens into lines of ``first`` then ``rest`` columns,
    a token longer than a line cut where the line ends."""
    lines: list[list[tuple[str, str]]] = [[]]
    used = 0
    room = max(first, 10)
    for text, style in tokens:
        while True:
            need = len(text) + (1 if lines[-1] else 0)
            if used + need <= room:
                lines[-1].append((text, style))
                used += need
                break
            if lines[-1] and len(text) <= max(rest, 10):
                lines.append([])
                used, room = 0, max(rest, 10)
                continue
            # Longer than any line: fill this one and carry on with the rest of the token.
            cut = room - used - (1 if lines[-1] else 0)
            if cut <= 0:
                lines.append([])
                used, room = 0, max(rest, 10)
                continue
            lines[-1].append((text[:cut], style))
            text = text[cut:]
            lines.append([])
            used, room = 0, max(rest, 10)
    return [line for line in lines if line] or [[]]


def _logger(name: str, context: dict[str, Any]) -> Any:
    if _json_stream is not None:
        return _JsonLogger(_json_stream, dict(context))
    import structlog

    # The console shows the context as a tag or a header, not as keys on every line.
    return structlog.get_logger(name).bind(**(context if _format == "json" else {}))


_LEVEL_METHOD = {"warn": "warning", "exception": "error", "fatal": "critical"}
_METHODS = frozenset({"debug", "info", "warning", "error", "critical"})
#: Record keys naming the task instance; the console drops them when they are the header's.
_IDENTITY_KEYS = ("ti_id", "dag_id", "task_id", "run_id", "try_number", "map_index")
#: Process events that are the supervisor's bookkeeping, shown from -v.
_INTERNAL = frozenset({"spawn", "connect", "channel-bytes", "eof"})
_GROUP_MARKERS = ("::group::", "::endgroup::")
#: Record keys the console shows in their own place (or, the timestamp, not at all).
_SHOWN_APART = frozenset({"level", "event", "timestamp", "logger", "error_detail"})


@dataclass
class Diagnosis:
    """What a failed try's summary needs from the journal, collected at any verbosity: the
    runtime's last exception and last error line, the supervisor's last error (a timeout, a
    kill), how the process ended, and the last lines of the runtime's stderr."""

    exception: str | None = None
    last_error: str | None = None
    verdict: str | None = None
    exit: str | None = None
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=5))

    def reason(self, outcome: TaskOutcome) -> str | None:
        """Why the try did not succeed: the runtime's exception, else the supervisor's verdict,
        else the runtime's last error line, else how the process ended."""
        return self.exception or self.verdict or outcome.error or self.last_error or self.exit

    def observe(self, record: Mapping[str, Any], source: str) -> None:
        """A log record (``source``: logs, stdout or stderr)."""
        if source == "stderr":
            self.stderr_tail.append(str(record.get("event", "")))
            return
        detail = record.get("error_detail")
        if detail:
            from ..protocol import exception_summary

            self.exception = exception_summary(detail) or self.exception
        if record.get("level") in ("error", "exception", "critical", "fatal"):
            self.last_error = str(record.get("event", "")) or self.last_error


class ConsoleSink:
    """A journal sink: re-emits runtime logs and narrates frames, process events, violations.

    ``context`` names the task: bound to every JSON line when ``bind``; on the console it is a
    ``[tag]`` on every line when ``bind`` (several tasks share the console), or the ``header``
    printed once before the first line. ``identity``: the task instance's keys (default: the
    context), dropped from runtime records on the console when they say the same.
    """

    def __init__(
        self,
        *,
        verbosity: int = 1,
        bind: bool = True,
        header: str | None = None,
        identity: Mapping[str, Any] | None = None,
        **context: Any,
    ) -> None:
        self.verbosity = verbosity
        #: Masks secrets in what is shown; the session sets it to its secrets masker.
        self.redact: Callable[[Any], Any] = lambda value: value
        self.diagnosis = Diagnosis()
        self.json = _format == "json"
        self._stream = _console_stream
        self.header = None if self.json else header
        identity = dict(context if identity is None else identity)
        self._identity = {k: str(identity[k]) for k in _IDENTITY_KEYS if k in identity}
        self._tag = _tag(context) if bind and not self.json and not header else None
        context = context if bind else {}
        self.task_log = _logger("task", context)
        self.sup_log = _logger("supervisor-sim", context)

    def _emit(self, log: Any, method: str, message: str, /, **kw: Any) -> None:
        if self.header is not None:
            print(self._styled_header(), file=self._stream, flush=True)
            self.header = None
        if self._tag is not None:
            kw["_tag"] = self._tag
        getattr(log, method)(message, **kw)

    def _styled_header(self) -> str:
        assert self.header is not None
        # Wrapped between its parts, so that no id is cut.
        width = terminal_width(self._stream)
        lines = [""]
        for part in printable(self.header).split(" · "):
            if lines[-1] and width and len(lines[-1]) + 3 + len(part) > width:
                lines.append("  " + part)
            else:
                lines[-1] += (" · " if lines[-1] else "") + part
        text = "\n".join(lines)
        return f"{_BOLD}{text}{_RESET}" if _colors else text

    def __call__(self, event: Event) -> None:
        d = event.data
        kind = event.kind
        if kind == "log":
            record = d["record"]
            source = d["source"]
            if source == "stderr" or "error_detail" in record or record.get("level") != "info":
                self.diagnosis.observe(record, source)
            if self.verbosity < 1:
                return
            if self.json:
                self._log_json(record, source)
            else:
                self._log_console(record, source)
        elif kind == "frame":
            if self.verbosity >= 1:
                self._frame(d)
        elif kind == "http":
            if self.verbosity >= 2:
                self._emit(
                    self.sup_log,
                    "debug",
                    f"http {d['method']} {d['path']}",
                    status=d.get("status"),
                    **({} if self.json else {"_who": "sup"}),
                )
        elif kind == "process":
            self._process(d)
        elif kind == "violation":
            if self.json:
                self._emit(
                    self.sup_log,
                    "warning",
                    f"violation {d['rule']}",
                    message=d["message"],
                    airflow=d.get("airflow"),
                )
            else:
                self._emit(
                    self.sup_log,
                    "warning",
                    f"violation {d['rule']}: {d['message']}",
                    _who="sup",
                    _more=[f"Airflow: {d['airflow']}"] if d.get("airflow") else None,
                )
        elif kind == "note":
            level = d.get("level", "info")
            if level == "error":
                self.diagnosis.verdict = d["message"]
            if level == "debug" and self.verbosity < 2:
                return
            method = level if level in ("debug", "info", "warning", "error") else "info"
            if self.json:
                self._emit(self.sup_log, method, d["message"])
            else:
                self._emit(self.sup_log, method, d["message"], _who="sup")

    def _log_json(self, record: Mapping[str, Any], source: str) -> None:
        record = dict(record)
        level = record.pop("level", "info")
        method = _LEVEL_METHOD.get(level, level)
        message = record.pop("event", "")
        ts = record.pop("timestamp", None)
        record.setdefault("source", source)
        self._emit(
            self.task_log,
            method if method in _METHODS else "info",
            message,
            _runtime_ts=ts,
            **record,
        )

    def _log_console(self, record: Mapping[str, Any], source: str) -> None:
        message = record.get("event", "")
        message = "" if message is None else str(message)
        if self.verbosity < 2 and message.startswith(_GROUP_MARKERS):
            return
        level = record.get("level", "info")
        method = _LEVEL_METHOD.get(level, level)
        # The time shown is the arrival's, so lines from every channel read in order; the
        # runtime's own timestamp stays in the transcript and the JSON lines.
        identity = self._identity
        kw = {
            k: v
            for k, v in record.items()
            if k not in _SHOWN_APART
            and not (k in identity and str(v) == identity[k])
            and not (k == "source" and v == source)
        }
        who = source if source in ("stdout", "stderr") else str(record.get("logger") or source)
        detail = record.get("error_detail")
        if detail:
            kw["_more"] = _traceback_lines(detail)
        self._emit(self.task_log, method if method in _METHODS else "info", message, _who=who, **kw)

    def _frame(self, d: Mapping[str, Any]) -> None:
        inbound = d["direction"] == "in"
        error = d.get("error")
        body = d.get("body")
        if not inbound and d.get("type") == "StartupDetails" and isinstance(body, dict):
            self._learn_identity(body.get("ti"))
        if not inbound and not error and not body and self.verbosity < 2:
            return  # an empty acknowledgement: the runtime's next line says as much
        arrow = "runtime -> sup" if inbound else "sup -> runtime"
        name = d.get("type") or ("ack" if not inbound else "?")
        kw: dict[str, Any] = {}
        if error and inbound:
            kw["error"] = error
        elif error:
            kw["error"] = (error or {}).get("detail")
        method = "warning" if error else "info"
        summary = _summarise(self.redact(body))
        if self.json:
            kw = {"id": d.get("id"), **kw}
            if summary:
                kw["body"] = summary
            self._emit(self.sup_log, method, f"{arrow} {name}", **kw)
            return
        if summary:
            kw["_extra"] = summary
        request = d.get("id")
        message = f"{arrow} {name}" + ("" if request is None else f" #{request}")
        self._emit(self.sup_log, method, message, _who="comm", **kw)

    def _learn_identity(self, ti: Any) -> None:
        """The task instance the supervisor started, for commands that did not say (replay)."""
        if not isinstance(ti, dict):
            return
        known = {**ti, "ti_id": ti.get("id")}
        for key in _IDENTITY_KEYS:
            if key not in self._identity and known.get(key) is not None:
                self._identity[key] = str(known[key])

    def _process(self, d: Mapping[str, Any]) -> None:
        what = d.get("event")
        if what == "exit" and d.get("message"):
            self.diagnosis.exit = f"{d['message']}, exit code {d.get('exit_code')}"
        internal = (what in _INTERNAL and not d.get("discarded")) or (
            what == "exit" and d.get("exit_code") == 0
        )
        if internal and self.verbosity < 2:
            return
        if self.verbosity < 1:
            return
        kw = {k: v for k, v in d.items() if k != "event"}
        if what == "spawn-failed":
            method = "error"
        elif what in ("reject", "signal", "exit", "channel-bytes"):
            method = "info" if internal else "warning"
        else:
            method = "info"
        if not self.json:
            kw["_who"] = "sup"
        self._emit(self.sup_log, method, f"process {what}", **kw)


def _traceback_lines(detail: Any) -> list[tuple[str, str]]:
    """The traceback's lines with their look: frames dim, each exception in the line's level."""
    from ..protocol import render_traceback

    try:
        lines = render_traceback(detail)
    except Exception:  # a console must not fail on a runtime's odd exception record
        return [(f"error_detail={detail!r}"[:_MAX_VALUE], "")]
    plain = ("Traceback", "Exception Group Traceback", "+", "The above", "During handling")
    out = []
    for line in lines:
        bare = line.lstrip(" |")
        if bare.startswith(("File ", "[")) or (
            line.startswith("    ") and not bare.startswith("+")
        ):
            out.append((line, "dim"))
        elif not bare or bare.startswith(plain):
            out.append((line, ""))
        else:
            out.append((line, "level"))
    return out


def _tag(context: Mapping[str, Any]) -> str | None:
    """``task[3] try 2`` from a sink's context (try 1 and an unmapped task say nothing more)."""
    name = context.get("task_id") or context.get("dag_id")
    if not name:
        return None
    tag = str(name)
    if isinstance(context.get("map_index"), int) and context["map_index"] >= 0:
        tag += f"[{context['map_index']}]"
    try_number = context.get("try_number")
    if isinstance(try_number, int) and try_number > 1:
        tag += f" try {try_number}"
    return tag


def _summarise(body: Any, limit: int = 120) -> str:
    if not isinstance(body, dict):
        return ""
    parts = []
    for k, v in body.items():
        if k in ("type", "ti_context"):
            continue
        if k == "ti" and isinstance(v, dict):
            v = f"{v.get('dag_id')}.{v.get('task_id')} try {v.get('try_number')}"
        text = v.isoformat() if hasattr(v, "isoformat") else repr(v)
        if len(text) > 40:
            text = text[:37] + "..."
        parts.append(f"{k}={text}")
    out = " ".join(parts)
    return out if len(out) <= limit else out[: limit - 3] + "..."


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def print_summary(
    outcome: TaskOutcome,
    title: str,
    stream: TextIO = sys.stderr,
    transcript: str | None = None,
    diagnosis: Diagnosis | None = None,
) -> None:
    """The try's verdict: final state, exit code and duration, what crossed the channels, and,
    when it did not succeed, why (the runtime's exception or the supervisor's verdict) and the
    last lines of the runtime's stderr — shown even with ``-q``, which hides the logs. A try
    that exited 0 without a terminal message did not succeed either (``never_reported``):
    its state is "not reported", and the reason says what becomes of the TI."""
    colors = use_color(stream)

    def style(code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if colors and code else text

    c = outcome.counts
    state = outcome.final_state or "not started"
    # "success" from exit 0 is only what the supervisor computed: nothing was sent.
    unreported = never_reported(outcome)
    exit_code = "none" if outcome.exit_code is None else str(outcome.exit_code)
    verdict = f"exit code {exit_code} · {outcome.duration_s:.3f}s"
    activity = (
        f"{_plural(c.get('frames_in', 0), 'frame')} in, {c.get('frames_out', 0)} out · "
        f"{_plural(c.get('http', 0), 'http call')} · {_plural(c.get('log', 0), 'log line')} · "
        f"{_plural(outcome.violation_count, 'violation')}"
    )
    width = terminal_width(stream)
    lines = [style(_BOLD, f"── {title} ──")]
    if unreported:
        state = "not reported (the TI stays running)"
        state_text = style(_LEVEL_STYLE["warning"], "not reported") + " (the TI stays running)"
    else:
        state_text = style(_STATE_STYLE.get(state, _BOLD), state)
    failed = outcome.final_state != "success" or unreported
    if outcome.interrupted and outcome.started and failed:
        # The state is the one Airflow would record for how the runtime ended; say why.
        state += " (interrupted)"
        state_text += " (interrupted)"
    if width is None or len(f"  final state   {state} · {verdict} · {activity}") <= width:
        lines.append(f"  final state   {state_text} · {verdict} · {activity}")
    else:
        lines += [f"  final state   {state_text} · {verdict}", f"  activity      {activity}"]
    lines += _violation_lines(outcome)
    reason = None
    if unreported:
        reason = _NEVER_REPORTED
    elif diagnosis is not None and failed:
        reason = diagnosis.reason(outcome)
    if reason and outcome.interrupted and outcome.started and failed:
        reason = f"interrupted: the signal supervisor-sim received went to the runtime; {reason}"
    if reason:
        lines.append(f"  reason        {style(_LEVEL_STYLE['error'], printable(reason))}")
    if diagnosis is not None and failed and diagnosis.stderr_tail:
        lines.append(f"  stderr        last {_plural(len(diagnosis.stderr_tail), 'line')}:")
        lines += [f"    {printable(line)}" for line in diagnosis.stderr_tail]
    if outcome.error and outcome.error != reason:
        lines.append(f"  error         {printable(outcome.error)}")
    if transcript:
        lines.append(f"  transcript    {shown_path(transcript)}")
    print("\n".join(lines), file=stream)


#: Why a try that exited 0 without a terminal message is not a success.
_NEVER_REPORTED = (
    "exit 0, but the runtime never reported a terminal state to the API: Airflow's TI stays "
    "running (the scheduler later fails it as a zombie)"
)


def never_reported(outcome: TaskOutcome) -> bool:
    """``TaskOutcome.never_reported``: exit 0 without a terminal message."""
    return outcome.never_reported


def _violation_lines(outcome: TaskOutcome, limit: int = 20) -> list[str]:
    """The summary's violations with repeats aggregated: each distinct one once, with how often
    it was recorded, and for a rule past the journal's caps how many more were only counted
    ("239,664 more log-invalid-utf8"); at most ``limit`` distinct ones, then how many more."""
    groups: dict[tuple[str, str], list[Any]] = {}  # (rule, message) -> [first, times]
    for v in outcome.violations:
        group = groups.setdefault((v.rule, v.message), [v, 0])
        group[1] += 1
    keys = list(groups)
    last = {rule: i for i, (rule, _) in enumerate(keys)}  # each rule's last group
    suppressed = outcome.violations_suppressed
    lines: list[str] = []
    for i, key in enumerate(keys[:limit]):
        v, times = groups[key]
        repeated = f" (x{times:,})" if times > 1 else ""
        lines.append(f"    - {v.rule}: {printable(v.message)}{repeated}")
        lines.append(f"      Airflow: {v.airflow}")
        if last[v.rule] == i and suppressed.get(v.rule):
            lines.append(f"      {suppressed[v.rule]:,} more {v.rule} (counted, not recorded)")
    if len(keys) > limit:
        rest = sum(groups[key][1] for key in keys[limit:])
        lines.append(f"    ... and {rest:,} more, {len(keys) - limit:,} of them different")
    for rule, n in suppressed.items():
        if last.get(rule, limit) >= limit:
            lines.append(f"    - {n:,} more {rule} (counted, not recorded)")
    return lines


def shown_path(path: str) -> str:
    """``path`` relative to the working directory when it is under it (shorter to read)."""
    try:
        return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path
    except ValueError:
        return path

"""Showing a session as it happens: runtime logs through structlog, frames and verdicts around them.

On a terminal, structlog's console renderer with colour; otherwise (or with ``--log-format
json``) one JSON object per line, so CI logs stay machine-readable. Everything goes to stderr:
stdout is kept for ``--json`` results.

The JSON lines are written without structlog: ``import structlog`` alone loads its console
renderer, rich and asyncio (~50 ms of start-up), and the JSON format needs none of them.
``_JsonLogger`` writes exactly what the structlog chain ``configure_logging("json")`` used to
configure wrote (tests/cli/test_startup_console.py compares the two).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ..supervision import Event, TaskOutcome

__all__ = ["ConsoleSink", "configure_logging", "print_summary"]

#: The stream JSON lines go to, once ``configure_logging("json")`` chose that format; None
#: while the format is structlog's (configured for the console, or never configured).
_json_stream: TextIO | None = None


def configure_logging(fmt: str, stream: TextIO = sys.stderr) -> None:
    global _json_stream
    if fmt == "json":
        _json_stream = stream
        return
    _json_stream = None
    import structlog

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            _timestamp_first,
            structlog.dev.ConsoleRenderer(colors=stream.isatty(), sort_keys=False, pad_event_to=40),
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


def _logger(name: str, context: dict[str, Any]) -> Any:
    if _json_stream is not None:
        return _JsonLogger(_json_stream, dict(context))
    import structlog

    return structlog.get_logger(name).bind(**context)


_LEVEL_METHOD = {"warn": "warning", "exception": "error", "fatal": "critical"}


class ConsoleSink:
    """A journal sink: re-emits runtime logs and narrates frames, process events, violations."""

    def __init__(self, *, verbosity: int = 1, bind: bool = True, **context: Any) -> None:
        self.verbosity = verbosity
        #: Masks secrets in what is shown; the session sets it to its secrets masker.
        self.redact: Callable[[Any], Any] = lambda value: value
        context = context if bind else {}
        self.task_log = _logger("task", context)
        self.sup_log = _logger("supervisor-sim", context)

    def __call__(self, event: Event) -> None:
        d = event.data
        if event.kind == "log":
            if self.verbosity < 1:
                return
            record = dict(d["record"])
            level = _LEVEL_METHOD.get(record.pop("level", "info")) or "info"
            message = record.pop("event", "")
            ts = record.pop("timestamp", None)
            record.setdefault("source", d["source"])
            getattr(
                self.task_log,
                level if level in ("debug", "info", "warning", "error", "critical") else "info",
            )(message, _runtime_ts=ts, **record)
        elif event.kind == "frame":
            if self.verbosity < 1:
                return
            arrow = "runtime -> sup" if d["direction"] == "in" else "sup -> runtime"
            kw: dict[str, Any] = {"id": d.get("id")}
            if d.get("error") and d["direction"] == "in":
                kw["error"] = d["error"]
            elif d["direction"] == "out" and d.get("error"):
                kw["error"] = (d["error"] or {}).get("detail")
            summary = _summarise(self.redact(d.get("body")))
            if summary:
                kw["body"] = summary
            name = d.get("type") or ("ack" if d["direction"] == "out" else "?")
            self.sup_log.info(f"{arrow} {name}", **kw)
        elif event.kind == "http":
            if self.verbosity >= 2:
                self.sup_log.debug(f"http {d['method']} {d['path']}", status=d.get("status"))
        elif event.kind == "process":
            if self.verbosity >= 1:
                kw = {k: v for k, v in d.items() if k != "event"}
                method = (
                    self.sup_log.warning
                    if d.get("event") in ("reject", "signal")
                    else (self.sup_log.info)
                )
                method(f"process {d['event']}", **kw)
        elif event.kind == "violation":
            self.sup_log.warning(
                f"violation {d['rule']}", message=d["message"], airflow=d.get("airflow")
            )
        elif event.kind == "note":
            level = d.get("level", "info")
            if level == "debug" and self.verbosity < 2:
                return
            getattr(
                self.sup_log, level if level in ("debug", "info", "warning", "error") else "info"
            )(d["message"])


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


def print_summary(
    outcome: TaskOutcome, title: str, stream: TextIO = sys.stderr, transcript: str | None = None
) -> None:
    c = outcome.counts
    state = outcome.final_state or "not started"
    lines = [
        "",
        f"── {title} ──",
        f"  final state   {state}",
        f"  exit code     {outcome.exit_code}",
        f"  duration      {outcome.duration_s:.3f}s",
        f"  frames        {c.get('frames_in', 0)} received, {c.get('frames_out', 0)} sent",
        f"  http calls    {c.get('http', 0)}",
        f"  log lines     {c.get('log', 0)}",
        f"  violations    {len(outcome.violations)}",
    ]
    for v in outcome.violations[:20]:
        lines.append(f"    - {v.rule}: {v.message}")
        lines.append(f"      Airflow: {v.airflow}")
    if len(outcome.violations) > 20:
        lines.append(f"    ... and {len(outcome.violations) - 20} more")
    if outcome.error:
        lines.append(f"  error         {outcome.error}")
    if transcript:
        lines.append(f"  transcript    {transcript}")
    print("\n".join(lines), file=stream)

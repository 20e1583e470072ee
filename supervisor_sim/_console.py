"""Showing a session as it happens: runtime logs through structlog, frames and verdicts around them.

On a terminal, structlog's console renderer with colour; otherwise (or with ``--log-format
json``) one JSON object per line, so CI logs stay machine-readable. Everything goes to stderr:
stdout is kept for ``--json`` results.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

import structlog

from .supervision import Event, TaskOutcome

__all__ = ["ConsoleSink", "configure_logging", "print_summary"]


def configure_logging(fmt: str, stream: TextIO = sys.stderr) -> None:
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), sort_keys=False, pad_event_to=40
        )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            _timestamp_first,
            renderer,
        ],
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def _timestamp_first(logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    # The runtime's own timestamp wins over the time we re-emit it at.
    ts = event_dict.pop("_runtime_ts", None)
    if ts:
        event_dict["timestamp"] = ts
    return event_dict


_LEVEL_METHOD = {"warn": "warning", "exception": "error", "fatal": "critical"}


class ConsoleSink:
    """A journal sink: re-emits runtime logs and narrates frames, process events, violations."""

    def __init__(self, *, verbosity: int = 1, bind: bool = True, **context: Any) -> None:
        self.verbosity = verbosity
        #: Masks secrets in what is shown; the session sets it to its secrets masker.
        self.redact: Any = lambda value: value
        context = context if bind else {}
        self.task_log = structlog.get_logger("task").bind(**context)
        self.sup_log = structlog.get_logger("supervisor-sim").bind(**context)

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

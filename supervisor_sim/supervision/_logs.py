"""Turning the runtime's log lines into records, as Airflow's supervisor reads them.

Airflow (supervisor-behaviour.md §8, protocol.md §4.2) crashes on a logs-channel line without
``level`` or with a non-string ``timestamp``, and silently drops unknown levels and non-JSON
lines. supervisor-sim keeps every line, and reports each of those as a violation that says what
Airflow would have done.
"""

from __future__ import annotations

import json
from typing import Any

from ..protocol import Line, parse_datetime
from ._events import Violation

__all__ = ["LEVELS", "parse_log_line", "stream_record"]

#: structlog's NAME_TO_LEVEL names that Airflow maps to a level above NOTSET.
LEVELS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "fatal"}


def _decode(line: Line) -> tuple[str, list[Violation]]:
    violations: list[Violation] = []
    try:
        text = line.data.decode("utf-8")
    except UnicodeDecodeError:
        text = line.data.decode("utf-8", errors="replace")
        violations.append(
            Violation(
                "log-invalid-utf8",
                "log line is not valid UTF-8; invalid bytes were replaced with U+FFFD",
                "Airflow fails to decode the line as JSON and drops it ('Malformed json log line')",
            )
        )
    if line.truncated:
        violations.append(
            Violation(
                "log-line-too-long",
                f"log line was cut: {line.dropped} bytes past the line-length cap were dropped",
                "Airflow buffers lines without limit",
            )
        )
    return text.rstrip("\r"), violations


def parse_log_line(line: Line) -> tuple[dict[str, Any], list[Violation]]:
    """A logs-channel line -> (record with at least level and event, violations found)."""
    text, violations = _decode(line)
    marker = " [truncated]" if line.truncated else ""
    try:
        obj = json.loads(text)
    except ValueError as exc:
        violations.append(
            Violation(
                "log-not-json",
                f"log line is not JSON ({exc.msg} at column {exc.colno}): {text[:80]!r}",
                "Airflow logs 'Malformed json log line' in its own log and drops the line",
            )
        )
        return {"level": "info", "event": text + marker, "malformed": True}, violations
    if not isinstance(obj, dict):
        violations.append(
            Violation(
                "log-not-object",
                f"log line is JSON but not an object: {text[:80]!r}",
                "Airflow's supervisor crashes: the exception ends supervise_task and the task "
                "instance stays 'running' on the server",
            )
        )
        return {"level": "info", "event": text + marker, "malformed": True}, violations
    record = dict(obj)
    if "exception" in record:
        record["error_detail"] = record.pop("exception")
    level = record.pop("level", None)
    if "level" not in obj:
        violations.append(
            Violation(
                "log-missing-level",
                "log record has no 'level' key",
                "Airflow's supervisor crashes with KeyError('level'); supervise_task fails and the "
                "task instance is left 'running' on the server",
            )
        )
        level = "info"
    elif not isinstance(level, str) or level not in LEVELS:
        violations.append(
            Violation(
                "log-unknown-level",
                f"log level {level!r} is not one of {', '.join(sorted(LEVELS))} (lowercase)",
                "Airflow silently drops the line",
            )
        )
        record["original_level"] = level
        level = "info"
    ts = record.get("timestamp")
    if ts:
        bad = not isinstance(ts, str)
        if not bad:
            try:
                parse_datetime(ts)
            except ValueError:
                bad = True
        if bad:
            violations.append(
                Violation(
                    "log-bad-timestamp",
                    f"log 'timestamp' must be an RFC 3339 string, got {ts!r:.60}",
                    "Airflow's supervisor crashes parsing it; supervise_task fails",
                )
            )
    event = record.pop("event", "")
    record = {"level": level, "event": ("" if event is None else str(event)) + marker, **record}
    return record, violations


def stream_record(line: Line, stream: str) -> tuple[dict[str, Any], list[Violation]]:
    """A stdout/stderr line -> record, as Airflow logs it (task.stdout INFO, task.stderr ERROR)."""
    text, violations = _decode(line)
    marker = " [truncated]" if line.truncated else ""
    level = "info" if stream == "stdout" else "error"
    return {"level": level, "event": text.rstrip() + marker, "logger": f"task.{stream}"}, violations

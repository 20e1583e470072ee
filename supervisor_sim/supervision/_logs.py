"""Turning the runtime's log lines into records, as Airflow's supervisor reads them.

Airflow crashes on a logs-channel line without ``level`` or with a non-string ``timestamp``, and
silently drops unknown levels and non-JSON lines. supervisor-sim keeps every line, and reports
each of those as a violation that says what Airflow would have done.

A line is checked against the limits (docs/reliability.md, "Limits") before ``json.loads`` sees
it: its bracket depth by a scan that costs nothing for an ordinary line, and its integers'
lengths. A line over a limit is kept unparsed, like a line that is not JSON.
"""

from __future__ import annotations

import functools
import json
import re
from itertools import accumulate
from typing import Any

from ..protocol import LIMITS, Limits, Line, parse_datetime
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


# A JSON string, or an unterminated one running to the end of the line: every quote starts a
# match that succeeds, so removing the strings is one linear pass (no failed attempts to retry).
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"{": 1, "[": 1, "}": -1, "]": -1}


def _depth_over(text: str, limit: int) -> bool:
    """Whether the JSON ``text`` nests arrays and objects more than ``limit`` deep. (Callers
    first count its brackets: a line with no more than ``limit`` of them is never scanned.)"""
    outside = _JSON_STRING.sub("", text)  # brackets in strings do not nest
    if outside.count("{") + outside.count("[") <= limit:
        return False
    brackets = _NOT_BRACKET.sub("", outside)
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets))) > limit


class _IntTooLong(Exception):
    pass


@functools.lru_cache(maxsize=8)
def _decoder(max_digits: int) -> json.JSONDecoder:
    """``json.loads``'s decoder, refusing integers of more than ``max_digits`` digits. Each
    integer costs one call; a line is not scanned for them first (most lines have none)."""

    def parse_int(text: str) -> int:
        if len(text) - (text[0] == "-") > max_digits:
            raise _IntTooLong
        return int(text)

    return json.JSONDecoder(parse_int=parse_int)


def _unparsed(text: str, marker: str) -> dict[str, Any]:
    return {"level": "info", "event": text + marker, "malformed": True}


_AIRFLOW_DROPS = "Airflow logs 'Malformed json log line' in its own log and drops the line"


def _loads(text: str, limits: Limits) -> tuple[Any, Violation | None]:
    """``json.loads(text)`` within the limits, or the violation that kept it from being parsed.

    No message quotes the line: it may hold a secret the masker has not learned yet."""
    depth = limits.max_log_depth
    # Too few brackets to nest too deep, even counting those in strings: an ordinary line.
    if text.count("{") + text.count("[") > depth and _depth_over(text, depth):
        return None, Violation(
            "log-too-deep",
            f"log line nests arrays and objects more than {limits.max_log_depth} levels deep, "
            f"over the limit (max_log_depth={limits.max_log_depth}); kept unparsed",
            "Airflow parses it with msgspec: it forwards lines up to about 1,000 levels deep, "
            "and deeper ones fail ('Malformed json log line') and are dropped",
        )
    try:
        if len(text) <= limits.max_int_digits:  # too short to hold a number too long
            return json.loads(text), None
        return _decoder(limits.max_int_digits).decode(text), None
    except _IntTooLong:
        return None, Violation(
            "log-number-too-long",
            f"log line has an integer of more than {limits.max_int_digits} digits, over the "
            f"limit (max_int_digits={limits.max_int_digits}); kept unparsed",
            "Airflow's msgspec reads integers of up to 4300 digits; past that the line fails "
            "('Malformed json log line') and is dropped",
        )
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError):
            message = f"log line is not JSON ({exc.msg} at column {exc.colno}); kept unparsed"
        else:  # int() refusing a number: sys.set_int_max_str_digits is below max_int_digits
            message = "log line is not JSON (a number in it could not be read)"
        return None, Violation("log-not-json", message, _AIRFLOW_DROPS)


#: A value from a log line is quoted in a violation only up to this length, and then whole:
#: cut short, it could end in the start of a secret, which masking would not recognise.
_QUOTE_MAX = 60


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _quoted(value: Any) -> str:
    """A value for a violation's message: a short string or number whole, anything else named
    by its kind and size. The journal masks the message; a cut quote could defeat that."""
    if isinstance(value, str):
        return repr(value) if len(value) <= _QUOTE_MAX else f"a string of {len(value):,} characters"
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return json.dumps(value)
    if isinstance(value, int):
        text = str(value)
        return text if len(text) <= _QUOTE_MAX else f"a number of {len(text):,} digits"
    if isinstance(value, list):
        return f"an array of {len(value):,} items"
    return f"an object of {len(value):,} keys" if isinstance(value, dict) else "a value"


def parse_log_line(line: Line, limits: Limits = LIMITS) -> tuple[dict[str, Any], list[Violation]]:
    """A logs-channel line -> (record with at least level and event, violations found)."""
    text, violations = _decode(line)
    marker = " [truncated]" if line.truncated else ""
    obj, refused = _loads(text, limits)
    if refused is not None:
        violations.append(refused)
        return _unparsed(text, marker), violations
    if not isinstance(obj, dict):
        violations.append(
            Violation(
                "log-not-object",
                f"log line is JSON but not an object (a JSON {_json_kind(obj)})",
                "Airflow's supervisor crashes: the exception ends supervise_task and the task "
                "instance stays 'running' on the server",
            )
        )
        return _unparsed(text, marker), violations
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
                f"log level {_quoted(level)} is not one of {', '.join(sorted(LEVELS))} (lowercase)",
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
                    f"log 'timestamp' must be an RFC 3339 string, got {_quoted(ts)}",
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

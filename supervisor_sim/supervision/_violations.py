"""Every rule a session reports a runtime for breaking: one table, id -> (title, what Airflow does).

The place that finds a problem names its rule and says what it saw (``violation(rule, detail)``);
what real Airflow 3.3 would have done comes from here, so the same rule always says the same
thing. The ids are what transcripts, ``--json`` results, docs/reliability.md and
docs/fidelity.md name. ``tests/supervision/test_violations.py`` fails when code reports an id
the table lacks, or the table keeps one nothing reports.
"""

from __future__ import annotations

from typing import NamedTuple

from ..protocol import ProtocolError
from ._events import Violation

__all__ = ["RULES", "Rule", "frame_violation", "violation"]


class Rule(NamedTuple):
    """One rule: a short title, and what Airflow's supervisor does when a runtime breaks it."""

    title: str
    airflow: str


#: What Airflow's supervisor does with a frame it cannot read (it catches none of these).
_UNCAUGHT = "Airflow's supervisor does not catch this: the exception ends supervise_task"

RULES: dict[str, Rule] = {
    # --- connecting -------------------------------------------------------------------------------
    "foreign-connection": Rule(
        "a process outside the runtime's process tree connected",
        "Airflow closes it with a warning and keeps waiting",
    ),
    # --- frames on --comm (the rule ids protocol's decoder raises) --------------------------------
    "zero-length-frame": Rule(
        "a frame of length 0",
        "Airflow's supervisor treats length 0 as 'no length yet' and spins forever on the "
        "readable socket",
    ),
    "frame-too-large": Rule(
        "a length header over the frame-size limit",
        "Airflow allocates the announced length and waits for it (no limit)",
    ),
    "truncated-frame": Rule(
        "the stream ended inside a frame",
        "Airflow silently discards the partial frame at EOF",
    ),
    "bad-msgpack": Rule("a frame payload that is not valid msgpack", _UNCAUGHT),
    "not-an-array": Rule("a frame payload that is not a msgpack array", _UNCAUGHT),
    "too-few-elements": Rule("a request frame shorter than [id, body]", _UNCAUGHT),
    "bad-id": Rule("a frame id that is not an integer", _UNCAUGHT),
    "bad-body": Rule("a request body that is neither a map nor nil", _UNCAUGHT),
    "bad-carrier": Rule("a context carrier that is neither a map nor nil", _UNCAUGHT),
    "frame-too-deep": Rule(
        "a frame nesting arrays and maps deeper than max_frame_depth",
        "Airflow's msgspec decoder reads frames up to about 1,000 levels deep; deeper ones raise "
        "RecursionError, which ends supervise_task",
    ),
    # --- requests ---------------------------------------------------------------------------------
    # Reported as ``invalid-request:<problem>``, the problem being validation's rule.
    "invalid-request": Rule(
        "a request that fails validation",
        "Airflow logs 'Unable to decode message' and never answers: the runtime blocks forever "
        "waiting for the reply",
    ),
    "triggerer-only-request": Rule(
        "a request only the triggerer handles",
        "Airflow answers with an error frame: API_SERVER_ERROR 'Unhandled request'",
    ),
    "fork-mode-only-request": Rule(
        "a request that needs the AF_UNIX comm socket of Airflow's fork mode",
        "Airflow's send_fds fails on a TCP socket: the runtime gets an error frame and a "
        "socketpair leaks",
    ),
    # --- the task workload ------------------------------------------------------------------------
    "no-terminal-message": Rule(
        "exit 0 without a terminal message",
        "Airflow reports nothing: the task instance stays 'running' until the scheduler's "
        "heartbeat timeout fails it",
    ),
    # --- the parse workload -----------------------------------------------------------------------
    "duplicate-parsing-result": Rule(
        "a second DagFileParsingResult",
        "Airflow's DAG processor stores whichever result it reads last",
    ),
    "not-a-parse-request": Rule(
        "a request the DAG processor does not serve",
        "Airflow's DAG processor answers with an error frame: GENERIC_ERROR 'Unhandled request'",
    ),
    "no-parsing-result": Rule(
        "exit without a DagFileParsingResult",
        "Airflow records the file as failed to parse (no DAGs, no import errors)",
    ),
    # --- log lines (supervision/_logs.py) ---------------------------------------------------------
    "log-invalid-utf8": Rule(
        "a log line that is not valid UTF-8",
        "Airflow fails to decode the line as JSON and drops it ('Malformed json log line')",
    ),
    "log-line-too-long": Rule(
        "a log line over the line-length cap", "Airflow buffers lines without limit"
    ),
    "log-too-deep": Rule(
        "a --logs line nesting arrays and objects deeper than max_log_depth",
        "Airflow parses it with msgspec: it forwards lines up to about 1,000 levels deep, and "
        "deeper ones fail ('Malformed json log line') and are dropped",
    ),
    "log-number-too-long": Rule(
        "a --logs line with an integer longer than max_int_digits",
        "Airflow's msgspec reads integers of up to 4300 digits; past that the line fails "
        "('Malformed json log line') and is dropped",
    ),
    "log-not-json": Rule(
        "a --logs line that is not JSON",
        "Airflow logs 'Malformed json log line' in its own log and drops the line",
    ),
    "log-not-object": Rule(
        "a --logs line that is JSON but not an object",
        "Airflow's supervisor crashes: the exception ends supervise_task and the task instance "
        "stays 'running' on the server",
    ),
    "log-missing-level": Rule(
        "a log record without 'level'",
        "Airflow's supervisor crashes with KeyError('level'); supervise_task fails and the task "
        "instance is left 'running' on the server",
    ),
    "log-unknown-level": Rule(
        "a log level Airflow does not know",
        "Airflow silently drops the line",
    ),
    "log-bad-timestamp": Rule(
        "a log 'timestamp' that is not an RFC 3339 string",
        "Airflow's supervisor crashes parsing it; supervise_task fails",
    ),
}


def violation(
    rule: str,
    detail: str,
    *,
    variant: str | None = None,
    path: str | None = None,
    frame_id: int | None = None,
    raw: bytes | None = None,
) -> Violation:
    """The violation of ``rule`` (an id of ``RULES``) that ``detail`` describes.

    ``variant`` names which case of a family was broken: the violation's id is then
    ``rule:variant`` (``invalid-request:unknown-type``).
    """
    entry = RULES[rule]
    return Violation(
        f"{rule}:{variant}" if variant else rule,
        detail,
        entry.airflow,
        path=path,
        frame_id=frame_id,
        raw=raw,
    )


def frame_violation(exc: ProtocolError, raw: bytes) -> Violation:
    """The violation for a frame protocol's decoder rejected; ``raw``: the bytes it consumed,
    when they are not in a frame record already."""
    entry = RULES.get(exc.rule)
    return Violation(
        exc.rule,
        f"{exc.message} (byte offset {exc.offset})",
        entry.airflow if entry is not None else _UNCAUGHT,
        frame_id=exc.request_id,
        raw=raw or None,
    )

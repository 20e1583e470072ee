"""The violations table: one entry per rule a session reports, and each report says what it says."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from supervisor_sim.protocol import Line, ProtocolError
from supervisor_sim.supervision import RULES, violation
from supervisor_sim.supervision._logs import parse_log_line, stream_record
from supervisor_sim.supervision._violations import frame_violation

PKG = Path(__file__).resolve().parents[2] / "supervisor_sim"
#: Raised only when decoding a reply, which a supervisor never does.
RESPONSE_ONLY = {"bad-error"}


def _string_args(paths: list[Path], calls: dict[str, int]) -> set[str]:
    """The string constants passed as argument ``calls[name]`` to calls of ``name`` in ``paths``."""
    found: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            index = calls.get(name or "")
            if index is None or len(node.args) <= index:
                continue
            arg = node.args[index]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.add(arg.value)
    return found


def _reported_by_sessions() -> set[str]:
    return _string_args(
        sorted((PKG / "supervision").glob("*.py")), {"violation": 0, "Violation": 0}
    )


def _frame_rules() -> set[str]:
    paths = [PKG / "protocol" / "_framing.py", PKG / "protocol" / "_codec.py"]
    return _string_args(paths, {"ProtocolError": 0, "_map_or_nil": 1}) - RESPONSE_ONLY


def test_every_reported_rule_is_in_the_table_and_every_entry_is_reported() -> None:
    """The ids sessions report (by name, or as the frame decoder's rule) are exactly the table's."""
    reported = _reported_by_sessions()
    frames = _frame_rules()
    assert reported, "no violation(...) call found: the scan is broken"
    assert frames >= {"zero-length-frame", "frame-too-large", "truncated-frame", "bad-msgpack"}
    assert sorted((reported | frames) - set(RULES)) == [], "reported but not in RULES"
    assert sorted(set(RULES) - reported - frames) == [], "in RULES but never reported"


def test_every_entry_has_a_title_and_says_what_airflow_does() -> None:
    """No entry is blank: each names the problem and Airflow's reaction to it."""
    for rule, entry in RULES.items():
        assert entry.title and entry.airflow, rule
        assert "Airflow" in entry.airflow, rule


def test_a_violation_takes_airflows_reaction_from_the_table() -> None:
    """``violation`` keeps the site's detail and fills in the table's text; a variant joins the
    rule id after a colon."""
    v = violation("invalid-request", "body.type: unknown", variant="unknown-type", frame_id=3)
    assert (v.rule, v.message, v.frame_id) == (
        "invalid-request:unknown-type",
        "body.type: unknown",
        3,
    )
    assert v.airflow == RULES["invalid-request"].airflow
    with pytest.raises(KeyError):
        violation("no-such-rule", "x")


def test_a_frame_violation_names_the_decoders_rule_and_the_offset() -> None:
    """A frame the decoder rejected is reported under the decoder's rule, with the byte offset."""
    v = frame_violation(ProtocolError("zero-length-frame", "empty", offset=12), b"\0\0\0\0")
    assert (v.rule, v.message, v.raw) == ("zero-length-frame", "empty (byte offset 12)", bytes(4))
    assert v.airflow == RULES["zero-length-frame"].airflow
    unknown = frame_violation(ProtocolError("some-new-rule", "odd", offset=0), b"")
    assert unknown.raw is None and "supervise_task" in unknown.airflow


@pytest.mark.parametrize(
    "data, rule",
    [
        (b"\xff not utf-8", "log-invalid-utf8"),
        (b"not json", "log-not-json"),
        (b"[1, 2]", "log-not-object"),
        (b'{"event": "x"}', "log-missing-level"),
        (b'{"event": "x", "level": "loud"}', "log-unknown-level"),
        (b'{"event": "x", "level": "info", "timestamp": 5}', "log-bad-timestamp"),
        (b'{"level": "info", "deep": ' + b"[" * 80 + b"]" * 80 + b"}", "log-too-deep"),
        (b'{"level": "info", "n": ' + b"7" * 700 + b"}", "log-number-too-long"),
    ],
)
def test_log_line_violations_say_what_the_table_says(data: bytes, rule: str) -> None:
    """The log parser's violations carry the table's words for their rule."""
    _, violations = parse_log_line(Line(data))
    found = [v for v in violations if v.rule == rule]
    assert found, [v.rule for v in violations]
    assert found[0].airflow == RULES[rule].airflow


def test_a_cut_line_says_what_the_table_says() -> None:
    """A line cut at the length cap is reported with the table's words, on any channel."""
    _, violations = stream_record(Line(b"x" * 10, dropped=5), "stdout")
    assert [(v.rule, v.airflow) for v in violations] == [
        ("log-line-too-long", RULES["log-line-too-long"].airflow)
    ]

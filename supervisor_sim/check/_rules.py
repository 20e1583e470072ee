"""The rules of `supervisor-sim check`: each one judged from what the scenarios recorded.

A rule is pass, fail or n/a, always with a one-line summary and evidence: the frames exchanged,
log lines and process events that show why. Every protocol violation a session reported becomes
a failed rule of its own, ``violation:<rule>``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..protocol import (
    CATALOGUE,
    DATETIME,
    DEFINITIONS,
    TERMINAL,
    AnyOf,
    ListOf,
    MapOf,
    Model,
    Ref,
    TupleOf,
    Type,
    parse_datetime,
    validate_serialized_dag,
)
from ..supervision import LEVELS, Event
from ._scenarios import ScenarioResult
from ._session import PROBE_XCOM_KEY, timestamp_size, walk_datetimes

__all__ = ["RULES", "RuleResult", "Verdict", "evaluate", "trace"]

#: ``warn``: the runtime got through, but not as a well-behaved one would (it does not fail
#: the check).
PASS, FAIL, NA, WARN = "pass", "fail", "n/a", "warn"
Verdict = str


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    scenarios: tuple[str, ...]


RULES: tuple[Rule, ...] = (
    Rule("connects", "connects --comm and --logs within the startup timeout", ("*",)),
    Rule(
        "unknown-fields",
        "tolerates unknown fields in StartupDetails and replies, at every level",
        ("unknown-fields",),
    ),
    Rule(
        "missing-optional-fields",
        "tolerates optional fields missing from StartupDetails",
        ("missing-optional",),
    ),
    Rule(
        "null-optional-fields",
        "tolerates nil in every nullable position of StartupDetails",
        ("null-optional",),
    ),
    Rule(
        "timestamp-sizes",
        "decodes msgpack timestamps of all three sizes (32, 64, 96 bit)",
        ("timestamps",),
    ),
    Rule(
        "reply-shapes",
        "accepts 3-element response frames and short ones ([id], [id, body])",
        ("baseline", "short-replies"),
    ),
    Rule(
        "aware-datetimes",
        "sends every datetime field as an aware timestamp (or a string with a zone)",
        ("*",),
    ),
    Rule(
        "request-ids",
        "numbers requests from 0, increasing, with one request in flight",
        ("*",),
    ),
    Rule("reply-ids", "rejects a reply whose id is not its request's", ("wrong-reply-id",)),
    Rule(
        "error-body",
        "survives an ErrorResponse in the body slot: terminal message, exit 0",
        ("error-body",),
    ),
    Rule(
        "error-slot",
        "survives an ErrorResponse in the error slot: terminal message, exit 0",
        ("error-slot",),
    ),
    Rule("unknown-task", "reports an unknown task as TaskState removed", ("unknown-task",)),
    Rule(
        "clears-xcom-keys",
        "deletes the XComs named in ti_context.xcom_keys_to_clear",
        ("baseline",),
    ),
    Rule(
        "terminal-and-exit",
        "sends exactly one terminal message and exits 0 within the overtime window",
        ("baseline", "*"),
    ),
    Rule(
        "json-logs",
        "writes JSON log lines with level, event and timestamp",
        ("*",),
    ),
    Rule(
        "comm-close",
        "exits, without hanging, when the supervisor closes the comm connection",
        ("comm-closed",),
    ),
    Rule(
        "api-500",
        "ends the task, without hanging, when an API call fails with 500 after the retries",
        ("api-500",),
    ),
    Rule(
        "slow-api",
        "still completes, as in the baseline, when an API call is slow",
        ("slow-api",),
    ),
    Rule(
        "token-expiry",
        "ends the task, without hanging, when the token expires (403 Invalid auth token)",
        ("token-expiry",),
    ),
    Rule(
        "killed-from-outside",
        "exits promptly on SIGTERM when the TI is marked failed from outside",
        ("killed",),
    ),
    Rule(
        "parse",
        "answers DagFileParseRequest with schema-valid serialized DAGs",
        ("parse",),
    ),
)
RULE_IDS = tuple(r.id for r in RULES)
_TITLES = {r.id: r.title for r in RULES}


@dataclass
class RuleResult:
    rule: str
    title: str
    result: Verdict
    summary: str
    evidence: list[str] = field(default_factory=list)
    scenarios: list[str] = field(default_factory=list)
    skipped: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "title": self.title,
            "result": self.result,
            "summary": self.summary,
            "evidence": self.evidence,
            "scenarios": self.scenarios,
            **({"skipped": True} if self.skipped else {}),
        }


# --- rendering what happened --------------------------------------------------------------------


def _short(value: Any, limit: int = 100) -> str:
    text = (
        json.dumps(value, default=str, ensure_ascii=False) if not isinstance(value, str) else value
    )
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _body_hint(body: dict[str, Any] | None) -> str:
    if not isinstance(body, dict):
        return ""
    parts = []
    for key in ("key", "state", "conn_id", "error"):
        if key in body and body[key] is not None:
            parts.append(f"{key}={body[key]!r}")
    return (" " + " ".join(parts)) if parts else ""


def describe(e: Event, scenario: str) -> str | None:
    """One event as one evidence line, or None when it is not worth showing."""
    p = f"[{scenario}] +{e.t:.3f}s"
    d = e.data
    if e.kind == "frame":
        elements = d.get("elements")
        size = len(d.get("payload") or b"")
        shape = f" ({elements} elements, {size} B)" if elements else f" ({size} B)"
        if d.get("direction") == "out":
            what = d.get("type") or "ack"
            slot = " in the error slot" if d.get("error") else ""
            answers = f" answering #{d['answers']}" if "answers" in d else ""
            hint = _body_hint(d.get("body") or d.get("error"))
            return f"{p} -> #{d.get('id')} {what}{slot}{hint}{answers}{shape}"
        what = d.get("type") or "(undecodable)"
        err = f" ERROR {d['error']}" if d.get("error") else ""
        return f"{p} <- #{d.get('id')} {what}{_body_hint(d.get('body'))}{shape}{err}"
    if e.kind == "log":
        rec = d.get("record") or {}
        src = d.get("source")
        level = rec.get("level", "info")
        if src != "logs" and level == "info":
            return f"{p} {src}: {_short(rec.get('event', ''), 160)}"
        return f"{p} log {level}: {_short(rec.get('event', ''), 160)}"
    if e.kind == "process":
        ev = d.get("event")
        if ev == "exit":
            extra = f" ({d['message']})" if d.get("message") else ""
            return f"{p} process exited with code {d.get('exit_code')}{extra}"
        if ev == "signal":
            return (
                f"{p} supervisor sent {d.get('signal')} to the {d.get('target')}: {d.get('reason')}"
            )
        if ev == "connect":
            return f"{p} --{d.get('channel')} connected"
        if ev == "spawn-failed":
            return f"{p} could not start the runtime: {d.get('error')}"
        return None
    if e.kind == "violation":
        return f"{p} VIOLATION {d.get('rule')}: {d.get('message')}"
    if e.kind == "note" and d.get("level") in ("warning", "error"):
        return f"{p} supervisor: {d.get('message')}"
    return None


def trace(s: ScenarioResult, limit: int = 40) -> list[str]:
    """The scenario's frames, process events, notable logs and violations, in order."""
    lines = [line for e in s.events if (line := describe(e, s.name)) is not None]
    if s.internal_error:
        lines.append(f"[{s.name}] supervisor-sim internal error: {s.internal_error}")
    if s.outcome is not None and s.outcome.error:
        lines.append(f"[{s.name}] session: {s.outcome.error}")
    if len(lines) > limit:
        cut = len(lines) - limit
        lines = [
            *lines[: limit // 2],
            f"[{s.name}] ... {cut} more lines ...",
            *lines[-limit // 2 :],
        ]
    return lines


# --- helpers over scenario results -------------------------------------------------------------


def _requests(s: ScenarioResult) -> list[Event]:
    return s.frames("in")


def _terminal_frames(s: ScenarioResult) -> list[Event]:
    return [e for e in _requests(s) if e.data.get("type") in TERMINAL]


def _completed(s: ScenarioResult, baseline: ScenarioResult) -> tuple[bool, str]:
    """Did the scenario end the way the baseline did: same terminal message, exit 0?"""
    if not s.ran:
        return False, "not run"
    if s.internal_error:
        return False, f"supervisor-sim failed to run it: {s.internal_error}"
    if s.outcome is None or not s.outcome.started:
        why = s.outcome.error if s.outcome else "no outcome"
        return False, f"the session never started: {why}"
    want = [(t, st) for _, t, st in baseline.terminals]
    got = [(t, st) for _, t, st in s.terminals]
    if got != want:
        return False, (
            f"{s.terminal_summary()} and exit {s.exit_code}{_silent(s)}; the baseline sent "
            f"{baseline.terminal_summary()} and exited {baseline.exit_code}"
        )
    if s.exit_code != 0:
        return False, f"{s.terminal_summary()} but exit {s.exit_code}{_silent(s)}"
    return True, f"{s.terminal_summary()}, exit 0, as in the baseline"


def _baseline_ok(baseline: ScenarioResult) -> bool:
    return bool(baseline.outcome and baseline.outcome.started and baseline.terminals) and (
        baseline.exit_code == 0
    )


def _silent(s: ScenarioResult) -> str:
    """ "; the runtime sent no frame within 60s of StartupDetails (killed at --timeout)" when
    the scenario ended with the supervisor waiting for its runtime, else ""."""
    silence = s.silence
    return f"; {silence.describe()}" if silence is not None else ""


def _after(s: ScenarioResult, seq: int | None) -> list[Event]:
    return [e for e in s.events if seq is None or e.seq > seq]


def _datetime_positions(value: Any, t: Type | None, path: str) -> Iterable[tuple[str, Any]]:
    """Every (path, value) of a body whose schema type is a datetime."""
    while isinstance(t, Ref):
        t = DEFINITIONS.get(t.name)
    if t is None or value is None:
        return
    if t is DATETIME:
        yield path, value
    elif isinstance(t, AnyOf):
        if DATETIME in t.options and not isinstance(value, dict | list):
            yield path, value
            return
        for option in t.options:
            o: Type | None = option
            while isinstance(o, Ref):
                o = DEFINITIONS.get(o.name)
            if (isinstance(o, Model) and isinstance(value, dict)) or (
                isinstance(o, ListOf | TupleOf) and isinstance(value, list)
            ):
                yield from _datetime_positions(value, o, path)
                return
    elif isinstance(t, Model) and isinstance(value, dict):
        for f in t.fields:
            if f.name in value:
                yield from _datetime_positions(value[f.name], f.type, f"{path}.{f.name}")
    elif isinstance(t, ListOf) and isinstance(value, list):
        for i, v in enumerate(value):
            yield from _datetime_positions(v, t.item, f"{path}[{i}]")
    elif isinstance(t, TupleOf) and isinstance(value, list):
        for i, (tt, v) in enumerate(zip(t.items, value, strict=False)):
            yield from _datetime_positions(v, tt, f"{path}[{i}]")
    elif isinstance(t, MapOf) and isinstance(value, dict):
        for k, v in value.items():
            yield from _datetime_positions(v, t.value, f"{path}.{k}")


def _datetime_problem(value: Any) -> str | None:
    if isinstance(value, datetime):
        return None if value.tzinfo is not None else "a naive datetime"
    if isinstance(value, str):
        try:
            parsed = parse_datetime(value)
        except ValueError:
            return f"the string {value!r}, which is not an ISO-8601 datetime"
        return None if parsed.tzinfo is not None else f"the string {value!r}, which has no zone"
    if isinstance(value, bool):
        return f"the bool {value!r}"
    if isinstance(value, int | float):
        return (
            f"the number {value!r} (unix seconds: Airflow's lax validation takes it, but send a "
            "msgpack timestamp)"
        )
    return f"a {type(value).__name__}"


# --- the rules ------------------------------------------------------------------------------------


def _r(rule: str, result: Verdict, summary: str, evidence: Sequence[str] = (), scenarios=()):
    return RuleResult(
        rule, _TITLES.get(rule, rule), result, summary, list(evidence), list(scenarios)
    )


def _not_run(rule: str, s: ScenarioResult) -> RuleResult:
    if s.not_run_reason:
        return _r(rule, NA, s.not_run_reason, [], [s.name])
    if s.spec.needs_target:
        return _r(
            rule,
            NA,
            "in the baseline the runtime made no request before its terminal message, so "
            "there was none to answer unusually",
            [],
            [s.name],
        )
    return _r(rule, NA, "scenario not run", [], [s.name])


def rule_connects(results: list[ScenarioResult]) -> RuleResult:
    bad, slowest = [], 0.0
    for s in results:
        if not s.ran or s.internal_error:
            continue
        connects = s.process("connect")
        if len(connects) < 2:
            bad.append(s)
        else:
            slowest = max(slowest, max(e.t for e in connects))
    if bad:
        ev = [line for s in bad for line in trace(s, 12)]
        return _r(
            "connects",
            FAIL,
            f"did not connect both channels in {len(bad)} scenario(s): "
            f"{bad[0].outcome.error if bad[0].outcome else 'no outcome'}",
            ev,
            [s.name for s in bad],
        )
    return _r(
        "connects",
        PASS,
        f"both connections accepted in every scenario (slowest {slowest:.2f}s after spawn)",
        [],
        [s.name for s in results if s.ran],
    )


def _tolerance(rule: str, s: ScenarioResult, baseline: ScenarioResult, what: str) -> RuleResult:
    if not s.ran:
        return _not_run(rule, s)
    if not _baseline_ok(baseline):
        why = "the baseline run itself did not complete"
        if baseline.silence is not None:
            why = f"the baseline hung ({baseline.silence.describe()})"
        here = f"; here too {s.silence.describe()}" if s.silence is not None else ""
        return _r(rule, NA, f"cannot compare: {why}{here} (see terminal-and-exit)", [], [s.name])
    ok, why = _completed(s, baseline)
    ev = [f"[{s.name}] {what}"] if what else []
    if ok:
        return _r(rule, PASS, why, ev, [s.name])
    return _r(rule, FAIL, why, [*ev, *trace(s)], [s.name])


def _paths(paths: list[str], limit: int = 8) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def rule_unknown_fields(s: ScenarioResult, baseline: ScenarioResult) -> RuleResult:
    what = ""
    rewrite = getattr(s.plan, "startup", None) if s.plan else None
    if rewrite is not None and getattr(rewrite, "paths", None):
        what = (
            f"unknown key added at {len(rewrite.paths)} StartupDetails level(s): "
            f"{_paths(rewrite.paths)}"
        )
        replies = getattr(s.session, "reply_unknown_paths", []) if s.session else []
        if replies:
            what += f"; and at {len(replies)} reply level(s): {_paths(replies, 4)}"
        what += "; every frame had a 4th element"
    return _tolerance("unknown-fields", s, baseline, what)


def rule_rewrite(rule: str, s: ScenarioResult, baseline: ScenarioResult, verb: str) -> RuleResult:
    rewrite = getattr(s.plan, "startup", None) if s.plan else None
    paths = getattr(rewrite, "paths", []) if rewrite is not None else []
    what = f"{verb} {len(paths)} field(s): {_paths(paths)}" if paths else ""
    return _tolerance(rule, s, baseline, what)


def rule_timestamps(s: ScenarioResult, baseline: ScenarioResult) -> RuleResult:
    sizes: dict[int, list[str]] = {}
    body = getattr(s.session, "startup_body", None) if s.session else None
    for path, value in walk_datetimes(body or {}, "StartupDetails"):
        sizes.setdefault(timestamp_size(value), []).append(f"{path}={value.isoformat()}")
    what = "; ".join(
        f"timestamp{size}: {_paths(paths, 3)}" for size, paths in sorted(sizes.items())
    )
    return _tolerance("timestamp-sizes", s, baseline, what)


def rule_reply_shapes(baseline: ScenarioResult, short: ScenarioResult) -> RuleResult:
    if not _baseline_ok(baseline):
        return _r(
            "reply-shapes",
            NA,
            "cannot judge: the baseline run (3-element frames, as Airflow sends them) did not "
            "complete (see terminal-and-exit)",
            [],
            ["baseline"],
        )
    if not short.ran:
        return _r("reply-shapes", PASS, "3-element frames accepted (short frames not tried)")
    ok, why = _completed(short, baseline)
    shapes = sorted(
        {f"{e.data.get('type') or 'ack'}:{e.data.get('elements')}" for e in short.frames("out")}
    )
    what = f"[short-replies] frames sent as type:elements {', '.join(shapes)}"
    if ok:
        return _r(
            "reply-shapes",
            PASS,
            f"3-element frames (baseline) and short frames both accepted; {why}",
            [what],
            ["baseline", "short-replies"],
        )
    return _r(
        "reply-shapes", FAIL, f"short frames: {why}", [what, *trace(short)], ["short-replies"]
    )


def rule_aware_datetimes(results: list[ScenarioResult]) -> RuleResult:
    checked, bad = 0, []
    for s in results:
        for e in _requests(s):
            body = e.data.get("body")
            type_name = e.data.get("type")
            if not isinstance(body, dict) or not isinstance(type_name, str):
                continue
            if type_name not in CATALOGUE:
                continue
            for path, value in _datetime_positions(body, CATALOGUE[type_name].model, type_name):
                checked += 1
                problem = _datetime_problem(value)
                if problem:
                    bad.append((s, e, path, problem))
    if bad:
        ev = [
            f"[{s.name}] +{e.t:.3f}s <- #{e.data.get('id')} {path} is {problem}"
            for s, e, path, problem in bad[:10]
        ]
        s, _, path, problem = bad[0]
        return _r(
            "aware-datetimes",
            FAIL,
            f"{len(bad)} datetime field(s) not aware, e.g. {path} is {problem}",
            ev,
            sorted({s.name for s, *_ in bad}),
        )
    if not checked:
        return _r("aware-datetimes", NA, "the runtime sent no datetime field in any scenario")
    return _r(
        "aware-datetimes",
        PASS,
        f"all {checked} datetime field(s) sent were aware timestamps or zoned strings",
    )


def rule_request_ids(results: list[ScenarioResult]) -> RuleResult:
    problems: list[tuple[ScenarioResult, str]] = []
    total = 0
    for s in results:
        ids = [i for e in _requests(s) if (i := e.data.get("id")) is not None]
        total += len(ids)
        if ids and ids[0] != 0:
            problems.append((s, f"the first request has id {ids[0]}, not 0"))
        for prev, cur in itertools.pairwise(ids):
            if cur <= prev:
                problems.append((s, f"request id {cur} follows {prev}: ids must increase"))
                break
        for req_id in getattr(s.session, "pipelined", []) if s.session else []:
            problems.append(
                (
                    s,
                    f"another request was sent before the reply to request #{req_id}: "
                    "one request in flight at a time",
                )
            )
    if problems:
        ev = [f"[{s.name}] {msg}" for s, msg in problems[:10]]
        s = problems[0][0]
        ev += [line for line in trace(s, 16) if "<-" in line or "->" in line]
        return _r(
            "request-ids",
            FAIL,
            problems[0][1],
            ev,
            sorted({s.name for s, _ in problems}),
        )
    if not total:
        return _r("request-ids", NA, "the runtime sent no request in any scenario")
    return _r(
        "request-ids",
        PASS,
        f"{total} requests over all scenarios: ids from 0, increasing, never two in flight",
    )


def _probe_line(s: ScenarioResult) -> str:
    assert s.session is not None
    probe = s.session.probe
    return f"[{s.name}] target: #{probe.id} {probe.type} (at +{probe.at:.3f}s)"


def rule_reply_ids(s: ScenarioResult) -> RuleResult:
    if not s.ran:
        return _not_run("reply-ids", s)
    if s.session is None or s.session.probe.seq is None:
        return _r(
            "reply-ids",
            NA,
            "the runtime did not make the target request in this scenario",
            trace(s, 12),
            [s.name],
        )
    probe = s.session.probe
    later = [
        e for e in _after(s, probe.seq) if e.kind == "frame" and e.data.get("direction") == "in"
    ]
    succeeded = [e for e in later if e.data.get("type") == "SucceedTask"]
    head = f"{_probe_line(s)}; answered with id {probe.sent_id} instead of {probe.id}"
    if succeeded:
        return _r(
            "reply-ids",
            FAIL,
            f"accepted a reply with id {probe.sent_id} for request #{probe.id} and went on to "
            "send SucceedTask",
            [head, *trace(s)],
            [s.name],
        )
    ending = (
        f"{s.terminal_summary()} after it"
        if [t for t in s.terminals if t[0] > (probe.at or 0)]
        else "no terminal message after it"
    )
    if s.session.stalled_after_injection:
        ending += f" (it waited {s.session.plan.exit_bound:g}s without a frame and was killed)"
    return _r(
        "reply-ids",
        PASS,
        f"did not go on as if the reply were valid: {ending}, exit {s.exit_code}",
        [head],
        [s.name],
    )


def rule_error(rule: str, s: ScenarioResult, slot: str) -> RuleResult:
    if not s.ran:
        return _not_run(rule, s)
    if s.session is None or s.session.probe.seq is None:
        return _r(
            rule,
            NA,
            "the runtime did not make the target request in this scenario",
            trace(s, 12),
            [s.name],
        )
    probe = s.session.probe
    head = f"{_probe_line(s)}; answered with an ErrorResponse in the {slot} slot"
    after = [t for t in s.terminals if t[0] >= (probe.at or 0)]
    if after and s.exit_code == 0 and len(s.terminals) == 1:
        return _r(
            rule,
            PASS,
            f"ended cleanly: {s.terminal_summary()}, exit 0",
            [head],
            [s.name],
        )
    why = (
        "no terminal message after the error"
        if not after
        else f"{s.terminal_summary()} but exit {s.exit_code}"
    )
    if s.session.stalled_after_injection:
        why += f"; it sent nothing for {s.session.plan.exit_bound:g}s and was killed"
    return _r(rule, FAIL, f"did not fail cleanly: {why}", [head, *trace(s)], [s.name])


def rule_unknown_task(s: ScenarioResult) -> RuleResult:
    if not s.ran:
        return _not_run("unknown-task", s)
    terms = s.terminals
    head = f"[{s.name}] StartupDetails named the task {s.task_id!r}"
    removed = [t for t in terms if t[1] == "TaskState" and t[2] == "removed"]
    if removed and len(terms) == 1 and s.exit_code == 0:
        return _r("unknown-task", PASS, "TaskState removed, exit 0", [head], [s.name])
    if [t for t in terms if t[1] == "RescheduleTask"] and len(terms) == 1 and s.exit_code == 0:
        return _r(
            "unknown-task",
            PASS,
            "RescheduleTask, exit 0 — what Airflow's own runtime does while "
            "ti_context.task_reschedule_count < [workers] missing_dag_retries",
            [head],
            [s.name],
        )
    return _r(
        "unknown-task",
        FAIL,
        f"{s.terminal_summary()}, exit {s.exit_code}{_silent(s)}; expected TaskState removed "
        "and exit 0",
        [head, *trace(s)],
        [s.name],
    )


def rule_clears_xcom_keys(baseline: ScenarioResult) -> RuleResult:
    if not baseline.outcome or not baseline.outcome.started:
        return _r("clears-xcom-keys", NA, "the baseline never started")
    deletes = [
        e
        for e in _requests(baseline)
        if e.data.get("type") == "DeleteXCom"
        and (e.data.get("body") or {}).get("key") == PROBE_XCOM_KEY
    ]
    first_terminal = next(iter(_terminal_frames(baseline)), None)
    if deletes and (first_terminal is None or deletes[0].seq < first_terminal.seq):
        return _r(
            "clears-xcom-keys",
            PASS,
            f"DeleteXCom for {PROBE_XCOM_KEY!r} before the terminal message",
            [describe(deletes[0], "baseline") or ""],
            ["baseline"],
        )
    return _r(
        "clears-xcom-keys",
        FAIL,
        f"no DeleteXCom for the key {PROBE_XCOM_KEY!r} listed in "
        f"ti_context.xcom_keys_to_clear before the terminal message{_silent(baseline)}",
        trace(baseline),
        ["baseline"],
    )


def rule_terminal_and_exit(
    results: list[ScenarioResult], baseline: ScenarioResult, overtime: float
) -> RuleResult:
    ev: list[str] = []
    problem = None
    if not baseline.outcome or not baseline.outcome.started:
        problem = (
            f"the baseline never started: {baseline.outcome.error if baseline.outcome else ''}"
        )
    elif len(baseline.terminals) != 1:
        sent = _terminal_frames(baseline)
        problem = (
            f"the baseline sent {len(baseline.terminals)} valid terminal messages "
            f"({baseline.terminal_summary()})"
        )
        if len(sent) != len(baseline.terminals):
            problem += f"; {len(sent) - len(baseline.terminals)} more were invalid"
        problem += _silent(baseline)
    elif baseline.exit_code != 0:
        problem = f"the baseline exited {baseline.exit_code} after {baseline.terminal_summary()}"
    else:
        exit_event = baseline.exit_event
        t_term = baseline.terminals[0][0]
        if exit_event is not None and exit_event.t - t_term > overtime:
            problem = (
                f"the baseline exited {exit_event.t - t_term:.1f}s after its terminal message "
                f"(overtime window {overtime:g}s)"
            )
        if [e for e in baseline.process("signal")]:
            problem = "the supervisor had to signal the runtime after its terminal message"
    if problem:
        ev = trace(baseline)
    extra = [s for s in results if s.ran and len(s.terminals) > 1]
    if extra and not problem:
        s = extra[0]
        problem = f"[{s.name}] {len(s.terminals)} terminal messages: {s.terminal_summary()}"
        ev = trace(s)
    if problem:
        return _r(
            "terminal-and-exit",
            FAIL,
            problem,
            ev,
            ["baseline", *(s.name for s in extra)],
        )
    exit_event = baseline.exit_event
    lag = exit_event.t - baseline.terminals[0][0] if exit_event else 0.0
    return _r(
        "terminal-and-exit",
        PASS,
        f"{baseline.terminal_summary()}, exit 0 {lag:.2f}s later; never more than one "
        "terminal message in any scenario",
        [],
        ["baseline"],
    )


def _log_problem(raw: bytes) -> str | None:
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "not JSON"
    if not isinstance(obj, dict):
        return "JSON but not an object"
    if "level" not in obj:
        return "no 'level'"
    if not isinstance(obj["level"], str) or obj["level"] not in LEVELS:
        return f"level {obj['level']!r} is not a lowercase level name"
    if not isinstance(obj.get("event"), str):
        return "no 'event' string" if "event" not in obj else "'event' is not a string"
    ts = obj.get("timestamp")
    if not isinstance(ts, str):
        return "no 'timestamp'" if ts is None else f"'timestamp' is not a string: {ts!r}"
    try:
        parsed = parse_datetime(ts)
    except ValueError:
        return f"'timestamp' {ts!r} is not RFC 3339"
    if parsed.tzinfo is None:
        return f"'timestamp' {ts!r} has no zone"
    return None


def rule_json_logs(results: list[ScenarioResult]) -> RuleResult:
    total, bad = 0, []
    for s in results:
        for t, raw, _truncated in getattr(s.session, "raw_logs", []) if s.session else []:
            total += 1
            if (problem := _log_problem(raw)) is not None:
                bad.append((s, t, raw, problem))
    if bad:
        ev = [
            f"[{s.name}] +{t:.3f}s {problem}: "
            + str(
                s.session.masker.redact(raw[:160].decode("utf-8", "replace")) if s.session else ""
            )
            for s, t, raw, problem in bad[:8]
        ]
        return _r(
            "json-logs",
            FAIL,
            f"{len(bad)} of {total} log lines invalid, e.g. {bad[0][3]}",
            ev,
            sorted({s.name for s, *_ in bad}),
        )
    if not total:
        return _r("json-logs", NA, "the runtime wrote no line on --logs in any scenario")
    return _r("json-logs", PASS, f"all {total} log lines are JSON with level, event and timestamp")


def rule_comm_close(s: ScenarioResult) -> RuleResult:
    if not s.ran:
        return _not_run("comm-close", s)
    session = s.session
    if session is None or session.closed_at is None:
        return _r(
            "comm-close",
            NA,
            "the runtime did not make the target request, so the connection was not closed",
            trace(s, 12),
            [s.name],
        )
    exit_event = s.exit_event
    head = f"{_probe_line(s)}; the supervisor closed the comm connection instead of answering"
    if session.hung_after_close or exit_event is None:
        return _r(
            "comm-close",
            FAIL,
            f"still running {session.plan.exit_bound:g}s after the comm connection closed",
            [head, *trace(s)],
            [s.name],
        )
    lag = exit_event.t - session.closed_at
    return _r(
        "comm-close",
        PASS,
        f"exited with code {s.exit_code} {lag:.2f}s after the comm connection closed",
        [head],
        [s.name],
    )


def rule_parse(s: ScenarioResult, dag_id: str) -> RuleResult:
    if not s.ran:
        return _not_run("parse", s)
    session = s.session
    result = getattr(session, "result", None) if session else None
    if result is None:
        return _r(
            "parse",
            FAIL,
            f"no DagFileParsingResult (exit {s.exit_code}){_silent(s)}; declare a runtime "
            "without DAG parsing with --skip parse",
            trace(s),
            [s.name],
        )
    problems, dag_ids = [], []
    for i, item in enumerate(result.get("serialized_dags") or []):
        data = item.get("data") if isinstance(item, dict) else None
        dag = data.get("dag") if isinstance(data, dict) else None
        dag_ids.append(dag.get("dag_id") if isinstance(dag, dict) else None)
        for p in validate_serialized_dag(data):
            problems.append(f"serialized_dags[{i}] ({dag_ids[-1]}): {p}")
    head = f"[{s.name}] DAGs: {', '.join(map(str, dag_ids)) or 'none'}"
    if result.get("import_errors"):
        head += f"; import errors: {_short(result['import_errors'], 200)}"
    if problems:
        return _r(
            "parse",
            FAIL,
            f"{len(problems)} schema problem(s), e.g. {problems[0]}",
            [head, *problems[:10]],
            [s.name],
        )
    if not dag_ids:
        return _r("parse", FAIL, "DagFileParsingResult holds no serialized DAG", [head], [s.name])
    if dag_id not in dag_ids:
        return _r(
            "parse", FAIL, f"the DAG {dag_id!r} is not among the parsed DAGs", [head], [s.name]
        )
    if s.exit_code != 0:
        return _r("parse", FAIL, f"parsed, but exited {s.exit_code}", [head, *trace(s)], [s.name])
    return _r(
        "parse",
        PASS,
        f"{len(dag_ids)} serialized DAG(s), all valid against Airflow's schema; exit 0",
        [head],
        [s.name],
    )


# --- the fault scenarios (docs/unhappy-paths.md, "check --fault") -------------------------------


def _faults_line(s: ScenarioResult) -> str:
    return f"[{s.name}] fault plan: {'; '.join(s.fault_specs) or '(none)'}"


def _ends_after_error(
    rule: str, s: ScenarioResult, airflow: str, started: float | None, what: str
) -> RuleResult:
    """The verdict of a scenario whose runtime got an error reply at ``started``: a terminal
    message and an exit pass; an exit without one warns; a hang fails."""
    hooks = s.session
    assert hooks is not None
    head = [_faults_line(s), f"what Airflow does: {airflow}"]
    error = hooks.first_error
    if error is not None:
        head.append(f"[{s.name}] error reply: #{error.id} {error.type} at +{error.at:.3f}s")
    after = [t for t in s.terminals if started is None or t[0] >= started]
    if hooks.stalled_after_injection:
        return _r(
            rule,
            FAIL,
            f"hung after {what}: no frame and no exit for {hooks.plan.exit_bound:g}s, so it "
            "was killed",
            [*head, *trace(s)],
            [s.name],
        )
    if s.exit_event is None or s.process("signal"):
        return _r(
            rule,
            FAIL,
            f"did not exit by itself after {what} (exit {s.exit_code}; the supervisor had to "
            "kill it)",
            [*head, *trace(s)],
            [s.name],
        )
    if after:
        return _r(
            rule,
            PASS,
            f"after {what}: {s.terminal_summary()}, exit {s.exit_code}, no hang",
            head,
            [s.name],
        )
    return _r(
        rule,
        WARN,
        f"after {what} it exited {s.exit_code} without a terminal message: Airflow records the "
        "state from the exit code, but the task never reported its failure",
        [*head, *trace(s)],
        [s.name],
    )


def _fault_missed(rule: str, s: ScenarioResult, why: str) -> RuleResult:
    """Not applicable: the scenario's fault never hit (the runtime did not make its request)."""
    return _r(rule, NA, why, [_faults_line(s), *trace(s, 12)], [s.name])


def rule_api_500(s: ScenarioResult) -> RuleResult:
    if not s.ran:
        return _not_run("api-500", s)
    hooks = s.session
    if hooks is None or hooks.first_error is None:
        return _fault_missed(
            "api-500",
            s,
            "no request was answered with an error: the runtime did not make the target "
            "request in this scenario",
        )
    airflow = (
        "its client retries a 500 (5 attempts, exponential back-off; check uses 2 and short "
        "waits), then the supervisor answers the request with ErrorResponse API_SERVER_ERROR "
        "in the error slot; Airflow's runtime raises it in the task, which fails (TaskState "
        "failed) and the runtime exits"
    )
    return _ends_after_error("api-500", s, airflow, hooks.first_error.at, "the 500")


def rule_slow_api(s: ScenarioResult, baseline: ScenarioResult) -> RuleResult:
    if not s.ran:
        return _not_run("slow-api", s)
    result = _tolerance("slow-api", s, baseline, f"fault plan: {'; '.join(s.fault_specs)}")
    result.evidence.insert(
        1,
        "what Airflow does: the supervisor waits for the API (up to the client's timeout) "
        "and answers the request late; Airflow's runtime waits for the reply however long",
    )
    return result


def rule_token_expiry(s: ScenarioResult) -> RuleResult:
    if not s.ran:
        return _not_run("token-expiry", s)
    hooks = s.session
    if hooks is None or hooks.token_expired_at is None:
        return _fault_missed(
            "token-expiry",
            s,
            "the runtime did not make the target request in this scenario, so the token did "
            "not expire",
        )
    airflow = (
        "every call answers 403 Invalid auth token; the supervisor answers a variable or "
        "connection request with ErrorResponse PERMISSION_DENIED, other requests with "
        "API_SERVER_ERROR; heartbeats fail and after max_failed_heartbeats the supervisor "
        "terminates the runtime; a runtime should fail the task and exit"
    )
    return _ends_after_error(
        "token-expiry", s, airflow, hooks.token_expired_at, "the token expired"
    )


def rule_killed(s: ScenarioResult) -> RuleResult:
    if not s.ran:
        return _not_run("killed-from-outside", s)
    cfg = s.config
    escalation = cfg.kill_escalation_delay if cfg else 0.0
    head = [
        _faults_line(s),
        'what Airflow does: the next heartbeat is answered 409; the supervisor logs "Server '
        "indicated the task shouldn't be running anymore\", sends SIGTERM, SIGKILL "
        f"{escalation:g}s later if the runtime is still there, and the final state is "
        "server_terminated",
    ]
    signals = [(e.t, e.data.get("signal")) for e in s.process("signal")]
    term = next((t for t, sig in signals if sig == "SIGTERM"), None)
    kill = next((t for t, sig in signals if sig == "SIGKILL"), None)
    state = s.outcome.final_state if s.outcome else None
    exit_event = s.exit_event
    if term is None:
        return _r(
            "killed-from-outside",
            NA,
            f"the supervisor sent no SIGTERM: the runtime ended ({s.terminal_summary()}, exit "
            f"{s.exit_code}) before a heartbeat met the TI marked failed",
            [*head, *trace(s, 16)],
            [s.name],
        )
    if kill is not None:
        return _r(
            "killed-from-outside",
            FAIL,
            f"ignored SIGTERM: still running {kill - term:.2f}s later, killed with SIGKILL "
            f"(final state {state})",
            [*head, *trace(s)],
            [s.name],
        )
    if exit_event is None:
        return _r(
            "killed-from-outside",
            FAIL,
            "no exit recorded after SIGTERM",
            [*head, *trace(s)],
            [s.name],
        )
    return _r(
        "killed-from-outside",
        PASS,
        f"exited ({s.exit_code}) {exit_event.t - term:.2f}s after SIGTERM, before the "
        f"escalation delay; final state {state}",
        head,
        [s.name],
    )


def rule_violations(results: list[ScenarioResult]) -> list[RuleResult]:
    grouped: dict[str, list[tuple[ScenarioResult, Any]]] = {}
    for s in results:
        for v in s.outcome.violations if s.outcome else []:
            grouped.setdefault(v.rule, []).append((s, v))
    out = []
    for rule, items in sorted(grouped.items()):
        names = sorted({s.name for s, _ in items})
        ev = []
        for s, v in items[:8]:
            where = f" (frame #{v.frame_id})" if v.frame_id is not None else ""
            path = f" at {v.path}" if v.path else ""
            ev.append(f"[{s.name}] {v.message}{path}{where}")
        ev.append(f"what Airflow does: {items[0][1].airflow}")
        out.append(
            RuleResult(
                f"violation:{rule}",
                f"protocol violation reported by the supervisor: {rule}",
                FAIL,
                f"{items[0][1].message} ({len(items)} time(s), in {', '.join(names)})",
                ev,
                sorted({s.name for s, _ in items}),
            )
        )
    return out


def evaluate(
    results: list[ScenarioResult],
    *,
    dag_id: str,
    overtime: float,
    observe_only: Set[str] = frozenset(),
) -> list[RuleResult]:
    """Every rule's result, in catalogue order, then one per reported violation.

    Scenarios in ``observe_only`` (all their rules skipped) still give their own rules an
    observed result, but feed no rule that spans scenarios and raise no violation rule.
    """
    by = {s.name: s for s in results}
    baseline = by["baseline"]

    def get(name: str) -> ScenarioResult:
        from ._scenarios import SCENARIOS

        if name in by:
            return by[name]
        spec = next(s for s in SCENARIOS if s.name == name)
        return ScenarioResult(spec, ran=False)

    ran = [s for s in results if s.ran and s.name not in observe_only]
    out = [
        rule_connects(ran),
        rule_unknown_fields(get("unknown-fields"), baseline),
        rule_rewrite("missing-optional-fields", get("missing-optional"), baseline, "left out"),
        rule_rewrite("null-optional-fields", get("null-optional"), baseline, "sent nil in"),
        rule_timestamps(get("timestamps"), baseline),
        rule_reply_shapes(baseline, get("short-replies")),
        rule_aware_datetimes(ran),
        rule_request_ids(ran),
        rule_reply_ids(get("wrong-reply-id")),
        rule_error("error-body", get("error-body"), "body"),
        rule_error("error-slot", get("error-slot"), "error"),
        rule_unknown_task(get("unknown-task")),
        rule_clears_xcom_keys(baseline),
        rule_terminal_and_exit(ran, baseline, overtime),
        rule_json_logs(ran),
        rule_comm_close(get("comm-closed")),
        rule_api_500(get("api-500")),
        rule_slow_api(get("slow-api"), baseline),
        rule_token_expiry(get("token-expiry")),
        rule_killed(get("killed")),
        rule_parse(get("parse"), dag_id),
    ]
    out.extend(rule_violations(ran))
    return out

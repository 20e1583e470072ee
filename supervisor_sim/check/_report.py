"""The body of ``check`` and its reports (a terminal table, ``--json``, ``--junit FILE``); the
command itself, with its options and help, is ``_check.check``."""

from __future__ import annotations

import shlex
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Set
from datetime import UTC, datetime
from typing import Any

import trio

from ._rules import FAIL, NA, PASS, WARN, evaluate, trace
from ._scenarios import SCENARIOS, CheckContext, ScenarioResult, run_scenarios

__all__ = ["junit_xml", "render_table", "run_check", "skipped_scenarios"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def skipped_scenarios(skip: set[str]) -> set[str]:
    """Scenarios whose every rule is skipped: still run and shown, but they judge nothing."""
    return {s.name for s in SCENARIOS if s.name != "baseline" and set(s.rules) <= skip}


def run_check(
    ctx: CheckContext, skip: Set[str] = frozenset(), progress: Any = None
) -> dict[str, Any]:
    """Run every scenario and judge every rule; the result is what ``--json`` prints."""
    started = time.monotonic()
    results: list[ScenarioResult] = trio.run(run_scenarios, ctx, SCENARIOS, progress)
    rules = evaluate(
        results,
        dag_id=ctx.dag_id,
        overtime=ctx.config.task_success_overtime,
        observe_only=skipped_scenarios(set(skip)),
    )
    for r in rules:
        if r.rule in skip or (r.rule.startswith("violation:") and "violation:*" in skip):
            observed = f"{r.result}: {r.summary}" if r.result != NA else r.summary
            r.result, r.skipped = NA, True
            r.summary = f"skipped with --skip (observed {observed})"
    counts = {v: sum(1 for r in rules if r.result == v) for v in (PASS, FAIL, NA, WARN)}
    return {
        "runtime": list(ctx.runtime),
        "dag_id": ctx.dag_id,
        "task_id": ctx.task_id,
        "passed": counts[FAIL] == 0,
        "counts": counts,
        "duration_s": round(time.monotonic() - started, 3),
        "rules": [r.as_dict() for r in rules],
        "scenarios": [_scenario_dict(s) for s in results],
        **({"faults": list(ctx.fault_specs)} if ctx.fault_specs else {}),
    }


def _scenario_dict(s: ScenarioResult) -> dict[str, Any]:
    out: dict[str, Any] = {"name": s.name, "title": s.spec.title, "ran": s.ran}
    if not s.ran:
        if s.not_run_reason:
            out["not_run"] = s.not_run_reason
        return out
    if s.fault_specs:
        out["faults"] = list(s.fault_specs)
    outcome = s.outcome
    out.update(
        task_id=s.task_id or None,
        exit_code=s.exit_code,
        final_state=outcome.final_state if outcome else None,
        terminal=s.terminal_summary(),
        duration_s=outcome.duration_s if outcome else None,
        error=(outcome.error if outcome else None) or s.internal_error,
        violations=[v.as_dict() for v in outcome.violations] if outcome else [],
        trace=trace(s, limit=200),
    )
    if s.silence is not None:  # killed while the supervisor waited for the runtime
        out["hung"] = s.silence.describe()
    return out


# --- reports ----------------------------------------------------------------------------------

_MARK = {PASS: "pass", FAIL: "FAIL", NA: "n/a", WARN: "warn"}


def render_table(report: dict[str, Any], width: int = 100) -> str:
    rules = report["rules"]
    name_w = max(len("RULE"), *(len(r["rule"]) for r in rules))
    lines = [
        f"supervisor-sim check: {shlex.join(report['runtime'])}",
        f"  task {report['dag_id']}.{report['task_id']}; {len(report['scenarios'])} scenarios "
        f"in {report['duration_s']:.1f}s",
        "",
        f"{'RULE':<{name_w}}  RESULT  EVIDENCE",
    ]
    room = max(30, width - name_w - 10)
    for r in rules:
        summary = r["summary"] if len(r["summary"]) <= room else r["summary"][: room - 3] + "..."
        lines.append(f"{r['rule']:<{name_w}}  {_MARK[r['result']]:<6}  {summary}")
    c = report["counts"]
    lines += [
        "",
        f"{len(rules)} rules: {c[PASS]} passed, {c[FAIL]} failed, {c[NA]} not applicable"
        + (f", {c[WARN]} warnings" if c.get(WARN) else ""),
    ]
    if report.get("faults"):
        lines.insert(2, f"  with --fault {'; '.join(report['faults'])} in every scenario")
    for r in rules:
        if r["result"] not in (FAIL, WARN):
            continue
        lines += ["", f"{_MARK[r['result']]} {r['rule']} — {r['title']}", f"  {r['summary']}"]
        lines += [f"    {e}" for e in r["evidence"]]
    baseline = next((s for s in report["scenarios"] if s["name"] == "baseline"), None)
    if baseline and "removed" in (baseline.get("terminal") or ""):
        lines += [
            "",
            f"note: the baseline ended with TaskState removed — is {report['dag_id']}."
            f"{report['task_id']} a task of the runtime's bundle? (--dag/--task)",
        ]
    return "\n".join(lines)


def junit_xml(report: dict[str, Any]) -> bytes:
    """The report as JUnit XML: one testcase per rule; n/a rules are skipped testcases."""
    c = report["counts"]
    attrs = {
        "name": "supervisor-sim check",
        "tests": str(len(report["rules"])),
        "failures": str(c[FAIL]),
        "errors": "0",
        "skipped": str(c[NA]),
        "time": f"{report['duration_s']:.3f}",
    }
    root = ET.Element("testsuites", attrs)
    suite = ET.SubElement(
        root,
        "testsuite",
        {
            **attrs,
            "timestamp": datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
            "hostname": socket.gethostname(),
        },
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("runtime", shlex.join(report["runtime"])),
        ("dag_id", report["dag_id"]),
        ("task_id", report["task_id"]),
    ):
        ET.SubElement(props, "property", {"name": name, "value": value})
    for r in report["rules"]:
        case = ET.SubElement(
            suite,
            "testcase",
            {"classname": "supervisor_sim.check", "name": r["rule"], "time": "0"},
        )
        body = "\n".join([r["title"], r["summary"], *r["evidence"]])
        if r["result"] == FAIL:
            failure = ET.SubElement(
                case, "failure", {"message": r["summary"][:1000], "type": "RuleFailed"}
            )
            failure.text = body
        elif r["result"] == NA:
            ET.SubElement(case, "skipped", {"message": r["summary"][:1000]})
        elif r["result"] == WARN:  # passed, with the warning in its output
            out = ET.SubElement(case, "system-out")
            out.text = "WARNING: " + body
        else:
            out = ET.SubElement(case, "system-out")
            out.text = body
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"

"""`check` on a runtime that hangs: it says what it is waiting for (and that --timeout exists)
instead of sitting silent, reports each hung scenario with "no frame within Ts", and once the
baseline hung gives every later scenario --exit-bound seconds of silence, not --timeout (a
hanging runtime once made check take five minutes without a word)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCRIPTED = ROOT / "tests" / "children" / "scripted.py"


def _check(steps: list[dict[str, Any]], *options: str) -> subprocess.CompletedProcess[str]:
    """``check --json OPTIONS -- scripted.py`` with the script ``steps``, time-bounded."""
    argv = [sys.executable, "-m", "supervisor_sim.cli._check", "--json", *options]
    return subprocess.run(
        [*argv, "--", sys.executable, str(SCRIPTED)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "SCRIPTED_STEPS": json.dumps(steps)},
    )


def _rules(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["rule"]: r for r in report["rules"]}


def test_a_runtime_silent_after_startup_details_is_named_hung_and_waited_for_aloud() -> None:
    """A runtime that never answers StartupDetails: stderr says check is waiting for it and
    names --timeout; the baseline's rules fail with "no frame within" StartupDetails; every
    later scenario is killed after --exit-bound seconds of silence and says so."""
    proc = _check([{"sleep": 1000}], "--timeout", "6.5", "--exit-bound", "1", "--jobs", "4")
    assert proc.returncode == 1, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert (
        "waiting for the runtime (scenario baseline, 5s so far with no frame since "
        "StartupDetails; it times out after 6.5s — --timeout to change)"
    ) in proc.stderr, proc.stderr
    rules = _rules(report)
    terminal = rules["terminal-and-exit"]
    assert terminal["result"] == "fail", terminal
    assert "the runtime sent no frame within" in terminal["summary"], terminal
    assert "of StartupDetails (killed at --timeout)" in terminal["summary"], terminal
    for rule in ("unknown-task", "parse"):
        assert rules[rule]["result"] == "fail", rules[rule]
        assert "no frame within 1s of" in rules[rule]["summary"], rules[rule]
        assert "killed after --exit-bound, as the baseline hung" in rules[rule]["summary"]
    scenarios = {s["name"]: s for s in report["scenarios"]}
    assert "killed at --timeout" in scenarios["baseline"]["hung"], scenarios["baseline"]
    later = [s for s in report["scenarios"] if s["name"] != "baseline" and s["ran"]]
    assert later, report["scenarios"]
    for s in later:
        assert "no frame within 1s" in s.get("hung", ""), s
        assert any("no frame 1s after" in line for line in s["trace"]), s["trace"]


def test_a_runtime_hanging_after_its_first_reply_is_named_with_that_reply() -> None:
    """A runtime that sends one request and then nothing: the silence is counted from the
    reply to that request, which the evidence names."""
    steps = [{"send": {"type": "GetVariable", "key": "peer_var"}}, {"sleep": 1000}]
    proc = _check(steps, "--timeout", "3", "--exit-bound", "1", "--jobs", "4")
    assert proc.returncode == 1, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    terminal = _rules(report)["terminal-and-exit"]
    assert "no frame within" in terminal["summary"], terminal
    assert "of the reply to request 0 (killed at --timeout)" in terminal["summary"], terminal


def test_a_baseline_that_ends_leaves_later_scenarios_their_full_timeout() -> None:
    """A runtime that waits 1.5 s after StartupDetails, then succeeds: the baseline did not
    hang, so no scenario is cut short by --exit-bound (1 s), and none is reported hung."""
    steps = [
        {"sleep": 1.5},
        {"send": {"type": "SucceedTask", "state": "success", "end_date": "$now"}},
        {"exit": 0},
    ]
    proc = _check(steps, "--timeout", "20", "--exit-bound", "1", "--jobs", "4")
    report = json.loads(proc.stdout)
    assert not [s for s in report["scenarios"] if "hung" in s], report["scenarios"]
    assert _rules(report)["unknown-fields"]["result"] == "pass", _rules(report)["unknown-fields"]
    assert "waiting for the runtime" not in proc.stderr, proc.stderr

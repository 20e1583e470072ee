"""`supervisor-sim check` on the unhappy paths: ``--fault`` / ``[[faults]]`` applied to every
scenario, and the fault scenarios (api-500, slow-api, token-expiry, killed), each shown to pass
on a correct runtime and to fail (or warn) on one broken on that path
(tests/check/faulty_runtime.py). Real child processes; short bounds through the options.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAULTY = [sys.executable, str(Path(__file__).with_name("faulty_runtime.py"))]
REFERENCE = [sys.executable, str(ROOT / "runtimes" / "reference" / "runtime.py")]
FAULT_RULES = ("api-500", "slow-api", "token-expiry", "killed-from-outside")
FAULT_SCENARIOS = ("api-500", "slow-api", "token-expiry", "killed")
#: Short bounds: a hung runtime is killed 1 s after the error reply; the slow call takes 1.5 s.
FAST = ("--skip", "parse", "--exit-bound", "1", "--slow-api-delay", "1.5", "--jobs", "2")
TIMEOUT = 180.0


def check(cmd: list[str], *options: str, env: dict[str, str] | None = None) -> Any:
    """``supervisor-sim check --json OPTIONS -- CMD`` in a subprocess: (exit code, report)."""
    argv = [sys.executable, "-m", "supervisor_sim.cli._check", "--json", *options, "--", *cmd]
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`check` did not finish in {TIMEOUT:.0f}s: {exc.stderr!r:.2000}")
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"no JSON report (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def rule(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in report["rules"] if r["rule"] == name)


def verdicts(report: dict[str, Any]) -> dict[str, str]:
    return {name: rule(report, name)["result"] for name in FAULT_RULES}


def test_correct_runtime_passes_every_fault_rule() -> None:
    """A runtime that fails the task on an error reply and dies on SIGTERM passes all four."""
    _, report = check([*FAULTY, "correct"], *FAST)
    assert verdicts(report) == dict.fromkeys(FAULT_RULES, "pass"), report["rules"]
    killed = rule(report, "killed-from-outside")
    assert "server_terminated" in killed["summary"]
    assert any("heartbeat is answered 409" in e for e in killed["evidence"])


def test_runtime_that_hangs_after_an_api_error_fails_api_500_and_token_expiry() -> None:
    """Sending nothing after the error reply fails api-500 and token-expiry: it was killed."""
    code, report = check([*FAULTY, "hang-on-error"], *FAST)
    assert code == 1
    got = verdicts(report)
    assert got["api-500"] == "fail" and got["token-expiry"] == "fail", report["rules"]
    assert "hung after the 500" in rule(report, "api-500")["summary"]
    assert "hung after the token expired" in rule(report, "token-expiry")["summary"]
    assert got["slow-api"] == "pass" and got["killed-from-outside"] == "pass"


def test_runtime_that_exits_without_a_terminal_message_after_an_api_error_warns() -> None:
    """Exiting non-zero without reporting the failure is a warning, counted in the report."""
    _, report = check([*FAULTY, "exit-on-error"], *FAST)
    got = verdicts(report)
    assert got["api-500"] == "warn" and got["token-expiry"] == "warn", report["rules"]
    assert "exited 3 without a terminal message" in rule(report, "api-500")["summary"]
    assert report["counts"]["warn"] == 2


def test_impatient_runtime_fails_slow_api() -> None:
    """A runtime that gives up on a reply slower than its patience fails slow-api."""
    _, report = check([*FAULTY, "impatient"], *FAST, env={"FAULTY_PATIENCE": "0.5"})
    got = verdicts(report)
    # killed-from-outside is not asserted: this runtime may give up on the held call before
    # the heartbeat meets the failed TI (then n/a: no SIGTERM was sent).
    assert got["slow-api"] == "fail", report["rules"]
    assert got["api-500"] == "pass" and got["token-expiry"] == "pass", report["rules"]
    slow = rule(report, "slow-api")
    assert "the baseline sent SucceedTask" in slow["summary"]
    assert any("delay=1.5s" in e for e in slow["evidence"])


def test_runtime_that_ignores_sigterm_fails_killed_from_outside() -> None:
    """Ignoring SIGTERM after the TI was marked failed fails the rule: SIGKILL was needed."""
    _, report = check([*FAULTY, "ignore-sigterm"], *FAST)
    got = verdicts(report)
    assert got == {**dict.fromkeys(FAULT_RULES, "pass"), "killed-from-outside": "fail"}, report[
        "rules"
    ]
    killed = rule(report, "killed-from-outside")
    assert "ignored SIGTERM" in killed["summary"] and "SIGKILL" in killed["summary"]
    assert any("supervisor sent SIGKILL" in e for e in killed["evidence"])


def test_fault_option_and_fixture_faults_apply_to_every_scenario_as_notes(
    tmp_path: Path,
) -> None:
    """--fault and [[faults]] reach every task scenario; each applied fault is a note there."""
    fixtures = tmp_path / "fixtures.toml"
    fixtures.write_text('[[faults]]\ntarget = "DeleteXCom"\naction = "delay=10ms"\n')
    code, report = check(
        REFERENCE,
        *FAST,
        "--fixtures",
        str(fixtures),
        "--fault",
        "PATCH /task-instances/*/run:delay=10ms",
    )
    assert code == 0, [r for r in report["rules"] if r["result"] == "fail"]
    assert report["faults"] == [
        "PATCH /task-instances/*/run:delay=10ms",
        "DeleteXCom:delay=10ms",
        "seed=0",
    ]
    task_scenarios = [s for s in report["scenarios"] if s["ran"] and s["name"] != "parse"]
    assert len(task_scenarios) >= 10
    deleting: list[str] = []
    for s in task_scenarios:
        notes = [line for line in s["trace"] if "supervisor: injected delay 0.01s" in line]
        assert any("PATCH /execution/task-instances/" in n for n in notes), (s["name"], s["trace"])
        assert "PATCH /task-instances/*/run:delay=10ms" in s["faults"]
        # The fixtures' fault hits every scenario whose runtime deleted an XCom through the API
        # (error-body, error-slot and comm-closed answer that request themselves; the fault
        # scenarios' own rule on that call comes first, and one rule takes a call).
        answered_by_check = s["name"] in (
            "error-body", "error-slot", "comm-closed", *FAULT_SCENARIOS
        )  # fmt: skip
        if not answered_by_check and any(
            "<- #" in line and " DeleteXCom " in line for line in s["trace"]
        ):
            deleting.append(s["name"])
            assert any("DELETE /execution/xcoms/" in n for n in notes), (s["name"], s["trace"])
    assert {"baseline", "timestamps", "short-replies"} <= set(deleting), deleting


@pytest.mark.parametrize(
    ("options", "fixture", "named"),
    [
        (("--fault", "GET /nope:500"), None, "fault 'GET /nope:500'"),
        (("--fault", "GetVariable:700"), None, "fault 'GetVariable:700'"),
        ((), '[[faults]]\ntarget = "GetVariable"\n', "faults[0]"),
    ],
)
def test_bad_fault_plan_is_a_one_line_usage_error_naming_the_entry(
    tmp_path: Path, options: tuple[str, ...], fixture: str | None, named: str
) -> None:
    """A bad --fault or [[faults]] entry stops check before any scenario: exit 2, one line."""
    argv = [sys.executable, "-m", "supervisor_sim.cli._check", *options]
    if fixture is not None:
        path = tmp_path / "fixtures.toml"
        path.write_text(fixture)
        argv += ["--fixtures", str(path)]
    proc = subprocess.run(
        [*argv, "--", *REFERENCE], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "RuntimeWarning" not in ln]
    assert len(lines) == 1 and named in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and not proc.stdout


def test_broken_variant_ignoring_sigterm_fails_only_killed_from_outside() -> None:
    """runtimes/broken/ignores_sigterm.py (in the docs) fails killed-from-outside alone."""
    variant = [sys.executable, str(ROOT / "runtimes" / "broken" / "ignores_sigterm.py")]
    code, report = check(variant, "--jobs", "2")
    assert code == 1
    failed = {r["rule"] for r in report["rules"] if r["result"] == "fail"}
    assert failed == {"killed-from-outside"}, report["rules"]
    assert "ignored SIGTERM" in rule(report, "killed-from-outside")["summary"]

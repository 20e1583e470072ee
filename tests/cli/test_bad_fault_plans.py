"""A bad fault plan, on --fault or in the fixtures' [[faults]], stops run-task, run-dag and check
before anything runs: one line on stderr naming the entry (a table by file and index), exit 2,
no traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from _cli import ROOT, cli

REFERENCE = f"{sys.executable} {ROOT / 'runtimes' / 'reference' / 'runtime.py'}"

COMMANDS = {
    "run-task": ("run-task", "example_dag", "hello", "--runtime", REFERENCE, "--no-transcript"),
    "run-dag": ("run-dag", "example_dag", "--runtime", REFERENCE),
    "check": ("check",),
}

#: id -> (--fault spec or None, fixtures text or None, what the line must name)
BAD_PLANS: dict[str, tuple[str | None, str | None, str]] = {
    "unknown-route": ("GET /nope:500", None, "fault 'GET /nope:500': no Execution API route"),
    "unknown-request-type": ("NoSuchType:500", None, "fault 'NoSuchType:500'"),
    "bad-status": ("GetVariable:700", None, "fault 'GetVariable:700'"),
    "unknown-event": ("event=ti-exploded@1s", None, "unknown event 'ti-exploded'"),
    "event-call-zero": ("event=ti-failed@GetVariable#0", None, "'#0' is not a call number"),
    "event-call-not-a-number": ("event=ti-failed@GetVariable#x", None, "'#x' is not a call"),
    "event-bad-time": ("event=ti-failed@1h", None, "'1h' is not a time"),
    "empty-spec": ("", None, "fault '': an empty entry"),
    "table-without-action": (None, '[[faults]]\ntarget = "GetVariable"\n', "faults[0]"),
    "table-two-kinds": (
        None,
        '[[faults]]\ntarget = "GetVariable"\naction = "500"\nseed = 3\n',
        "faults[0]: 'seed' and 'action' belong to two kinds of entry",
    ),
    "table-event-without-at": (
        None,
        '[[faults]]\nseed = 1\n[[faults]]\nevent = "ti-failed"\n',
        "faults[1]: an event needs at",
    ),
    "table-bad-when": (
        None,
        '[[faults]]\ntarget = "GetVariable"\naction = "500"\nwhen = true\n',
        "faults[0].when: expected",
    ),
    "table-bad-spec": (
        None,
        '[[faults]]\ntarget = "GetVariable"\naction = "500"\nwhen = "x"\n',
        "faults[0]: fault 'GetVariable:500@x'",
    ),
}


def run(command: str, tmp: Path, spec: str | None, fixtures: str | None, *extra: str):
    """``command`` with the plan of ``spec`` and the fixtures text, in ``tmp``."""
    argv = list(COMMANDS[command])
    if command != "check":
        argv += ["--state", str(tmp / "s.sqlite")]
    if spec is not None:
        argv += ["--fault", spec]
    if fixtures is not None:
        path = tmp / "fixtures.toml"
        path.write_text(fixtures)
        argv += ["--fixtures", str(path)]
    argv += list(extra)
    if command == "check":
        argv += ["--", *REFERENCE.split()]
    return cli(*argv, cwd=tmp, timeout=60)


def assert_one_line_exit_2(proc, named: str) -> None:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert len(lines) == 1 and named in lines[0], proc.stderr[-2000:]
    assert lines[0].startswith("Error: ") and not proc.stdout.strip(), (proc.stdout, lines)


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", list(BAD_PLANS))
def test_bad_plan_is_one_line_naming_the_entry_exit_2(tmp_path: Path, command: str, case: str):
    """Each bad entry, on each command, is refused in one line that names it, exit 2."""
    spec, fixtures, named = BAD_PLANS[case]
    proc = run(command, tmp_path, spec, fixtures)
    assert_one_line_exit_2(proc, named)
    if fixtures is not None:
        assert "fixtures.toml: faults[" in proc.stderr, proc.stderr


@pytest.mark.parametrize("command", ["run-task", "run-dag"])
@pytest.mark.parametrize("where", ["option", "fixtures"])
def test_outside_event_against_a_real_api_is_refused_naming_the_entry(
    tmp_path: Path, command: str, where: str
):
    """An outside event with --api-url cannot happen from here: one line, the entry, exit 2."""
    spec = "event=ti-failed@1s" if where == "option" else None
    table = '[[faults]]\nevent = "ti-failed"\nat = "1s"\n' if where == "fixtures" else None
    # Nothing listens on port 9: the plan is refused before any connection is tried.
    proc = run(command, tmp_path, spec, table, "--api-url", "http://127.0.0.1:9")
    assert_one_line_exit_2(proc, "fault 'event=ti-failed@1s': outside events need the stub")
    if where == "fixtures":
        assert "fixtures.toml: faults[0]: " in proc.stderr

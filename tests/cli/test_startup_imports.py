"""Start-up stays lean: which modules a command loads, checked in a fresh interpreter.

Wall-clock times are bench/run.py's business (they vary with the machine); what a command
imports does not, and it is most of a command's start-up (docs/performance.md, "Start-up").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "supervisor-sim.toml"

#: Never needed to show help or to run a task with `-q --log-format json --no-transcript`.
HEAVY = (
    "jsonschema",  # DAG validation: parse and run-dag only
    "rich",  # run-dag's live table
    "pygments",
    "structlog",  # the console log format only
    "asyncio",  # structlog.stdlib imports it
    "psutil",  # fallbacks of the /proc and sock_diag fast paths
    "supervisor_sim.transcript",
    "supervisor_sim.check._rules",
    "supervisor_sim.check._scenarios",
    "supervisor_sim.check._report",
    "supervisor_sim.protocol._dags",
)
#: The layers: none of them is needed for --help.
LAYERS = (
    "trio",
    "httpx",
    "jwt",
    "supervisor_sim.api",
    "supervisor_sim.protocol",
    "supervisor_sim.supervision",
    "supervisor_sim.runner._supervise",
    "supervisor_sim.cli._console",
)

# Runs the command line in this interpreter and prints what it imported; a task's own failure
# is reported through the exit status.
PROBE = """
import json, sys
from supervisor_sim.cli import main
try:
    main(sys.argv[1:], prog_name="supervisor-sim")
except SystemExit as exc:
    status = exc.code
else:
    status = 0
httpx_main = sys.modules.get("httpx._main", "absent")
print(json.dumps({
    "status": status,
    "modules": sorted(k for k, v in sys.modules.items() if v is not None),
    "httpx_main": "absent" if httpx_main == "absent" else repr(httpx_main),
}))
"""


def probe(*args: str, cwd: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith('{"status"')]
    assert lines, f"no probe output; stdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1]) | {"stdout": proc.stdout, "stderr": proc.stderr}


def loaded(modules: list[str], name: str) -> bool:
    return any(m == name or m.startswith(name + ".") for m in modules)


def test_importing_the_command_line_loads_no_layer():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys, supervisor_sim.cli;"
            "print(json.dumps(sorted(k for k, v in sys.modules.items() if v is not None)))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    modules = json.loads(out.stdout)
    assert [m for m in (*LAYERS, *HEAVY) if loaded(modules, m)] == []


def test_help_loads_no_layer_and_lists_every_command(tmp_path):
    out = probe("--help", cwd=tmp_path)
    assert out["status"] == 0
    assert [m for m in (*LAYERS, *HEAVY) if loaded(out["modules"], m)] == []
    # check's short help comes from its own definition, without its scenarios and rules.
    assert "  check     Check a --comm/--logs runtime against the protocol" in out["stdout"]
    for command in ("diff", "parse", "replay", "run-dag", "run-task", "show"):
        assert f"\n  {command} " in out["stdout"]


def test_a_quiet_json_task_run_loads_only_what_it_uses(tmp_path):
    out = probe(
        "--config",
        str(CONFIG),
        "run-task",
        "example_dag",
        "hello",
        "--state",
        ":memory:",
        "--no-transcript",
        "-q",
        "--log-format",
        "json",
        cwd=tmp_path,
    )
    assert out["status"] == 0, out["stderr"][-3000:]
    modules = out["modules"]
    # It ran for real: the layers are loaded...
    assert all(loaded(modules, m) for m in ("trio", "httpx", "supervisor_sim.supervision"))
    # ...and nothing it does not use.
    assert [m for m in HEAVY if loaded(modules, m)] == []
    # httpx's own command line was kept out (supervisor_sim.cli puts None in its slot).
    assert out["httpx_main"] == "None"


def test_the_help_text_defaults_are_the_layers_values():
    """The defaults --help shows without loading the layers are the ones the layers use."""
    from supervisor_sim import api, cli, runner

    assert cli.API_VERSION == api.API_VERSION
    assert cli.DEFAULT_STATE == runner.DEFAULT_STATE
    assert cli.DEFAULT_RUNS == runner.DEFAULT_RUNS


def test_httpx_falls_back_to_its_stub_command_line():
    # What keeping httpx._main out does to httpx: `httpx.main` is the stub that explains how to
    # install httpx[cli]; everything else is untouched (and supervisor-sim never calls main).
    code = (
        "import supervisor_sim.cli, httpx, sys;"
        "print(httpx.main.__module__, 'httpx._main' in sys.modules and sys.modules['httpx._main'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["httpx", "None"]

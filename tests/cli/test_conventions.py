"""The command line's conventions: every option from SUPERVISOR_SIM_<OPTION>, shell completion,
a --version that says what is simulated, NO_COLOR."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
from _cli import CONFIG, ROOT

from supervisor_sim import cli


def run(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "supervisor_sim", *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    return proc


def test_every_option_has_a_variable_named_after_it():
    """--state is SUPERVISOR_SIM_STATE, --no-transcript SUPERVISOR_SIM_NO_TRANSCRIPT, in every
    command; the variables that existed before keep their names."""
    names = {}
    for command in (cli.main, *cli.main.commands.values()):
        for param in command.params:
            if isinstance(param, click.Option) and param.expose_value:
                flag = max(param.opts, key=len).lstrip("-").upper().replace("-", "_")
                assert param.envvar == f"SUPERVISOR_SIM_{flag}", (command.name, param.opts)
                names[param.envvar] = param
    for kept in (
        "SUPERVISOR_SIM_TOKEN",
        "SUPERVISOR_SIM_JWT_SECRET",
        "SUPERVISOR_SIM_AIRFLOW_PYTHON",
        "SUPERVISOR_SIM_CONFIG",
        "SUPERVISOR_SIM_STATE",
    ):
        assert kept in names


def test_options_come_from_the_environment_and_flags_win(tmp_path: Path):
    """A run-task configured only by variables: no state file, no transcript, JSON out; a
    flag given as well overrides its variable."""
    env = {
        "SUPERVISOR_SIM_CONFIG": str(CONFIG),
        "SUPERVISOR_SIM_STATE": ":memory:",
        "SUPERVISOR_SIM_NO_TRANSCRIPT": "1",
        "SUPERVISOR_SIM_JSON": "1",
        "SUPERVISOR_SIM_QUIET": "1",
        "SUPERVISOR_SIM_MAX_TRIES": "7",
    }
    proc = run("run-task", "example_dag", "hello", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["final_state"] == "success" and result["transcript"] is None
    assert list(tmp_path.iterdir()) == []
    proc = run("run-task", "example_dag", "fail", "--max-tries", "0", cwd=tmp_path, env=env)
    assert json.loads(proc.stdout.splitlines()[-1])["final_state"] == "failed"
    proc = run("run-task", "example_dag", "fail", cwd=tmp_path, env=env)
    assert json.loads(proc.stdout.splitlines()[-1])["final_state"] == "up_for_retry"


def test_shell_completion_completes_commands_and_options(tmp_path: Path):
    """click's completion, as docs/cli.md tells bash users to enable it."""
    env = {"_SUPERVISOR_SIM_COMPLETE": "bash_source"}
    script = run(cwd=tmp_path, env=env).stdout
    assert "_supervisor_sim_completion" in script and "complete " in script
    env = {"_SUPERVISOR_SIM_COMPLETE": "bash_complete", "COMP_WORDS": "supervisor-sim run-t"}
    env["COMP_CWORD"] = "1"
    assert run(cwd=tmp_path, env=env).stdout.split() == ["plain,run-task"]
    env["COMP_WORDS"], env["COMP_CWORD"] = "supervisor-sim run-task d t --no-tr", "4"
    assert "plain,--no-transcript" in run(cwd=tmp_path, env=env).stdout.split()
    doc = (ROOT / "docs" / "cli.md").read_text()
    assert 'eval "$(_SUPERVISOR_SIM_COMPLETE=bash_source supervisor-sim)"' in doc


def test_version_names_what_is_simulated(tmp_path: Path):
    """--version gives Airflow's, task-sdk's and the Execution API's versions, which are the
    ones the layers are built from."""
    from supervisor_sim import __version__, api
    from supervisor_sim.protocol._schema import SOURCE_PACKAGE

    out = run("--version", cwd=tmp_path, env={}).stdout.strip()
    assert out == (
        f"supervisor-sim {__version__}: Airflow 3.3.2's task supervisor "
        f"(task-sdk 1.3.2, Execution API {api.API_VERSION})"
    )
    assert f"apache-airflow-task-sdk=={cli.TASK_SDK_VERSION}" == SOURCE_PACKAGE
    readme = (ROOT / "supervisor_sim" / "protocol" / "_data" / "README.md").read_text()
    assert f"apache-airflow-core=={cli.AIRFLOW_VERSION}" in readme


def test_show_has_no_colour_with_no_color(tmp_path: Path):
    """FORCE_COLOR colours show's timeline off a terminal; NO_COLOR wins over it."""
    transcript = tmp_path / "t.jsonl"
    recorded = run(
        "--config", str(CONFIG), "run-task", "example_dag", "hello", "--state", ":memory:",
        "--transcript", str(transcript), "-q", cwd=tmp_path, env={},
    )  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr[-2000:]
    coloured = run("show", str(transcript), cwd=tmp_path, env={"FORCE_COLOR": "1"}).stdout
    assert "\x1b[" in coloured
    plain = run("show", str(transcript), cwd=tmp_path, env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert "\x1b[" not in plain.stdout and plain.stdout.strip()

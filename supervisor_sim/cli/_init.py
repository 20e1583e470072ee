"""``init``: a commented supervisor-sim.toml and fixtures file in the current folder.

The config runs the reference runtime shipped inside the package (``{reference_runtime}``), so
that after ``pip install supervisor-sim`` (or pipx), ``supervisor-sim init`` then
``supervisor-sim run-task example_dag hello`` works in any empty folder. Both files name their
JSON Schema (``#:schema``), which editors with a TOML language server (taplo, VS Code's Even
Better TOML) use to complete and check keys.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..runner import DEFAULT_NAME, DEFAULT_RUNS, DEFAULT_STATE, REFERENCE_RUNTIME
from ._common import Command, UsageError

__all__ = ["CONFIG_TEMPLATE", "FIXTURES_NAME", "init", "schema_path"]

#: The fixtures file ``init`` writes next to the config.
FIXTURES_NAME = "fixtures.toml"
_DATA = REFERENCE_RUNTIME.parents[1]

CONFIG_TEMPLATE = f"""\
# supervisor-sim project config: what `supervisor-sim run-task`, `run-dag` and `parse` use when
# given no flags (flags, and SUPERVISOR_SIM_<OPTION> variables, override it). Written by
# `supervisor-sim init`. Paths are relative to this file.

[runtime]
# The runtime to start; --comm=HOST:PORT --logs=HOST:PORT are appended. {{python}} is the
# interpreter running supervisor-sim, {{reference_runtime}} the reference runtime shipped with
# it: its example bundle holds example_dag (tasks hello, push_xcom, pull_xcom, fail, retry,
# sleep, skip, ...). Your own runtime instead, for instance:
#   command = ["./my-runtime", "--bundle", "dags/"]
command = ["{{python}}", "{{reference_runtime}}"]
# The runtime's working directory (default: the one supervisor-sim runs in).
# cwd = "."

[stub]
# What the embedded Execution API is seeded with before every run: variables, connections,
# XComs, DAG runs, assets.
fixtures = "{FIXTURES_NAME}"
# Its SQLite state, kept between runs so that tasks pass XComs (delete it to start afresh);
# ":memory:" keeps nothing.
state = "{DEFAULT_STATE}"

[transcripts]
# Where each run's transcript goes (`supervisor-sim show FILE` shows one).
dir = "{DEFAULT_RUNS}"

[supervisor]
# Airflow's defaults; uncomment to change.
# startup_timeout = 10.0         # seconds for the runtime to connect --comm and --logs
# heartbeat_interval = 5.0
# task_success_overtime = 20.0   # seconds a runtime may live after its terminal message
# task_timeout = 3600.0          # kill a task running longer (default: no limit)
# logging_level = "INFO"         # passed to the runtime as AIRFLOW__LOGGING__LOGGING_LEVEL
"""


def schema_path(name: str) -> Path:
    """The JSON Schema ``name`` shipped in the package (docs/schema/ in a checkout)."""
    return _DATA / "schema" / name


def _with_schema(text: str, schema: str) -> str:
    path = schema_path(schema)
    return f"#:schema {path.resolve().as_uri()}\n{text}" if path.is_file() else text


@click.command("init", cls=Command)
@click.option("--force", is_flag=True, help="Overwrite the files if they exist.")
def init(force: bool) -> None:
    """Write a commented supervisor-sim.toml and fixtures.toml into the current folder.

    The config runs the reference runtime shipped with supervisor-sim, so that
    `supervisor-sim run-task example_dag hello` works next; edit [runtime] command to run your
    own. Existing files are kept unless --force is given.
    """
    here = Path.cwd()
    if not (REFERENCE_RUNTIME.is_file() and (_DATA / "fixtures.toml").is_file()):
        raise UsageError(
            f"this installation has no bundled reference runtime ({_DATA} is incomplete: it was "
            "built from a tree without supervisor_sim/_data/); reinstall supervisor-sim from "
            "its wheel, or write supervisor-sim.toml by hand (docs/configuration.md)"
        )
    files = {
        here / DEFAULT_NAME: _with_schema(CONFIG_TEMPLATE, "supervisor-sim.schema.json"),
        here / FIXTURES_NAME: _with_schema(
            (_DATA / "fixtures.toml").read_text(), "fixtures.schema.json"
        ),
    }
    existing = [p.name for p in files if p.exists()]
    if existing and not force:
        raise UsageError(
            f"{' and '.join(existing)} already in {here}; pass --force to overwrite "
            f"{'them' if len(existing) > 1 else 'it'}"
        )
    for path, text in files.items():
        try:
            path.write_text(text)
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
        click.echo(f"wrote {path}")
    click.echo("next: supervisor-sim run-task example_dag hello")

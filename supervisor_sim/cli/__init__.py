"""The command line: the ``supervisor-sim`` group and the commands it registers.

One module a command, holding its options, help and body: ``_run_task``, ``_run_dag``,
``_parse``, ``_transcripts`` (show, diff, replay), ``_check`` and ``_init``. The options several
commands take are declared once, in ``_options``; what the bodies share (exit statuses,
one-line errors, checked paths, the project config) is in ``_common``. Every option can also
come from the environment, ``SUPERVISOR_SIM_<OPTION>`` (``--state`` from
``SUPERVISOR_SIM_STATE``), whichever command takes it. A command imports trio, httpx and the
layers only when it runs, so ``supervisor-sim --help`` loads click and nothing else of weight.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import __version__
from ..runner import DEFAULT_RUNS, DEFAULT_STATE
from ._check import check
from ._common import Group
from ._init import init
from ._options import AIRFLOW_VERSION, API_VERSION, TASK_SDK_VERSION
from ._parse import parse
from ._proxy import proxy
from ._run_dag import run_dag
from ._run_task import run_task
from ._transcripts import diff, replay, show
from ._worker import worker

__all__ = [
    "AIRFLOW_VERSION",
    "API_VERSION",
    "DEFAULT_RUNS",
    "DEFAULT_STATE",
    "ENVVAR_PREFIX",
    "TASK_SDK_VERSION",
    "main",
]

#: Every option can come from ``SUPERVISOR_SIM_<OPTION>``: the prefix, on every command, so
#: that one variable (``SUPERVISOR_SIM_STATE``) means one thing whichever command reads it.
ENVVAR_PREFIX = "SUPERVISOR_SIM"

# httpx's __init__ imports its own command line (httpx._main) when click, rich and pygments are
# installed, as they are here: ~30 ms of start-up for a CLI we never use. With None in its slot
# that import fails, and httpx falls back to a stub `httpx.main` that only prints how to install
# httpx[cli]. supervisor-sim never uses httpx.main; set before any command imports httpx.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


@click.group(
    cls=Group,
    context_settings={
        "help_option_names": ["-h", "--help"],
        "max_content_width": 100,
        "auto_envvar_prefix": ENVVAR_PREFIX,
    },
)
@click.version_option(
    __version__,
    prog_name="supervisor-sim",
    message=f"%(prog)s %(version)s: Airflow {AIRFLOW_VERSION}'s task supervisor (task-sdk "
    f"{TASK_SDK_VERSION}, Execution API {API_VERSION})",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Project config file (default: ./supervisor-sim.toml when present).",
)
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """Airflow's task supervisor, alone on one machine.

    Launches runtime binaries with --comm/--logs, answers their requests from an embedded stub
    Execution API (or a real Airflow), and shows every frame and log line.
    """
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


def _name_envvars(command: click.Command) -> None:
    """Name each option's variable after the option (``--state``: ``SUPERVISOR_SIM_STATE``),
    where click's prefix alone would name it after the value's destination
    (``SUPERVISOR_SIM_STATE_PATH``). Options that already name one keep it."""
    for param in command.params:
        if isinstance(param, click.Option) and param.envvar is None and param.expose_value:
            flag = max(param.opts, key=len).lstrip("-")
            param.envvar = f"{ENVVAR_PREFIX}_{flag.upper().replace('-', '_')}"


_name_envvars(main)
for _command in (run_task, run_dag, parse, show, diff, replay, check, init, proxy, worker):
    _command.context_settings.setdefault("auto_envvar_prefix", ENVVAR_PREFIX)
    _name_envvars(_command)
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()

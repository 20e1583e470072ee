"""The command line: the ``supervisor-sim`` group and the commands it registers.

One module a command, holding its options, help and body: ``_run_task``, ``_run_dag``,
``_parse``, ``_transcripts`` (show, diff, replay) and ``_check``. The options several commands
take are declared once, in ``_options``; what the bodies share (exit statuses, usage errors,
the project config) is in ``_common``. A command imports trio, httpx and the layers only when it
runs, so ``supervisor-sim --help`` loads click and nothing else of weight.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import __version__
from ..runner import DEFAULT_RUNS, DEFAULT_STATE
from ._check import check
from ._options import API_VERSION
from ._parse import parse
from ._run_dag import run_dag
from ._run_task import run_task
from ._transcripts import diff, replay, show

__all__ = ["API_VERSION", "DEFAULT_RUNS", "DEFAULT_STATE", "main"]

# httpx's __init__ imports its own command line (httpx._main) when click, rich and pygments are
# installed, as they are here: ~30 ms of start-up for a CLI we never use. With None in its slot
# that import fails, and httpx falls back to a stub `httpx.main` that only prints how to install
# httpx[cli]. supervisor-sim never uses httpx.main; set before any command imports httpx.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="supervisor-sim")
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


for _command in (run_task, run_dag, parse, show, diff, replay, check):
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()

"""The command line: the commands, their options and help. Each command's body (parse, build
objects, call the layers, print, choose an exit status) is a private module it imports when it
runs: ``_cmd_run_task``, ``_cmd_parse``, ``_cmd_transcripts``, ``_dagrun_cli``, ``_cmd_check``.

Exit statuses of ``run-task``:

====  =================================================================
0     the task's final state is ``success``
1     the task ran and ended in any other state (failed, up_for_retry, ...)
2     usage or configuration error (bad flag, fixture or config file)
3     the task could not start (runtime did not connect, /run refused)
4     supervisor-sim could not do its job (API unreachable, internal error)
130   interrupted (SIGINT/SIGTERM was forwarded to the runtime first)
====  =================================================================
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..runner import DEFAULT_RUNS, DEFAULT_STATE
from ._check import check
from ._common import loading
from ._transcripts import diff, replay, show

# ``--help`` loads click and nothing of trio, httpx or the layers; a command loads what it uses.

# httpx's __init__ imports its own command line (httpx._main) when click, rich and pygments are
# installed, as they are here: ~30 ms of start-up for a CLI we never use. With None in its slot
# that import fails, and httpx falls back to a stub `httpx.main` that only prints how to install
# httpx[cli]. supervisor-sim never uses httpx.main; set before any command imports httpx.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

#: The Airflow-API-Version sent by default: ``supervisor_sim.api.API_VERSION``, repeated here so
#: that --help does not import the API layer (tests/cli/test_startup_imports.py checks they agree).
API_VERSION = "2026-06-30"


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


@main.command("run-task")
@click.argument("dag_id")
@click.argument("task_id")
@click.option(
    "--runtime",
    "runtime_cmd",
    metavar="CMD",
    help="Runtime command; --comm/--logs are appended. Default: from the config file.",
)
@click.option(
    "--fixtures",
    type=click.Path(path_type=Path, dir_okay=False),
    help="TOML fixtures (variables, connections, XComs, DAG runs) seeded into the stub.",
)
@click.option(
    "--state",
    "state_path",
    metavar="PATH",
    help=f"SQLite file of the stub's state (default {DEFAULT_STATE}; ':memory:').",
)
@click.option("--run-id", help="DAG run id (default: a new manual run).")
@click.option("--map-index", type=int, default=-1, show_default=True)
@click.option("--try-number", type=int, help="Force the try number.")
@click.option(
    "--max-tries",
    type=int,
    default=0,
    show_default=True,
    help="Retries allowed; with a failure and tries left the state is up_for_retry.",
)
@click.option("--queue", default="default", show_default=True)
@click.option("--timeout", type=float, help="Kill the runtime after this many seconds.")
@click.option("--startup-timeout", type=float, help="Seconds to connect --comm/--logs (10).")
@click.option("--heartbeat-interval", type=float, help="Seconds between heartbeats (5).")
@click.option(
    "--task-success-overtime",
    type=float,
    help="Seconds a runtime may live after its terminal message (20).",
)
@click.option(
    "--airflow-strict",
    is_flag=True,
    default=None,
    help="Reproduce Airflow exactly, traps included (invalid requests go unanswered).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON object.")
@click.option(
    "--log-format",
    type=click.Choice(["auto", "console", "json"]),
    default="auto",
    show_default=True,
    help="How runtime logs and events are shown on stderr.",
)
@click.option("-q", "--quiet", count=True, help="Less output (-q: no frames or logs).")
@click.option("-v", "--verbose", count=True, help="More output (-v: HTTP calls too).")
@click.option("--api-url", help="A real Execution API base URL instead of the stub.")
@click.option(
    "--token",
    envvar="SUPERVISOR_SIM_TOKEN",
    help="Task JWT for --api-url (or SUPERVISOR_SIM_TOKEN).",
)
@click.option(
    "--jwt-secret",
    envvar="SUPERVISOR_SIM_JWT_SECRET",
    help="With --api-url and no --token: mint a workload token with Airflow's "
    "[api_auth] jwt_secret (or SUPERVISOR_SIM_JWT_SECRET).",
)
@click.option("--ti-id", help="Task instance id (required with --api-url).")
@click.option("--dag-version-id", help="dag_version_id sent in StartupDetails with --api-url.")
@click.option(
    "--api-version",
    default=API_VERSION,
    show_default=True,
    help="Airflow-API-Version header sent to the Execution API.",
)
@click.option("--api-retries", type=int, help="HTTP attempts per call (Airflow: 5).")
@click.option("--api-timeout", type=float, help="Seconds per HTTP attempt (Airflow: 5.0).")
@click.option(
    "--ca-file",
    type=click.Path(exists=True, dir_okay=False),
    help="Extra CA bundle for an https --api-url.",
)
@click.option(
    "--client-cert",
    type=click.Path(exists=True, dir_okay=False),
    help="Client certificate for mTLS (with --client-key).",
)
@click.option(
    "--client-key",
    type=click.Path(exists=True, dir_okay=False),
    help="Client key for mTLS (with --client-cert).",
)
@click.option(
    "--transcript",
    type=click.Path(path_type=Path, dir_okay=False),
    help=f"Where to record the transcript (default: a new file in {DEFAULT_RUNS}/).",
)
@click.option("--no-transcript", is_flag=True, help="Do not record a transcript.")
@click.option(
    "--no-redact",
    is_flag=True,
    help="Keep secrets (JWTs, passwords, masked values) in the transcript.",
)
@click.pass_context
def run_task(ctx: click.Context, dag_id: str, task_id: str, **opts: Any) -> None:
    """Run one task try of DAG_ID.TASK_ID under the simulated supervisor."""
    with loading():
        from ._run_task import run_task_command

    run_task_command(ctx, dag_id, task_id, opts)


@main.command("run-dag")
@click.argument("dag_id")
@click.option(
    "--runtime",
    "runtime_cmd",
    metavar="CMD",
    help="Runtime command; default: from the config file.",
)
@click.option(
    "--parallelism",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Task instances running at once.",
)
@click.option("--run-id", help="DAG run id (default: a new manual run).")
@click.option(
    "--task",
    "tasks",
    multiple=True,
    metavar="TASK_ID",
    help="Run only these tasks (repeatable); dependencies among them are kept.",
)
@click.option("--fixtures", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--state", "state_path", metavar="PATH", help="SQLite state of the stub.")
@click.option(
    "--retry-delay",
    type=float,
    help="Seconds between tries (default: each task's own retry_delay).",
)
@click.option("--timeout", type=float, help="Kill any task instance after this many seconds.")
@click.option(
    "--runs-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help=f"Where the per-task transcripts go (default {DEFAULT_RUNS}/).",
)
@click.option("--no-transcript", is_flag=True, help="Do not record transcripts.")
@click.option("--api-url", help="Run the DAG on a real Execution API instead of the stub.")
@click.option(
    "--jwt-secret",
    envvar="SUPERVISOR_SIM_JWT_SECRET",
    help="With --api-url: Airflow's [api_auth] jwt_secret, to mint task tokens.",
)
@click.option(
    "--airflow-python",
    default="python3",
    show_default=True,
    envvar="SUPERVISOR_SIM_AIRFLOW_PYTHON",
    help="With --api-url: the Python of that Airflow, which runs tools/airflow_queue_ti.py to "
    "queue each task instance when it is ready.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option(
    "--log-format",
    type=click.Choice(["auto", "console", "json"]),
    default="auto",
    show_default=True,
)
@click.option("-q", "--quiet", count=True, help="Less output (-q: no frames or task logs).")
@click.pass_context
def run_dag(ctx: click.Context, dag_id: str, **opts: Any) -> None:
    """Run every task of DAG_ID in dependency order, several at once, in one process.

    The DAG's tasks and dependencies come from the runtime itself (a parse, as `parse` does).
    Exit 0 when every task succeeded or was skipped, 1 otherwise, 130 when interrupted.
    """
    with loading():
        from ._run_dag import run_dag_cli

    run_dag_cli(ctx, dag_id, opts)


@main.command("parse")
@click.argument("file", required=False)
@click.option(
    "--runtime",
    "runtime_cmd",
    metavar="CMD",
    help="Runtime command; default: from the config file.",
)
@click.option(
    "--bundle-path",
    type=click.Path(file_okay=False),
    help="Bundle root sent in the request (default: the working directory).",
)
@click.option("--bundle-name", default="dags-folder", show_default=True)
@click.option(
    "--fixtures",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Fixtures for the requests a parser may make (variables, connections).",
)
@click.option("--state", "state_path", metavar="PATH", help="SQLite state of the stub.")
@click.option(
    "--transcript",
    type=click.Path(path_type=Path, dir_okay=False),
    help=f"Where to record the transcript (default: a new file in {DEFAULT_RUNS}/).",
)
@click.option("--no-transcript", is_flag=True, help="Do not record a transcript.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option(
    "--log-format",
    type=click.Choice(["auto", "console", "json"]),
    default="auto",
    show_default=True,
)
@click.option("-q", "--quiet", count=True, help="Less output.")
@click.pass_context
def parse(ctx: click.Context, file: str | None, **opts: Any) -> None:
    """Ask a runtime to parse a DAG file and check its serialized DAGs against Airflow's schema.

    Sends DagFileParseRequest as the first frame, serves the requests a parser may make, and
    validates every serialized DAG of the DagFileParsingResult against Airflow 3.3's
    serialized-DAG JSON schema. FILE is the path sent in the request (default: the runtime's
    program file). Exit 0 when the runtime parsed and every DAG is valid.
    """
    with loading():
        from ._parse import parse_command

    parse_command(ctx, file, opts)


main.add_command(check)
for _command in (diff, replay, show):
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()

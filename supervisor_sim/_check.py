"""`supervisor-sim check`: a conformance kit for --comm/--logs runtimes.

Acts as Airflow's supervisor in a series of scenarios (each a real session: own process, own
sockets, the embedded stub Execution API) — some exactly like Airflow, some sending what a
correct runtime must tolerate or survive — and reports, per rule, pass / fail / n/a with the
evidence: the frames exchanged, log lines and process events. Scenarios live in
``_check_scenarios``, rules in ``_check_rules``; the command's body and its reports (a terminal
table, ``--json``, ``--junit FILE``) in ``_cmd_check``. This module holds only the command's
options and help, so that ``supervisor-sim --help`` lists it without loading the scenarios, the
rules or the layers; the body is imported when the command runs.

Exit status: 0 when no rule failed, 1 when at least one did, 2 for usage errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

__all__ = ["check"]


@click.command(
    "check",
    context_settings={
        "help_option_names": ["-h", "--help"],
        "max_content_width": 100,
        "allow_interspersed_args": False,
    },
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="-- CMD...")
@click.option("--dag", "dag_id", default="example_dag", show_default=True, help="DAG of the task.")
@click.option(
    "--task",
    "task_id",
    default="hello",
    show_default=True,
    help="A task of the runtime's bundle that succeeds without extra fixtures.",
)
@click.option(
    "--dag-rel-path",
    help="StartupDetails.dag_rel_path (default: DAG.py).",
)
@click.option("--bundle-name", default="dags-folder", show_default=True)
@click.option(
    "--parse-file",
    help="The file named in DagFileParseRequest (default: the runtime's program file).",
)
@click.option("--fixtures", type=click.Path(path_type=Path, dir_okay=False), help="Stub fixtures.")
@click.option(
    "--skip",
    "skips",
    multiple=True,
    metavar="RULE",
    help="Declare a rule not applicable to this runtime (repeatable), e.g. --skip parse for a "
    "runtime without DAG parsing. It is still observed, and reported as n/a.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option(
    "--junit",
    "junit_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the report as JUnit XML to FILE.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    help="Scenarios run at once, after the baseline (default: the number of CPUs, at most 4).",
)
@click.option(
    "--startup-timeout",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds to connect --comm and --logs.",
)
@click.option(
    "--overtime",
    type=float,
    default=20.0,
    show_default=True,
    help="task_success_overtime: seconds to exit after the terminal message.",
)
@click.option(
    "--exit-bound",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds a runtime may take to exit after the comm connection closes, or to send "
    "anything after an injected reply.",
)
@click.option(
    "--timeout",
    type=float,
    default=60.0,
    show_default=True,
    help="Kill a scenario's runtime after this many seconds.",
)
@click.option("--list-rules", is_flag=True, help="List the rules and scenarios, then exit.")
def check(command: tuple[str, ...], **opts: Any) -> None:
    """Check a --comm/--logs runtime against the protocol: every rule, pass / fail / n/a.

    Runs the runtime CMD ({python} is this interpreter; --comm/--logs are appended) once per
    scenario, acting as Airflow's
    supervisor — exactly, or sending what a correct runtime must tolerate (unknown and missing
    fields, every timestamp size, short frames, errors, a wrong reply id, a closed
    connection) — and judges each rule from the frames, logs and exit codes. Exit 1 when a rule
    failed.

    \b
    Example:
      supervisor-sim check --junit check.xml -- ./my-runtime --bundle dags/
    """
    from ._cmd_common import loading

    with loading():
        from ._cmd_check import check_command

    check_command(command, opts)


if __name__ == "__main__":
    check(prog_name="supervisor-sim check")

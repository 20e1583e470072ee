"""`supervisor-sim check`: a conformance kit for --comm/--logs runtimes.

Acts as Airflow's supervisor in a series of scenarios (each a real session: own process, own
sockets, the embedded stub Execution API) — some exactly like Airflow, some sending what a
correct runtime must tolerate or survive — and reports, per rule, pass / fail / n/a with the
evidence: the frames exchanged, log lines and process events. The scenarios, rules and
reports (a terminal table, ``--json``, ``--junit FILE``) are ``supervisor_sim.check``'s; this
module holds the command's options, help and body, which imports the kit and the layers when
the command runs, so that ``supervisor-sim --help`` lists it without loading them.

Exit status: 0 when no rule failed, 1 when at least one did, 2 for usage errors, 3 when the
runtime could not start at all (in the baseline scenario): then one line says why instead of
the table, and ``--json`` and ``--junit`` still get the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ._common import Command, UsageError, loading, not_started, writable_file
from ._options import (
    bundle_name_option,
    fault_option,
    fixtures_option,
    json_option,
    startup_timeout_option,
    timeout_option,
)

__all__ = ["check"]


@click.command(
    "check",
    cls=Command,
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
@bundle_name_option()
@click.option(
    "--parse-file",
    help="The file named in DagFileParseRequest (default: the runtime's program file).",
)
@fixtures_option("Stub fixtures.")
@click.option(
    "--skip",
    "skips",
    multiple=True,
    metavar="RULE",
    help="Declare a rule not applicable to this runtime (repeatable), e.g. --skip parse for a "
    "runtime without DAG parsing. It is still observed, and reported as n/a.",
)
@json_option("report")
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
@startup_timeout_option("Seconds to connect --comm and --logs.", default=10.0)
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
    "anything after an injected reply; after a baseline that hung (no frame until --timeout), "
    "also how long every later scenario waits for a frame.",
)
@timeout_option(
    "Kill a scenario's runtime after this many seconds (a silent runtime is said to be waited "
    "for after 5 s).",
    default=60.0,
)
@fault_option()
@click.option(
    "--slow-api-delay",
    type=click.FloatRange(min=0.0, max=9.0),
    default=3.0,
    show_default=True,
    help="Seconds the slow-api scenario holds its API call (under the client's 10 s timeout).",
)
@click.option("--list-rules", is_flag=True, help="List the rules and scenarios, then exit.")
def check(command: tuple[str, ...], **opts: Any) -> None:
    """Check a --comm/--logs runtime against the protocol: every rule, pass / fail / n/a.

    Runs the runtime CMD ({python} is this interpreter; --comm/--logs are appended) once per
    scenario, acting as Airflow's
    supervisor — exactly, or sending what a correct runtime must tolerate (unknown and missing
    fields, every timestamp size, short frames, errors, a wrong reply id, a closed
    connection, an API answering 500, a slow API, an expired token, a kill from outside) — and
    judges each rule from the frames, logs and exit codes. --fault SPEC (and the fixtures'
    [[faults]]) applies a fault plan to every scenario, as run-task takes it. Exit 1 when a
    rule failed, 3 when the runtime could not start.

    \b
    Example:
      supervisor-sim check --junit check.xml -- ./my-runtime --bundle dags/
    """
    with loading():
        from .. import api, check, runner, supervision  # noqa: F401  the kit and the layers

    check_command(command, opts)


# --- the body: the names it imports load the check kit, so they are imported when it runs


def _known_rule(value: str, rule_ids: tuple[str, ...]) -> bool:
    return value in rule_ids or value.startswith("violation:")


def check_command(command: tuple[str, ...], opts: dict[str, Any]) -> None:
    import json
    import os
    import sys
    from dataclasses import replace

    from ..api import FixtureError, Fixtures, load_fixtures
    from ..check import (
        EXIT_FAILED,
        EXIT_OK,
        RULE_IDS,
        RULES,
        SCENARIOS,
        CheckContext,
        ScenarioResult,
        junit_xml,
        render_table,
        run_check,
    )
    from ..runner import runtime_argv
    from ..supervision import SupervisorConfig
    from ._faults import attach_fault_plan, fault_plan

    if opts["list_rules"]:
        for r in RULES:
            click.echo(f"{r.id:<24} {r.title}")
        click.echo("violation:<rule>         every protocol violation the supervisor reports")
        click.echo("")
        for s in SCENARIOS:
            click.echo(f"scenario {s.name:<17} {s.title}")
        return
    if not command:
        raise UsageError("no runtime command: give it after --, e.g. check -- ./my-runtime")
    bad = [s for s in opts["skips"] if not _known_rule(s, tuple(RULE_IDS))]
    if bad:
        raise UsageError(
            f"unknown rule {bad[0]!r} for --skip; rules: {', '.join(RULE_IDS)}, violation:<rule>"
        )
    fixtures = Fixtures()
    if opts["fixtures"]:
        try:
            fixtures = load_fixtures(opts["fixtures"])
        except FixtureError as exc:
            raise UsageError(str(exc)) from None
    specs: tuple[str, ...] = tuple(opts["faults"])
    fixtures_path = opts["fixtures"]
    # Checked before anything starts: a bad entry is one line naming it, exit 2 (as run-task).
    user_plan = fault_plan(specs, fixtures_path)

    def make_faults(own: tuple[str, ...]) -> Any:
        # The scenario's own entries first, so the command's (a seed, say) win; a fresh plan
        # per session, as run-dag makes one per task instance.
        return fault_plan((*own, *specs), fixtures_path)

    if opts["junit_path"]:
        writable_file(opts["junit_path"], "--junit", "give another path")
    config = replace(
        SupervisorConfig(),
        startup_timeout=opts["startup_timeout"],
        task_success_overtime=opts["overtime"],
        task_timeout=opts["timeout"],
        kill_escalation_delay=2.0,
        socket_cleanup_timeout=5.0,
    )
    ctx = CheckContext(
        runtime=runtime_argv(list(command)),
        dag_id=opts["dag_id"],
        task_id=opts["task_id"],
        dag_rel_path=opts["dag_rel_path"],
        bundle_name=opts["bundle_name"],
        parse_file=opts["parse_file"],
        fixtures=fixtures,
        config=config,
        exit_bound=opts["exit_bound"],
        jobs=opts["jobs"] or min(4, os.cpu_count() or 1),
        make_faults=make_faults,
        attach_faults=attach_fault_plan,
        slow_api_delay=opts["slow_api_delay"],
        fault_specs=tuple(r.spec for r in [*user_plan.rules, *user_plan.events])
        + (("token-expiry",) if user_plan.expiry else ())
        # The seed decides every probability: a report must say which one it ran with.
        + (f"seed={user_plan.seed}",)
        if user_plan is not None
        else (),
    )

    def waiting(name: str, seconds: float, after: str, ends: str) -> None:
        # On stderr whatever it is (a terminal, a CI log): a silent runtime makes a silent
        # check otherwise, for as long as --timeout.
        click.echo(
            f"  waiting for the runtime (scenario {name}, {seconds:.0f}s so far with no frame "
            f"since {after}; {ends})",
            err=True,
        )

    ctx = replace(ctx, on_waiting=waiting)

    not_running: list[str | None] = []  # why the baseline's runtime did not start, if it did not

    def progress(s: ScenarioResult) -> None:
        if s.name == "baseline" and s.outcome is not None and not s.outcome.started:
            not_running.append(s.outcome.error)
        if opts["as_json"] or not sys.stderr.isatty():
            return
        state = "not run" if not s.ran else f"{s.terminal_summary()}, exit {s.exit_code}"
        click.echo(f"  scenario {s.name}: {state}", err=True)

    report = run_check(ctx, set(opts["skips"]), progress)
    if opts["junit_path"]:
        opts["junit_path"].write_bytes(junit_xml(report))
    if opts["as_json"]:
        click.echo(json.dumps(report, default=str))
    elif not not_running:
        click.echo(render_table(report))
    if not_running:
        not_started(not_running[0], "check the command given after --")
    sys.exit(EXIT_OK if report["passed"] else EXIT_FAILED)


if __name__ == "__main__":
    check(prog_name="supervisor-sim check")

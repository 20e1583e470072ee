"""``parse``: a runtime parses a DAG file, its serialized DAGs are checked against Airflow's
schema. The layers are imported when the command runs.

``bundle_dags`` is the same parse for other commands: run-task asks it which DAGs and tasks
the bundle has when a task ends ``removed`` (Airflow's answer for a task the bundle lacks).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ..runner import DEFAULT_RUNS, ConfigError, runtime_argv
from ._common import (
    EXIT_FAILED,
    EXIT_SUCCESS,
    Command,
    UsageError,
    loading,
    log_format,
    not_started,
    project_config,
    state_path,
    supervisor_config,
    transcript_target,
)
from ._options import (
    bundle_name_option,
    fixtures_option,
    json_option,
    log_format_option,
    quiet_option,
    runtime_option,
    state_option,
    transcript_options,
)

if TYPE_CHECKING:
    from ..api import ExecutionAPIClient
    from ..supervision import ParseSession, SupervisorConfig, TaskOutcome

__all__ = ["bundle_dags", "parse", "parse_command", "program_file"]


@click.command("parse", cls=Command)
@click.argument("file", required=False)
@runtime_option()
@click.option(
    "--bundle-path",
    type=click.Path(file_okay=False),
    help="Bundle root sent in the request (default: the working directory).",
)
@bundle_name_option()
@fixtures_option("Fixtures for the requests a parser may make (variables, connections).")
@state_option()
@transcript_options()
@json_option()
@log_format_option()
@quiet_option("Less output.")
@click.pass_context
def parse(ctx: click.Context, file: str | None, **opts: Any) -> None:
    """Ask a runtime to parse a DAG file and check its serialized DAGs against Airflow's schema.

    Sends DagFileParseRequest as the first frame, serves the requests a parser may make, and
    validates every serialized DAG of the DagFileParsingResult against Airflow 3.3's
    serialized-DAG JSON schema. FILE is the path sent in the request (default: the runtime's
    program file). Exit 0 when the runtime parsed and every DAG is valid, 1 when it did not
    parse (an import error included) or a DAG is invalid, 3 when the runtime could not start.
    """
    parse_command(ctx, file, opts)


def program_file(runtime: list[str]) -> str:
    """The file a runtime's parse names by default: its last argument that is a file and not
    an interpreter (the script, or the bundle), else ``dags.py``."""
    existing = [
        a for a in runtime if Path(a).is_file() and not a.endswith("python") and "/python" not in a
    ]
    return str(Path(existing[-1] if existing else "dags.py").resolve())


def bundle_dags(
    runtime: list[str], cwd: str | None, config: SupervisorConfig
) -> dict[str, list[str]] | None:
    """DAG id -> task ids, from the runtime's own parse of its bundle (against an empty
    in-memory stub); None when it does not parse."""
    import trio

    from ..api import StubStore, stub_client
    from ..protocol import dag_structure
    from ..supervision import Journal, ParseSession, ParseSpec

    spec = ParseSpec(file=program_file(runtime), runtime=runtime, cwd=cwd)

    async def go() -> dict[str, Any] | None:
        store = StubStore(":memory:")
        try:
            async with stub_client(store) as api:
                session = ParseSession(spec, api, config=config, journal=Journal())
                await session.run()
            return session.result
        finally:
            store.close()

    result = trio.run(go)
    if result is None:
        return None
    dags: dict[str, list[str]] = {}
    for item in result.get("serialized_dags") or []:
        data = item.get("data") if isinstance(item, dict) else None
        if isinstance(data, dict) and isinstance(data.get("dag"), dict):
            structure = dag_structure(data)
            dags[str(structure.dag_id)] = sorted(structure.tasks)
    return dags


def parse_command(ctx: click.Context, file: str | None, opts: dict[str, Any]) -> NoReturn:
    project = project_config(ctx)
    fmt = log_format(opts["log_format"])
    state_path(opts["state_path"] or project.state)
    transcript_target(opts, project.runs_dir)
    with loading():
        import trio

        from ..api import FixtureError, StubTransport
        from ..protocol import dag_structure, validate_serialized_dag
        from ..runner import default_transcript, open_store, supervise
        from ..supervision import Journal, ParseSession, ParseSpec
        from ._console import ConsoleSink

    runtime = (
        runtime_argv(opts["runtime_cmd"]) if opts["runtime_cmd"] is not None else project.runtime
    )
    if not runtime:
        raise UsageError("no runtime command: pass --runtime CMD or set [runtime] command")
    if file is None:
        file = program_file(runtime)
    bundle_path = str(Path(opts["bundle_path"] or Path.cwd()).resolve())
    spec = ParseSpec(
        file=file,
        runtime=runtime,
        bundle_path=bundle_path,
        bundle_name=opts["bundle_name"],
        cwd=project.runtime_cwd,
    )
    config = supervisor_config(project, {})
    verbosity = 1 - opts["quiet"]

    async def go() -> tuple[TaskOutcome, dict[str, Any] | None, Path | None]:
        journal = Journal()
        journal.sinks.append(ConsoleSink(verbosity=verbosity, bind=fmt == "json", parse=file))
        store = open_store(
            opts["state_path"] or project.state, opts["fixtures"] or project.fixtures
        )
        http = StubTransport(store)
        transcript = None
        if not opts["no_transcript"]:
            base = project.runs_dir or DEFAULT_RUNS
            transcript = (
                opts["transcript"]
                or default_transcript(
                    base,
                    {
                        "dag_id": "parse",
                        "task_id": Path(file).stem,
                        "run_id": "file",
                        "try_number": 1,
                    },
                )
            ).resolve()
        holder: list[ParseSession] = []

        def make(api: ExecutionAPIClient) -> ParseSession:
            session = ParseSession(spec, api, config=config, journal=journal)
            holder.append(session)
            return session

        outcome = await supervise(
            spec,
            http,
            token="",
            config=config,
            journal=journal,
            transcript=transcript,
            redact=True,
            api_label="stub",
            session_factory=make,
        )
        return outcome, holder[0].result, transcript

    try:
        outcome, result, transcript = trio.run(go)
    except (FixtureError, ConfigError) as exc:
        raise UsageError(str(exc)) from None
    dags = []
    # A file that raised on import did not parse, whatever DAGs came back with it.
    all_valid = result is not None and not result.get("import_errors")
    for item in (result or {}).get("serialized_dags", []) or []:
        data = item.get("data") if isinstance(item, dict) else None
        problems = validate_serialized_dag(data)
        all_valid = all_valid and not problems
        entry: dict[str, Any] = {"problems": problems}
        if isinstance(data, dict):
            structure = dag_structure(data)
            entry.update(
                dag_id=structure.dag_id,
                fileloc=structure.fileloc,
                tasks={
                    tid: {"downstream": n.downstream, "mapped_over": n.mapped_over}
                    for tid, n in structure.tasks.items()
                },
            )
        dags.append(entry)
    summary = {
        "file": file,
        "parsed": outcome.final_state == "parsed",
        "valid": all_valid and outcome.final_state == "parsed",
        "exit_code": outcome.exit_code,
        "dags": dags,
        "import_errors": (result or {}).get("import_errors") or {},
        "warnings": (result or {}).get("warnings") or [],
        "violations": [v.as_dict() for v in outcome.violations],
        "violations_suppressed": outcome.violations_suppressed,
        "error": outcome.error,
        "transcript": str(transcript) if transcript else None,
    }
    if opts["as_json"]:
        click.echo(json.dumps(summary))
    else:
        _print_parse(summary)
    if not outcome.started:
        not_started(outcome.error)
    sys.exit(EXIT_SUCCESS if summary["valid"] else EXIT_FAILED)


def _print_parse(summary: dict[str, Any]) -> None:
    out = [
        f"parsed {summary['file']}: "
        f"{'OK' if summary['valid'] else 'PROBLEMS'} ({len(summary['dags'])} DAG(s))"
    ]
    for dag in summary["dags"]:
        out.append(f"  DAG {dag.get('dag_id')}  ({len(dag.get('tasks', {}))} tasks)")
        for tid, task in dag.get("tasks", {}).items():
            arrow = f" -> {', '.join(task['downstream'])}" if task["downstream"] else ""
            mapped = f" [mapped over {task['mapped_over']}]" if task["mapped_over"] else ""
            out.append(f"    {tid}{mapped}{arrow}")
        for problem in dag["problems"]:
            out.append(f"    SCHEMA {problem}")
    for path, error in summary["import_errors"].items():
        out.append(f"  import error in {path}: {error.strip().splitlines()[-1] if error else ''}")
    for warning in summary["warnings"]:
        out.append(f"  warning: {warning}")
    for v in summary["violations"]:
        out.append(f"  violation {v['rule']}: {v['message']}")
    if summary["error"]:
        out.append(f"  error: {summary['error']}")
    if summary["transcript"]:
        out.append(f"  transcript {summary['transcript']}")
    click.echo("\n".join(out))

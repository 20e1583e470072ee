"""The command line. Thin: parse, build objects, call the layers, print, choose an exit status.

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

import json
import os
import re
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import click
import httpx
import trio

from . import __version__
from ._config_file import ConfigError, ProjectConfig, load_project_config, runtime_argv
from ._console import ConsoleSink, configure_logging, print_summary
from ._run import (
    DEFAULT_RUNS,
    DEFAULT_STATE,
    default_transcript,
    forward_signals_to,
    journal_exchanges,
    open_store,
    supervise,
    ti_wire,
)
from .api import (
    API_VERSION,
    ExecutionAPIClient,
    FixtureError,
    Fixtures,
    RetryPolicy,
    StubStore,
    StubTransport,
    TokenIssuer,
    load_fixtures,
    mint_token,
    real_api_client,
)
from .supervision import Journal, SupervisorConfig, TaskOutcome, TaskSession, TaskSpec
from .transcript import (
    FrameMatcher,
    ReplayTransport,
    TranscriptError,
    diff_transcripts,
    read_transcript,
    render_html,
    render_timeline,
)

EXIT_SUCCESS, EXIT_TASK_FAILED, EXIT_USAGE, EXIT_NOT_STARTED, EXIT_INTERNAL = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130
EXIT_DIVERGED = 1


class UsageError(click.UsageError):
    pass


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


def _project(ctx: click.Context) -> ProjectConfig:
    try:
        return load_project_config(ctx.obj.get("config_path"))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _supervisor_config(project: ProjectConfig, overrides: dict[str, Any]) -> SupervisorConfig:
    known = {f.name for f in fields(SupervisorConfig)}
    values: dict[str, Any] = {}
    # Airflow passes its [logging] levels to the runtime; like any Airflow setting they can
    # come from the environment.
    for key, env in (
        ("logging_level", "AIRFLOW__LOGGING__LOGGING_LEVEL"),
        ("namespace_levels", "AIRFLOW__LOGGING__NAMESPACE_LEVELS"),
    ):
        if os.environ.get(env):
            values[key] = os.environ[env]
    values.update({k: v for k, v in project.supervisor.items() if k in known})
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return replace(SupervisorConfig(), **values)
    except TypeError as exc:
        raise UsageError(f"bad supervisor setting: {exc}") from None


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
    project = _project(ctx)
    fmt = opts["log_format"]
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    configure_logging(fmt)
    opts["log_format"] = fmt
    runtime = runtime_argv(opts["runtime_cmd"]) if opts["runtime_cmd"] else project.runtime
    if not runtime:
        raise UsageError(
            "no runtime command: pass --runtime CMD or set [runtime] command in supervisor-sim.toml"
        )
    config = _supervisor_config(
        project,
        {
            "task_timeout": opts["timeout"],
            "startup_timeout": opts["startup_timeout"],
            "heartbeat_interval": opts["heartbeat_interval"],
            "task_success_overtime": opts["task_success_overtime"],
            "airflow_strict": opts["airflow_strict"],
        },
    )
    verbosity = 1 + opts["verbose"] - opts["quiet"]
    try:
        outcome, title, transcript = trio.run(
            _run_task, dag_id, task_id, runtime, project, config, verbosity, opts
        )
    except (FixtureError, ConfigError) as exc:
        raise UsageError(str(exc)) from None
    except httpx.HTTPError as exc:
        click.echo(f"supervisor-sim: Execution API unreachable: {exc}", err=True)
        sys.exit(EXIT_INTERNAL)
    result = {
        "dag_id": dag_id,
        "task_id": task_id,
        "ti_id": outcome.ti_id,
        "final_state": outcome.final_state,
        "exit_code": outcome.exit_code,
        "started": outcome.started,
        "duration_s": outcome.duration_s,
        "violations": [v.as_dict() for v in outcome.violations],
        "counts": outcome.counts,
        "error": outcome.error,
        "interrupted": outcome.interrupted,
        "transcript": str(transcript) if transcript else None,
    }
    if opts["as_json"]:
        click.echo(json.dumps(result))
    if (verbosity >= 0 and not opts["as_json"]) or sys.stderr.isatty():
        print_summary(outcome, title, transcript=str(transcript) if transcript else None)
    sys.exit(exit_status(outcome))


def exit_status(outcome: TaskOutcome) -> int:
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    if not outcome.started:
        return EXIT_NOT_STARTED
    return EXIT_SUCCESS if outcome.final_state == "success" else EXIT_TASK_FAILED


async def _run_task(
    dag_id: str,
    task_id: str,
    runtime: list[str],
    project: ProjectConfig,
    config: SupervisorConfig,
    verbosity: int,
    opts: dict[str, Any],
) -> tuple[TaskOutcome, str, Path | None]:
    journal = Journal()
    if opts["api_url"]:
        if not opts["ti_id"] or not opts["run_id"]:
            raise ConfigError(
                "--api-url needs --ti-id and --run-id (the task instance must "
                "already be queued on that Airflow)"
            )
        ti = {
            "id": opts["ti_id"],
            "task_id": task_id,
            "dag_id": dag_id,
            "run_id": opts["run_id"],
            "try_number": opts["try_number"] or 1,
            "dag_version_id": opts["dag_version_id"] or "00000000-0000-0000-0000-000000000000",
            "map_index": opts["map_index"],
            "queue": opts["queue"],
        }
        try:
            http = real_api_client(
                opts["api_url"],
                ca_file=opts["ca_file"],
                client_cert=opts["client_cert"],
                client_key=opts["client_key"],
            )
        except ValueError as exc:
            raise ConfigError(f"--api-url: {exc}") from None
        token = opts["token"] or ""
        if not token and opts["jwt_secret"]:
            token = mint_token(opts["jwt_secret"], opts["ti_id"], scope="workload")
        api_label = opts["api_url"]
    else:
        fixtures_path = opts["fixtures"] or project.fixtures
        fixtures = load_fixtures(fixtures_path) if fixtures_path else Fixtures()
        state_path = opts["state_path"] or project.state or DEFAULT_STATE
        if state_path != ":memory:":
            Path(state_path).parent.mkdir(parents=True, exist_ok=True)
        store = StubStore(state_path)
        store.seed(fixtures)
        record = store.prepare_task_instance(
            dag_id,
            task_id,
            run_id=opts["run_id"],
            map_index=opts["map_index"],
            max_tries=opts["max_tries"],
            queue=opts["queue"],
            try_number=opts["try_number"],
        )
        ti = ti_wire(record)
        tokens = TokenIssuer()
        token = tokens.issue(record.id, scope="workload")
        http = httpx.AsyncClient(
            base_url="http://stub.invalid/execution/", transport=StubTransport(store, tokens=tokens)
        )
        api_label = "stub"
    context = {"dag_id": dag_id, "task_id": task_id, "try_number": ti["try_number"]}
    if ti["map_index"] != -1:
        context["map_index"] = ti["map_index"]
    journal.sinks.append(
        ConsoleSink(verbosity=verbosity, bind=opts["log_format"] == "json", **context)
    )
    title = f"{dag_id}.{task_id} try {ti['try_number']} (run {ti['run_id']})"
    spec = TaskSpec(ti=ti, runtime=runtime, cwd=project.runtime_cwd, dag_rel_path=f"{dag_id}.py")
    transcript = None
    if not opts["no_transcript"]:
        transcript = opts["transcript"] or default_transcript(project.runs_dir or DEFAULT_RUNS, ti)
        transcript = transcript.resolve()
    retry = RetryPolicy()
    if opts["api_retries"] is not None:
        retry = replace(retry, attempts=max(1, opts["api_retries"]))
    if opts["api_timeout"] is not None:
        retry = replace(retry, timeout=opts["api_timeout"])
    outcome = await supervise(
        spec,
        http,
        token=token,
        config=config,
        journal=journal,
        transcript=transcript,
        redact=not opts["no_redact"],
        api_label=api_label,
        retry=retry,
        api_version=opts["api_version"],
    )
    return outcome, title, transcript


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
    from ._dagrun_cli import run_dag_command

    project = _project(ctx)
    fmt = opts["log_format"]
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    configure_logging(fmt)
    opts["log_format"] = fmt
    runtime = runtime_argv(opts["runtime_cmd"]) if opts["runtime_cmd"] else project.runtime
    if not runtime:
        raise UsageError("no runtime command: pass --runtime CMD or set [runtime] command")
    config = _supervisor_config(project, {"task_timeout": opts["timeout"]})
    try:
        status = run_dag_command(dag_id, runtime, project, config, opts)
    except (FixtureError, ConfigError) as exc:
        raise UsageError(str(exc)) from None
    sys.exit(status)


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
    from ._dags import dag_structure, validate_serialized_dag
    from .supervision import ParseSession, ParseSpec

    project = _project(ctx)
    fmt = opts["log_format"]
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    configure_logging(fmt)
    runtime = runtime_argv(opts["runtime_cmd"]) if opts["runtime_cmd"] else project.runtime
    if not runtime:
        raise UsageError("no runtime command: pass --runtime CMD or set [runtime] command")
    if file is None:
        existing = [
            a
            for a in runtime
            if Path(a).is_file() and not a.endswith("python") and "/python" not in a
        ]
        file = str(Path(existing[-1] if existing else "dags.py").resolve())
    bundle_path = str(Path(opts["bundle_path"] or Path.cwd()).resolve())
    spec = ParseSpec(
        file=file,
        runtime=runtime,
        bundle_path=bundle_path,
        bundle_name=opts["bundle_name"],
        cwd=project.runtime_cwd,
    )
    config = _supervisor_config(project, {})
    verbosity = 1 - opts["quiet"]

    async def go() -> tuple[Any, Any, Path | None]:
        journal = Journal()
        journal.sinks.append(ConsoleSink(verbosity=verbosity, bind=fmt == "json", parse=file))
        store = open_store(
            opts["state_path"] or project.state, opts["fixtures"] or project.fixtures
        )
        http = httpx.AsyncClient(
            base_url="http://stub.invalid/execution/", transport=StubTransport(store)
        )
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
        holder: list[Any] = []

        def make(api: ExecutionAPIClient) -> Any:
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
    all_valid = result is not None
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
        "error": outcome.error,
        "transcript": str(transcript) if transcript else None,
    }
    if opts["as_json"]:
        click.echo(json.dumps(summary))
    else:
        _print_parse(summary)
    sys.exit(0 if summary["valid"] else 1)


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


@main.command("show")
@click.argument("transcript", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--only", type=click.Choice(["frames", "http", "logs"]), help="Only these records.")
@click.option(
    "--type",
    "types",
    multiple=True,
    metavar="TYPE",
    help="Only frames of this message type (repeatable).",
)
@click.option("--grep", metavar="REGEX", help="Only lines matching this regular expression.")
@click.option("--color/--no-color", default=None, help="Colour (default: on a terminal).")
@click.option(
    "--html",
    "html_out",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="OUT",
    help="Write a self-contained HTML sequence diagram to OUT instead.",
)
def show(
    transcript: Path,
    only: str | None,
    types: tuple[str, ...],
    grep: str | None,
    color: bool | None,
    html_out: Path | None,
) -> None:
    """Show a transcript as a timeline: frames, the HTTP calls they caused, logs, violations."""
    try:
        t = read_transcript(transcript)
    except TranscriptError as exc:
        raise UsageError(str(exc)) from None
    if html_out is not None:
        html_out.write_text(render_html(t), encoding="utf-8")
        click.echo(f"wrote {html_out}")
        return
    try:
        re.compile(grep or "")
    except re.error as exc:
        raise UsageError(f"--grep: not a regular expression: {exc}") from None
    colour = sys.stdout.isatty() if color is None else color
    for line in render_timeline(t, only=only, types=types, grep=grep, colour=colour):
        click.echo(line)


@main.command("diff")
@click.argument("a", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("b", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
def diff(a: Path, b: Path, as_json: bool) -> None:
    """Compare two transcripts frame by frame; exit 0 when they are equivalent."""
    try:
        ta, tb = read_transcript(a), read_transcript(b)
    except TranscriptError as exc:
        raise UsageError(str(exc)) from None
    result = diff_transcripts(ta, tb)
    if as_json:
        click.echo(json.dumps({"equivalent": result.equivalent, "differences": result.differences}))
    elif result.equivalent:
        click.echo(f"equivalent: {len(ta.frames())} frames, same HTTP calls, same final state")
    else:
        click.echo(f"{len(result.differences)} difference(s) between A={a} and B={b}:")
        for d in result.differences:
            click.echo(f"  {d}")
    sys.exit(0 if result.equivalent else 1)


@main.command("replay")
@click.argument("transcript", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--runtime", "runtime_cmd", metavar="CMD", help="Runtime command (default: the recorded one)."
)
@click.option("--keep-going", is_flag=True, help="Do not stop at the first divergence.")
@click.option(
    "--pace",
    type=click.Choice(["fast", "recorded"]),
    default="fast",
    show_default=True,
    help="Answer at once, or as slowly as the recorded API did.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option(
    "--log-format",
    type=click.Choice(["auto", "console", "json"]),
    default="auto",
    show_default=True,
)
@click.option("-q", "--quiet", count=True)
@click.pass_context
def replay(
    ctx: click.Context,
    transcript: Path,
    runtime_cmd: str | None,
    keep_going: bool,
    pace: str,
    as_json: bool,
    log_format: str,
    quiet: int,
) -> None:
    """Re-run the recorded runtime against the transcript alone: no Airflow, no network.

    Exit 0 when the runtime sent exactly the recorded frames, 1 when it diverged.
    """
    try:
        t = read_transcript(transcript)
    except TranscriptError as exc:
        raise UsageError(str(exc)) from None
    task = t.header.get("task", {})
    if "ti" not in task:
        raise UsageError(f"{transcript}: the header has no task instance to replay")
    runtime = runtime_argv(runtime_cmd) if runtime_cmd else list(t.header.get("runtime", []))
    if runtime and runtime[-1].startswith("--logs="):
        runtime = runtime[:-2]
    fmt = log_format if log_format != "auto" else ("console" if sys.stderr.isatty() else "json")
    configure_logging(fmt)
    known = {f.name for f in fields(SupervisorConfig)}
    config = replace(
        SupervisorConfig(), **{k: v for k, v in t.header.get("config", {}).items() if k in known}
    )
    outcome, divergences = trio.run(_replay, t, runtime, config, keep_going, pace, 1 - quiet)
    result = {
        "transcript": str(transcript),
        "matched": not divergences,
        "divergences": [
            {"index": d.index, "kind": d.kind, "message": d.message, "differences": d.differences}
            for d in divergences
        ],
        "final_state": outcome.final_state,
        "recorded_final_state": (t.footer or {}).get("final_state"),
        "exit_code": outcome.exit_code,
    }
    if as_json:
        click.echo(json.dumps(result))
    else:
        if divergences:
            for d in divergences:
                click.echo(d.render(), err=True)
        click.echo(
            f"replay of {transcript}: "
            f"{'MATCH' if not divergences else f'DIVERGED ({len(divergences)})'}; "
            f"final state {outcome.final_state} "
            f"(recorded {result['recorded_final_state']})",
            err=True,
        )
    sys.exit(0 if not divergences else EXIT_DIVERGED)


async def _replay(
    t: Any,
    runtime: list[str],
    config: SupervisorConfig,
    keep_going: bool,
    pace: str,
    verbosity: int,
) -> tuple[TaskOutcome, list[Any]]:
    task = t.header["task"]
    journal = Journal()
    journal.sinks.append(
        ConsoleSink(
            verbosity=verbosity, dag_id=task.get("dag_id"), task_id=task.get("task_id"), replay=True
        )
    )
    spec = TaskSpec(
        ti=task["ti"],
        runtime=runtime,
        dag_rel_path=task.get("dag_rel_path", "."),
        bundle_info=task.get("bundle_info") or {"name": "dags-folder", "version": None},
    )
    session_ref: list[TaskSession] = []

    def stop(divergence: Any) -> None:
        journal.emit("note", level="error", message=divergence.render())
        if not keep_going and session_ref:
            session_ref[0].abort("replay diverged")

    matcher = FrameMatcher(t, keep_going=keep_going, on_divergence=stop)
    journal.sinks.append(matcher)
    transport = ReplayTransport(t, pace=pace)
    async with httpx.AsyncClient(base_url="http://replay.invalid/", transport=transport) as http:
        # The recorded paths already include the base path, so requests are sent absolute.
        http.base_url = httpx.URL("http://replay.invalid" + _base_path(t))
        api = ExecutionAPIClient(
            http, token="", retry=RetryPolicy(attempts=1), on_exchange=journal_exchanges(journal)
        )
        session = TaskSession(spec, api, config=config, journal=journal)
        session_ref.append(session)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(forward_signals_to, session)
            outcome = await session.run()
            nursery.cancel_scope.cancel()
    matcher.finish()
    return outcome, matcher.divergences


def _base_path(t: Any) -> str:
    for r in t.http():
        path = r["path"]
        if "/task-instances/" in path:
            return path.split("task-instances/")[0]
    return "/execution/"


from ._check import check  # noqa: E402 - registered after the group it joins

main.add_command(check)


if __name__ == "__main__":  # pragma: no cover
    main()

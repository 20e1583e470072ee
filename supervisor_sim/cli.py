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
import signal
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
from .api import (
    Exchange,
    ExecutionAPIClient,
    FixtureError,
    Fixtures,
    RetryPolicy,
    StubStore,
    StubTransport,
    TokenIssuer,
    load_fixtures,
)
from .supervision import Journal, SupervisorConfig, TaskOutcome, TaskSession, TaskSpec

EXIT_SUCCESS, EXIT_TASK_FAILED, EXIT_USAGE, EXIT_NOT_STARTED, EXIT_INTERNAL = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130
DEFAULT_STATE = Path(".supervisor-sim") / "state.sqlite"


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
    values = {k: v for k, v in project.supervisor.items() if k in known}
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
@click.option("--ti-id", help="Task instance id (required with --api-url).")
@click.option("--dag-version-id", help="dag_version_id sent in StartupDetails with --api-url.")
@click.option(
    "--transcript",
    type=click.Path(path_type=Path),
    hidden=True,
    help="Transcript path (recording arrives with the transcript feature).",
)
@click.pass_context
def run_task(ctx: click.Context, dag_id: str, task_id: str, **opts: Any) -> None:
    """Run one task try of DAG_ID.TASK_ID under the simulated supervisor."""
    project = _project(ctx)
    fmt = opts["log_format"]
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    configure_logging(fmt)
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
        outcome, title = trio.run(
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
        "transcript": None,
    }
    if opts["as_json"]:
        click.echo(json.dumps(result))
    if (verbosity >= 0 and not opts["as_json"]) or sys.stderr.isatty():
        print_summary(outcome, title)
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
) -> tuple[TaskOutcome, str]:
    journal = Journal()

    def on_exchange(exchange: Exchange) -> None:
        journal.emit(
            "http",
            method=exchange.method,
            path=exchange.path,
            query=exchange.query,
            status=exchange.status,
            error=exchange.error,
            attempt=exchange.attempt,
            duration_s=round(exchange.duration_s, 6),
            cause=exchange.cause,
            request_body=exchange.request_body,
            response_body=exchange.response_body,
        )

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
        http = httpx.AsyncClient(base_url=opts["api_url"].rstrip("/") + "/")
        token = opts["token"] or ""
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
        ti = {
            "id": record.id,
            "task_id": record.task_id,
            "dag_id": record.dag_id,
            "run_id": record.run_id,
            "try_number": record.try_number,
            "dag_version_id": record.dag_version_id,
            "map_index": record.map_index,
            "queue": record.queue,
        }
        tokens = TokenIssuer()
        token = tokens.issue(record.id, scope="workload")
        http = httpx.AsyncClient(
            base_url="http://stub.invalid/execution/", transport=StubTransport(store, tokens=tokens)
        )
    context = {"dag_id": dag_id, "task_id": task_id, "try_number": ti["try_number"]}
    if ti["map_index"] != -1:
        context["map_index"] = ti["map_index"]
    journal.sinks.append(ConsoleSink(verbosity=verbosity, **context))
    title = f"{dag_id}.{task_id} try {ti['try_number']} (run {ti['run_id']})"
    spec = TaskSpec(ti=ti, runtime=runtime, cwd=project.runtime_cwd, dag_rel_path=f"{dag_id}.py")
    async with http:
        api = ExecutionAPIClient(http, token=token, retry=RetryPolicy(), on_exchange=on_exchange)
        session = TaskSession(spec, api, config=config, journal=journal)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_forward_signals, session)
            outcome = await session.run()
            nursery.cancel_scope.cancel()
    return outcome, title


async def _forward_signals(session: TaskSession) -> None:
    if not _in_main_thread():
        return
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for sig in signals:
            session.forward_signal(sig)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":  # pragma: no cover
    main()

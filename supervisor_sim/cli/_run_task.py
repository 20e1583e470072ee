"""``run-task``: one task try under the simulated supervisor.

The runtime is started as soon as the options, the project config and the fixtures are known
to be good, and *before* trio, httpx and the layers are imported (~120 ms): the runtime's own
start-up (a Python runtime's interpreter takes ~30 ms) then overlaps with ours, and the session
adopts the runtime once it runs. Until then ``_runtime_started`` owns it: whatever ends the
command first (an error, Ctrl+C, SIGTERM), the runtime's process group is killed and reaped and
its sockets are closed.

So this module imports only what that needs; the layers are imported in ``run_task_command``.

Exit statuses:

====  =================================================================
0     the task's final state is ``success``
1     the task ran and ended in any other state (failed, up_for_retry, ...), or exited 0
      without a terminal message (``success`` never reported: Airflow's TI stays running)
2     usage or configuration error (bad flag, fixture or config file; a state file or
      transcript that cannot be used, found before the task starts)
3     the task could not start (runtime did not connect, /run refused)
4     supervisor-sim could not do its job (API unreachable, the transcript could not be
      written in full, internal error)
130   interrupted (SIGINT/SIGTERM/SIGHUP was forwarded to the runtime first)
====  =================================================================
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ..runner import DEFAULT_RUNS, DEFAULT_STATE, ConfigError, ProjectConfig, runtime_argv
from ._common import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_NOT_STARTED,
    EXIT_SUCCESS,
    EXIT_TASK_FAILED,
    ApiWatch,
    Command,
    UsageError,
    early_interrupt_exits_130,
    loading,
    log_format,
    project_config,
    state_path,
    supervisor_config,
    transcript_target,
    unreachable,
)
from ._faults import attach_fault_plan, fault_plan
from ._options import (
    fault_option,
    fixtures_option,
    json_option,
    log_format_option,
    quiet_option,
    real_api_options,
    run_id_option,
    runtime_option,
    startup_timeout_option,
    state_option,
    timeout_option,
    transcript_options,
)

if TYPE_CHECKING:
    import httpx

    from ..api import Fixtures
    from ..supervision import Launch, SupervisorConfig, TaskOutcome
    from ._console import Diagnosis

__all__ = ["exit_status", "run_task", "run_task_command"]


@click.command("run-task", cls=Command)
@click.argument("dag_id")
@click.argument("task_id")
@runtime_option("Runtime command; --comm/--logs are appended. Default: from the config file.")
@fixtures_option("TOML fixtures (variables, connections, XComs, DAG runs) seeded into the stub.")
@state_option(f"SQLite file of the stub's state (default {DEFAULT_STATE}; ':memory:').")
@run_id_option()
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
@timeout_option("Kill the runtime after this many seconds.")
@startup_timeout_option()
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
@json_option("outcome")
@log_format_option("How runtime logs and events are shown on stderr.")
@quiet_option("Less output (-q: no frames or logs).")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="More output (-v: HTTP calls, connections, byte counts and EOFs too).",
)
@real_api_options()
@fault_option()
@transcript_options(redact=True)
@click.option(
    "--allow-unknown",
    is_flag=True,
    help="Run a DAG or task the runtime's bundle does not have, as Airflow would (it ends "
    "removed); without it that is a usage error listing what the bundle has.",
)
@click.pass_context
def run_task(ctx: click.Context, dag_id: str, task_id: str, **opts: Any) -> None:
    """Run one task try of DAG_ID.TASK_ID under the simulated supervisor.

    Logs and events go to stderr, the summary last. On a terminal they are a console: the task
    named once, then one line per event in arrival order, levels coloured (NO_COLOR and
    FORCE_COLOR are respected), a runtime's exception as a traceback, and a status line while
    the task runs. With stderr not a terminal (a pipe, a file, CI) they are JSON lines, one
    object per event: choose with --log-format.
    """
    # Ctrl+C while nobody forwards it (start-up, before the session listens, after it): the
    # early-started runtime, if any, was stopped on the way out (_runtime_started).
    with early_interrupt_exits_130("interrupted (SIGINT); no runtime was left running"):
        run_task_command(ctx, dag_id, task_id, opts)


def run_task_command(
    ctx: click.Context, dag_id: str, task_id: str, opts: dict[str, Any]
) -> NoReturn:
    with contextlib.ExitStack() as owned:
        # Up to trio.run all is imports and checks, with the collector off (see ``loading``).
        with loading():
            runtime, project, config, fixtures = _checked(ctx, opts)
            # Everything a usage error can come from before the layers are loaded has been
            # checked (the --api-url itself and the state file are the layers' to check).
            launch = owned.enter_context(_runtime_started(runtime, project.runtime_cwd, config))
            import httpx
            import trio

            from .. import api, runner  # noqa: F401  the layers, loaded while the runtime starts

        if "_fixtures" not in vars(api):  # loaded by _load_fixtures, before its package
            api._fixtures = _fixtures_module()
        verbosity = 1 + opts["verbose"] - opts["quiet"]
        if opts["api_url"]:
            opts["api_watch"] = ApiWatch(opts["api_url"], opts["api_retries"] or 5)
        # Why the transcript stopped, should a write fail mid-run (a full disk).
        opts["transcript_errors"] = []
        try:
            outcome, title, transcript, diagnosis = trio.run(
                _run_task,
                dag_id,
                task_id,
                runtime,
                project,
                config,
                verbosity,
                opts,
                fixtures,
                launch,
            )
        except (api.FixtureError, ConfigError) as exc:
            raise UsageError(str(exc)) from None
        except httpx.HTTPError as exc:
            unreachable(opts["api_url"] or "the stub", str(exc))
    if outcome.final_state == "removed" and not opts["allow_unknown"]:
        _refuse_unknown(dag_id, task_id, runtime, project.runtime_cwd, config)
    result = {
        "dag_id": dag_id,
        "task_id": task_id,
        "ti_id": outcome.ti_id,
        "final_state": outcome.final_state,
        "exit_code": outcome.exit_code,
        "started": outcome.started,
        "duration_s": outcome.duration_s,
        "violations": [v.as_dict() for v in outcome.violations],
        "violations_suppressed": outcome.violations_suppressed,
        "counts": outcome.counts,
        "error": outcome.error,
        "interrupted": outcome.interrupted,
        "transcript": str(transcript) if transcript else None,
    }
    transcript_error = next(iter(opts["transcript_errors"]), None)
    if transcript_error is not None:
        result["transcript_error"] = transcript_error
    if opts["as_json"]:
        click.echo(json.dumps(result))
    if (verbosity >= 0 and not opts["as_json"]) or sys.stderr.isatty():
        from ._console import print_summary

        print_summary(
            outcome,
            title,
            transcript=str(transcript) if transcript else None,
            diagnosis=diagnosis,
        )
    watch = opts.get("api_watch")
    if watch is not None and watch.failing and not outcome.interrupted:
        unreachable(opts["api_url"], watch.failing)
    if transcript_error is not None and outcome.started and not outcome.interrupted:
        # The task's state is reported, but its record is not whole: not a success.
        click.echo(
            f"Error: {transcript_error}, so it is incomplete; free some space, or give another "
            "--transcript",
            err=True,
        )
        sys.exit(EXIT_INTERNAL)
    sys.exit(exit_status(outcome))


def _refuse_unknown(
    dag_id: str, task_id: str, runtime: list[str], cwd: str | None, config: SupervisorConfig
) -> None:
    """A task that ended ``removed`` because the bundle lacks it is a usage error listing what
    the bundle has (the runtime's own parse says); any other ``removed`` stands."""
    from ._parse import bundle_dags

    dags = bundle_dags(runtime, cwd, config)
    if dags is None or task_id in dags.get(dag_id, ()):
        return
    fix = "pass --allow-unknown to run it anyway (it ends removed, as in Airflow)"
    if dag_id not in dags:
        raise UsageError(
            f"DAG {dag_id!r} is not in the runtime's bundle, which has "
            f"{', '.join(sorted(dags)) or 'no DAGs'}; {fix}"
        )
    raise UsageError(
        f"task {task_id!r} is not in DAG {dag_id!r}, which has "
        f"{', '.join(dags[dag_id]) or 'no tasks'}; {fix}"
    )


def exit_status(outcome: TaskOutcome) -> int:
    """The command's exit status for ``outcome`` (the table in this module's docstring). A try
    that exited 0 without a terminal message is 1: its "success" was never reported, and
    Airflow's TI stays running until the scheduler fails it (``never_reported``)."""
    from ._console import never_reported

    if outcome.interrupted:
        return EXIT_INTERRUPTED
    if not outcome.started:
        return EXIT_NOT_STARTED
    if outcome.final_state != "success" or never_reported(outcome):
        return EXIT_TASK_FAILED
    return EXIT_SUCCESS


def _checked(
    ctx: click.Context, opts: dict[str, Any]
) -> tuple[list[str], ProjectConfig, SupervisorConfig, Fixtures | None]:
    """The options, the project config and the fixtures, checked: a usage error for any of
    them is raised before a runtime is started. Returns (runtime, project, config, fixtures);
    no fixtures with --api-url."""
    project = project_config(ctx)
    opts["log_format"] = log_format(opts["log_format"])
    runtime = (
        runtime_argv(opts["runtime_cmd"]) if opts["runtime_cmd"] is not None else project.runtime
    )
    if not runtime:
        raise UsageError(
            "no runtime command: pass --runtime CMD, set [runtime] command in "
            "supervisor-sim.toml, or create one with `supervisor-sim init`"
        )
    transcript_target(opts, project.runs_dir)
    if not opts["api_url"]:
        state_path(opts["state_path"] or project.state)
    opts["fault_plan"] = fault_plan(
        opts["faults"], opts["fixtures"] or project.fixtures, real_api=bool(opts["api_url"])
    )
    config = supervisor_config(
        project,
        {
            "task_timeout": opts["timeout"],
            "startup_timeout": opts["startup_timeout"],
            "heartbeat_interval": opts["heartbeat_interval"],
            "task_success_overtime": opts["task_success_overtime"],
            "airflow_strict": opts["airflow_strict"],
        },
    )
    if opts["api_url"]:
        if not opts["ti_id"] or not opts["run_id"]:
            raise UsageError(
                "--api-url needs --ti-id and --run-id (the task instance must "
                "already be queued on that Airflow)"
            )
        return runtime, project, config, None
    return runtime, project, config, _load_fixtures(opts["fixtures"] or project.fixtures)


#: What the runtime of a run-task gets on top of our environment (``TaskSpec.env``): nothing.
RUNTIME_ENV: dict[str, str] = {}


@contextlib.contextmanager
def _runtime_started(
    runtime: list[str], cwd: str | None, config: SupervisorConfig
) -> Iterator[Launch]:
    """Start the runtime (``start_runtime``, as a session would for the same spec and config)
    and own it until its session adopts it: on the way out, whatever is not adopted is
    stopped (``Launch.close``: process group killed and reaped, sockets and pipes closed).

    Until the session forwards signals itself, SIGTERM or SIGHUP kills the runtime's process
    group and then this process, by the same signal as before: the runtime leads its own
    process group, so nothing else would stop it. (SIGINT raises KeyboardInterrupt, which
    ``close`` handles.)
    """
    from ..supervision import start_runtime

    launch = start_runtime(runtime, RUNTIME_ENV, cwd, config)
    restore: Callable[[], object] | None = None
    try:  # from here: a Ctrl+C while the handlers are installed is the runtime's end too
        restore = _kill_on_sigterm(launch)
        yield launch
    finally:
        launch.close()
        if restore is not None:
            restore()


def _kill_on_sigterm(launch: Launch) -> Callable[[], object]:
    """Install the SIGTERM and SIGHUP handler of ``_runtime_started``; returns what restores
    the previous ones (a no-op off the main thread, where signals are not ours to handle)."""
    import signal  # here: --help lists run-task without loading it

    def on_signal(signum: int, frame: Any) -> None:
        launch.kill_group()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    previous = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, on_signal)
    except ValueError:
        return lambda: None

    def restore() -> None:
        for sig, handler in previous.items():
            # None: a handler not installed from Python, which Python cannot put back.
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)

    return restore


def _load_fixtures(path: Path | None) -> Fixtures:
    """The fixtures file read and validated, before the runtime starts (a bad file is a usage
    error, and no runtime is started for it)."""
    fixtures = _fixtures_module()
    if not path:
        return fixtures.Fixtures()
    try:
        return fixtures.load_fixtures(path)
    except fixtures.FixtureError as exc:
        raise UsageError(str(exc)) from None


def _fixtures_module() -> ModuleType:
    """``supervisor_sim.api._fixtures``: standard library only, and ``supervisor_sim.api`` loads
    nothing else until asked (PEP 562), so this does not pull in httpx or trio."""
    return importlib.import_module("supervisor_sim.api._fixtures")


async def _run_task(
    dag_id: str,
    task_id: str,
    runtime: list[str],
    project: ProjectConfig,
    config: SupervisorConfig,
    verbosity: int,
    opts: dict[str, Any],
    fixtures: Fixtures | None,
    launch: Launch,
) -> tuple[TaskOutcome, str, Path | None, Diagnosis]:
    from ..api import (
        ExecutionAPIClient,
        RetryPolicy,
        StubTransport,
        TaskInstanceRecord,
        TokenIssuer,
        mint_token,
        real_api_client,
        ti_wire,
    )
    from ..runner import default_transcript, open_store, supervise
    from ..supervision import Journal, TaskSession, TaskSpec
    from ._console import ConsoleSink, configure_logging, use_color

    journal = Journal()
    if opts.get("api_watch") is not None:
        journal.sinks.append(opts["api_watch"])
    http: httpx.AsyncClient | StubTransport
    if opts["api_url"]:
        # Queued on that Airflow already: the record is what the options say of it.
        ti = ti_wire(
            TaskInstanceRecord(
                id=opts["ti_id"],
                dag_id=dag_id,
                task_id=task_id,
                run_id=opts["run_id"],
                map_index=opts["map_index"],
                try_number=opts["try_number"] or 1,
                max_tries=opts["max_tries"],
                dag_version_id=opts["dag_version_id"] or "00000000-0000-0000-0000-000000000000",
                queue=opts["queue"],
                state="queued",
            )
        )
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
        assert fixtures is not None
        store = open_store(opts["state_path"] or project.state, fixtures)
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
        http = StubTransport(store, tokens=tokens)
        api_label = "stub"
    attach_fault_plan(opts["fault_plan"], http, journal, None if opts["api_url"] else store)
    context = {"dag_id": dag_id, "task_id": task_id, "try_number": ti["try_number"]}
    if ti["map_index"] != -1:
        context["map_index"] = ti["map_index"]
    name = f"{dag_id}.{task_id}" + (f"[{ti['map_index']}]" if ti["map_index"] != -1 else "")
    name += f" try {ti['try_number']}"
    status = None
    if opts["log_format"] == "console" and sys.stderr.isatty() and os.environ.get("TERM") != "dumb":
        from ._progress import StatusLine

        status = StatusLine(sys.stderr, name, colors=use_color(sys.stderr))
        configure_logging("console", status.stream)  # lines take the status line off first
        journal.sinks.append(status)
    console = ConsoleSink(
        verbosity=verbosity,
        bind=opts["log_format"] == "json",
        header=f"{name} · run {ti['run_id']} · ti {ti['id']}"
        + ("" if api_label == "stub" else f" · {api_label}"),
        identity={**ti, "ti_id": ti["id"]},
        **context,
    )
    journal.sinks.append(console)
    title = f"{name} (run {ti['run_id']})"
    # The spec the runtime was started for (_runtime_started): same runtime, env and cwd.
    spec = TaskSpec(
        ti=ti,
        runtime=runtime,
        env=RUNTIME_ENV,
        cwd=project.runtime_cwd,
        dag_rel_path=f"{dag_id}.py",
    )
    transcript = None
    if not opts["no_transcript"]:
        transcript = opts["transcript"] or default_transcript(project.runs_dir or DEFAULT_RUNS, ti)
        transcript = transcript.resolve()
    retry = RetryPolicy()
    if opts["api_retries"] is not None:
        retry = replace(retry, attempts=max(1, opts["api_retries"]))
    if opts["api_timeout"] is not None:
        retry = replace(retry, timeout=opts["api_timeout"])
    if status is not None:
        import trio

        trio.lowlevel.spawn_system_task(status.run)

    def session(api: ExecutionAPIClient) -> TaskSession:
        made = TaskSession(spec, api, config=config, journal=journal, launch=launch)
        made.explain_interrupts = True  # Ctrl+C: one line says what happens, and on a second
        return made

    try:
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
            launch=launch,
            session_factory=session,
            on_transcript_error=opts["transcript_errors"].append,
        )
    finally:
        if status is not None:
            status.stop()
            configure_logging("console", sys.stderr)
    return outcome, title, transcript, console.diagnosis

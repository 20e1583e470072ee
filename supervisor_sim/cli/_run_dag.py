"""``run-dag``: parse the DAG through the runtime, run it, show progress, report.

The layers, rich and trio are imported when the command runs (``run_dag``), so that
``supervisor-sim --help`` lists it without loading them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ..runner import DEFAULT_RUNS, ConfigError, ProjectConfig, runtime_argv
from ._common import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    ApiWatch,
    Command,
    UsageError,
    early_interrupt_exits_130,
    leaf_exception,
    loading,
    log_format,
    not_started,
    project_config,
    state_path,
    supervisor_config,
    unreachable,
    writable_dir,
)
from ._faults import attach_fault_plan, fault_plan
from ._options import (
    api_url_option,
    fault_option,
    fixtures_option,
    json_option,
    jwt_secret_option,
    log_format_option,
    no_transcript_option,
    quiet_option,
    run_id_option,
    runtime_option,
    state_option,
    timeout_option,
)

if TYPE_CHECKING:
    import httpx
    from rich.console import RenderableType

    from ..api import StubStore, TaskInstanceRecord
    from ..runner import AirflowBackend, DagRunner, RunBackend, TaskResult
    from ..supervision import Session, SupervisorConfig, TaskOutcome, TaskSession

__all__ = ["run_dag"]


@click.command("run-dag", cls=Command)
@click.argument("dag_id")
@runtime_option()
@click.option(
    "--parallelism",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Task instances running at once.",
)
@run_id_option()
@click.option(
    "--task",
    "tasks",
    multiple=True,
    metavar="TASK_ID",
    help="Run only these tasks (repeatable); dependencies among them are kept.",
)
@fixtures_option()
@state_option()
@click.option(
    "--retry-delay",
    type=float,
    help="Seconds between tries (default: each task's own retry_delay).",
)
@timeout_option("Kill any task instance after this many seconds.")
@click.option(
    "--runs-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help=f"Where the per-task transcripts go (default {DEFAULT_RUNS}/).",
)
@no_transcript_option("Do not record transcripts.")
@api_url_option("Run the DAG on a real Execution API instead of the stub.")
@jwt_secret_option("With --api-url: Airflow's [api_auth] jwt_secret, to mint task tokens.")
@click.option(
    "--airflow-python",
    default="python3",
    show_default=True,
    envvar="SUPERVISOR_SIM_AIRFLOW_PYTHON",
    help="With --api-url: the Python of that Airflow, which runs tools/airflow_queue_ti.py to "
    "queue each task instance when it is ready.",
)
@fault_option()
@json_option()
@log_format_option()
@quiet_option("Less output (-q: no frames or task logs).")
@click.pass_context
def run_dag(ctx: click.Context, dag_id: str, **opts: Any) -> NoReturn:
    """Run every task of DAG_ID in dependency order, several at once, in one process.

    The DAG's tasks and dependencies come from the runtime itself (a parse, as `parse` does).
    Exit 0 when every task succeeded or was skipped, 1 otherwise, 3 when the runtime could
    not start, 4 when the --api-url does not answer or a transcript could not be written in
    full (a full disk: the run goes on), 130 when interrupted (SIGINT, SIGTERM, SIGHUP).

    Ctrl+C starts no new task and forwards SIGINT to the running ones (SIGTERM, then SIGKILL,
    if they are still running after the grace); a second Ctrl+C terminates them at once, a
    third kills them. The report then says which tasks were stopped and which never started.

    On a terminal a live view shows the counts by state and the running and failed tasks first,
    cut to the screen's height; at the end every task is listed once, then each failed task's
    reason and transcript. With stderr not a terminal each task's end is a line, and its logs
    and events are JSON lines (--log-format).
    """
    # Ctrl+C before run-dag listens for it (its start-up, trio's first instant): nothing ran
    # yet. (From the parse on, _Interrupts handles it.)
    with early_interrupt_exits_130(
        "interrupted (SIGINT) before the run started; no task was started"
    ):
        _run_dag_command(ctx, dag_id, opts)


def _run_dag_command(ctx: click.Context, dag_id: str, opts: dict[str, Any]) -> NoReturn:
    project = project_config(ctx)
    opts["log_format"] = log_format(opts["log_format"])
    runtime = (
        runtime_argv(opts["runtime_cmd"]) if opts["runtime_cmd"] is not None else project.runtime
    )
    if not runtime:
        raise UsageError("no runtime command: pass --runtime CMD or set [runtime] command")
    config = supervisor_config(project, {"task_timeout": opts["timeout"]})
    state_path(opts["state_path"] or project.state)
    # Checked before anything starts; each task session then gets a fresh plan of its own
    # (call counters, clock and events are per task instance, as in run-task).
    fault_plan(opts["faults"], opts["fixtures"] or project.fixtures, real_api=bool(opts["api_url"]))
    if not opts["no_transcript"]:
        writable_dir(
            opts["runs_dir"] or project.runs_dir or DEFAULT_RUNS,
            "--runs-dir",
            "give another --runs-dir, or pass --no-transcript",
        )
    with loading():
        # All the body uses, with the collector off: trio, rich's live table and the layers.
        import rich.live
        import rich.table  # noqa: F401
        import trio

        from .. import protocol, supervision  # noqa: F401
        from ..api import FixtureError
        from ..runner import supervise  # noqa: F401

    try:
        status = trio.run(_run_dag, dag_id, runtime, project, config, opts)
    except (FixtureError, ConfigError) as exc:
        raise UsageError(str(exc)) from None
    except Exception as exc:
        import httpx

        leaf = leaf_exception(exc)
        if opts.get("api_url") and isinstance(leaf, httpx.TransportError):
            unreachable(opts["api_url"], f"{type(leaf).__name__}: {leaf}")
        raise
    sys.exit(status)


class _Interrupts:
    """SIGINT, SIGTERM and SIGHUP during run-dag, from the parse on: each is forwarded to every
    session (``Session.forward_signal``: a first one is passed on, a second terminates, a third
    kills), the runner starts nothing new, and one line says what happens and what pressing
    Ctrl+C again does. A session made after a signal (``adopt``) gets the signals too, so it
    never starts its runtime."""

    def __init__(self, config: SupervisorConfig) -> None:
        self.config = config
        self.signals: list[int] = []
        self.sessions: set[Session] = set()
        self.runner: DagRunner | None = None
        #: Where the line goes (the live view's console, once there is one).
        self.say: Callable[[str], None] = lambda line: click.echo(line, err=True)

    async def watch(self) -> None:
        import trio

        from ..runner import FORWARDED_SIGNALS

        with trio.open_signal_receiver(*FORWARDED_SIGNALS) as signals:
            async for sig in signals:
                self.received(sig)

    def received(self, sig: int) -> None:
        self.signals.append(sig)
        if self.runner is not None:
            self.runner.stop()
        sessions = list(self.sessions)
        alive = [s for s in sessions if s.child is None or s.child.alive]
        running = sum(1 for s in alive if s.started)  # given the task
        starting = len(alive) - running
        for session in sessions:
            session.forward_signal(sig)
        self.say(self.hint(len(self.signals), sig, running, starting))

    def hint(self, count: int, sig: int, running: int, starting: int) -> str:
        from ..supervision import Session

        name = _signal_name(sig)
        if self.runner is None:  # still parsing the DAG
            return Session.interrupt_hint(count, sig, self.config, "the runtime parsing the DAG")
        also = "no new task will start" if count == 1 else ""
        if starting:
            also += "; " if also else ""
            also += f"{_tasks(starting)} being started will not be given the task"
        if not running:
            return f"interrupt ({name}): " + "; ".join(filter(None, [also, "no task is running"]))
        target = "the running task" if running == 1 else f"the {running} running tasks"
        return Session.interrupt_hint(count, sig, self.config, target, also=also or None)

    def adopt(self, session: Session) -> None:
        self.sessions.add(session)
        for sig in self.signals:
            session.forward_signal(sig)

    def summary(self, results: Mapping[str, TaskResult]) -> dict[str, Any] | None:
        """What the interrupt did, for the report and --json (None: not interrupted)."""
        if not self.signals:
            return None
        return {
            "signal": _signal_name(self.signals[0]),
            "signals": len(self.signals),
            "stopped": [r.task_id for r in results.values() if r.stopped],
            "not_run": [
                r.task_id for r in results.values() if r.state in ("not_run", "none", "queued")
            ],
            "retry_not_run": [r.task_id for r in results.values() if r.state == "up_for_retry"],
        }


def _tasks(n: int) -> str:
    return f"{n} task" if n == 1 else f"{n} tasks"


def _signal_name(sig: int) -> str:
    import signal

    return signal.Signals(sig).name


async def _parse(
    runtime: list[str],
    project: ProjectConfig,
    config: SupervisorConfig,
    store: StubStore,
    interrupts: _Interrupts,
) -> tuple[dict[str, Any] | None, TaskOutcome]:
    """The runtime's parse of its own bundle, answered from ``store``."""
    from ..api import stub_client
    from ..supervision import Journal, ParseSession, ParseSpec

    existing = [a for a in runtime if Path(a).is_file() and "/python" not in a]
    spec = ParseSpec(
        file=str(Path(existing[-1] if existing else "dags.py").resolve()),
        runtime=runtime,
        cwd=project.runtime_cwd,
    )
    journal = Journal()
    async with stub_client(store) as api:
        session = ParseSession(spec, api, config=config, journal=journal)
        interrupts.adopt(session)
        try:
            outcome = await session.run()
        finally:
            interrupts.sessions.discard(session)
    return session.result, outcome


async def _run_dag(
    dag_id: str,
    runtime: list[str],
    project: ProjectConfig,
    config: SupervisorConfig,
    opts: dict[str, Any],
) -> int:
    import trio

    from ..runner import open_store

    # From the start, to the end of the run (a system task: trio ends it after the report).
    interrupts = _Interrupts(config)
    trio.lowlevel.spawn_system_task(interrupts.watch)
    store = open_store(opts["state_path"] or project.state, opts["fixtures"] or project.fixtures)
    try:
        return await _run_dag_with(store, dag_id, runtime, project, config, opts, interrupts)
    finally:
        store.close()


async def _run_dag_with(
    store: StubStore,
    dag_id: str,
    runtime: list[str],
    project: ProjectConfig,
    config: SupervisorConfig,
    opts: dict[str, Any],
    interrupts: _Interrupts,
) -> int:
    import subprocess

    import trio
    from rich.console import Console
    from rich.live import Live

    from ..api import (
        ExecutionAPIClient,
        RetryPolicy,
        StubTransport,
        TokenIssuer,
        mint_token,
        real_api_client,
        ti_wire,
    )
    from ..protocol import dag_structure, validate_serialized_dag
    from ..runner import (
        QUEUE_TI_TOOL,
        AirflowBackend,
        DagRunner,
        StubBackend,
        default_transcript,
        supervise,
    )
    from ..supervision import Journal, TaskSession, TaskSpec
    from ._console import ConsoleSink, configure_logging
    from ._progress import DagTracker, dag_view, print_report

    err = Console(stderr=True)
    result, parse_outcome = await _parse(runtime, project, config, store, interrupts)
    if interrupts.signals:
        name = _signal_name(interrupts.signals[0])
        if opts["as_json"]:
            click.echo(
                json.dumps(
                    {
                        "dag_id": dag_id,
                        "state": "interrupted",
                        "interrupted": True,
                        "interrupt": {"signal": name, "signals": len(interrupts.signals)},
                        "tasks": {},
                    }
                )
            )
        click.echo(f"interrupted ({name}) while parsing the DAG; no task was started", err=True)
        return EXIT_INTERRUPTED
    if result is None and not parse_outcome.started:
        not_started(parse_outcome.error)
    if result is None:
        raise ConfigError(
            f"the runtime did not return a DAG parsing result "
            f"({parse_outcome.error or parse_outcome.final_state})"
        )
    by_id = {}
    for item in result.get("serialized_dags") or []:
        data = item.get("data") if isinstance(item, dict) else None
        if isinstance(data, dict) and isinstance(data.get("dag"), dict):
            by_id[data["dag"].get("dag_id")] = data
    if dag_id not in by_id:
        raise ConfigError(
            f"DAG {dag_id!r} not found; the runtime's bundle has: "
            f"{', '.join(sorted(map(str, by_id))) or 'no DAGs'}"
        )
    problems = validate_serialized_dag(by_id[dag_id])
    structure = dag_structure(by_id[dag_id])
    try:
        if opts.get("tasks"):
            structure = structure.subset(list(opts["tasks"]))
        structure.order()
    except ValueError as exc:
        raise ConfigError(f"DAG {dag_id!r}: {exc}") from None
    run_id = opts["run_id"] or f"manual__{datetime.now(UTC).isoformat()}"
    runs_dir = opts["runs_dir"] or project.runs_dir or DEFAULT_RUNS
    verbosity = 1 - opts["quiet"]
    fmt = opts["log_format"]
    tty = sys.stderr.isatty() and fmt == "console"
    tokens = TokenIssuer()
    real: AirflowBackend | None = None
    backend: RunBackend = StubBackend(store, dag_id, run_id)
    if opts.get("api_url"):
        if not opts.get("jwt_secret"):
            raise ConfigError(
                "run-dag --api-url needs --jwt-secret (Airflow's [api_auth] "
                "jwt_secret) to mint each task instance's token"
            )
        import shutil

        if shutil.which(opts["airflow_python"]) is None:
            raise UsageError(
                f"--airflow-python: {opts['airflow_python']!r} is not a program; give the "
                "Python of that Airflow's installation (or SUPERVISOR_SIM_AIRFLOW_PYTHON)"
            )
        # One call the API answers without a token, before anything is queued: a wrong URL is
        # exit 4 now (said while retrying), not a failure of every task.
        watch = ApiWatch(opts["api_url"], RetryPolicy().attempts)
        async with ExecutionAPIClient(
            real_api_client(opts["api_url"]), on_exchange=watch.exchange
        ) as probe:
            await probe.request("GET", "health")
        try:
            queue_tool = await trio.lowlevel.open_process(
                [opts["airflow_python"], str(QUEUE_TI_TOOL), "--batch", "-"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        except OSError as exc:
            raise UsageError(
                f"--airflow-python: cannot run {opts['airflow_python']!r}: "
                f"{exc.strerror or exc}; give the Python of that Airflow's installation"
            ) from None
        real_http = real_api_client(opts["api_url"])
        real = AirflowBackend(
            queue_tool,
            ExecutionAPIClient(
                real_http,
                token=mint_token(
                    opts["jwt_secret"], "00000000-0000-0000-0000-000000000000", scope="execution"
                ),
            ),
            dag_id,
            run_id,
        )
        backend = real

    tracker = DagTracker()
    #: Why a task's transcript stopped mid-run (a full disk), one line per task.
    transcript_errors: list[str] = []

    async def run_one(record: TaskInstanceRecord) -> tuple[TaskOutcome, str | None]:
        ti = ti_wire(record)
        journal = Journal()
        tag: dict[str, Any] = {"task_id": record.task_id, "try_number": record.try_number}
        if record.map_index >= 0:
            tag["map_index"] = record.map_index
        # Live view on a terminal: task output only at -v; every line is tagged with its task.
        sink = ConsoleSink(verbosity=verbosity - (1 if tty else 0), bind=True, **tag)
        journal.sinks.append(sink)
        transcript = None
        if not opts["no_transcript"]:
            transcript = default_transcript(Path(runs_dir), ti).resolve()
        http: httpx.AsyncClient | StubTransport
        if real is not None:
            http = real_api_client(opts["api_url"])
            token = mint_token(opts["jwt_secret"], record.id)
        else:
            http = StubTransport(store, tokens=tokens)
            token = tokens.issue(record.id)
        plan = fault_plan(
            opts.get("faults", ()), opts["fixtures"] or project.fixtures, real_api=real is not None
        )
        attach_fault_plan(plan, http, journal, None if real is not None else store)
        spec = TaskSpec(
            ti=ti, runtime=runtime, cwd=project.runtime_cwd, dag_rel_path=f"{dag_id}.py"
        )

        made: list[TaskSession] = []

        def make(api: ExecutionAPIClient) -> TaskSession:
            session = TaskSession(spec, api, config=config, journal=journal)
            made.append(session)
            interrupts.adopt(session)  # after a Ctrl+C: it never starts its runtime
            return session

        tracker.try_started(record)
        outcome = None
        try:
            outcome = await supervise(
                spec,
                http,
                token=token,
                config=config,
                journal=journal,
                transcript=transcript,
                redact=True,
                api_label=opts.get("api_url") or "stub",
                session_factory=make,
                forward_signals=False,
                on_transcript_error=transcript_errors.append,
            )
        finally:
            # This try's own sessions (a scan of all of them was O(running) per try: 1,000
            # tries made it a million checks).
            interrupts.sessions.difference_update(made)
            tracker.try_ended(
                record, outcome, str(transcript) if transcript else None, sink.diagnosis
            )
        return outcome, str(transcript) if transcript else None

    live: Live | None = None

    class LiveView:
        """Rebuilt at each refresh, so the elapsed times tick and the view fits the screen."""

        def __rich__(self) -> RenderableType:
            return dag_view(f"{dag_id} run {run_id}", runner.results, tracker, err.size.height)

    def on_change(r: TaskResult) -> None:
        if live is not None:
            live.refresh()
        elif (
            not opts["as_json"]
            and verbosity >= 0
            and r.state
            in ("success", "failed", "upstream_failed", "skipped", "up_for_retry", "removed")
        ):
            click.echo(f"[{r.task_id}] {r.state}", err=True)

    runner = DagRunner(
        structure,
        backend,
        run_one,
        run_id=run_id,
        parallelism=opts["parallelism"],
        retry_delay=opts["retry_delay"],
        on_change=on_change,
    )
    interrupts.runner = runner
    if tty and not opts["as_json"]:
        # Transient: the view goes when the run ends, and the report is printed once instead.
        live = Live(LiveView(), console=err, refresh_per_second=4, transient=True)
        live.start()
        # Task lines go through the live display's stderr, above the view.
        configure_logging("console", sys.stderr)
        interrupts.say = lambda line: err.print(line, markup=False, highlight=False)
    try:
        await runner.run()
    finally:
        if live is not None:
            live.stop()
            configure_logging("console", sys.stderr)
            interrupts.say = lambda line: click.echo(line, err=True)
        if real is not None:
            with trio.CancelScope(shield=True):
                assert real.proc.stdin is not None
                await real.proc.stdin.aclose()  # EOF ends the queue tool's batch loop
                with trio.move_on_after(10):
                    await real.proc.wait()
                if real.proc.returncode is None:
                    real.proc.kill()
                    await real.proc.wait()
    results = runner.results
    ok = all(r.state in ("success", "skipped") for r in results.values())
    interrupt = interrupts.summary(results)
    interrupted = interrupt is not None
    summary = {
        "dag_id": dag_id,
        "run_id": run_id,
        "state": "interrupted" if interrupted else "success" if ok else "failed",
        "interrupted": interrupted,
        "interrupt": interrupt,
        "parallelism": opts["parallelism"],
        "peak_running": runner.peak_running,
        "wall_s": runner.wall_s,
        "schema_problems": problems,
        "transcript_errors": transcript_errors,
        "tasks": {
            r.task_id: {
                "state": r.state,
                "tries": r.tries,
                "map_indexes": r.map_indexes,
                "duration_s": r.duration_s,
                "exit_codes": r.exit_codes,
                "violations": r.violations,
                "error": r.error,
                "transcripts": r.transcripts,
                "stopped": r.stopped,
            }
            for r in results.values()
        },
    }
    if opts["as_json"]:
        click.echo(json.dumps(summary))
    elif verbosity >= 0:
        print_report(
            err,
            f"{dag_id} run {run_id}: {summary['state']} {'after' if interrupted else 'in'} "
            f"{runner.wall_s:.2f}s (parallelism {opts['parallelism']})",
            results,
            tracker,
            {tid: node.upstream for tid, node in structure.tasks.items()},
            interrupt,
        )
    if interrupted:
        return EXIT_INTERRUPTED
    if transcript_errors:
        # Every task's state is reported, but not every record is whole: not a success.
        more = f" (and {len(transcript_errors) - 1} more)" if len(transcript_errors) > 1 else ""
        click.echo(
            f"Error: {transcript_errors[0]}{more}, so it is incomplete; free some space, or "
            "give another --runs-dir",
            err=True,
        )
        return EXIT_INTERNAL
    return 0 if ok else 1

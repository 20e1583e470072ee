"""``worker``: an Edge worker of a real Airflow (edge3 provider), supervising every job itself.

Registers with the API server's ``/edge_worker/v1`` API as Airflow's own ``airflow edge worker``
does, fetches ExecuteTask jobs for its queues, runs each with the runtime configured for its
queue under a supervisor-sim session against the real Execution API, reports the job's state,
pushes its log and keeps a transcript of every try (docs/worker.md).
"""

from __future__ import annotations

import math
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ..runner import DEFAULT_RUNS
from ._common import EXIT_UNREACHABLE, Command, UsageError, project_config, supervisor_config
from ._options import jwt_secret_option, no_transcript_option, seconds_option

__all__ = ["worker"]


def _queues(value: str | None) -> list[str] | None:
    if value is None:
        return None
    queues = [q.strip() for q in value.split(",") if q.strip()]
    if not queues:
        raise UsageError("--queues: give at least one queue name, e.g. --queues go,java")
    return queues


def _seconds(opts: dict[str, Any], name: str, configured: float) -> float:
    """An option's seconds, else the config file's; a finite number or a usage error."""
    value = opts[name]
    if value is None:
        return configured
    if not math.isfinite(value):
        flag = "--" + name.replace("_", "-")
        raise UsageError(f"{flag} {value!r}: give a number of seconds (0 or more)")
    return float(value)


@click.command("worker", cls=Command)
@click.option(
    "--api-url",
    required=True,
    metavar="URL",
    help="The Airflow API server (http://host:8080), or its [edge] api_url "
    "(http://host:8080/edge_worker/v1/rpcapi).",
)
@jwt_secret_option(
    "The API server's [api_auth] jwt_secret, which signs the edge API's tokens (or "
    "SUPERVISOR_SIM_JWT_SECRET)."
)
@click.option(
    "--queues",
    metavar="Q1,Q2",
    help="Queues to take jobs from (default: the config's [worker] queues, else the queues of "
    "--runtime-for and [worker] runtime_for; every queue when only a '*' runtime or the "
    "config's [runtime] is given).",
)
@click.option(
    "--runtime-for",
    "runtime_for",
    multiple=True,
    metavar="QUEUE=CMD",
    help="The runtime command for a queue's tasks (shell words; repeatable; QUEUE '*' for any "
    "queue without its own). Added to the config's [worker] runtime_for, replacing its "
    "command for the same queue; without either, the config's [runtime] command serves every "
    "queue.",
)
@seconds_option(
    "--drain-timeout",
    help="How long a drain (SIGTERM, Ctrl+C, a shutdown request) waits for the running tasks "
    "before it sends them SIGTERM; 0: for ever (default: the config's [worker] drain_timeout, "
    "else 0, as Airflow's [edge] drain_timeout_sec).",
)
@seconds_option(
    "--drain-kill-grace",
    help="After the drain timeout's SIGTERM, how long before the tasks left are killed and "
    "reported failed (default: [worker] drain_kill_grace, else 30, as Airflow's [edge] "
    "drain_kill_grace_sec).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Most task tries running at once (Airflow's [edge] worker_concurrency).",
)
@click.option(
    "--hostname",
    metavar="NAME",
    help="The worker's name on the API server (default: $HOSTNAME or this host's FQDN).",
)
@seconds_option(
    "--heartbeat-interval",
    min=0.05,
    default=30.0,
    help="Seconds between heartbeats ([edge] heartbeat_interval).",
)
@seconds_option(
    "--poll-interval",
    min=0.05,
    default=5.0,
    help="Seconds between job fetches when none came, and between log pushes "
    "([edge] job_poll_interval).",
)
@click.option(
    "--execution-api-url",
    metavar="URL",
    help="The Execution API the tasks talk to (default: /execution/ next to --api-url, as "
    "Airflow's worker derives it).",
)
@click.option(
    "--runs-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help=f"Folder of the per-try transcripts (default {DEFAULT_RUNS}/worker-<hostname>/).",
)
@click.option(
    "--keep-transcripts",
    type=click.IntRange(min=0),
    default=500,
    show_default=True,
    metavar="N",
    help="Keep the newest N transcripts in --runs-dir, deleting older ones.",
)
@no_transcript_option("Record no transcripts.")
@click.option(
    "--api-retries",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Attempts of each edge API call on transport errors and 5xx.",
)
@click.pass_context
def worker(ctx: click.Context, **opts: Any) -> None:
    """Join a real Airflow as an Edge worker and supervise every task it gives this worker.

    \b
    Example:
      supervisor-sim worker --api-url http://airflow:8080 --jwt-secret "$SECRET" \\
          --runtime-for go=./bin/go-bundle --concurrency 16

    SIGTERM or Ctrl+C: finish the running tasks, take no new ones, go offline; a second one
    kills the running tasks at once. With --drain-timeout, tasks still running after it get
    SIGTERM, and are killed --drain-kill-grace later. Maintenance and shutdown requests from
    Airflow's UI are honoured as by Airflow's own worker. The config's [worker] table gives
    runtime_for, queues, drain_timeout and drain_kill_grace (docs/worker.md).
    """
    from ..runner import ConfigError, runtime_argv

    project = project_config(ctx)
    secret = opts["jwt_secret"] or os.environ.get("AIRFLOW__API_AUTH__JWT_SECRET")
    if not secret:
        raise UsageError(
            "--jwt-secret is required: the API server's [api_auth] jwt_secret signs the edge "
            "API's tokens (or set SUPERVISOR_SIM_JWT_SECRET)"
        )
    url = opts["api_url"]
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--api-url {url!r}: not an http(s) URL")
    from ..runner.edge import RuntimeForError, parse_runtime_for

    try:
        parsed = parse_runtime_for(opts["runtime_for"])
    except RuntimeForError as exc:
        raise UsageError(str(exc)) from None
    base = project.path.parent if project.path else None
    # The file's [worker] runtime_for, each queue's command replaced by a --runtime-for for it.
    named = {**project.worker_runtimes, **parsed}
    runtimes = {q: list(argv) for q, argv in project.worker_runtimes.items()}
    runtimes.update({q: runtime_argv(argv, base) for q, argv in parsed.items()})
    if "*" not in runtimes and project.runtime:
        runtimes["*"] = list(project.runtime)
    queues = _queues(opts["queues"])
    if queues is None and project.worker_queues is not None:
        queues = list(project.worker_queues)
    if queues is None and named and "*" not in named:
        queues = sorted(named)
    drain_timeout = _seconds(opts, "drain_timeout", project.drain_timeout)
    drain_kill_grace = _seconds(opts, "drain_kill_grace", project.drain_kill_grace)
    missing = [q for q in queues or () if q not in runtimes and "*" not in runtimes]
    if missing or not runtimes:
        name = missing[0] if missing else "QUEUE"
        raise UsageError(
            f"no runtime for queue {name!r}: pass --runtime-for {name}=COMMAND (or a [runtime] "
            "command in supervisor-sim.toml)"
        )
    from ..runner.edge import default_hostname

    hostname = opts["hostname"] or default_hostname()
    transcripts = None
    if not opts["no_transcript"]:
        folder = opts["runs_dir"] or (project.runs_dir or DEFAULT_RUNS) / f"worker-{hostname}"
        transcripts = Path(folder).resolve()
    config = supervisor_config(project, {})
    from ..runner.edge import EdgeAPIError, EdgeWorker, WorkerSettings

    settings = WorkerSettings(
        api_url=url,
        secret=secret,
        hostname=hostname,
        runtimes=runtimes,
        queues=queues,
        concurrency=opts["concurrency"],
        heartbeat_interval=opts["heartbeat_interval"],
        poll_interval=opts["poll_interval"],
        execution_api_url=opts["execution_api_url"],
        transcripts=transcripts,
        keep_transcripts=opts["keep_transcripts"],
        supervisor=config,
        runtime_cwd=project.runtime_cwd,
        api_retries=opts["api_retries"],
        drain_timeout=drain_timeout,
        drain_kill_grace=drain_kill_grace,
    )

    def say(message: str) -> None:
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        click.echo(f"{stamp} worker: {message}", err=True)

    import trio

    from ._common import leaf_exception

    try:
        status = trio.run(EdgeWorker(settings, say=say).run)
    except Exception as exc:
        leaf = leaf_exception(exc)
        if isinstance(leaf, EdgeAPIError):
            click.echo(f"Error: {leaf}", err=True)
            sys.exit(EXIT_UNREACHABLE)
        if isinstance(leaf, ConfigError):
            raise UsageError(str(leaf)) from None
        raise
    sys.exit(status)

"""The body of ``run-task``: one task try under the simulated supervisor (see ``cli``)."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import click
import httpx
import trio

from ._cmd_common import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_NOT_STARTED,
    EXIT_SUCCESS,
    EXIT_TASK_FAILED,
    UsageError,
    log_format,
    project_config,
    supervisor_config,
)
from ._config_file import DEFAULT_RUNS, DEFAULT_STATE, ConfigError, ProjectConfig, runtime_argv
from ._console import ConsoleSink, print_summary
from ._run import default_transcript, supervise, ti_wire
from .api import (
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
from .supervision import Journal, SupervisorConfig, TaskOutcome, TaskSpec

__all__ = ["exit_status", "run_task_command"]


def run_task_command(
    ctx: click.Context, dag_id: str, task_id: str, opts: dict[str, Any]
) -> NoReturn:
    project = project_config(ctx)
    fmt = log_format(opts["log_format"])
    opts["log_format"] = fmt
    runtime = runtime_argv(opts["runtime_cmd"]) if opts["runtime_cmd"] else project.runtime
    if not runtime:
        raise UsageError(
            "no runtime command: pass --runtime CMD or set [runtime] command in supervisor-sim.toml"
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

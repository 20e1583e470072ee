"""The body of ``parse``: a runtime parses a DAG file, its serialized DAGs are checked against
Airflow's schema (see ``cli``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
import httpx
import trio

from ..api import ExecutionAPIClient, FixtureError, StubTransport
from ..protocol import dag_structure, validate_serialized_dag
from ..runner import (
    DEFAULT_RUNS,
    ConfigError,
    default_transcript,
    open_store,
    runtime_argv,
    supervise,
)
from ..supervision import Journal, ParseSession, ParseSpec
from ._common import UsageError, log_format, project_config, supervisor_config
from ._console import ConsoleSink

__all__ = ["parse_command"]


def parse_command(ctx: click.Context, file: str | None, opts: dict[str, Any]) -> NoReturn:
    project = project_config(ctx)
    fmt = log_format(opts["log_format"])
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
    config = supervisor_config(project, {})
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

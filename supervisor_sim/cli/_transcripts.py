"""The bodies of ``show``, ``diff`` and ``replay``: what is done with a recorded transcript (see
``cli``)."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, NoReturn

import click
import httpx
import trio

from ..api import ExecutionAPIClient, RetryPolicy
from ..runner import forward_signals_to, runtime_argv
from ..supervision import (
    Journal,
    SupervisorConfig,
    TaskOutcome,
    TaskSession,
    TaskSpec,
    journal_exchanges,
)
from ..transcript import (
    FrameMatcher,
    ReplayTransport,
    TranscriptError,
    diff_transcripts,
    read_transcript,
    render_timeline,
    write_html,
)
from ._common import EXIT_DIVERGED, UsageError, log_format
from ._console import ConsoleSink

__all__ = ["diff_command", "replay_command", "show_command"]


def show_command(
    transcript: Path,
    only: str | None,
    types: tuple[str, ...],
    grep: str | None,
    color: bool | None,
    html_out: Path | None,
) -> None:
    try:
        t = read_transcript(transcript)
    except TranscriptError as exc:
        raise UsageError(str(exc)) from None
    if html_out is not None:
        write_html(t, html_out)
        click.echo(f"wrote {html_out}")
        return
    try:
        re.compile(grep or "")
    except re.error as exc:
        raise UsageError(f"--grep: not a regular expression: {exc}") from None
    colour = sys.stdout.isatty() if color is None else color
    for line in render_timeline(t, only=only, types=types, grep=grep, colour=colour):
        # A recorded string may hold a lone surrogate (valid in JSON, not in UTF-8): show its
        # escape rather than fail on it.
        click.echo(line.encode("utf-8", "backslashreplace").decode("utf-8"))


def diff_command(a: Path, b: Path, as_json: bool) -> NoReturn:
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


def replay_command(
    transcript: Path,
    runtime_cmd: str | None,
    keep_going: bool,
    pace: str,
    as_json: bool,
    fmt: str,
    quiet: int,
) -> NoReturn:
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
    log_format(fmt)
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

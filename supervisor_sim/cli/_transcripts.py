"""``show``, ``diff`` and ``replay``: what is done with a recorded transcript.

Each command's options sit next to its body; the body imports the layers (trio, httpx, the
transcript reader) when the command runs, so that ``supervisor-sim --help`` loads none of them.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ._common import EXIT_DIVERGED, UsageError, loading, log_format

if TYPE_CHECKING:
    from ..supervision import SupervisorConfig, TaskOutcome

__all__ = ["diff", "diff_command", "replay", "replay_command", "show", "show_command"]


@click.command("show")
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
    show_command(transcript, only, types, grep, color, html_out)


@click.command("diff")
@click.argument("a", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("b", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
def diff(a: Path, b: Path, as_json: bool) -> None:
    """Compare two transcripts frame by frame; exit 0 when they are equivalent."""
    diff_command(a, b, as_json)


@click.command("replay")
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
def replay(
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
    replay_command(transcript, runtime_cmd, keep_going, pace, as_json, log_format, quiet)


def show_command(
    transcript: Path,
    only: str | None,
    types: tuple[str, ...],
    grep: str | None,
    color: bool | None,
    html_out: Path | None,
) -> None:
    with loading():
        from ..transcript import TranscriptError, read_transcript, render_timeline, write_html

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
    with loading():
        from ..transcript import TranscriptError, diff_transcripts, read_transcript

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
    with loading():
        from dataclasses import fields, replace

        import trio

        from ..runner import runtime_argv
        from ..supervision import SupervisorConfig
        from ..transcript import TranscriptError, read_transcript

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
    import httpx
    import trio

    from ..api import ExecutionAPIClient, RetryPolicy
    from ..runner import forward_signals_to
    from ..supervision import Journal, TaskSession, TaskSpec, journal_exchanges
    from ..transcript import FrameMatcher, ReplayTransport
    from ._console import ConsoleSink

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

"""``show``, ``diff`` and ``replay``: what is done with a recorded transcript.

Each command's options sit next to its body; the body imports the layers (trio, httpx, the
transcript reader) when the command runs, so that ``supervisor-sim --help`` loads none of them.
"""

from __future__ import annotations

import gc
import json
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ._common import EXIT_DIVERGED, UsageError, color_default, loading, log_format, not_started
from ._options import (
    json_option,
    log_format_option,
    quiet_option,
    runtime_option,
    timeout_option,
)

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
@click.option(
    "--color/--no-color",
    default=None,
    help="Colour (default: on a terminal, unless NO_COLOR is set; always with FORCE_COLOR).",
)
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
@json_option("differences")
def diff(a: Path, b: Path, as_json: bool) -> None:
    """Compare two transcripts frame by frame; exit 0 when they are equivalent."""
    diff_command(a, b, as_json)


@click.command("replay")
@click.argument("transcript", type=click.Path(path_type=Path, dir_okay=False))
@runtime_option("Runtime command (default: the recorded one).")
@click.option("--keep-going", is_flag=True, help="Do not stop at the first divergence.")
@click.option(
    "--pace",
    type=click.Choice(["fast", "recorded"]),
    default="fast",
    show_default=True,
    help="Answer at once, or as slowly as the recorded API did.",
)
@json_option()
@log_format_option()
@quiet_option()
@timeout_option(
    "Stop a runtime still running after SECONDS, a divergence "
    "(default: 60 + 10 x the recorded run's duration).",
    positive=True,
)
def replay(
    transcript: Path,
    runtime_cmd: str | None,
    keep_going: bool,
    pace: str,
    as_json: bool,
    log_format: str,
    quiet: int,
    timeout: float | None,
) -> None:
    """Re-run the recorded runtime against the transcript alone: no Airflow, no network.

    Exit 0 when the runtime sent exactly the recorded frames, 1 when it diverged (a runtime that
    exits before connecting, too), 2 when the transcript cannot be read or holds nothing to
    replay, 3 when the runtime command cannot be run at all.
    """
    replay_command(transcript, runtime_cmd, keep_going, pace, as_json, log_format, quiet, timeout)


def show_command(
    transcript: Path,
    only: str | None,
    types: tuple[str, ...],
    grep: str | None,
    color: bool | None,
    html_out: Path | None,
) -> None:
    with loading():
        from ..transcript import render_timeline, write_html

    t = _read(transcript)
    if html_out is not None:
        try:
            write_html(t, html_out)
        except OSError as exc:
            raise UsageError(f"--html: cannot write {html_out}: {exc.strerror or exc}") from None
        click.echo(f"wrote {html_out}")
        return
    try:
        re.compile(grep or "")
    except re.error as exc:
        raise UsageError(f"--grep: not a regular expression: {exc}") from None
    colour = color_default() if color is None else color
    for line in render_timeline(t, only=only, types=types, grep=grep, colour=colour):
        # A recorded string may hold a lone surrogate (valid in JSON, not in UTF-8): show its
        # escape rather than fail on it.
        # color=: click would strip the colours off a pipe even when asked for them.
        click.echo(line.encode("utf-8", "backslashreplace").decode("utf-8"), color=colour)


def diff_command(a: Path, b: Path, as_json: bool) -> NoReturn:
    with loading():
        from ..transcript import diff_transcripts

    ta, tb = _read(a), _read(b)
    result = diff_transcripts(ta, tb)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "equivalent": result.equivalent,
                    "differences": result.differences,
                    "details": [d.as_json() for d in result.details],
                },
                default=str,
            )
        )
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
    timeout: float | None,
) -> NoReturn:
    with loading():
        import trio

        from ..runner import runtime_argv

    t = _read(transcript)
    task = t.header.get("task") or {}
    if not isinstance(task.get("ti"), dict) or not task["ti"].get("id"):
        raise UsageError(f"{transcript}: the header has no task instance to replay")
    if not t.frames():
        cut = f" (it is truncated before its first frame: {t.truncated})" if t.truncated else ""
        raise UsageError(f"{transcript}: nothing to replay: the transcript holds no frames{cut}")
    runtime = (
        runtime_argv(runtime_cmd) if runtime_cmd is not None else list(t.header.get("runtime", []))
    )
    if runtime and runtime[-1].startswith("--logs="):
        runtime = runtime[:-2]
    if not runtime:
        raise UsageError(f"{transcript}: the header names no runtime command; give --runtime")
    log_format(fmt)
    config = _recorded_config(transcript, t.header.get("config") or {})
    # The last record's time (records are written in time order, give or take the few held
    # until a reply is on the wire): scanning them all decoded every line once more.
    recorded_s = max((r["t"] for r in t.records[-16:]), default=0.0)
    bound = timeout if timeout is not None else 60.0 + 10 * recorded_s
    if t.truncated:
        click.echo(
            f"supervisor-sim: {transcript} is truncated: {t.truncated}; the replay compares "
            f"the runtime with the {_plural(len(t.frames('in')), 'runtime frame')} it holds",
            err=True,
        )
    run = trio.run(_replay, t, runtime, config, keep_going, pace, 1 - quiet, bound)
    outcome, divergences = run.outcome, run.divergences
    if run.spawn_failed:
        # The command itself could not be run: nothing was replayed, so nothing diverged.
        divergences = []
    result = {
        "transcript": str(transcript),
        "matched": not divergences and not run.spawn_failed,
        "divergences": [
            {"index": d.index, "kind": d.kind, "message": d.message, "differences": d.differences}
            for d in divergences
        ],
        "final_state": outcome.final_state,
        "recorded_final_state": (t.footer or {}).get("final_state"),
        "exit_code": outcome.exit_code,
    }
    if run.spawn_failed:
        result["error"] = outcome.error
    for d in divergences:
        click.echo(d.render(), err=True)
    if as_json:
        click.echo(json.dumps(result))
    elif not run.spawn_failed:
        click.echo(f"replay of {transcript}: {_verdict(t, divergences, outcome, run)}", err=True)
    if run.spawn_failed:
        not_started(
            f"{outcome.error} (runtime command: {shlex.join(runtime)})",
            "check the recorded runtime command, or give --runtime",
        )
    sys.exit(0 if not divergences else EXIT_DIVERGED)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _verdict(t: Any, divergences: list[Any], outcome: TaskOutcome, run: _ReplayRun) -> str:
    """The replay's last line after ``replay of T: ``: how it compared, and the final state
    beside the recorded one."""
    frames = len(t.frames("in"))
    if not divergences:
        compared = "MATCH"
        if t.truncated:
            compared += f" of the {_plural(frames, 'runtime frame')} recorded before the cut"
    elif all(d.kind == "recording-ends" for d in divergences):
        where = f"after runtime frame #{frames - 1}" if frames else "before its first frame"
        compared = f"RECORDING ENDS {where} (truncated), and the runtime went on"
    else:
        compared = f"DIVERGED ({len(divergences)})"
    notes = ["the replay stopped the runtime"] if run.stopped else []
    if t.footer is None:
        notes.append("recorded none: the transcript is truncated, no footer")
    else:
        notes.append(f"recorded {t.footer.get('final_state') or 'none'}")
    return f"{compared}; final state {outcome.final_state or 'none'} ({'; '.join(notes)})"


def _read(path: Path) -> Any:
    """The transcript at ``path``; a file that is not one is a usage error (exit 2)."""
    from ..transcript import TranscriptError, read_transcript

    try:
        transcript = read_transcript(path)
    except TranscriptError as exc:
        raise UsageError(str(exc)) from None
    # The records live until the command ends: no collection needs to walk them again (a
    # replay of 100,000 requests would spend seconds in the collector going over them).
    gc.freeze()
    return transcript


def _recorded_config(transcript: Path, recorded: dict[str, Any]) -> SupervisorConfig:
    """The supervisor settings the transcript was recorded with (those this version knows)."""
    from dataclasses import fields, replace

    from ..supervision import SupervisorConfig

    default = SupervisorConfig()
    values = {}
    for f in fields(SupervisorConfig):
        if f.name not in recorded:
            continue
        value, usual = recorded[f.name], getattr(default, f.name)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if isinstance(usual, bool):
            ok = isinstance(value, bool)
        elif isinstance(usual, int):
            ok = number and isinstance(value, int)
        elif isinstance(usual, float) or usual is None:  # None: task_timeout, a float or none
            ok = number or (usual is None and value is None)
        else:
            ok = isinstance(value, type(usual))
        if not ok:
            raise UsageError(f"{transcript}: header: config.{f.name} cannot be {json.dumps(value)}")
        values[f.name] = value
    try:
        return replace(default, **values)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{transcript}: header: config: {exc}") from None


@dataclass
class _ReplayRun:
    """What ``_replay`` returns: the session's outcome, the divergences, whether the runtime
    command could not be run at all (``spawn_failed``: nothing was replayed), and whether the
    replay stopped the runtime at a divergence (``stopped``: the final state is the stop's)."""

    outcome: TaskOutcome
    divergences: list[Any]
    spawn_failed: bool = False
    stopped: bool = False


async def _replay(
    t: Any,
    runtime: list[str],
    config: SupervisorConfig,
    keep_going: bool,
    pace: str,
    verbosity: int,
    bound: float,
) -> _ReplayRun:
    from dataclasses import replace

    import httpx
    import trio

    from ..api import ExecutionAPIClient, RetryPolicy
    from ..runner import forward_signals_to
    from ..runner.proxy import ProxyReplayHooks, is_proxy_transcript
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
    # The session's own task timeout stops a runtime that never ends (the recorded one, if it
    # was shorter): the replay is bounded however the runtime behaves.
    recorded_timeout = config.task_timeout
    if recorded_timeout is None or recorded_timeout > bound:
        config = replace(config, task_timeout=bound)
    transport = ReplayTransport(t, pace=pace)
    async with httpx.AsyncClient(base_url="http://replay.invalid/", transport=transport) as http:
        # The recorded paths already include the base path, so requests are sent absolute.
        http.base_url = httpx.URL("http://replay.invalid" + _base_path(t))
        api = ExecutionAPIClient(
            http,
            in_process=transport,
            token="",
            # As many attempts as the recorded client made (its retries answered from the
            # recording in order), with no back-off: a 500 that a retry cured replays the same.
            retry=RetryPolicy(attempts=_recorded_attempts(t), wait_min=0.0, wait_max=0.0),
            on_exchange=journal_exchanges(journal),
        )
        # A proxy recording holds Airflow's frames, not its HTTP calls: they are replayed.
        hooks = ProxyReplayHooks(t) if is_proxy_transcript(t) else None
        session = TaskSession(spec, api, config=config, journal=journal, hooks=hooks)
        running, stopped, not_run = True, False, False

        def stop(divergence: Any) -> None:
            # Only while the session runs: after it, there is nothing left to stop.
            nonlocal stopped
            if running and not keep_going:
                stopped = True
                if divergence.kind == "recording-ends":
                    session.abort(f"the recording ends before runtime frame #{divergence.index}")
                else:
                    session.abort(f"replay diverged at runtime frame #{divergence.index}")

        def spawn_failed(event: Any) -> None:
            nonlocal not_run
            if event.kind == "process" and event.data.get("event") == "spawn-failed":
                not_run = True

        journal.sinks.append(spawn_failed)
        matcher = FrameMatcher(
            t, keep_going=keep_going, on_divergence=stop, unmatched=transport.unmatched
        )
        journal.sinks.append(matcher)
        timed_out = False

        async def watch() -> None:
            # The session's task timeout does the stopping; this only tells whether it was the
            # replay's bound that ran out (a recorded, shorter task timeout is part of the run).
            nonlocal timed_out
            await trio.sleep(bound)
            child = session.child
            timed_out = child is not None and child.alive

        async with trio.open_nursery() as nursery:
            nursery.start_soon(forward_signals_to, session)
            nursery.start_soon(watch)
            outcome = await session.run()
            running = False
            nursery.cancel_scope.cancel()
    if timed_out:
        matcher.timed_out(bound)
    matcher.finish(
        why=outcome.error,
        unmatched=transport.unmatched,
        final_state=outcome.final_state,
        recorded_state=(t.footer or {}).get("final_state"),
        started=outcome.started,
    )
    return _ReplayRun(outcome, matcher.divergences, spawn_failed=not_run, stopped=stopped)


def _recorded_attempts(t: Any) -> int:
    """The most attempts the recorded client made at any one call (1 when it never retried)."""
    return max((rec.get("attempt") or 1 for rec in t.http()), default=1)


def _base_path(t: Any) -> str:
    for r in t.http():
        path = r["path"]
        if "/task-instances/" in path:
            return path.split("task-instances/")[0]
    return "/execution/"

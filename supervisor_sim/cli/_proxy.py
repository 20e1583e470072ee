"""``proxy``: stand in for a runtime under a real Airflow, forward everything, record it.

Airflow's coordinator runs ``supervisor-sim proxy [OPTIONS] -- RUNTIME_CMD... --comm=H:P
--logs=H:Q`` where it would run ``RUNTIME_CMD``; the body takes Airflow's two addresses from
the end of the command, hands the rest to ``runner.proxy`` and ends as the runtime ended. Its
exit status is therefore the runtime's, never one of the statuses of the other commands, except
for a usage mistake (2), which happens before any runtime is started.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import click

from ._common import Command, UsageError
from ._options import no_transcript_option, seconds_option

__all__ = ["DEFAULT_PROXY_DIR", "proxy", "proxy_command"]

#: Where transcripts go without --dir (or SUPERVISOR_SIM_PROXY_DIR).
DEFAULT_PROXY_DIR = Path("~/.supervisor-sim/proxy")


@click.command(
    "proxy",
    cls=Command,
    # Everything from RUNTIME_CMD on is the runtime's, its own options included.
    context_settings={"allow_interspersed_args": False},
)
@click.argument("runtime_cmd", nargs=-1, required=True, metavar="-- RUNTIME_CMD...")
@click.option(
    "--dir",
    "--proxy-dir",
    "folder",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="SUPERVISOR_SIM_PROXY_DIR",
    help=f"Folder for the transcripts, one file per task try (or SUPERVISOR_SIM_PROXY_DIR; "
    f"default {DEFAULT_PROXY_DIR}).",
)
@click.option(
    "--transcript",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Record into this one file instead of a new file in --dir.",
)
@no_transcript_option("Forward only: record nothing.")
@click.option(
    "--no-redact",
    is_flag=True,
    help="Keep secrets (connection passwords, masked values, JWTs) in the transcript.",
)
@click.option(
    "--comm",
    metavar="HOST:PORT",
    help="Airflow's --comm address (Airflow appends --comm=HOST:PORT after RUNTIME_CMD).",
)
@click.option(
    "--logs",
    metavar="HOST:PORT",
    help="Airflow's --logs address (appended after RUNTIME_CMD, like --comm).",
)
@seconds_option(
    "--cleanup-timeout",
    default=60.0,
    help="How long the runtime's channels may stay open after it exited (Airflow's "
    "[workers] socket_cleanup_timeout).",
)
@click.option(
    "--write-wrapper",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="PATH",
    help="Do not run: write an executable at PATH that runs this proxy command in front of "
    "RUNTIME_CMD (an executable bundle when RUNTIME_CMD is one), for Airflow's coordinator "
    "configuration (docs/proxy.md).",
)
def proxy(
    runtime_cmd: tuple[str, ...],
    folder: Path | None,
    transcript: Path | None,
    no_transcript: bool,
    no_redact: bool,
    comm: str | None,
    logs: str | None,
    cleanup_timeout: float,
    write_wrapper: Path | None,
) -> None:
    """Stand in for a runtime under a real Airflow: forward everything, record a transcript.

    Use it as the runtime command in Airflow's coordinator configuration (docs/proxy.md);
    Airflow appends --comm/--logs after RUNTIME_CMD. Every frame, log line and output line
    crosses both ways unchanged while the transcript is written (replay, show and diff read
    it). The exit status and the signals are the runtime's; a transcript that cannot be
    written is said once on stderr, and the task runs on.
    """
    proxy_command(
        list(runtime_cmd),
        folder=folder,
        transcript=transcript,
        no_transcript=no_transcript,
        no_redact=no_redact,
        comm=comm,
        logs=logs,
        cleanup_timeout=cleanup_timeout,
        write_wrapper=write_wrapper,
    )


def split_addresses(
    argv: list[str], comm: str | None, logs: str | None
) -> tuple[list[str], str | None, str | None]:
    """The runtime command without the ``--comm=``/``--logs=`` Airflow appended to it, and the
    two addresses (the options given before ``--`` win)."""
    argv = list(argv)
    found: dict[str, str] = {}
    while argv and argv[-1].startswith(("--comm=", "--logs=")):
        name, _, value = argv.pop()[2:].partition("=")
        found.setdefault(name, value)
    return argv, comm or found.get("comm"), logs or found.get("logs")


def proxy_command(
    argv: list[str],
    *,
    folder: Path | None,
    transcript: Path | None,
    no_transcript: bool,
    no_redact: bool,
    comm: str | None,
    logs: str | None,
    cleanup_timeout: float,
    write_wrapper: Path | None,
) -> None:
    runtime, comm, logs = split_addresses(argv, comm, logs)
    if runtime and runtime[0] == "--":
        runtime = runtime[1:]
    if not runtime:
        raise UsageError("no runtime command: give it after --, e.g. proxy -- ./my-runtime")
    if write_wrapper is not None:
        _write_wrapper(write_wrapper, runtime, folder, transcript, no_transcript, no_redact,
                       cleanup_timeout)  # fmt: skip
        return
    if not comm or not logs:
        raise UsageError(
            "no --comm/--logs: Airflow appends them when it launches the proxy as a runtime "
            "(see docs/proxy.md); to try it by hand give --comm HOST:PORT --logs HOST:PORT"
        )
    from ..runner.proxy import ProxySettings, exit_like, run_proxy

    if no_transcript:
        folder = transcript = None
    elif transcript is None:
        folder = (folder or DEFAULT_PROXY_DIR).expanduser()
    settings = ProxySettings(
        runtime=runtime,
        comm=comm,
        logs=logs,
        folder=folder if transcript is None else None,
        transcript=transcript,
        redact=not no_redact,
        cleanup_timeout=cleanup_timeout,
    )
    try:
        code = run_proxy(settings)
    except ValueError as exc:  # an address that is not HOST:PORT
        raise UsageError(f"--comm/--logs: {exc}") from None
    exit_like(code)


def _write_wrapper(
    path: Path,
    runtime: list[str],
    folder: Path | None,
    transcript: Path | None,
    no_transcript: bool,
    no_redact: bool,
    cleanup_timeout: float,
) -> None:
    from ..runner.proxy import write_wrapper

    options: list[str] = []
    if no_transcript:
        options.append("--no-transcript")
    elif transcript is not None:
        options += ["--transcript", os.path.abspath(transcript.expanduser())]
    elif folder is not None:
        options += ["--dir", os.path.abspath(folder.expanduser())]
    if no_redact:
        options.append("--no-redact")
    if cleanup_timeout != 60.0:
        options += ["--cleanup-timeout", f"{cleanup_timeout:g}"]
    runtime = list(runtime)
    if os.sep in runtime[0]:
        # Absolute, symbolic links kept: a venv's python is a link that must stay one.
        runtime[0] = os.path.abspath(Path(runtime[0]).expanduser())
    elif shutil.which(runtime[0]) is None:
        raise UsageError(f"{runtime[0]}: no such command on PATH")
    try:
        bundle = write_wrapper(path, options, runtime)
    except OSError as exc:
        raise UsageError(f"--write-wrapper: cannot write {path}: {exc.strerror or exc}") from None
    what = "executable bundle" if bundle else "wrapper script"
    click.echo(f"wrote {what} {path}: runs {runtime[0]} behind supervisor-sim proxy")

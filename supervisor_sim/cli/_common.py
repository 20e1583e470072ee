"""What the commands' bodies share: exit statuses, one-line errors, checked paths, the project
config, supervisor settings, the log format and ``loading``.

Every user mistake (a path, a permission, the config or fixtures file, a flag, a missing
optional tool) ends a command with one line on stderr, ``Error: <problem>; <fix>``, and exit
status 2; a runtime that cannot start is 3 and an Execution API that does not answer is 4, in
every command (docs/cli.md, "Exit statuses"). ``Command`` and ``Group`` make that hold for what
the bodies do not catch themselves: click's own usage errors become one line too, and anything
else unexpected is one line naming it as a bug (``SUPERVISOR_SIM_TRACEBACK=1`` shows where).

Light on purpose: every command module imports it when ``--help`` is shown, so it imports
neither trio nor httpx nor the layers (the supervision layer only when a body asks).
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import sys
from collections.abc import Iterator
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ..runner import DEFAULT_RUNS, DEFAULT_STATE, ConfigError, ProjectConfig, load_project_config

if TYPE_CHECKING:
    from ..api import Exchange
    from ..supervision import Event, SupervisorConfig

__all__ = [
    "EXIT_DIVERGED",
    "EXIT_FAILED",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_STARTED",
    "EXIT_SUCCESS",
    "EXIT_TASK_FAILED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "ApiWatch",
    "Command",
    "Group",
    "UsageError",
    "color_default",
    "early_interrupt_exits_130",
    "leaf_exception",
    "loading",
    "log_format",
    "not_started",
    "project_config",
    "state_path",
    "supervisor_config",
    "transcript_target",
    "unreachable",
    "writable_dir",
    "writable_file",
]

EXIT_SUCCESS = 0
#: The task (or check, parse, replay) ran and the answer is no.
EXIT_FAILED = EXIT_TASK_FAILED = EXIT_DIVERGED = 1
#: A user mistake: a flag, a path, a permission, the config or fixtures file, a missing tool.
EXIT_USAGE = 2
#: The runtime could not start: it did not run or connect, or /run was refused.
EXIT_NOT_STARTED = 3
#: supervisor-sim could not do its job: the Execution API does not answer (or a bug).
EXIT_UNREACHABLE = EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130


@contextlib.contextmanager
def early_interrupt_exits_130(message: str) -> Iterator[None]:
    """A Ctrl+C that reaches a command before (or after) its session forwards signals:
    ``message`` on stderr and exit 130, no traceback. From then on SIGINT is ignored, so a
    pending or second one cannot turn that exit into a death by SIGINT (-2) or a
    KeyboardInterrupt traceback during interpreter shutdown."""
    try:
        yield
    except BaseException as exc:
        if not isinstance(leaf_exception(exc), KeyboardInterrupt):
            raise
        import signal

        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:  # not the main thread: not ours to change
            pass
        click.echo(message, err=True)
        sys.exit(EXIT_INTERRUPTED)


#: Standard output's reader went away (128 + SIGPIPE, as a shell reports a command it killed).
EXIT_BROKEN_PIPE = 141


class UsageError(click.ClickException):
    """A user mistake: ``Error: <message>`` on one line, exit status 2. The message names the
    problem and, when it is not obvious, the fix."""

    exit_code = EXIT_USAGE


# --- one line for every error -----------------------------------------------------------------


@contextlib.contextmanager
def _one_line(ctx: click.Context | None = None) -> Iterator[None]:
    """Turn what a command did not handle into one line and its exit status."""
    try:
        yield
    except (click.exceptions.Exit, click.Abort, UsageError):
        raise
    except click.UsageError as exc:
        # click's own (a bad flag or argument): the usage lines are long; the hint is short.
        where = exc.ctx or ctx
        hint = f" (see '{where.command_path} --help')" if where is not None else ""
        raise UsageError(f"{exc.format_message().rstrip('.')}{hint}") from None
    except click.ClickException:
        raise
    except Exception as exc:
        leaf = leaf_exception(exc)
        if isinstance(leaf, OSError) and leaf.filename is None and _stdout_broken(leaf):
            # Nothing more goes there (the interpreter's last flush included).
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            if isinstance(leaf, BrokenPipeError):
                # The reader went away (`| head`): say nothing, as a command SIGPIPE killed.
                sys.exit(EXIT_BROKEN_PIPE)
            raise UsageError(
                f"the output cannot be written: {leaf.strerror} (is the disk behind standard "
                "output full?)"
            ) from None
        message = _user_error(leaf)
        if message is not None:
            raise UsageError(message) from None
        if os.environ.get("SUPERVISOR_SIM_TRACEBACK"):
            raise
        click.echo(
            f"Error: internal error: {type(leaf).__name__}: {leaf}; this is a bug in "
            "supervisor-sim (rerun with SUPERVISOR_SIM_TRACEBACK=1 to see where, and report it)",
            err=True,
        )
        sys.exit(EXIT_INTERNAL)


def _stdout_broken(exc: OSError) -> bool:
    """Whether ``exc`` is a failed write of the output: a closed pipe, or a full device. (Files
    supervisor-sim opens itself name themselves in the error, ``filename``; the output does not.)"""
    return isinstance(exc, BrokenPipeError) or exc.errno in (errno.ENOSPC, errno.EDQUOT)


def leaf_exception(exc: BaseException) -> BaseException:
    """The one exception inside nested exception groups of one (trio's nurseries wrap)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _user_error(exc: BaseException) -> str | None:
    """The one-line message for an exception that is the user's to fix, else None."""
    name = type(exc).__name__
    if isinstance(exc, ConfigError) or name == "FixtureError":
        return str(exc)
    if type(exc).__module__ == "sqlite3":
        return (
            f"the stub's state file cannot be used ({exc}); delete it, or give another --state "
            "(or --state :memory:)"
        )
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {_why(exc, Path(str(exc.filename)))}"
    return None


class Command(click.Command):
    """A command whose every error is one line (see the module's docstring)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        with _one_line(ctx):
            return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        with _one_line(ctx):
            return super().invoke(ctx)


class Group(click.Group):
    """The ``supervisor-sim`` group: its errors and its commands' are one line each."""

    command_class = Command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        with _one_line(ctx):
            return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        with _one_line(ctx):
            return super().invoke(ctx)


def not_started(
    error: str | None,
    fix: str = "check the runtime command (--runtime, or [runtime] command in supervisor-sim.toml)",
) -> NoReturn:
    """End with exit status 3: the runtime could not start."""
    click.echo(f"Error: the runtime could not start: {error or 'no reason given'}; {fix}", err=True)
    sys.exit(EXIT_NOT_STARTED)


def unreachable(url: str, error: str | None) -> NoReturn:
    """End with exit status 4: the Execution API at ``url`` did not answer."""
    click.echo(
        f"Error: Execution API unreachable at {url}: {error or 'no answer'}; check --api-url "
        "and that the API server runs",
        err=True,
    )
    sys.exit(EXIT_UNREACHABLE)


class ApiWatch:
    """A journal sink for a real Execution API: says once, on stderr, that calls fail and are
    being retried (Airflow retries for ~10 s in silence), and tells whether the last call
    failed for want of an answer."""

    def __init__(self, url: str, attempts: int) -> None:
        self.url = url
        self.attempts = attempts
        self.failing: str | None = None
        self._told = False

    def __call__(self, event: Event) -> None:
        if event.kind == "http":
            self._saw(event.data.get("error"))

    def exchange(self, exchange: Exchange) -> None:
        """The same, as an ``ExecutionAPIClient``'s ``on_exchange``."""
        self._saw(exchange.error)

    def _saw(self, error: str | None) -> None:
        if not error:
            self.failing = None
            return
        self.failing = error
        if not self._told and self.attempts > 1:
            self._told = True
            click.echo(
                f"supervisor-sim: the Execution API at {self.url} does not answer ({error}); "
                f"retrying ({self.attempts} attempts per call)...",
                err=True,
            )


# --- paths ------------------------------------------------------------------------------------


def _why(exc: OSError, path: Path) -> str:
    """What is wrong with ``path``, in words: a file in the way of a folder, or the OS's
    reason."""
    if isinstance(exc, FileExistsError | NotADirectoryError):
        for parent in [path, *path.parents]:
            if parent.exists() and not parent.is_dir():
                return f"{parent} is a file, not a folder"
    return exc.strerror or str(exc)


def writable_file(path: Path, option: str, fix: str) -> Path:
    """``path`` can be written (its folder is made now), or a usage error naming ``option`` and
    ``fix``. Nothing is left behind: a file that did not exist is not created."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"{option}: cannot create {path.parent}: {_why(exc, path.parent)}; {fix}"
        ) from None
    if path.is_dir():
        raise UsageError(f"{option}: {path} is a folder; {fix}")
    existed = path.exists()
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise UsageError(f"{option}: cannot write {path}: {_why(exc, path)}; {fix}") from None
    if not existed:
        path.unlink(missing_ok=True)
    return path


def writable_dir(path: Path, option: str, fix: str) -> Path:
    """``path`` is a folder files can be written in (made now), or a usage error naming
    ``option`` and ``fix``."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{option}: cannot create {path}: {_why(exc, path)}; {fix}") from None
    # A real write, not os.access: root passes access checks where writes still fail.
    probe = path / f".supervisor-sim-probe-{os.getpid()}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        raise UsageError(f"{option}: cannot write in {path}: {_why(exc, path)}; {fix}") from None
    probe.unlink(missing_ok=True)
    return path


def transcript_target(opts: dict[str, Any], runs_dir: Path | None) -> None:
    """Where this run's transcript goes can be written: ``--transcript`` as a file in a folder
    that exists (only the project's transcripts folder, which is ours, is made for it), or else
    the project's transcripts folder (made when missing); nothing with ``--no-transcript``."""
    if opts["no_transcript"]:
        return
    owned = runs_dir or DEFAULT_RUNS
    if opts["transcript"]:
        folder = Path(opts["transcript"]).parent
        # A folder the user named is not made for them (a typo would be), except ours; a file
        # in the way is writable_file's to say.
        if (
            not folder.exists()
            and folder.resolve() != owned.resolve()
            and all(p.is_dir() for p in folder.parents if p.exists())
        ):
            raise UsageError(
                f"--transcript: no such directory: {folder}; create it, or give another path "
                "or --no-transcript"
            )
        writable_file(opts["transcript"], "--transcript", "give another path or --no-transcript")
        return
    writable_dir(
        owned,
        "the transcripts folder",
        "set [transcripts] dir, give --transcript, or pass --no-transcript",
    )


def state_path(value: str | os.PathLike[str] | None) -> None:
    """The stub's state file (``DEFAULT_STATE`` when None) can be opened; ``:memory:`` always
    can."""
    if str(value) == ":memory:":
        return
    writable_file(
        Path(value or DEFAULT_STATE),
        "--state",
        "give another --state, or set [stub] state (':memory:' keeps nothing)",
    )


# --- config and settings ----------------------------------------------------------------------


def project_config(ctx: click.Context) -> ProjectConfig:
    try:
        return load_project_config(ctx.obj.get("config_path") if ctx.obj else None)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def supervisor_config(project: ProjectConfig, overrides: dict[str, Any]) -> SupervisorConfig:
    from ..supervision import SupervisorConfig

    known = {f.name for f in fields(SupervisorConfig)}
    values: dict[str, Any] = {}
    # Airflow passes its [logging] levels to the runtime; like any Airflow setting they can
    # come from the environment.
    for key, env in (
        ("logging_level", "AIRFLOW__LOGGING__LOGGING_LEVEL"),
        ("namespace_levels", "AIRFLOW__LOGGING__NAMESPACE_LEVELS"),
    ):
        if os.environ.get(env):
            values[key] = os.environ[env]
    # The file's [supervisor] settings were checked against SupervisorConfig when it was read.
    values.update({k: v for k, v in project.supervisor.items() if k in known})
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return replace(SupervisorConfig(), **values)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"bad supervisor setting: {exc}") from None


def color_default() -> bool:
    """Colour on stdout when no flag says: the console's rule (on a terminal, never with
    ``NO_COLOR``, always with ``FORCE_COLOR``)."""
    from ._console import use_color

    return use_color(sys.stdout)


def log_format(fmt: str) -> str:
    """``--log-format``: ``auto`` is ``console`` on a terminal and ``json`` otherwise. Configures
    logging for the chosen format and returns it."""
    from ._console import configure_logging

    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    configure_logging(fmt)
    return fmt


@contextlib.contextmanager
def loading() -> Iterator[None]:
    """Around the import of a command's body (trio, httpx, the layers: ~150 ms of modules).

    No garbage collection while they load: importing creates hundreds of thousands of objects
    and few cycles, and the collector would run over the growing heap again and again (~10 ms).
    Then ``gc.freeze()``: what the imports created (modules, classes, functions) lives until the
    process ends anyway, so no later collection looks at it again, including the full one at
    interpreter exit (~20 ms otherwise). Objects still die by reference counting as usual.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()

"""``supervisor-sim.toml``: the runtime command, fixtures and supervisor settings of a project.

Looked up in the working directory (or given with ``--config``), so that in a checkout
``supervisor-sim run-task example_dag hello`` needs no flags. Relative paths in the file are
relative to the file; ``{python}`` in the runtime command is the interpreter running
supervisor-sim, so the bundled reference runtime finds msgpack wherever supervisor-sim was
installed, and ``{reference_runtime}`` is that runtime, shipped inside the package
(``supervisor-sim init`` writes a file that runs it).

The file's format is the dataclass ``ConfigFile``, checked by ``supervisor_sim._typed_toml``
like the fixtures file (unknown keys refused with the closest known one) and published as
docs/schema/supervisor-sim.schema.json.
"""

# No ``from __future__ import annotations``: the models' types are read as objects when a
# file is checked, and evaluating strings would cost more (supervisor_sim._typed_toml).

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from .._typed_toml import Deferred, ModelError, load

__all__ = [
    "DEFAULT_NAME",
    "DEFAULT_RUNS",
    "DEFAULT_STATE",
    "REFERENCE_RUNTIME",
    "ConfigError",
    "ConfigFile",
    "ProjectConfig",
    "load_project_config",
    "runtime_argv",
]

DEFAULT_NAME = "supervisor-sim.toml"
#: Where the stub's state and the transcripts go when neither a flag nor the file says.
DEFAULT_STATE = Path(".supervisor-sim") / "state.sqlite"
DEFAULT_RUNS = Path(".supervisor-sim") / "runs"
#: The reference runtime shipped in the package (``{reference_runtime}`` in a runtime command);
#: in a checkout the same files as runtimes/reference/.
REFERENCE_RUNTIME = Path(__file__).resolve().parents[1] / "_data" / "reference" / "runtime.py"


class ConfigError(Exception):
    """A config file that cannot be used; the message names the file and the key."""


# --- the file's format ------------------------------------------------------------------------

# Read once and dropped: only ``__init__`` is generated (``repr=False, eq=False``), since each
# generated method costs time when the command line is imported, --help included.


@dataclass(repr=False, eq=False)
class RuntimeSection:
    """The runtime that run-task, run-dag and parse start (--runtime overrides it)."""

    #: The command, a string (split as a shell would) or an array; --comm/--logs are appended.
    #: {python} is the interpreter running supervisor-sim, {reference_runtime} the reference
    #: runtime shipped with it; a relative script path is relative to this file.
    command: str | list[str] | None = None
    #: The runtime's working directory, relative to this file (default: the current one).
    cwd: str | None = None


@dataclass(repr=False, eq=False)
class StubSection:
    """The embedded Execution API."""

    #: The fixtures file seeded into the stub (docs/fixtures.md), relative to this file.
    fixtures: str | None = None
    #: The stub's SQLite state file, relative to this file, or ":memory:".
    state: str | None = None


@dataclass(repr=False, eq=False)
class TranscriptsSection:
    """Where transcripts are recorded."""

    #: The folder of the transcripts, relative to this file (default .supervisor-sim/runs).
    dir: str | None = None


@dataclass(repr=False, eq=False)
class WorkerSection:
    """`supervisor-sim worker`: the runtime of each queue and how a drain ends (flags override
    it: a --runtime-for replaces the file's command for its queue)."""

    #: Queue -> runtime command (a string split as a shell would, or an array), as
    #: --runtime-for QUEUE=CMD; queue "*" serves any queue without its own. Placeholders and
    #: relative paths as in [runtime] command.
    runtime_for: dict[str, str | list[str]] = field(default_factory=dict)
    #: The queues to take jobs from (--queues; default: the queues of runtime_for).
    queues: list[str] | None = None
    #: Seconds a drain (SIGTERM, SIGINT, a shutdown request) waits for the running tasks
    #: before it sends them SIGTERM; 0 waits for ever (Airflow's [edge] drain_timeout_sec;
    #: --drain-timeout).
    drain_timeout: float = 0.0
    #: Seconds after that SIGTERM before the tasks left are killed and the worker quits
    #: (Airflow's [edge] drain_kill_grace_sec; --drain-kill-grace).
    drain_kill_grace: float = 30.0

    def __post_init__(self) -> None:
        for name in ("drain_timeout", "drain_kill_grace"):
            value = getattr(self, name)
            if not 0 <= value < float("inf"):
                raise ValueError(f"{name} must be 0 or more seconds, not {value!r}")
        for queue, command in self.runtime_for.items():
            if not queue.strip():
                raise ValueError("runtime_for: a queue name may not be empty")
            if not (command.strip() if isinstance(command, str) else command):
                raise ValueError(f"runtime_for.{queue}: an empty command")
        if self.queues is not None and not [q for q in self.queues if q.strip()]:
            raise ValueError("queues: give at least one queue name, or leave the key out")


def _supervisor_model() -> type:
    # Imported only when [supervisor] has keys: --help and most runs never need it here.
    from ..supervision import SupervisorConfig

    return SupervisorConfig


@dataclass(repr=False, eq=False)
class ConfigFile:
    """supervisor-sim.toml: what run-task, run-dag and parse use when given no flags."""

    runtime: RuntimeSection = field(default_factory=RuntimeSection)
    stub: StubSection = field(default_factory=StubSection)
    #: Session settings, Airflow's defaults unless given (flags override them).
    supervisor: Annotated[dict[str, Any], Deferred(_supervisor_model)] = field(default_factory=dict)
    transcripts: TranscriptsSection = field(default_factory=TranscriptsSection)
    worker: WorkerSection = field(default_factory=WorkerSection)


# --- what the commands use --------------------------------------------------------------------


@dataclass
class ProjectConfig:
    path: Path | None = None
    runtime: list[str] = field(default_factory=list)
    runtime_cwd: str | None = None
    fixtures: Path | None = None
    state: Path | str | None = None
    runs_dir: Path | None = None
    #: The [supervisor] settings given in the file, checked against ``SupervisorConfig``.
    supervisor: dict[str, Any] = field(default_factory=dict)
    #: [worker]: queue -> runtime argv (expanded like ``runtime``), and the rest as given.
    worker_runtimes: dict[str, list[str]] = field(default_factory=dict)
    worker_queues: list[str] | None = None
    drain_timeout: float = 0.0
    drain_kill_grace: float = 30.0


def runtime_argv(command: str | list[str], base: Path | None = None) -> list[str]:
    """Split a runtime command and expand ``{python}`` and ``{reference_runtime}``; a relative
    script path stays relative to ``base`` when it exists there (so configs work from any
    working directory)."""
    if isinstance(command, str):
        try:
            argv = shlex.split(command)
        except ValueError as exc:  # an unbalanced quote
            raise ConfigError(
                f"the runtime command {command!r} cannot be split into arguments ({exc}); "
                "quote it as a POSIX shell would"
            ) from None
    else:
        argv = [str(a) for a in command]
    if not argv:
        raise ConfigError(
            f"the runtime command {command!r} is empty; give a program to run (or leave the "
            "option out to use [runtime] command in supervisor-sim.toml)"
        )
    out = []
    for arg in argv:
        arg = arg.replace("{python}", sys.executable)
        arg = arg.replace("{reference_runtime}", str(REFERENCE_RUNTIME))
        if (
            base is not None
            and not Path(arg).is_absolute()
            and (base / arg).exists()
            and (arg.endswith((".py", ".sh")) or "/" in arg)
        ):
            arg = str((base / arg).resolve())
        out.append(arg)
    return out


def load_project_config(path: Path | None, *, required: bool = False) -> ProjectConfig:
    """Read ``path`` (or ./supervisor-sim.toml when it exists); raise ``ConfigError`` with a
    one-line message naming the file, the key and what to do."""
    if path is None:
        candidate = Path.cwd() / DEFAULT_NAME
        if not candidate.exists():
            if required:
                raise ConfigError(
                    f"no {DEFAULT_NAME} in {Path.cwd()}; create one with `supervisor-sim init`"
                )
            return ProjectConfig()
        path = candidate
    import tomllib  # here: --help reads no config file

    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found; create it with `supervisor-sim init` "
            "or give another --config"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    try:
        file = load(ConfigFile, data)
    except ModelError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    base = path.resolve().parent
    cfg = ProjectConfig(path=path, supervisor=file.supervisor)
    if file.runtime.command is not None:
        try:
            cfg.runtime = runtime_argv(file.runtime.command, base)
        except ConfigError as exc:
            raise ConfigError(f"{path}: runtime.command: {exc}") from None
    if file.runtime.cwd is not None:
        cfg.runtime_cwd = str((base / file.runtime.cwd).resolve())
    if file.stub.fixtures is not None:
        cfg.fixtures = (base / file.stub.fixtures).resolve()
    if file.stub.state is not None:
        cfg.state = file.stub.state if file.stub.state == ":memory:" else base / file.stub.state
    if file.transcripts.dir is not None:
        cfg.runs_dir = base / file.transcripts.dir
    worker = file.worker
    for queue, command in worker.runtime_for.items():
        try:
            cfg.worker_runtimes[queue.strip()] = runtime_argv(command, base)
        except ConfigError as exc:  # a command string with broken quoting, or empty
            raise ConfigError(f"{path}: worker.runtime_for.{queue}: {exc}") from None
    if worker.queues is not None:
        cfg.worker_queues = [q.strip() for q in worker.queues if q.strip()]
    cfg.drain_timeout = worker.drain_timeout
    cfg.drain_kill_grace = worker.drain_kill_grace
    return cfg

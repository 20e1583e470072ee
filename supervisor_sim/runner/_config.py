"""``supervisor-sim.toml``: the runtime command, fixtures and supervisor settings of a project.

Looked up in the working directory (or given with ``--config``), so that in a checkout
``supervisor-sim run-task example_dag hello`` needs no flags. Relative paths in the file are
relative to the file; ``{python}`` in the runtime command is the interpreter running
supervisor-sim, so the bundled reference runtime finds msgpack wherever supervisor-sim was
installed.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_RUNS",
    "DEFAULT_STATE",
    "ConfigError",
    "ProjectConfig",
    "load_project_config",
    "runtime_argv",
]

DEFAULT_NAME = "supervisor-sim.toml"
#: Where the stub's state and the transcripts go when neither a flag nor the file says.
DEFAULT_STATE = Path(".supervisor-sim") / "state.sqlite"
DEFAULT_RUNS = Path(".supervisor-sim") / "runs"


class ConfigError(Exception):
    """A config file that cannot be used; the message names the file and the key."""


@dataclass
class ProjectConfig:
    path: Path | None = None
    runtime: list[str] = field(default_factory=list)
    runtime_cwd: str | None = None
    fixtures: Path | None = None
    state: Path | None = None
    runs_dir: Path | None = None
    supervisor: dict[str, Any] = field(default_factory=dict)


def runtime_argv(command: str | list[str], base: Path | None = None) -> list[str]:
    """Split a runtime command and expand ``{python}``; a relative script path stays relative
    to ``base`` when it exists there (so configs work from any working directory)."""
    argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    out = []
    for arg in argv:
        arg = arg.replace("{python}", sys.executable)
        if (
            base is not None
            and not Path(arg).is_absolute()
            and (base / arg).exists()
            and (arg.endswith((".py", ".sh")) or "/" in arg)
        ):
            arg = str((base / arg).resolve())
        out.append(arg)
    return out


def _supervisor_keys() -> set[str]:
    # Imported here: the supervision layer (trio, httpx, ...) is not needed to show --help.
    from ..supervision import SupervisorConfig

    return {f.name for f in fields(SupervisorConfig)}


def load_project_config(path: Path | None, *, required: bool = False) -> ProjectConfig:
    """Read ``path`` (or ./supervisor-sim.toml when it exists)."""
    if path is None:
        candidate = Path.cwd() / DEFAULT_NAME
        if not candidate.exists():
            if required:
                raise ConfigError(f"no {DEFAULT_NAME} in {Path.cwd()}")
            return ProjectConfig()
        path = candidate
    import tomllib  # here: --help reads no config file

    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    base = path.resolve().parent
    cfg = ProjectConfig(path=path)
    unknown = set(data) - {"runtime", "stub", "supervisor", "transcripts"}
    if unknown:
        raise ConfigError(
            f"{path}: unknown section(s) {', '.join(sorted(unknown))}; expected "
            "runtime, stub, supervisor, transcripts"
        )
    runtime = data.get("runtime", {})
    if "command" in runtime:
        if not isinstance(runtime["command"], str | list):
            raise ConfigError(f"{path}: runtime.command must be a string or a list of strings")
        cfg.runtime = runtime_argv(runtime["command"], base)
    if "cwd" in runtime:
        cfg.runtime_cwd = str((base / runtime["cwd"]).resolve())
    stub = data.get("stub", {})
    if "fixtures" in stub:
        cfg.fixtures = (base / stub["fixtures"]).resolve()
    if "state" in stub:
        cfg.state = stub["state"] if stub["state"] == ":memory:" else (base / stub["state"])
    transcripts = data.get("transcripts", {})
    if "dir" in transcripts:
        cfg.runs_dir = base / transcripts["dir"]
    sup = data.get("supervisor", {})
    known = _supervisor_keys() if sup else set()
    bad = set(sup) - known
    if bad:
        raise ConfigError(
            f"{path}: unknown supervisor setting(s) {', '.join(sorted(bad))}; "
            f"known: {', '.join(sorted(known))}"
        )
    cfg.supervisor = dict(sup)
    return cfg

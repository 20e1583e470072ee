"""What the commands' bodies share: usage errors, exit statuses, the project config,
supervisor settings, the log format and ``loading``.

Light on purpose: every command module imports it when ``--help`` is shown, so it imports
neither trio nor httpx nor the layers (the supervision layer only when a body asks).
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Iterator
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any

import click

from ..runner import ConfigError, ProjectConfig, load_project_config

if TYPE_CHECKING:
    from ..supervision import SupervisorConfig

__all__ = [
    "EXIT_DIVERGED",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_STARTED",
    "EXIT_SUCCESS",
    "EXIT_TASK_FAILED",
    "EXIT_USAGE",
    "UsageError",
    "loading",
    "log_format",
    "project_config",
    "supervisor_config",
]

EXIT_SUCCESS, EXIT_TASK_FAILED, EXIT_USAGE, EXIT_NOT_STARTED, EXIT_INTERNAL = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130
EXIT_DIVERGED = 1


class UsageError(click.UsageError):
    pass


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


def project_config(ctx: click.Context) -> ProjectConfig:
    try:
        return load_project_config(ctx.obj.get("config_path"))
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
    values.update({k: v for k, v in project.supervisor.items() if k in known})
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return replace(SupervisorConfig(), **values)
    except TypeError as exc:
        raise UsageError(f"bad supervisor setting: {exc}") from None


def log_format(fmt: str) -> str:
    """``--log-format``: ``auto`` is ``console`` on a terminal and ``json`` otherwise. Configures
    logging for the chosen format and returns it."""
    from ._console import configure_logging

    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    configure_logging(fmt)
    return fmt

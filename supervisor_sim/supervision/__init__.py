"""Supervising runtime children with trio: launch, connect back, serve, watch, report.

The names below load their module on first use (PEP 562): ``run-task`` imports ``_config`` and
``_process`` (standard library only) to start the runtime before trio and the layers are loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._config import SupervisorConfig as SupervisorConfig
    from ._dispatch import error_response as error_response
    from ._events import (
        Event as Event,
        Journal as Journal,
        Violation as Violation,
        journal_exchanges as journal_exchanges,
    )
    from ._logs import LEVELS as LEVELS
    from ._parse import (
        PARSE_REQUESTS as PARSE_REQUESTS,
        ParseSession as ParseSession,
        ParseSpec as ParseSpec,
    )
    from ._process import (
        Launch as Launch,
        StartupError as StartupError,
        start_runtime as start_runtime,
    )
    from ._session import (
        TaskOutcome as TaskOutcome,
        TaskSession as TaskSession,
        TaskSpec as TaskSpec,
    )

#: Where each public name lives.
_MODULES = {
    "PARSE_REQUESTS": "_parse",
    "Event": "_events",
    "Journal": "_events",
    "ParseSession": "_parse",
    "ParseSpec": "_parse",
    "StartupError": "_process",
    "SupervisorConfig": "_config",
    "TaskOutcome": "_session",
    "TaskSession": "_session",
    "TaskSpec": "_session",
    "Violation": "_events",
    "journal_exchanges": "_events",
    "error_response": "_dispatch",
    "LEVELS": "_logs",
    "Launch": "_process",
    "start_runtime": "_process",
}

__all__ = sorted(_MODULES)


__getattr__, __dir__ = lazy_exports(__name__, _MODULES)

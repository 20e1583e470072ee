"""Supervising runtime children with trio: launch, connect back, serve, watch, report.

The names below load their module on first use (PEP 562): ``run-task`` imports ``_config`` and
``_process`` (standard library only) to start the runtime before trio and the layers are loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._config import SupervisorConfig as SupervisorConfig
    from ._events import Event as Event
    from ._events import Journal as Journal
    from ._events import Violation as Violation
    from ._masking import SecretsMasker as SecretsMasker
    from ._parse import PARSE_REQUESTS as PARSE_REQUESTS
    from ._parse import ParseSession as ParseSession
    from ._parse import ParseSpec as ParseSpec
    from ._process import StartupError as StartupError
    from ._session import TaskOutcome as TaskOutcome
    from ._session import TaskSession as TaskSession
    from ._session import TaskSpec as TaskSpec

#: Where each public name lives.
_MODULES = {
    "PARSE_REQUESTS": "_parse",
    "Event": "_events",
    "Journal": "_events",
    "ParseSession": "_parse",
    "ParseSpec": "_parse",
    "SecretsMasker": "_masking",
    "StartupError": "_process",
    "SupervisorConfig": "_config",
    "TaskOutcome": "_session",
    "TaskSession": "_session",
    "TaskSpec": "_session",
    "Violation": "_events",
}

__all__ = sorted(_MODULES)


__getattr__, __dir__ = lazy_exports(__name__, _MODULES)

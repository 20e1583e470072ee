"""Supervising runtime children with trio: launch, connect back, serve, watch, report.

A ``Session`` supervises one child through one ``Workload`` — ``TaskSession`` a task try,
``ParseSession`` a DAG file parse — and ``SessionHooks`` are where it may depart from Airflow on
purpose. Every rule it reports a runtime for breaking is in ``RULES``.

The names below load their module on first use (PEP 562): ``run-task`` imports ``_config`` and
``_process`` (standard library only) to start the runtime before trio and the layers are loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._config import SupervisorConfig as SupervisorConfig
    from ._dispatch import Reply as Reply, error_response as error_response
    from ._events import (
        Event as Event,
        Journal as Journal,
        Violation as Violation,
        journal_exchanges as journal_exchanges,
    )
    from ._hooks import (
        RuntimeSpec as RuntimeSpec,
        SessionHooks as SessionHooks,
        StartFailed as StartFailed,
        Workload as Workload,
    )
    from ._logs import LEVELS as LEVELS
    from ._parse import (
        PARSE_REQUESTS as PARSE_REQUESTS,
        ParseSession as ParseSession,
        ParseSpec as ParseSpec,
        ParseWorkload as ParseWorkload,
    )
    from ._process import (
        Launch as Launch,
        StartupError as StartupError,
        start_runtime as start_runtime,
        tree_owned as tree_owned,
    )
    from ._session import (
        Session as Session,
        SessionFactory as SessionFactory,
        TaskOutcome as TaskOutcome,
    )
    from ._task import (
        TaskSession as TaskSession,
        TaskSpec as TaskSpec,
        TaskState as TaskState,
        TaskWorkload as TaskWorkload,
    )
    from ._violations import RULES as RULES, Rule as Rule, violation as violation

#: Where each public name lives.
_MODULES = {
    "LEVELS": "_logs",
    "PARSE_REQUESTS": "_parse",
    "RULES": "_violations",
    "Event": "_events",
    "Journal": "_events",
    "Launch": "_process",
    "ParseSession": "_parse",
    "ParseSpec": "_parse",
    "ParseWorkload": "_parse",
    "Reply": "_dispatch",
    "Rule": "_violations",
    "RuntimeSpec": "_hooks",
    "Session": "_session",
    "SessionFactory": "_session",
    "SessionHooks": "_hooks",
    "StartFailed": "_hooks",
    "StartupError": "_process",
    "SupervisorConfig": "_config",
    "TaskOutcome": "_session",
    "TaskSession": "_task",
    "TaskSpec": "_task",
    "TaskState": "_task",
    "TaskWorkload": "_task",
    "Violation": "_events",
    "Workload": "_hooks",
    "error_response": "_dispatch",
    "journal_exchanges": "_events",
    "start_runtime": "_process",
    "tree_owned": "_process",
    "violation": "_violations",
}

__all__ = sorted(_MODULES)


__getattr__, __dir__ = lazy_exports(__name__, _MODULES)

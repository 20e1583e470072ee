"""``supervisor-sim worker``: an Edge worker (apache-airflow-providers-edge3 5.1.0) that
supervises every job it takes with supervisor-sim's own sessions (docs/worker.md).

``EdgeWorker`` runs the loop (register, heartbeat, fetch, supervise, report, push logs) from
``WorkerSettings``; ``EdgeClient`` is the edge API over httpx, ``EdgeAPIError`` its one-line
errors; ``parse_runtime_for`` reads ``--runtime-for QUEUE=COMMAND``. The wire (paths, bodies,
the per-call JWT, the worker's state) is sans-IO in ``_protocol``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._lazy import lazy_exports

if TYPE_CHECKING:
    from ._client import EdgeAPIError as EdgeAPIError, EdgeClient as EdgeClient
    from ._protocol import (
        EdgeJob as EdgeJob,
        RuntimeForError as RuntimeForError,
        WorkerState as WorkerState,
        edge_base_url as edge_base_url,
        edge_token as edge_token,
        execution_url as execution_url,
        parse_runtime_for as parse_runtime_for,
    )
    from ._worker import (
        EdgeWorker as EdgeWorker,
        WorkerSettings as WorkerSettings,
        default_hostname as default_hostname,
        prune_transcripts as prune_transcripts,
    )

#: Where each public name lives (loaded on first use).
_MODULES = {
    "EdgeAPIError": "_client",
    "EdgeClient": "_client",
    "EdgeJob": "_protocol",
    "RuntimeForError": "_protocol",
    "WorkerState": "_protocol",
    "edge_base_url": "_protocol",
    "edge_token": "_protocol",
    "execution_url": "_protocol",
    "parse_runtime_for": "_protocol",
    "EdgeWorker": "_worker",
    "WorkerSettings": "_worker",
    "default_hostname": "_worker",
    "prune_transcripts": "_worker",
}

__all__ = sorted(_MODULES)

__getattr__, __dir__ = lazy_exports(__name__, _MODULES)

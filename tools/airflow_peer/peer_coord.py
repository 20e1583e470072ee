"""A coordinator for Airflow's own supervisor that runs one fixed ``--comm/--logs`` command.

Airflow's ``SubprocessCoordinator`` (airflow/sdk/coordinators/_subprocess.py) binds the two
listeners, appends ``--comm=127.0.0.1:P --logs=127.0.0.1:Q`` to the command, checks that both
connections come from the child's process tree, calls ``PATCH .../run`` and sends
``StartupDetails``: the same launcher contract supervisor-sim implements. Name it in Airflow's
config (real-airflow-peers.md Q4)::

    AIRFLOW__SDK__COORDINATORS='{"ref": {"classpath": "peer_coord.CommandCoordinator",
        "kwargs": {"command": ["python", "runtimes/reference/runtime.py"],
                   "schema_version": "2026-06-16"}}}'
    AIRFLOW__SDK__QUEUE_TO_COORDINATOR='{"ref-queue": "ref"}'

with this folder on PYTHONPATH; task instances whose queue is ``ref-queue`` then run that
command under Airflow's supervisor.
"""

from __future__ import annotations

import attrs
from airflow.sdk.coordinators._subprocess import SubprocessCoordinator


@attrs.define(kw_only=True)
class CommandCoordinator(SubprocessCoordinator):
    """Runs ``command`` for every task routed to it."""

    command: list[str]
    schema_version: str | None = None

    def _build_execute_task_command(self, *, what):
        return list(self.command), self.schema_version

"""Airflow's state vocabulary: every state a task instance or a DAG run can be in, and the sets
Airflow sorts them into (``airflow.utils.state`` and the Execution API's payload models).

The tuples keep Airflow's declaration order: pydantic lists an enum's values in that order in
its error messages, and the stub answers with those messages. A task instance with no state yet
is ``None`` in Airflow (the "null" state); it is not a member of any tuple here.
"""

from __future__ import annotations

__all__ = [
    "DAG_RUN_STATES",
    "FINISHED_DAG_RUN_STATES",
    "INTERMEDIATE_TI_STATES",
    "TERMINAL_NON_SUCCESS_TI_STATES",
    "TERMINAL_TI_STATES",
    "TI_STATES",
    "UNFINISHED_DAG_RUN_STATES",
]

#: ``TaskInstanceState``: every state a task instance can be in.
TI_STATES: tuple[str, ...] = (
    "removed",
    "scheduled",
    "queued",
    "running",
    "success",
    "restarting",
    "failed",
    "up_for_retry",
    "up_for_reschedule",
    "upstream_failed",
    "skipped",
    "deferred",
    "awaiting_input",
)
#: ``TerminalTIState``: the try is over and will not run again by itself.
TERMINAL_TI_STATES: tuple[str, ...] = ("success", "failed", "skipped", "upstream_failed", "removed")
#: ``TerminalStateNonSuccess`` of the Execution API: what ``TITerminalStatePayload`` takes.
TERMINAL_NON_SUCCESS_TI_STATES: tuple[str, ...] = (
    "failed",
    "skipped",
    "removed",
    "upstream_failed",
)
#: ``IntermediateTIState``: neither terminal nor running (waiting to run, or parked).
INTERMEDIATE_TI_STATES: tuple[str, ...] = (
    "scheduled",
    "queued",
    "restarting",
    "up_for_retry",
    "up_for_reschedule",
    "deferred",
    "awaiting_input",
)

#: ``DagRunState``: every state a DAG run can be in.
DAG_RUN_STATES: tuple[str, ...] = ("queued", "running", "success", "failed")
#: ``State.finished_dr_states``.
FINISHED_DAG_RUN_STATES: tuple[str, ...] = ("success", "failed")
#: ``State.unfinished_dr_states``.
UNFINISHED_DAG_RUN_STATES: tuple[str, ...] = ("queued", "running")

"""``--fault`` and ``[[faults]]``: the fault plan of a command, checked before anything starts,
and attached to the session's API and journal (docs/unhappy-paths.md)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import UsageError

if TYPE_CHECKING:
    from ..api import FaultPlan
    from ..supervision import Journal

__all__ = ["attach_fault_plan", "fault_plan"]


def fault_plan(
    specs: tuple[str, ...] | list[str], fixtures: Path | None = None, *, real_api: bool = False
) -> FaultPlan | None:
    """The plan of ``--fault`` specs and the fixtures file's ``[[faults]]`` tables, or None
    when there is none; a bad entry is a one-line ``UsageError`` naming it (exit 2)."""
    tables = _fixture_faults(fixtures) if fixtures is not None else []
    if not specs and not tables:
        return None
    from ..api import FaultPlan, FaultPlanError

    try:
        plan = FaultPlan.parse(specs, tables, source=str(fixtures) if fixtures else "")
        if real_api:
            plan.check_real()
    except FaultPlanError as exc:
        raise UsageError(str(exc)) from None
    return plan


def _fixture_faults(path: Path) -> list[dict[str, Any]]:
    try:
        doc = tomllib.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return []  # the fixtures loader reports an unreadable or invalid file
    faults = doc.get("faults", [])
    if not isinstance(faults, list) or not all(isinstance(t, dict) for t in faults):
        raise UsageError(f"{path}: faults must be an array of tables ([[faults]])")
    return faults


def attach_fault_plan(plan: FaultPlan | None, http: Any, journal: Journal, store: Any) -> None:
    """Give ``plan`` to the session's API (the stub's transport or a real server's client),
    the stub's store (for events) and the journal (a ``note`` record per fault applied)."""
    if plan is None:
        return
    plan.store = store
    http.fault_plan = plan

    def record(fault: dict[str, Any]) -> None:
        where = f" {fault['method']} {fault['path']}" if "method" in fault else ""
        when = f", {fault['when']}" if fault.get("when") else ""
        if fault["what"] == "outcome":
            # What came of a call an injected fault hit, once the client's retries are over.
            journal.emit(
                "note",
                level="info" if fault.get("outcome") == "answered" else "warning",
                message=f"outcome of{where} ({fault['rule']}{when}): {fault['why']}",
                fault_outcome=fault,  # not a fault applied: what came of one
            )
            return
        journal.emit(
            "note",
            level="warning",
            message=f"injected {fault['what']}{where} ({fault['rule']}{when}): {fault['why']}",
            fault=fault,
        )

    plan.on_record = record
    plan.start()

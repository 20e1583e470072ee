"""JSON renderings several routes return."""

from __future__ import annotations

import json
from typing import Any

from ..store import api_time

__all__ = ["dag_run_body", "loads"]


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def dag_run_body(run: dict[str, Any]) -> dict[str, Any]:
    """The ``DagRun`` model of version 2026-06-30, every key present (extra keys are fatal)."""
    return {
        "dag_id": run["dag_id"],
        "run_id": run["run_id"],
        "logical_date": api_time(run["logical_date"]),
        "data_interval_start": api_time(run["data_interval_start"]),
        "data_interval_end": api_time(run["data_interval_end"]),
        "run_after": api_time(run["run_after"]),
        "start_date": api_time(run["start_date"]),
        "end_date": api_time(run["end_date"]),
        "clear_number": run["clear_number"],
        "run_type": run["run_type"],
        "state": run["state"],
        "conf": loads(run["conf"]),
        "triggering_user_name": run["triggering_user_name"],
        "consumed_asset_events": [],
        "partition_key": run["partition_key"],
        "partition_date": None,
        "note": run["note"],
        "team_name": None,
    }

"""The ``hitl_details`` table: Human-in-the-loop requests of a TI and their responses."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ._common import db_time, json_or_none, loads
from ._database import Database

__all__ = ["SCHEMA", "HITLDetails"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS hitl_details (
    ti_id TEXT PRIMARY KEY, options TEXT NOT NULL, subject TEXT NOT NULL, body TEXT,
    defaults TEXT, multiple INTEGER, params TEXT NOT NULL, assignees TEXT,
    created_at TEXT NOT NULL, responded_at TEXT, responded_by TEXT, chosen_options TEXT,
    params_input TEXT NOT NULL DEFAULT '{}'
);
"""


class HITLDetails:
    def __init__(self, db: Database) -> None:
        self._db = db

    def upsert(self, ti_id: str, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
        """``POST /hitlDetails/{id}``: create the request part once; a later call returns it,
        dropping any response already received. Returns the ``HITLDetailRequest``."""
        with self._db.tx() as db:
            row = db.execute("SELECT * FROM hitl_details WHERE ti_id = ?", (ti_id,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO hitl_details (ti_id, options, subject, body, defaults, multiple,"
                    " params, assignees, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        ti_id,
                        json.dumps(payload["options"]),
                        payload["subject"],
                        payload.get("body"),
                        json_or_none(payload.get("defaults")),
                        int(payload.get("multiple", False)),
                        json.dumps(payload.get("params", {})),
                        json_or_none(payload.get("assigned_users") or None),
                        db_time(now),
                    ),
                )
            elif row["responded_at"] is not None:
                db.execute(
                    "UPDATE hitl_details SET responded_by = NULL, responded_at = NULL,"
                    " chosen_options = NULL, params_input = '{}' WHERE ti_id = ?",
                    (ti_id,),
                )
            row = db.execute("SELECT * FROM hitl_details WHERE ti_id = ?", (ti_id,)).fetchone()
        return {
            "ti_id": ti_id,
            "options": json.loads(row["options"]),
            "subject": row["subject"],
            "body": row["body"],
            "defaults": loads(row["defaults"]),
            "multiple": bool(row["multiple"]),
            "params": json.loads(row["params"]),
            "assigned_users": loads(row["assignees"]) or [],
        }

    def respond(
        self, ti_id: str, chosen_options: list[str], params_input: dict[str, Any], at: str
    ) -> None:
        """``PATCH /hitlDetails/{id}``: record the response (by nobody: the API has no user)."""
        with self._db.tx() as db:
            db.execute(
                "UPDATE hitl_details SET responded_by = NULL, responded_at = ?,"
                " chosen_options = ?, params_input = ? WHERE ti_id = ?",
                (at, json.dumps(chosen_options), json.dumps(params_input), ti_id),
            )

    def get(self, ti_id: str) -> dict[str, Any] | None:
        row = self._db.one("SELECT * FROM hitl_details WHERE ti_id = ?", (ti_id,))
        return dict(row) if row else None

"""The state-store tables: ``task_state_store`` (values scoped to a TI's DAG, run, task and map
index, so they survive a retry's new TI id) and ``asset_state_store`` (values per asset)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ._common import db_time, opt_time
from ._database import Database

__all__ = ["SCHEMA", "StateStores"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS task_state_store (
    dag_id TEXT NOT NULL, run_id TEXT NOT NULL, task_id TEXT NOT NULL,
    map_index INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, expires_at TEXT,
    updated_at TEXT NOT NULL, PRIMARY KEY (dag_id, run_id, task_id, map_index, key)
);
CREATE TABLE IF NOT EXISTS asset_state_store (
    asset_id INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    updated_at TEXT NOT NULL, PRIMARY KEY (asset_id, key)
);
"""


class StateStores:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- task state store (scope: the TI's dag, run, task and map index) ----------------------

    def get_task(self, scope: tuple[str, str, str, int], key: str, now: datetime) -> Any:
        """The stored JSON text, or None when missing or expired.

        Airflow deletes expired rows in a periodic cleanup; the stub reads as if it had just run.
        """
        row = self._db.one(
            "SELECT value, expires_at FROM task_state_store WHERE dag_id = ? AND run_id = ?"
            " AND task_id = ? AND map_index = ? AND key = ?",
            (*scope, key),
        )
        if row is None or (row["expires_at"] is not None and row["expires_at"] < db_time(now)):
            return None
        return row["value"]

    def set_task(
        self,
        scope: tuple[str, str, str, int],
        key: str,
        value_json: str,
        expires_at: datetime | None,
        now: datetime,
    ) -> None:
        with self._db.tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO task_state_store (dag_id, run_id, task_id, map_index, key,"
                " value, expires_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (*scope, key, value_json, opt_time(expires_at), db_time(now)),
            )

    def delete_task(self, scope: tuple[str, str, str, int], key: str | None = None) -> None:
        """Delete one key, or with ``key=None`` every key of the scope."""
        sql = (
            "DELETE FROM task_state_store WHERE dag_id = ? AND run_id = ? AND task_id = ?"
            " AND map_index = ?"
        )
        args: tuple[Any, ...] = scope
        if key is not None:
            sql, args = sql + " AND key = ?", (*scope, key)
        with self._db.tx() as db:
            db.execute(sql, args)

    # -- asset state store -------------------------------------------------------------------

    def get_asset(self, asset_id: int, key: str) -> str | None:
        row = self._db.one(
            "SELECT value FROM asset_state_store WHERE asset_id = ? AND key = ?", (asset_id, key)
        )
        return row["value"] if row else None

    def set_asset(self, asset_id: int, key: str, value_json: str, now: datetime) -> None:
        with self._db.tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO asset_state_store (asset_id, key, value, updated_at)"
                " VALUES (?, ?, ?, ?)",
                (asset_id, key, value_json, db_time(now)),
            )

    def delete_asset(self, asset_id: int, key: str | None = None) -> None:
        """Delete one key, or with ``key=None`` every key of the asset."""
        sql = "DELETE FROM asset_state_store WHERE asset_id = ?"
        args: tuple[Any, ...] = (asset_id,)
        if key is not None:
            sql, args = sql + " AND key = ?", (asset_id, key)
        with self._db.tx() as db:
            db.execute(sql, args)

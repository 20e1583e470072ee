"""The ``xcoms`` table: values by (DAG, run, task, key, map index), with Airflow's orderings."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from .._fixtures import Fixtures
from ._common import db_time, fixture_changed, json_or_none
from ._database import Database

__all__ = ["SCHEMA", "XComs", "seed"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS xcoms (
    dag_id TEXT NOT NULL, run_id TEXT NOT NULL, task_id TEXT NOT NULL, map_index INTEGER NOT NULL,
    key TEXT NOT NULL, value TEXT, timestamp TEXT NOT NULL,
    PRIMARY KEY (dag_id, run_id, task_id, key, map_index)
);
"""


def seed(db: sqlite3.Connection, fixtures: Fixtures, now: str) -> None:
    for x in fixtures.xcoms:
        ident = json.dumps([x.dag_id, x.run_id, x.task_id, x.key, x.map_index])
        if fixture_changed(db, "xcom", ident, x):
            db.execute(
                "INSERT OR REPLACE INTO xcoms (dag_id, run_id, task_id, map_index, key, value,"
                " timestamp) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (x.dag_id, x.run_id, x.task_id, x.map_index, x.key, json_or_none(x.value), now),
            )


class XComs:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1) -> Any:
        """The decoded value of one XCom, or None when there is none."""
        row = self._db.one(
            "SELECT value FROM xcoms WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = ?"
            " AND map_index = ?",
            (dag_id, run_id, task_id, key, map_index),
        )
        return json.loads(row["value"]) if row and row["value"] is not None else None

    def rows(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        key: str,
        *,
        map_index: int | None = None,
        include_prior_dates: bool = False,
    ) -> list[tuple[int, str | None]]:
        """``(map_index, JSON text)`` rows ordered by map index.

        With ``include_prior_dates`` the rows of earlier runs of the DAG (by logical date, or
        run_after when there is none) come too, newest run first for each map index, as
        Airflow's ``XComModel.get_many`` orders them.
        """
        sql = (
            "SELECT x.map_index, x.value FROM xcoms x"
            " LEFT JOIN dag_runs r ON r.dag_id = x.dag_id AND r.run_id = x.run_id"
            " WHERE x.dag_id = ? AND x.task_id = ? AND x.key = ?"
        )
        args: list[Any] = [dag_id, task_id, key]
        run = None
        if include_prior_dates:
            run = self._db.one(
                "SELECT logical_date, run_after FROM dag_runs WHERE dag_id = ? AND run_id = ?",
                (dag_id, run_id),
            )
        if run is not None:
            sql += " AND coalesce(r.logical_date, r.run_after) <= ?"
            args.append(run["logical_date"] or run["run_after"])
        else:
            sql += " AND x.run_id = ?"
            args.append(run_id)
        if map_index is not None:
            sql += " AND x.map_index = ?"
            args.append(map_index)
        sql += " ORDER BY x.map_index, coalesce(r.logical_date, r.run_after) DESC, x.timestamp DESC"
        return [(r[0], r[1]) for r in self._db.all(sql, tuple(args))]

    def keys_for(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> list[str]:
        """Keys of the XComs a new try must clear (all map indexes unless ``map_index`` >= 0)."""
        sql = "SELECT key FROM xcoms WHERE dag_id = ? AND run_id = ? AND task_id = ?"
        args: tuple[Any, ...] = (dag_id, run_id, task_id)
        if map_index >= 0:
            sql, args = sql + " AND map_index = ?", (*args, map_index)
        return [r["key"] for r in self._db.all(sql + " ORDER BY key, map_index", args)]

    def set(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        key: str,
        value_json: str,
        map_index: int,
        now: datetime,
    ) -> None:
        with self._db.tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO xcoms (dag_id, run_id, task_id, map_index, key, value,"
                " timestamp) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (dag_id, run_id, task_id, map_index, key, value_json, db_time(now)),
            )

    def delete(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int) -> None:
        with self._db.tx() as db:
            db.execute(
                "DELETE FROM xcoms WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = ?"
                " AND map_index = ?",
                (dag_id, run_id, task_id, key, map_index),
            )

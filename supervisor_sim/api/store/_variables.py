"""The ``variables`` and ``connections`` tables."""

from __future__ import annotations

import sqlite3
from typing import Any

from .._fixtures import Fixtures
from ._common import fixture_changed
from ._database import Database

__all__ = ["SCHEMA", "Connections", "Variables", "seed"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS variables (
    key TEXT PRIMARY KEY, value TEXT, description TEXT
);
CREATE TABLE IF NOT EXISTS connections (
    conn_id TEXT PRIMARY KEY, conn_type TEXT NOT NULL, host TEXT, schema TEXT, login TEXT,
    password TEXT, port INTEGER, extra TEXT
);
"""


def seed(db: sqlite3.Connection, fixtures: Fixtures) -> None:
    for key, var in fixtures.variables.items():
        if fixture_changed(db, "variable", key, var):
            db.execute(
                "INSERT OR REPLACE INTO variables (key, value, description) VALUES (?, ?, ?)",
                (key, var.value, var.description),
            )
    for conn_id, c in fixtures.connections.items():
        if fixture_changed(db, "connection", conn_id, c):
            db.execute(
                "INSERT OR REPLACE INTO connections (conn_id, conn_type, host, schema, login,"
                " password, port, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (conn_id, c.conn_type, c.host, c.schema, c.login, c.password, c.port, c.extra),
            )


class Variables:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, key: str) -> str | None:
        row = self._db.one("SELECT value FROM variables WHERE key = ?", (key,))
        return row["value"] if row else None

    def lookup(self, key: str) -> tuple[bool, str | None]:
        """(exists, value) in one query."""
        row = self._db.one("SELECT value FROM variables WHERE key = ?", (key,))
        return (True, row["value"]) if row else (False, None)

    def set(self, key: str, value: str | None, description: str | None = None) -> None:
        with self._db.tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO variables (key, value, description) VALUES (?, ?, ?)",
                (key, value, description),
            )

    def delete(self, key: str) -> None:
        with self._db.tx() as db:
            db.execute("DELETE FROM variables WHERE key = ?", (key,))

    def keys(
        self, prefix: str | None = None, limit: int = 1000, offset: int = 0
    ) -> tuple[list[str], int]:
        """A page of variable keys in key order and the total count matching ``prefix``."""
        where, args = "", []
        if prefix is not None:
            # substr, not LIKE: a prefix is literal (Airflow escapes % and _ the same way).
            where, args = " WHERE substr(key, 1, ?) = ?", [len(prefix), prefix]
        total = self._db.one(f"SELECT COUNT(*) FROM variables{where}", tuple(args))
        rows = self._db.all(
            f"SELECT key FROM variables{where} ORDER BY key LIMIT ? OFFSET ?",
            (*args, limit, offset),
        )
        return [r["key"] for r in rows], total[0] if total else 0


class Connections:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, conn_id: str) -> dict[str, Any] | None:
        row = self._db.one(
            "SELECT conn_id, conn_type, host, schema, login, password, port, extra"
            " FROM connections WHERE conn_id = ?",
            (conn_id,),
        )
        return dict(row) if row else None

"""The ``variables`` and ``connections`` tables."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
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


class _ReadCache:
    """Rows read by key, kept while ``Database.generation()`` says nothing was written since:
    any write of this process (through any part, or straight SQL on the connection) or, for a
    file, a commit by any other connection or process sharing it empties the cache before the
    next read is answered from it. A bounded dict; a miss reads SQLite."""

    __slots__ = ("_db", "_generation", "_rows")

    def __init__(self, db: Database) -> None:
        self._db = db
        self._generation: object = None
        self._rows: dict[str, Any] = {}

    def get(self, key: str, read: Callable[[str], Any]) -> Any:
        generation = self._db.generation()
        rows = self._rows
        if generation != self._generation:
            rows.clear()
            self._generation = generation
        elif key in rows:
            return rows[key]
        value = read(key)
        if len(rows) >= 1024:
            rows.clear()
        # The generation again: the read itself may not change it, but a write between the two
        # calls (another thread sharing the store) must not leave this value cached as current.
        if self._db.generation() == generation:
            rows[key] = value
        return value


class Variables:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._cache = _ReadCache(db)

    def get(self, key: str) -> str | None:
        return self.lookup(key)[1]

    def lookup(self, key: str) -> tuple[bool, str | None]:
        """(exists, value): from the read cache while nothing was written, else one query."""
        return self._cache.get(key, self._read)

    def _read(self, key: str) -> tuple[bool, str | None]:
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
        self._cache = _ReadCache(db)

    def get(self, conn_id: str) -> dict[str, Any] | None:
        """The connection's row as a dict (a copy: the caller may change it), or None."""
        row = self._cache.get(conn_id, self._read)
        return dict(row) if row is not None else None

    def _read(self, conn_id: str) -> dict[str, Any] | None:
        row = self._db.one(
            "SELECT conn_id, conn_type, host, schema, login, password, port, extra"
            " FROM connections WHERE conn_id = ?",
            (conn_id,),
        )
        return dict(row) if row else None

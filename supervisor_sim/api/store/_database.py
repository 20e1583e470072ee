"""The store's one SQLite connection: opening (owner-only file, WAL), the schema every table
module declares, migrations, and short transactions.

Every write is one short ``BEGIN IMMEDIATE`` transaction: two processes may share the file, and
SQLite's busy timeout serialises them. One lock guards the connection within the process (the
stub is called from one trio thread, but tests and tools may share a store across threads).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA_VERSION", "Database"]

SCHEMA_VERSION = 1

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS fixture_seeds (
    kind TEXT NOT NULL, ident TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (kind, ident)
);
"""

#: Future schema changes: version -> SQL that upgrades from version - 1. New tables need no
#: migration: every ``CREATE TABLE IF NOT EXISTS`` runs on open, so old files simply gain them.
_MIGRATIONS: dict[int, str] = {}


class Database:
    """One SQLite connection (autocommit; transactions are explicit) and its lock."""

    def __init__(self, path: str, schemas: Iterable[str]) -> None:
        self.path = path
        if path != ":memory:":
            _create_private_file(Path(path))
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(
            path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self.conn.row_factory = sqlite3.Row
        if path != ":memory:":
            self.conn.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: durable across process exits, no fsync per commit (hot path).
            self.conn.execute("PRAGMA synchronous=NORMAL")
        self._migrate(_BOOKKEEPING + "".join(schemas))

    def _migrate(self, schema: str) -> None:
        with self.tx() as db:
            # One statement at a time: executescript() would COMMIT our transaction.
            for statement in schema.split(";"):
                if statement.strip():
                    db.execute(statement)
            row = db.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
                return
            version = row[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path}: state file has schema version {version}, newer than this "
                    f"supervisor-sim understands ({SCHEMA_VERSION}); use a newer version or "
                    "another state file"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction; IMMEDIATE so concurrent writers queue, not deadlock."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def one(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        with self.lock:
            return self.conn.execute(sql, args).fetchone()

    def all(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self.conn.execute(sql, args).fetchall()

    def close(self) -> None:
        with self.lock:
            self.conn.close()


def _create_private_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Connection passwords live here: owner-only from the first byte. SQLite gives its
        # -wal/-shm files the same mode as the database file.
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)

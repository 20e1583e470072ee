"""The store's one SQLite connection: opening (owner-only file, WAL), the schema every table
module declares, migrations, and short transactions.

Every write is one short ``BEGIN IMMEDIATE`` transaction: two processes may share the file, and
SQLite's busy timeout serialises them. One lock guards the connection within the process (the
stub is called from one trio thread, but tests and tools may share a store across threads).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA_VERSION", "Database", "StateFileError"]

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


#: What to do about a state file that is not one, or is damaged.
_REPLACE = "delete it (the stub starts a new one from the fixtures) or give another --state"


class StateFileError(Exception):
    """The state file cannot be used: it cannot be created or opened, is not a state file, is
    damaged, or is newer than this version. The message names the file, what is wrong and
    what to do, on one line."""

    def __init__(self, path: str, problem: str, fix: str = _REPLACE) -> None:
        super().__init__(f"the stub's state file cannot be used: {path} {problem}; {fix}")
        self.path = path


class Database:
    """One SQLite connection (autocommit; transactions are explicit) and its lock.

    A file is owner-only (``0600``: connection passwords live in it) whether it is created or
    already existed, and is checked before use: a file that is not an SQLite database, or is
    shorter than its own header says, raises ``StateFileError`` rather than failing somewhere
    in a run; so does any SQLite error while it is opened and migrated."""

    def __init__(self, path: str, schemas: Iterable[str]) -> None:
        self.path = path
        if path != ":memory:":
            _create_private_file(Path(path))
            problem = _damage(Path(path))
            if problem is not None:
                raise StateFileError(path, problem)
        self.lock = threading.RLock()
        try:
            self.conn = sqlite3.connect(
                path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise _state_error(path, exc) from None
        try:
            self.conn.row_factory = sqlite3.Row
            if path != ":memory:":
                self.conn.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL: durable across process exits, no fsync per commit (hot path).
                self.conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate(_BOOKKEEPING + "".join(schemas))
        except sqlite3.Error as exc:
            self.conn.close()
            raise _state_error(path, exc) from None
        except BaseException:
            self.conn.close()
            raise

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
                raise StateFileError(
                    self.path,
                    f"has schema version {version}, newer than this supervisor-sim "
                    f"understands ({SCHEMA_VERSION})",
                    "use a newer supervisor-sim, or give another --state",
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

    def generation(self) -> object:
        """A value that changes whenever the database may have changed: a write by this
        connection (any statement: ``total_changes``), and for a file a commit by any other
        connection or process (``PRAGMA data_version``). Read caches compare it on every hit.
        A ``:memory:`` database has no other connection, so the count alone tells."""
        conn = self.conn
        if self.path == ":memory:":
            return conn.total_changes
        with self.lock:
            return conn.total_changes, conn.execute("PRAGMA data_version").fetchone()[0]

    def one(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        with self.lock:
            return self.conn.execute(sql, args).fetchone()

    def all(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self.conn.execute(sql, args).fetchall()

    def close(self) -> None:
        with self.lock:
            self.conn.close()


def _state_error(path: str, exc: sqlite3.Error) -> StateFileError:
    """The ``StateFileError`` for an SQLite error met while opening ``path``."""
    if isinstance(exc, sqlite3.OperationalError):
        # Not the file's content: its folder, its permissions, the disk, another process.
        if "locked" in str(exc):
            fix = "another process holds it; try again, or give another --state"
        else:
            fix = (
                "check that the file and its folder are writable and the disk has space, "
                "or give another --state"
            )
        return StateFileError(path, f"cannot be opened ({exc})", fix)
    return StateFileError(path, f"is damaged ({exc})")


def _create_private_file(path: Path) -> None:
    """Create ``path`` if needed; either way make it, and the -wal/-shm files SQLite keeps
    beside it, owner-only. Connection passwords live here: private from the first byte, and
    a file someone made world-readable before is made private before anything is written."""
    fix = "check that its folder is writable, or give another --state (:memory: keeps nothing)"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    except OSError as exc:
        raise StateFileError(str(path), f"cannot be opened ({exc.strerror or exc})", fix) from None
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):  # not /dev/null: nothing there to protect
            os.fchmod(fd, 0o600)
        for extra in ("-wal", "-shm"):
            try:
                os.chmod(f"{path}{extra}", 0o600)
            except FileNotFoundError:
                pass
    except OSError as exc:
        raise StateFileError(
            str(path),
            f"cannot be made owner-only, 0600 ({exc.strerror or exc})",
            "give a --state file of your own",
        ) from None
    finally:
        os.close(fd)


#: An SQLite file begins with this (https://www.sqlite.org/fileformat.html, "header").
_MAGIC = b"SQLite format 3\x00"


def _damage(path: Path) -> str | None:
    """What is wrong with the SQLite file at ``path`` that its header shows (reading 100
    bytes, not the database): not an SQLite file, or shorter than the pages its header counts
    (a truncated copy). None when it looks whole, or is empty (a new file)."""
    try:
        with open(path, "rb") as f:
            header = f.read(100)
            size = os.fstat(f.fileno()).st_size
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if size == 0:
        return None
    if len(header) < 100 or not header.startswith(_MAGIC):
        return "is not an SQLite database"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The page count is valid when the "version valid for" number matches the change counter.
    counted = header[24:28] == header[92:96] and pages > 0
    try:
        wal = os.path.getsize(f"{path}-wal")
    except OSError:
        wal = 0
    # With a WAL to replay, the file may legitimately lag its newest header.
    if counted and not wal and size < pages * page_size:
        return (
            f"is truncated (its header counts {pages} pages of {page_size} bytes, "
            f"the file has {size} bytes)"
        )
    return None

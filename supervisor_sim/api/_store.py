"""The stub's state: an SQLite file shaped like the slice of Airflow's metadata DB the Execution
API touches (variables, connections, XComs, DAG runs, task instances and their history; DAGs,
assets, asset events, state stores and HITL details live in ``_store_meta.py``).

It persists between processes, so ``run-task a`` then ``run-task b`` can pass an XCom. Every
write is one short ``BEGIN IMMEDIATE`` transaction: two processes may share the file, and SQLite's
busy timeout serialises them. HTTP semantics live in ``_stub.py``; this module only knows rows.

Datetimes are stored as fixed-width UTC text (``2026-01-01T00:00:00.000000Z``) so that text order
is time order; ``api_time`` renders them the way pydantic does on the wire.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ._fixtures import DagRunFixture, Fixtures
from ._store_common import (
    api_time,
    dag_version_id,
    db_time,
    fixture_changed,
    json_or_none,
    opt_time,
    utcnow,
    uuid7,
)
from ._store_meta import META_SCHEMA, MetadataStore

__all__ = ["StubStore", "TaskInstanceRecord", "api_time", "db_time", "utcnow", "uuid7"]

SCHEMA_VERSION = 1

#: States whose try is kept as-is in history; any other state is archived as ``failed``, as
#: Airflow's ``TaskInstanceHistory.record_ti`` does for tries that did not finish.
FINISHED_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
#: States a TI resumes from with the same id and try (Airflow does not count a new try).
RESUME_STATES = frozenset({"deferred", "awaiting_input", "up_for_reschedule"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS variables (
    key TEXT PRIMARY KEY, value TEXT, description TEXT
);
CREATE TABLE IF NOT EXISTS connections (
    conn_id TEXT PRIMARY KEY, conn_type TEXT NOT NULL, host TEXT, schema TEXT, login TEXT,
    password TEXT, port INTEGER, extra TEXT
);
CREATE TABLE IF NOT EXISTS xcoms (
    dag_id TEXT NOT NULL, run_id TEXT NOT NULL, task_id TEXT NOT NULL, map_index INTEGER NOT NULL,
    key TEXT NOT NULL, value TEXT, timestamp TEXT NOT NULL,
    PRIMARY KEY (dag_id, run_id, task_id, key, map_index)
);
CREATE TABLE IF NOT EXISTS dag_runs (
    dag_id TEXT NOT NULL, run_id TEXT NOT NULL, logical_date TEXT, data_interval_start TEXT,
    data_interval_end TEXT, run_after TEXT NOT NULL, start_date TEXT, end_date TEXT,
    clear_number INTEGER NOT NULL DEFAULT 0, run_type TEXT NOT NULL, state TEXT NOT NULL,
    conf TEXT, triggering_user_name TEXT, partition_key TEXT, note TEXT,
    PRIMARY KEY (dag_id, run_id)
);
CREATE TABLE IF NOT EXISTS dag_run_defaults (
    dag_id TEXT PRIMARY KEY, run_id TEXT, conf TEXT, logical_date TEXT,
    data_interval_start TEXT, data_interval_end TEXT, run_type TEXT NOT NULL,
    triggering_user_name TEXT, partition_key TEXT, note TEXT
);
CREATE TABLE IF NOT EXISTS task_instances (
    id TEXT PRIMARY KEY, dag_id TEXT NOT NULL, task_id TEXT NOT NULL, run_id TEXT NOT NULL,
    map_index INTEGER NOT NULL DEFAULT -1, try_number INTEGER NOT NULL DEFAULT 0,
    max_tries INTEGER NOT NULL DEFAULT 0, state TEXT, hostname TEXT, unixname TEXT, pid INTEGER,
    start_date TEXT, end_date TEXT, last_heartbeat_at TEXT, queue TEXT, rendered_map_index TEXT,
    dag_version_id TEXT NOT NULL, next_method TEXT, next_kwargs TEXT,
    retry_delay_seconds REAL, retry_reason TEXT, trigger_classpath TEXT, trigger_kwargs TEXT,
    trigger_timeout TEXT,
    UNIQUE (dag_id, run_id, task_id, map_index)
);
CREATE TABLE IF NOT EXISTS ti_history (
    id TEXT PRIMARY KEY, dag_id TEXT NOT NULL, task_id TEXT NOT NULL, run_id TEXT NOT NULL,
    map_index INTEGER NOT NULL, try_number INTEGER NOT NULL, state TEXT, hostname TEXT,
    start_date TEXT, end_date TEXT
);
CREATE TABLE IF NOT EXISTS rtif (ti_id TEXT PRIMARY KEY, fields TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS task_reschedules (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ti_id TEXT NOT NULL, try_number INTEGER,
    start_date TEXT NOT NULL, end_date TEXT, reschedule_date TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS task_reschedules_ti ON task_reschedules (ti_id);
CREATE TABLE IF NOT EXISTS fixture_seeds (
    kind TEXT NOT NULL, ident TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (kind, ident)
);
"""

#: Future schema changes: version -> SQL that upgrades from version - 1. New tables need no
#: migration: every ``CREATE TABLE IF NOT EXISTS`` runs on open, so old files simply gain them.
_MIGRATIONS: dict[int, str] = {}


@dataclass(frozen=True)
class TaskInstanceRecord:
    """One try of a task instance, as ``prepare_task_instance`` left it."""

    id: str
    dag_id: str
    task_id: str
    run_id: str
    map_index: int
    try_number: int
    max_tries: int
    dag_version_id: str
    queue: str
    state: str


def ti_wire(record: TaskInstanceRecord) -> dict[str, Any]:
    """The TaskInstance that StartupDetails carries for ``record``'s try: the one place this
    dict is built, for every command, the check kit and ``supervisor_sim.testing``."""
    return {
        "id": record.id,
        "task_id": record.task_id,
        "dag_id": record.dag_id,
        "run_id": record.run_id,
        "try_number": record.try_number,
        "dag_version_id": record.dag_version_id,
        "map_index": record.map_index,
        "queue": record.queue,
    }


class StubStore(MetadataStore):
    """SQLite-backed state of the embedded Execution API stub."""

    def __init__(self, path: str | os.PathLike[str] = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            self._create_private_file(Path(self.path))
        self._lock = threading.RLock()
        # Autocommit mode: transactions are opened explicitly (BEGIN IMMEDIATE) by _tx.
        self._db = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._db.row_factory = sqlite3.Row
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: durable across process exits, no fsync per commit (hot path).
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    @staticmethod
    def _create_private_file(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            # Connection passwords live here: owner-only from the first byte. SQLite gives
            # its -wal/-shm files the same mode as the database file.
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
            os.chmod(path, 0o600)

    def _migrate(self) -> None:
        with self._tx() as db:
            # One statement at a time: executescript() would COMMIT our transaction.
            for statement in (_SCHEMA + META_SCHEMA).split(";"):
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
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction; IMMEDIATE so concurrent writers queue, not deadlock."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> StubStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- fixtures ----------------------------------------------------------------------------

    def seed(self, fixtures: Fixtures) -> None:
        """Write what the fixtures name: variables, connections, XComs, DAG-run defaults, DAGs,
        assets, aliases, asset events and existing runs with their task instances.

        An entry is written when it is new or has changed since it was last seeded; otherwise
        the stored row is left alone, so what tasks wrote (an XCom pushed over a seeded one, a
        variable they set or deleted) survives the re-seed every ``run-task`` does. Re-seeding
        the same fixtures is a no-op and never duplicates rows.
        """
        now = db_time(utcnow())
        with self._tx() as db:
            for key, var in fixtures.variables.items():
                if not fixture_changed(db, "variable", key, var):
                    continue
                db.execute(
                    "INSERT OR REPLACE INTO variables (key, value, description) VALUES (?, ?, ?)",
                    (key, var.value, var.description),
                )
            for conn_id, c in fixtures.connections.items():
                if not fixture_changed(db, "connection", conn_id, c):
                    continue
                db.execute(
                    "INSERT OR REPLACE INTO connections (conn_id, conn_type, host, schema, login,"
                    " password, port, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (conn_id, c.conn_type, c.host, c.schema, c.login, c.password, c.port, c.extra),
                )
            for x in fixtures.xcoms:
                ident = json.dumps([x.dag_id, x.run_id, x.task_id, x.key, x.map_index])
                if not fixture_changed(db, "xcom", ident, x):
                    continue
                db.execute(
                    "INSERT OR REPLACE INTO xcoms (dag_id, run_id, task_id, map_index, key, value,"
                    " timestamp) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        x.dag_id,
                        x.run_id,
                        x.task_id,
                        x.map_index,
                        x.key,
                        json_or_none(x.value),
                        now,
                    ),
                )
            for run in fixtures.dag_runs.values():
                self._seed_dag_run(db, run, now)
            self._seed_metadata(db, fixtures, now)

    def _seed_dag_run(self, db: sqlite3.Connection, run: DagRunFixture, now: str) -> None:
        db.execute(
            "INSERT OR REPLACE INTO dag_run_defaults (dag_id, run_id, conf, logical_date,"
            " data_interval_start, data_interval_end, run_type, triggering_user_name,"
            " partition_key, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run.dag_id,
                run.run_id,
                json_or_none(run.conf),
                opt_time(run.logical_date),
                opt_time(run.data_interval_start),
                opt_time(run.data_interval_end),
                run.run_type,
                run.triggering_user_name,
                run.partition_key,
                run.note,
            ),
        )
        if run.run_id is None:
            return
        self._ensure_dag_run(db, run.dag_id, run.run_id, now)
        # A named run follows its fixture on every seed (state and dates are left alone).
        db.execute(
            "UPDATE dag_runs SET conf = ?, logical_date = ?, data_interval_start = ?,"
            " data_interval_end = ?, run_type = ?, triggering_user_name = ?, partition_key = ?,"
            " note = ? WHERE dag_id = ? AND run_id = ?",
            (
                json_or_none(run.conf),
                opt_time(run.logical_date),
                opt_time(run.data_interval_start),
                opt_time(run.data_interval_end),
                run.run_type,
                run.triggering_user_name,
                run.partition_key,
                run.note,
                run.dag_id,
                run.run_id,
            ),
        )

    # -- DAG runs ----------------------------------------------------------------------------

    def _ensure_dag_run(
        self,
        db: sqlite3.Connection,
        dag_id: str,
        run_id: str,
        now: str,
        *,
        conf: dict[str, Any] | None = None,
        logical_date: datetime | None = None,
    ) -> None:
        if db.execute(
            "SELECT 1 FROM dag_runs WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)
        ).fetchone():
            return
        d = db.execute("SELECT * FROM dag_run_defaults WHERE dag_id = ?", (dag_id,)).fetchone()
        defaults = dict(d) if d else {}
        db.execute(
            "INSERT INTO dag_runs (dag_id, run_id, logical_date, data_interval_start,"
            " data_interval_end, run_after, start_date, end_date, clear_number, run_type, state,"
            " conf, triggering_user_name, partition_key, note)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, NULL, 0, ?, 'running', ?, ?, ?, ?)",
            (
                dag_id,
                run_id,
                opt_time(logical_date) or defaults.get("logical_date"),
                defaults.get("data_interval_start"),
                defaults.get("data_interval_end"),
                now,
                now,
                defaults.get("run_type") or "manual",
                json_or_none(conf) if conf is not None else defaults.get("conf"),
                defaults.get("triggering_user_name"),
                defaults.get("partition_key"),
                defaults.get("note"),
            ),
        )

    def get_dag_run(self, dag_id: str, run_id: str) -> dict[str, Any] | None:
        row = self._one("SELECT * FROM dag_runs WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))
        return dict(row) if row else None

    # -- task instances ----------------------------------------------------------------------

    def prepare_task_instance(
        self,
        dag_id: str,
        task_id: str,
        *,
        run_id: str | None = None,
        map_index: int = -1,
        max_tries: int = 0,
        queue: str = "default",
        try_number: int | None = None,
        dag_run_conf: dict[str, Any] | None = None,
        logical_date: datetime | None = None,
    ) -> TaskInstanceRecord:
        """Make a ``queued`` try of the task ready for ``/run``, as a scheduler would.

        A new TI starts at try 1. A queued TI is returned as it is. A TI parked in ``deferred``,
        ``awaiting_input`` or ``up_for_reschedule`` resumes with the same id and try. A TI left
        in ``up_for_retry`` (already archived under its old id) gets the next try. Any other TI
        (finished, or still ``running`` after a crash) is archived into ``ti_history`` and gets
        a new id and the next try, as Airflow does on retry or clear.
        """
        now_dt = utcnow()
        now = db_time(now_dt)
        with self._tx() as db:
            if run_id is None:
                d = db.execute(
                    "SELECT run_id FROM dag_run_defaults WHERE dag_id = ?", (dag_id,)
                ).fetchone()
                run_id = (d and d["run_id"]) or f"manual__{now_dt.isoformat()}"
            self._ensure_dag_run(
                db, dag_id, run_id, now, conf=dag_run_conf, logical_date=logical_date
            )
            # Preparing a try on a finished run re-opens it, as clearing a task does.
            db.execute(
                "UPDATE dag_runs SET state = 'running', end_date = NULL,"
                " clear_number = clear_number + 1"
                " WHERE dag_id = ? AND run_id = ? AND state NOT IN ('running', 'queued')",
                (dag_id, run_id),
            )
            row = db.execute(
                "SELECT * FROM task_instances"
                " WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index = ?",
                (dag_id, run_id, task_id, map_index),
            ).fetchone()
            if row is None:
                ti_id = uuid7()
                db.execute(
                    "INSERT INTO task_instances (id, dag_id, task_id, run_id, map_index,"
                    " try_number, max_tries, state, queue, dag_version_id)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?)",
                    (
                        ti_id,
                        dag_id,
                        task_id,
                        run_id,
                        map_index,
                        try_number or 1,
                        max_tries,
                        queue,
                        dag_version_id(dag_id),
                    ),
                )
            else:
                ti_id = self._next_try(db, dict(row), max_tries, queue, try_number)
            final = db.execute("SELECT * FROM task_instances WHERE id = ?", (ti_id,)).fetchone()
        return _record(final)

    def _next_try(
        self,
        db: sqlite3.Connection,
        row: dict[str, Any],
        max_tries: int,
        queue: str,
        try_number: int | None,
    ) -> str:
        state, ti_id = row["state"], row["id"]
        if state == "queued":
            db.execute(
                "UPDATE task_instances SET try_number = ?, max_tries = ?, queue = ? WHERE id = ?",
                (try_number or row["try_number"], max_tries, queue, ti_id),
            )
            return ti_id
        if state in RESUME_STATES:
            next_try = row["try_number"]
        elif state == "up_for_retry" or row["try_number"] == 0:
            # up_for_retry: archived (and given a new id) when the retry was reported.
            # try 0: never ran (e.g. created by skip-downstream); there is nothing to archive.
            next_try = row["try_number"] + 1
        else:
            self._archive(db, row)
            new_id = uuid7()
            db.execute("UPDATE task_instances SET id = ? WHERE id = ?", (new_id, ti_id))
            ti_id, next_try = new_id, row["try_number"] + 1
        # Resuming from a deferral keeps what the trigger hands back and the original start.
        keep = state in ("deferred", "awaiting_input")
        db.execute(
            "UPDATE task_instances SET state = 'queued', try_number = ?, max_tries = ?, queue = ?,"
            " hostname = NULL, unixname = NULL, pid = NULL, end_date = NULL,"
            " start_date = CASE WHEN ? THEN start_date END,"
            " next_method = CASE WHEN ? THEN next_method END,"
            " next_kwargs = CASE WHEN ? THEN next_kwargs END WHERE id = ?",
            (try_number or next_try, max_tries, queue, keep, keep, keep, ti_id),
        )
        return ti_id

    def _archive(self, db: sqlite3.Connection, row: dict[str, Any]) -> None:
        """Record one try in ti_history and drop its reschedules (``prepare_db_for_next_try``)."""
        state = row["state"] if row["state"] in FINISHED_STATES else "failed"
        db.execute(
            "INSERT OR REPLACE INTO ti_history (id, dag_id, task_id, run_id, map_index,"
            " try_number, state, hostname, start_date, end_date)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row["id"],
                row["dag_id"],
                row["task_id"],
                row["run_id"],
                row["map_index"],
                row["try_number"],
                state,
                row["hostname"],
                row["start_date"],
                row["end_date"] or db_time(utcnow()),
            ),
        )
        db.execute("DELETE FROM task_reschedules WHERE ti_id = ?", (row["id"],))

    def get_ti(self, ti_id: str) -> dict[str, Any] | None:
        """The live TI row with this id, or None (archived ids are only in ti_history)."""
        row = self._one("SELECT * FROM task_instances WHERE id = ?", (ti_id,))
        return dict(row) if row else None

    def get_ti_state(self, ti_id: str) -> str | None:
        row = self._one("SELECT state FROM task_instances WHERE id = ?", (ti_id,))
        return row["state"] if row else None

    def list_task_instances(
        self, dag_id: str | None = None, run_id: str | None = None
    ) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM task_instances WHERE 1", []
        if dag_id is not None:
            sql, args = sql + " AND dag_id = ?", [*args, dag_id]
        if run_id is not None:
            sql, args = sql + " AND run_id = ?", [*args, run_id]
        rows = self._all(sql + " ORDER BY dag_id, run_id, task_id, map_index", tuple(args))
        return [dict(r) for r in rows]

    def list_history(self, ti_id: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM ti_history", ()
        if ti_id is not None:
            sql, args = sql + " WHERE id = ?", (ti_id,)
        return [dict(r) for r in self._all(sql + " ORDER BY try_number", args)]

    def in_history(self, ti_id: str) -> bool:
        return self._one("SELECT 1 FROM ti_history WHERE id = ?", (ti_id,)) is not None

    def update_ti(self, ti_id: str, **columns: Any) -> int:
        """Set columns on a live TI; return the number of rows changed (0 or 1)."""
        if not columns:
            return 0
        assignments = ", ".join(f"{name} = ?" for name in columns)
        with self._tx() as db:
            cur = db.execute(
                f"UPDATE task_instances SET {assignments} WHERE id = ?", (*columns.values(), ti_id)
            )
            return cur.rowcount

    def heartbeat(self, ti_id: str, hostname: str, pid: int, now: datetime) -> bool:
        """Airflow's fast path: touch ``last_heartbeat_at`` only if running here; True if so."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE task_instances SET last_heartbeat_at = ?"
                " WHERE id = ? AND state = 'running' AND hostname = ? AND pid = ?",
                (db_time(now), ti_id, hostname, pid),
            )
            return cur.rowcount > 0

    def retry_ti(self, ti_id: str, **columns: Any) -> str:
        """Archive the running try, give the TI a new id and set ``columns``; return the new id."""
        with self._tx() as db:
            row = db.execute("SELECT * FROM task_instances WHERE id = ?", (ti_id,)).fetchone()
            if row is None:
                raise KeyError(ti_id)
            # Archive with the end date the client reported, like the ORM object Airflow records.
            self._archive(db, {**dict(row), "end_date": columns.get("end_date")})
            new_id = uuid7()
            assignments = ", ".join(f"{name} = ?" for name in columns)
            db.execute(
                f"UPDATE task_instances SET id = ?, {assignments} WHERE id = ?",
                (new_id, *columns.values(), ti_id),
            )
            return new_id

    def xcom_keys_for(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> list[str]:
        """Keys of the XComs a new try must clear (all map indexes unless ``map_index`` >= 0)."""
        sql = "SELECT key FROM xcoms WHERE dag_id = ? AND run_id = ? AND task_id = ?"
        args: tuple[Any, ...] = (dag_id, run_id, task_id)
        if map_index >= 0:
            sql, args = sql + " AND map_index = ?", (*args, map_index)
        return [r["key"] for r in self._all(sql + " ORDER BY key, map_index", args)]

    def count_reschedules(self, ti_id: str) -> int:
        row = self._one("SELECT COUNT(*) FROM task_reschedules WHERE ti_id = ?", (ti_id,))
        return row[0] if row else 0

    def reschedule_ti(
        self, ti_id: str, *, try_number: int, start: datetime, end: str, reschedule: str
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO task_reschedules (ti_id, try_number, start_date, end_date,"
                " reschedule_date) VALUES (?, ?, ?, ?, ?)",
                (ti_id, try_number, db_time(start), end, reschedule),
            )
            db.execute(
                "UPDATE task_instances SET state = 'up_for_reschedule', end_date = ?,"
                " next_method = NULL, next_kwargs = NULL WHERE id = ?",
                (end, ti_id),
            )

    def set_rtif(self, ti_id: str, fields: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO rtif (ti_id, fields) VALUES (?, ?)",
                (ti_id, json.dumps(fields, separators=(",", ":"))),
            )

    def get_rtif(self, ti_id: str) -> dict[str, Any] | None:
        row = self._one("SELECT fields FROM rtif WHERE ti_id = ?", (ti_id,))
        return json.loads(row["fields"]) if row else None

    def skip_tasks(
        self, dag_id: str, run_id: str, tasks: list[tuple[str, int]], now: datetime
    ) -> None:
        """Mark TIs of one run skipped, leaving running/success/failed ones alone.

        TIs that do not exist yet are created as skipped (try 0), since the stub has no
        scheduler to create them when the run starts.
        """
        stamp = db_time(now)
        with self._tx() as db:
            for task_id, map_index in tasks:
                row = db.execute(
                    "SELECT id, state FROM task_instances"
                    " WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index = ?",
                    (dag_id, run_id, task_id, map_index),
                ).fetchone()
                if row is None:
                    db.execute(
                        "INSERT INTO task_instances (id, dag_id, task_id, run_id, map_index,"
                        " try_number, max_tries, state, start_date, end_date, queue,"
                        " dag_version_id) VALUES (?, ?, ?, ?, ?, 0, 0, 'skipped', ?, ?,"
                        " 'default', ?)",
                        (
                            uuid7(),
                            dag_id,
                            task_id,
                            run_id,
                            map_index,
                            stamp,
                            stamp,
                            dag_version_id(dag_id),
                        ),
                    )
                elif row["state"] not in ("running", "success", "failed"):
                    db.execute(
                        "UPDATE task_instances SET state = 'skipped', start_date = ?,"
                        " end_date = ? WHERE id = ?",
                        (stamp, stamp, row["id"]),
                    )

    # -- variables ---------------------------------------------------------------------------

    def get_variable(self, key: str) -> str | None:
        row = self._one("SELECT value FROM variables WHERE key = ?", (key,))
        return row["value"] if row else None

    def lookup_variable(self, key: str) -> tuple[bool, str | None]:
        """(exists, value) in one query."""
        row = self._one("SELECT value FROM variables WHERE key = ?", (key,))
        return (True, row["value"]) if row else (False, None)

    def has_variable(self, key: str) -> bool:
        return self._one("SELECT 1 FROM variables WHERE key = ?", (key,)) is not None

    def set_variable(self, key: str, value: str | None, description: str | None = None) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO variables (key, value, description) VALUES (?, ?, ?)",
                (key, value, description),
            )

    def delete_variable(self, key: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM variables WHERE key = ?", (key,))

    def variable_keys(
        self, prefix: str | None = None, limit: int = 1000, offset: int = 0
    ) -> tuple[list[str], int]:
        """A page of variable keys in key order and the total count matching ``prefix``."""
        where, args = "", ()
        if prefix is not None:
            # substr, not LIKE: a prefix is literal (Airflow escapes % and _ the same way).
            where, args = " WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
        total = self._one(f"SELECT COUNT(*) FROM variables{where}", args)[0]
        rows = self._all(
            f"SELECT key FROM variables{where} ORDER BY key LIMIT ? OFFSET ?",
            (*args, limit, offset),
        )
        return [r["key"] for r in rows], total

    # -- connections -------------------------------------------------------------------------

    def get_connection(self, conn_id: str) -> dict[str, Any] | None:
        row = self._one(
            "SELECT conn_id, conn_type, host, schema, login, password, port, extra"
            " FROM connections WHERE conn_id = ?",
            (conn_id,),
        )
        return dict(row) if row else None

    # -- XComs -------------------------------------------------------------------------------

    def get_xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1
    ) -> Any:
        """The decoded value of one XCom, or None when there is none."""
        row = self._one(
            "SELECT value FROM xcoms WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = ?"
            " AND map_index = ?",
            (dag_id, run_id, task_id, key, map_index),
        )
        return json.loads(row["value"]) if row and row["value"] is not None else None

    def xcom_rows(
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
        run = self.get_dag_run(dag_id, run_id) if include_prior_dates else None
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
        return [(r[0], r[1]) for r in self._all(sql, tuple(args))]

    def set_xcom(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        key: str,
        value_json: str,
        map_index: int,
        now: datetime,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO xcoms (dag_id, run_id, task_id, map_index, key, value,"
                " timestamp) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (dag_id, run_id, task_id, map_index, key, value_json, db_time(now)),
            )

    def delete_xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int) -> None:
        with self._tx() as db:
            db.execute(
                "DELETE FROM xcoms WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = ?"
                " AND map_index = ?",
                (dag_id, run_id, task_id, key, map_index),
            )


def _record(row: sqlite3.Row) -> TaskInstanceRecord:
    return TaskInstanceRecord(
        id=row["id"],
        dag_id=row["dag_id"],
        task_id=row["task_id"],
        run_id=row["run_id"],
        map_index=row["map_index"],
        try_number=row["try_number"],
        max_tries=row["max_tries"],
        dag_version_id=row["dag_version_id"],
        queue=row["queue"] or "default",
        state=row["state"],
    )

"""The task-instance tables: ``task_instances`` (the live try of each task), ``ti_history``
(earlier tries), ``rtif`` (rendered fields) and ``task_reschedules``; ``prepare`` is what a
scheduler does to queue a try, the rest what the Execution API's routes read and write.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ...protocol import TERMINAL_TI_STATES
from ._common import Where, api_time, dag_version_id, db_time, sql_in, utcnow, uuid7
from ._database import Database
from ._runs import ensure_dag_run

__all__ = ["SCHEMA", "TaskInstanceRecord", "TaskInstances", "ti_wire"]

#: States whose try is kept as-is in history; any other state is archived as ``failed``, as
#: Airflow's ``TaskInstanceHistory.record_ti`` does for tries that did not finish.
FINISHED_STATES = frozenset(TERMINAL_TI_STATES)
#: States a TI resumes from with the same id and try (Airflow does not count a new try).
RESUME_STATES = frozenset({"deferred", "awaiting_input", "up_for_reschedule"})

SCHEMA = """
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
"""


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


class TaskInstances:
    def __init__(self, db: Database) -> None:
        self._db = db

    def prepare(
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
        with self._db.tx() as db:
            if run_id is None:
                d = db.execute(
                    "SELECT run_id FROM dag_run_defaults WHERE dag_id = ?", (dag_id,)
                ).fetchone()
                run_id = (d and d["run_id"]) or f"manual__{now_dt.isoformat()}"
            ensure_dag_run(db, dag_id, run_id, now, conf=dag_run_conf, logical_date=logical_date)
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
                ti_id = _next_try(db, dict(row), max_tries, queue, try_number)
            final = db.execute("SELECT * FROM task_instances WHERE id = ?", (ti_id,)).fetchone()
        return _record(final)

    def get(self, ti_id: str) -> dict[str, Any] | None:
        """The live TI row with this id, or None (archived ids are only in ti_history)."""
        row = self._db.one("SELECT * FROM task_instances WHERE id = ?", (ti_id,))
        return dict(row) if row else None

    def state(self, ti_id: str) -> str | None:
        row = self._db.one("SELECT state FROM task_instances WHERE id = ?", (ti_id,))
        return row["state"] if row else None

    def list_all(
        self, dag_id: str | None = None, run_id: str | None = None
    ) -> list[dict[str, Any]]:
        sql = "SELECT * FROM task_instances WHERE 1"
        args: list[Any] = []
        if dag_id is not None:
            sql, args = sql + " AND dag_id = ?", [*args, dag_id]
        if run_id is not None:
            sql, args = sql + " AND run_id = ?", [*args, run_id]
        rows = self._db.all(sql + " ORDER BY dag_id, run_id, task_id, map_index", tuple(args))
        return [dict(r) for r in rows]

    def history(self, ti_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM ti_history"
        args: tuple[Any, ...] = ()
        if ti_id is not None:
            sql, args = sql + " WHERE id = ?", (ti_id,)
        return [dict(r) for r in self._db.all(sql + " ORDER BY try_number", args)]

    def in_history(self, ti_id: str) -> bool:
        return self._db.one("SELECT 1 FROM ti_history WHERE id = ?", (ti_id,)) is not None

    def update(self, ti_id: str, **columns: Any) -> int:
        """Set columns on a live TI; return the number of rows changed (0 or 1)."""
        if not columns:
            return 0
        assignments = ", ".join(f"{name} = ?" for name in columns)
        with self._db.tx() as db:
            cur = db.execute(
                f"UPDATE task_instances SET {assignments} WHERE id = ?", (*columns.values(), ti_id)
            )
            return cur.rowcount

    def heartbeat(self, ti_id: str, hostname: str, pid: int, now: datetime) -> bool:
        """Airflow's fast path: touch ``last_heartbeat_at`` only if running here; True if so."""
        with self._db.tx() as db:
            cur = db.execute(
                "UPDATE task_instances SET last_heartbeat_at = ?"
                " WHERE id = ? AND state = 'running' AND hostname = ? AND pid = ?",
                (db_time(now), ti_id, hostname, pid),
            )
            return cur.rowcount > 0

    def retry(self, ti_id: str, **columns: Any) -> str:
        """Archive the running try, give the TI a new id and set ``columns``; return the new id."""
        with self._db.tx() as db:
            row = db.execute("SELECT * FROM task_instances WHERE id = ?", (ti_id,)).fetchone()
            if row is None:
                raise KeyError(ti_id)
            # Archive with the end date the client reported, like the ORM object Airflow records.
            _archive(db, {**dict(row), "end_date": columns.get("end_date")})
            new_id = uuid7()
            assignments = ", ".join(f"{name} = ?" for name in columns)
            db.execute(
                f"UPDATE task_instances SET id = ?, {assignments} WHERE id = ?",
                (new_id, *columns.values(), ti_id),
            )
            return new_id

    def count_reschedules(self, ti_id: str) -> int:
        row = self._db.one("SELECT COUNT(*) FROM task_reschedules WHERE ti_id = ?", (ti_id,))
        return row[0] if row else 0

    def reschedule(
        self, ti_id: str, *, try_number: int, start: datetime, end: str, reschedule: str
    ) -> None:
        with self._db.tx() as db:
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
        with self._db.tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO rtif (ti_id, fields) VALUES (?, ?)",
                (ti_id, json.dumps(fields, separators=(",", ":"))),
            )

    def get_rtif(self, ti_id: str) -> dict[str, Any] | None:
        row = self._db.one("SELECT fields FROM rtif WHERE ti_id = ?", (ti_id,))
        return json.loads(row["fields"]) if row else None

    def skip(self, dag_id: str, run_id: str, tasks: list[tuple[str, int]], now: datetime) -> None:
        """Mark TIs of one run skipped, leaving running/success/failed ones alone.

        TIs that do not exist yet are created as skipped (try 0), since the stub has no
        scheduler to create them when the run starts.
        """
        stamp = db_time(now)
        with self._db.tx() as db:
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

    def find(
        self,
        dag_id: str,
        *,
        map_index: int | None = None,
        task_ids: list[str] | None = None,
        logical_dates: list[datetime] | None = None,
        run_ids: list[str] | None = None,
        states: list[str] | None = None,
        pairs: list[tuple[str, int]] | None = None,
    ) -> list[dict[str, Any]]:
        """TIs matching the filters of ``/task-instances/count`` and ``/states``.

        ``states`` may hold ``"null"`` for "no state"; ``pairs`` restricts to (task_id,
        map_index) pairs, as a task-group filter does.
        """
        where = _ti_where(
            dag_id,
            map_index=map_index,
            task_ids=task_ids,
            logical_dates=logical_dates,
            run_ids=run_ids,
        )
        if pairs is not None:
            cond = " OR ".join("(t.task_id = ? AND t.map_index = ?)" for _ in pairs) or "0"
            where.add(f"({cond})", *[v for pair in pairs for v in pair])
        if states:
            named = [s for s in states if s != "null"]
            conds = (["t.state IS NULL"] if "null" in states else []) + (
                [sql_in("t.state", named)] if named else []
            )
            where.add("(" + " OR ".join(conds) + ")", *named)
        rows = self._db.all(
            "SELECT t.* FROM task_instances t LEFT JOIN dag_runs r"
            f" ON r.dag_id = t.dag_id AND r.run_id = t.run_id{where.sql}"
            " ORDER BY t.run_id, t.task_id, t.map_index",
            tuple(where.args),
        )
        return [dict(r) for r in rows]

    def breadcrumbs(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """``GET /task-instances/breadcrumbs``: the finished TIs of a run."""
        rows = self._db.all(
            "SELECT task_id, map_index, state, start_date, end_date FROM task_instances"
            f" WHERE dag_id = ? AND run_id = ? AND {sql_in('state', list(TERMINAL_TI_STATES))}"
            " ORDER BY task_id, map_index",
            (dag_id, run_id, *TERMINAL_TI_STATES),
        )
        # The stub has no operator classes: ``operator`` is unknown (null).
        # shape verified against real Airflow in the differential test tier
        return [
            {
                "task_id": r["task_id"],
                "map_index": r["map_index"],
                "state": r["state"],
                "operator": None,
                "duration": _duration(r["start_date"], r["end_date"]),
            }
            for r in rows
        ]

    def previous(
        self,
        dag_id: str,
        task_id: str,
        *,
        before: datetime | None = None,
        map_index: int = -1,
        state: str | None = None,
    ) -> dict[str, Any] | None:
        """``GET /task-instances/previous/{dag_id}/{task_id}`` as a ``PreviousTIResponse``."""
        where = Where()
        where.add("t.dag_id = ? AND t.task_id = ? AND t.map_index = ?", dag_id, task_id, map_index)
        if before is not None:
            where.add("r.logical_date < ?", db_time(before))
        if state:
            where.add("t.state = ?", state)
        row = self._db.one(
            "SELECT t.*, r.logical_date AS run_logical_date FROM task_instances t JOIN dag_runs r"
            f" ON r.dag_id = t.dag_id AND r.run_id = t.run_id{where.sql}"
            " ORDER BY r.logical_date DESC LIMIT 1",
            tuple(where.args),
        )
        if row is None:
            return None
        return {
            "task_id": row["task_id"],
            "dag_id": row["dag_id"],
            "run_id": row["run_id"],
            "logical_date": api_time(row["run_logical_date"]),
            "start_date": api_time(row["start_date"]),
            "end_date": api_time(row["end_date"]),
            "state": row["state"],
            "try_number": row["try_number"],
            "map_index": row["map_index"],
            "duration": _duration(row["start_date"], row["end_date"]),
        }

    def first_reschedule_start(self, ti_id: str) -> str | None:
        """``GET /task-reschedules/{id}/start_date``: the first reschedule's start, or None."""
        row = self._db.one(
            "SELECT start_date FROM task_reschedules WHERE ti_id = ? ORDER BY id LIMIT 1",
            (ti_id,),
        )
        return row["start_date"] if row else None


def _next_try(
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
        _archive(db, row)
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


def _archive(db: sqlite3.Connection, row: dict[str, Any]) -> None:
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


def _ti_where(
    dag_id: str,
    *,
    map_index: int | None,
    task_ids: list[str] | None,
    logical_dates: list[datetime] | None,
    run_ids: list[str] | None,
) -> Where:
    where = Where()
    where.add("t.dag_id = ?", dag_id)
    where.any_of("t.task_id", task_ids)
    if map_index is not None:
        where.add("t.map_index = ?", map_index)
    where.any_of("r.logical_date", [db_time(d) for d in logical_dates or []])
    where.any_of("t.run_id", run_ids)
    return where


def _duration(start: str | None, end: str | None) -> float | None:
    if start is None or end is None:
        return None
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    return (datetime.strptime(end, fmt) - datetime.strptime(start, fmt)).total_seconds()


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

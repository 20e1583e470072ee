"""The ``dag_runs``, ``dag_run_defaults`` and ``dags`` tables: DAG runs, the defaults of the runs
``prepare_task_instance`` creates, and what the DAG processor would have stored for each DAG.

The stub has no DAG files, so DAGs come from fixtures (``[dags.*]``, docs/fixtures.md). A DAG
run is created with ``conf`` ``{}`` unless one is given, as Airflow's ``DagRun`` does
(``conf or {}``).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from ...protocol import FINISHED_DAG_RUN_STATES, TERMINAL_TI_STATES
from .._fixtures import DagRunFixture, Fixtures, RunFixture
from ._assets import register_declared_asset
from ._common import (
    Where,
    api_time,
    dag_version_id,
    db_time,
    fixture_changed,
    json_or_none,
    opt_time,
    uuid7,
)
from ._database import Database

__all__ = [
    "SCHEMA",
    "DagRuns",
    "Dags",
    "ensure_dag_run",
    "seed_dag_run_defaults",
    "seed_dags",
    "seed_runs",
]

SCHEMA = """
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
CREATE TABLE IF NOT EXISTS dags (
    dag_id TEXT PRIMARY KEY, is_paused INTEGER NOT NULL DEFAULT 0, bundle_name TEXT,
    bundle_version TEXT, relative_fileloc TEXT, owners TEXT, tags TEXT NOT NULL DEFAULT '[]',
    next_dagrun TEXT, task_groups TEXT NOT NULL DEFAULT '{}', inlets TEXT NOT NULL DEFAULT '{}',
    outlets TEXT NOT NULL DEFAULT '{}'
);
"""

#: ``GET /dags/{dag_id}`` for a DAG the fixtures do not describe but that has runs: what the
#: DAG processor stores for a DAG file with no owner, tags or schedule.
# shape verified against real Airflow in the differential test tier
_IMPLICIT_DAG = {
    "is_paused": False,
    "bundle_name": "dags-folder",
    "bundle_version": None,
    "relative_fileloc": None,
    "owners": "airflow",
    "tags": [],
    "next_dagrun": None,
}


def _conf(conf: dict[str, Any] | None) -> str:
    """A run's ``conf`` column: Airflow's ``DagRun`` stores ``conf or {}``."""
    return json.dumps(conf or {}, separators=(",", ":"))


# -- seeding -----------------------------------------------------------------------------------


def seed_dags(db: sqlite3.Connection, fixtures: Fixtures) -> None:
    """``[dags.*]``, and an active asset for every declared inlet and outlet that names an
    unknown asset, as the DAG processor registers them when it parses the DAG."""
    for dag in fixtures.dags.values():
        if fixture_changed(db, "dag", dag.dag_id, dag):
            db.execute(
                "INSERT OR REPLACE INTO dags (dag_id, is_paused, bundle_name, bundle_version,"
                " relative_fileloc, owners, tags, next_dagrun, task_groups, inlets, outlets)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    dag.dag_id,
                    int(dag.is_paused),
                    dag.bundle_name,
                    dag.bundle_version,
                    dag.relative_fileloc,
                    dag.owners,
                    json.dumps(list(dag.tags)),
                    opt_time(dag.next_dagrun),
                    json.dumps({g: list(t) for g, t in dag.task_groups.items()}),
                    json.dumps(_refs_json(dag.inlets)),
                    json.dumps(_refs_json(dag.outlets)),
                ),
            )
        # Every seed, not only when the entry changed: a state file seeded before an asset
        # was declared still gets it.
        for refs in (*dag.inlets.values(), *dag.outlets.values()):
            for ref in refs:
                register_declared_asset(db, ref.name, ref.uri)


def seed_dag_run_defaults(db: sqlite3.Connection, fixtures: Fixtures, now: str) -> None:
    """``[dag_runs.*]``: the defaults, and the named run of each DAG that has one."""
    for run in fixtures.dag_runs.values():
        _seed_dag_run_defaults(db, run, now)


def _seed_dag_run_defaults(db: sqlite3.Connection, run: DagRunFixture, now: str) -> None:
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
    ensure_dag_run(db, run.dag_id, run.run_id, now)
    # A named run follows its fixture on every seed (state and dates are left alone).
    db.execute(
        "UPDATE dag_runs SET conf = ?, logical_date = ?, data_interval_start = ?,"
        " data_interval_end = ?, run_type = ?, triggering_user_name = ?, partition_key = ?,"
        " note = ? WHERE dag_id = ? AND run_id = ?",
        (
            _conf(run.conf),
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


def seed_runs(db: sqlite3.Connection, fixtures: Fixtures, now: str) -> None:
    """``[[runs]]``: existing DAG runs, each with its task instances."""
    for run in fixtures.runs:
        if fixture_changed(db, "run", json.dumps([run.dag_id, run.run_id]), run):
            _seed_run(db, run, now)


def _seed_run(db: sqlite3.Connection, run: RunFixture, now: str) -> None:
    run_after = opt_time(run.run_after) or opt_time(run.logical_date) or now
    started = run.state != "queued"
    start = opt_time(run.start_date) or (
        (opt_time(run.logical_date) or run_after) if started else None
    )
    end = opt_time(run.end_date) or (start if run.state in FINISHED_DAG_RUN_STATES else None)
    db.execute(
        "INSERT OR REPLACE INTO dag_runs (dag_id, run_id, logical_date, data_interval_start,"
        " data_interval_end, run_after, start_date, end_date, clear_number, run_type, state,"
        " conf, triggering_user_name, partition_key, note)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?)",
        (
            run.dag_id,
            run.run_id,
            opt_time(run.logical_date),
            opt_time(run.data_interval_start),
            opt_time(run.data_interval_end),
            run_after,
            start,
            end,
            run.run_type,
            run.state,
            _conf(run.conf),
            run.triggering_user_name,
            run.partition_key,
            run.note,
        ),
    )
    for ti in run.task_instances:
        ran = ti.state not in (None, "scheduled", "queued")
        ti_start = opt_time(ti.start_date) or (start if ran else None)
        ti_end = opt_time(ti.end_date) or (
            (end or ti_start) if ti.state in TERMINAL_TI_STATES else None
        )
        row = db.execute(
            "SELECT id FROM task_instances WHERE dag_id = ? AND run_id = ? AND task_id = ?"
            " AND map_index = ?",
            (run.dag_id, run.run_id, ti.task_id, ti.map_index),
        ).fetchone()
        if row is None:
            db.execute(
                "INSERT INTO task_instances (id, dag_id, task_id, run_id, map_index, try_number,"
                " max_tries, state, start_date, end_date, queue, dag_version_id)"
                " VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, 'default', ?)",
                (
                    uuid7(),
                    run.dag_id,
                    ti.task_id,
                    run.run_id,
                    ti.map_index,
                    ti.try_number,
                    ti.state,
                    ti_start,
                    ti_end,
                    dag_version_id(run.dag_id),
                ),
            )
        else:
            db.execute(
                "UPDATE task_instances SET try_number = ?, state = ?, start_date = ?,"
                " end_date = ? WHERE id = ?",
                (ti.try_number, ti.state, ti_start, ti_end, row["id"]),
            )


def ensure_dag_run(
    db: sqlite3.Connection,
    dag_id: str,
    run_id: str,
    now: str,
    *,
    conf: dict[str, Any] | None = None,
    logical_date: datetime | None = None,
) -> None:
    """Create the run (``running``, from the DAG's ``[dag_runs]`` defaults) unless it exists."""
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
            _conf(conf) if conf is not None else defaults.get("conf") or _conf(None),
            defaults.get("triggering_user_name"),
            defaults.get("partition_key"),
            defaults.get("note"),
        ),
    )


def _refs_json(refs: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    return {task: [{"name": r.name, "uri": r.uri} for r in items] for task, items in refs.items()}


# -- DAG runs ----------------------------------------------------------------------------------


class DagRuns:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, dag_id: str, run_id: str) -> dict[str, Any] | None:
        row = self._db.one(
            "SELECT * FROM dag_runs WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)
        )
        return dict(row) if row else None

    def count(
        self,
        dag_id: str,
        *,
        logical_dates: list[datetime] | None = None,
        run_ids: list[str] | None = None,
        states: list[str] | None = None,
    ) -> int:
        """``GET /dag-runs/count``."""
        where = Where()
        where.add("dag_id = ?", dag_id)
        where.any_of("logical_date", [db_time(d) for d in logical_dates or []])
        where.any_of("run_id", run_ids)
        where.any_of("state", states)
        row = self._db.one(f"SELECT COUNT(*) FROM dag_runs{where.sql}", tuple(where.args))
        return row[0] if row else 0

    def previous(
        self, dag_id: str, before: datetime, state: str | None = None
    ) -> dict[str, Any] | None:
        """``GET /dag-runs/previous``: the latest run with a logical date before ``before``."""
        where = Where()
        where.add("dag_id = ?", dag_id)
        where.add("logical_date < ?", db_time(before))
        if state:
            where.add("state = ?", state)
        row = self._db.one(
            f"SELECT * FROM dag_runs{where.sql} ORDER BY logical_date DESC LIMIT 1",
            tuple(where.args),
        )
        return dict(row) if row else None

    def previous_successful(self, ti_id: str) -> dict[str, Any] | None:
        """The run ``previous-successful-dagrun`` reports for a TI (None: nothing to report)."""
        ti = self._db.one(
            "SELECT r.dag_id, r.logical_date FROM task_instances t JOIN dag_runs r"
            " ON r.dag_id = t.dag_id AND r.run_id = t.run_id WHERE t.id = ?",
            (ti_id,),
        )
        if ti is None or ti["logical_date"] is None:
            return None
        row = self._db.one(
            "SELECT * FROM dag_runs WHERE dag_id = ? AND logical_date < ? AND state = 'success'"
            " ORDER BY logical_date DESC LIMIT 1",
            (ti["dag_id"], ti["logical_date"]),
        )
        return dict(row) if row else None

    def trigger(
        self,
        dag_id: str,
        run_id: str,
        *,
        now: datetime,
        conf: dict[str, Any] | None = None,
        logical_date: datetime | None = None,
        run_after: datetime | None = None,
        note: str | None = None,
        partition_key: str | None = None,
        triggering_user_name: str | None = None,
    ) -> bool:
        """Create a queued ``operator_triggered`` run (``trigger_dag``); False if it exists."""
        after = db_time(run_after or now)
        # A manual timetable infers the data interval (run_after, run_after) for a logical date.
        # shape verified against real Airflow in the differential test tier
        interval = after if logical_date is not None else None
        with self._db.tx() as db:
            try:
                db.execute(
                    "INSERT INTO dag_runs (dag_id, run_id, logical_date, data_interval_start,"
                    " data_interval_end, run_after, start_date, end_date, clear_number, run_type,"
                    " state, conf, triggering_user_name, partition_key, note)"
                    " VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, 0, 'operator_triggered', 'queued',"
                    " ?, ?, ?, ?)",
                    (
                        dag_id,
                        run_id,
                        opt_time(logical_date),
                        interval,
                        interval,
                        after,
                        _conf(conf),
                        triggering_user_name,
                        partition_key,
                        note,
                    ),
                )
            except sqlite3.IntegrityError:
                return False
        return True

    def clear(self, dag_id: str, run_id: str) -> None:
        """``dag.clear(run_id=...)``: the run is queued again, its TIs lose their state (running
        ones become ``restarting``)."""
        with self._db.tx() as db:
            db.execute(
                "UPDATE dag_runs SET state = 'queued', end_date = NULL,"
                " clear_number = clear_number + 1 WHERE dag_id = ? AND run_id = ?",
                (dag_id, run_id),
            )
            db.execute(
                "UPDATE task_instances SET state = CASE WHEN state = 'running'"
                " THEN 'restarting' ELSE NULL END WHERE dag_id = ? AND run_id = ?",
                (dag_id, run_id),
            )


# -- DAGs --------------------------------------------------------------------------------------


class Dags:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, dag_id: str) -> dict[str, Any] | None:
        """The ``DagResponse`` of a DAG: from ``[dags.*]``, else a default for a DAG with runs."""
        row = self._db.one("SELECT * FROM dags WHERE dag_id = ?", (dag_id,))
        if row is None:
            if not self.is_known(dag_id):
                return None
            return {"dag_id": dag_id, **_IMPLICIT_DAG}
        return {
            "dag_id": dag_id,
            "is_paused": bool(row["is_paused"]),
            "bundle_name": row["bundle_name"],
            "bundle_version": row["bundle_version"],
            "relative_fileloc": row["relative_fileloc"],
            "owners": row["owners"],
            "tags": sorted(json.loads(row["tags"])),
            "next_dagrun": api_time(row["next_dagrun"]),
        }

    def is_known(self, dag_id: str) -> bool:
        """Whether Airflow would have a DagModel: declared in fixtures, or has runs or TIs."""
        return (
            self._db.one(
                "SELECT 1 FROM dags WHERE dag_id = ? UNION ALL"
                " SELECT 1 FROM dag_runs WHERE dag_id = ? UNION ALL"
                " SELECT 1 FROM dag_run_defaults WHERE dag_id = ? LIMIT 1",
                (dag_id, dag_id, dag_id),
            )
            is not None
        )

    def task_group_tasks(self, dag_id: str, group_id: str) -> list[str] | None:
        """The task ids of a task group, or None when the DAG declares no such group."""
        row = self._db.one("SELECT task_groups FROM dags WHERE dag_id = ?", (dag_id,))
        groups = json.loads(row["task_groups"]) if row else {}
        return groups.get(group_id)

    def task_assets(self, dag_id: str, task_id: str) -> list[tuple[str, str]]:
        """The (name, uri) of every asset a task declares as inlet or outlet."""
        row = self._db.one("SELECT inlets, outlets FROM dags WHERE dag_id = ?", (dag_id,))
        if row is None:
            return []
        refs = json.loads(row["inlets"]).get(task_id, []) + json.loads(row["outlets"]).get(
            task_id, []
        )
        return [(r["name"], r["uri"]) for r in refs]

"""The stub's metadata beyond variables, XComs and task tries.

DAGs, assets and aliases, asset events, the task and asset state stores and HITL details, and
the DAG-run and task-instance queries behind the Execution API's read routes. ``StubStore``
(``_store.py``) mixes this in; the rules each query follows are Airflow 3.3's
(``airflow/api_fastapi/execution_api/routes/*`` and ``models/*``), cited per method.

The stub has no DAG files, so what Airflow's DAG processor would have registered comes from
fixtures (``[dags.*]``, ``[assets.*]``): see docs/fixtures.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from ._fixtures import Fixtures, RunFixture
from ._store_common import (
    api_time,
    dag_version_id,
    db_time,
    fixture_changed,
    json_or_none,
    loads,
    opt_time,
    uuid7,
)

__all__ = ["META_SCHEMA", "TERMINAL_TI_STATES", "MetadataStore"]

#: Airflow's ``TerminalTIState``: the states breadcrumbs report.
TERMINAL_TI_STATES = ("success", "failed", "skipped", "upstream_failed", "removed")
_FINISHED_RUN_STATES = ("success", "failed")

META_SCHEMA = """
CREATE TABLE IF NOT EXISTS dags (
    dag_id TEXT PRIMARY KEY, is_paused INTEGER NOT NULL DEFAULT 0, bundle_name TEXT,
    bundle_version TEXT, relative_fileloc TEXT, owners TEXT, tags TEXT NOT NULL DEFAULT '[]',
    next_dagrun TEXT, task_groups TEXT NOT NULL DEFAULT '{}', inlets TEXT NOT NULL DEFAULT '{}',
    outlets TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS assets (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, uri TEXT NOT NULL,
    group_name TEXT NOT NULL, extra TEXT NOT NULL DEFAULT '{}',
    active INTEGER NOT NULL DEFAULT 1, UNIQUE (name, uri)
);
CREATE TABLE IF NOT EXISTS asset_aliases (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS asset_alias_assets (
    alias_id INTEGER NOT NULL, asset_id INTEGER NOT NULL, PRIMARY KEY (alias_id, asset_id)
);
CREATE TABLE IF NOT EXISTS asset_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, asset_id INTEGER NOT NULL, extra TEXT NOT NULL,
    source_task_id TEXT, source_dag_id TEXT, source_run_id TEXT, source_map_index INTEGER,
    partition_key TEXT, timestamp TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS asset_events_asset ON asset_events (asset_id, timestamp);
CREATE TABLE IF NOT EXISTS asset_event_aliases (
    event_id INTEGER NOT NULL, alias_id INTEGER NOT NULL, PRIMARY KEY (event_id, alias_id)
);
CREATE TABLE IF NOT EXISTS task_state_store (
    dag_id TEXT NOT NULL, run_id TEXT NOT NULL, task_id TEXT NOT NULL,
    map_index INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, expires_at TEXT,
    updated_at TEXT NOT NULL, PRIMARY KEY (dag_id, run_id, task_id, map_index, key)
);
CREATE TABLE IF NOT EXISTS asset_state_store (
    asset_id INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    updated_at TEXT NOT NULL, PRIMARY KEY (asset_id, key)
);
CREATE TABLE IF NOT EXISTS hitl_details (
    ti_id TEXT PRIMARY KEY, options TEXT NOT NULL, subject TEXT NOT NULL, body TEXT,
    defaults TEXT, multiple INTEGER, params TEXT NOT NULL, assignees TEXT,
    created_at TEXT NOT NULL, responded_at TEXT, responded_by TEXT, chosen_options TEXT,
    params_input TEXT NOT NULL DEFAULT '{}'
);
"""

#: ``GET /dags/{dag_id}`` for a DAG the fixtures do not describe but that has runs: what the
#: DAG processor stores for a DAG file with no owner, tags or schedule.
# shape verified against real Airflow in the differential test tier (issue 6)
_IMPLICIT_DAG = {
    "is_paused": False,
    "bundle_name": "dags-folder",
    "bundle_version": None,
    "relative_fileloc": None,
    "owners": "airflow",
    "tags": [],
    "next_dagrun": None,
}


def _in(column: str, values: list[Any]) -> str:
    return f"{column} IN ({', '.join('?' * len(values))})"


class _Where:
    """A small WHERE-clause builder (AND of conditions, positional args)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.args: list[Any] = []

    def add(self, sql: str, *args: Any) -> None:
        self.parts.append(sql)
        self.args.extend(args)

    def any_of(self, column: str, values: list[Any] | None) -> None:
        if values:  # Airflow: an empty or missing filter means "no filter"
            self.add(_in(column, values), *values)

    @property
    def sql(self) -> str:
        return " WHERE " + " AND ".join(self.parts) if self.parts else ""


class MetadataStore:
    """Mixin for ``StubStore``: needs its ``_tx``, ``_one`` and ``_all``."""

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:  # pragma: no cover
        raise NotImplementedError

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Row | None:  # pragma: no cover
        raise NotImplementedError

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:  # pragma: no cover
        raise NotImplementedError

    # -- seeding -----------------------------------------------------------------------------

    def _seed_metadata(self, db: sqlite3.Connection, fixtures: Fixtures, now: str) -> None:
        for dag in fixtures.dags.values():
            if not fixture_changed(db, "dag", dag.dag_id, dag):
                continue
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
        for asset in fixtures.assets.values():
            if not fixture_changed(db, "asset", asset.name, asset):
                continue
            row = db.execute("SELECT id FROM assets WHERE name = ?", (asset.name,)).fetchone()
            values = (asset.uri, asset.group, json.dumps(asset.extra), int(asset.active))
            if row is None:
                db.execute(
                    "INSERT INTO assets (name, uri, group_name, extra, active)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (asset.name, *values),
                )
            else:
                db.execute(
                    "UPDATE assets SET uri = ?, group_name = ?, extra = ?, active = ? WHERE id = ?",
                    (*values, row["id"]),
                )
        for alias, names in fixtures.asset_aliases.items():
            if not fixture_changed(db, "asset_alias", alias, list(names)):
                continue
            alias_id = _ensure_alias(db, alias)
            db.execute("DELETE FROM asset_alias_assets WHERE alias_id = ?", (alias_id,))
            for name in names:
                asset = db.execute("SELECT id FROM assets WHERE name = ?", (name,)).fetchone()
                if asset is not None:
                    db.execute(
                        "INSERT OR IGNORE INTO asset_alias_assets (alias_id, asset_id)"
                        " VALUES (?, ?)",
                        (alias_id, asset["id"]),
                    )
        for event in fixtures.asset_events:
            # Events are append-only: each distinct entry is written once, an edited one anew.
            if not fixture_changed(db, "asset_event", _digest(event), event):
                continue
            asset = db.execute("SELECT id FROM assets WHERE name = ?", (event.asset,)).fetchone()
            if asset is None:
                continue
            _insert_event(
                db,
                asset["id"],
                extra=event.extra,
                source=(
                    event.source_task_id,
                    event.source_dag_id,
                    event.source_run_id,
                    event.source_map_index,
                ),
                partition_key=event.partition_key,
                timestamp=opt_time(event.timestamp) or now,
                aliases=event.aliases,
            )
        for run in fixtures.runs:
            if fixture_changed(db, "run", json.dumps([run.dag_id, run.run_id]), run):
                _seed_run(db, run, now)

    # -- DAGs --------------------------------------------------------------------------------

    def get_dag(self, dag_id: str) -> dict[str, Any] | None:
        """The ``DagResponse`` of a DAG: from ``[dags.*]``, else a default for a DAG with runs."""
        row = self._one("SELECT * FROM dags WHERE dag_id = ?", (dag_id,))
        if row is None:
            if not self.dag_is_known(dag_id):
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

    def dag_is_known(self, dag_id: str) -> bool:
        """Whether Airflow would have a DagModel: declared in fixtures, or has runs or TIs."""
        return (
            self._one(
                "SELECT 1 FROM dags WHERE dag_id = ? UNION ALL"
                " SELECT 1 FROM dag_runs WHERE dag_id = ? UNION ALL"
                " SELECT 1 FROM dag_run_defaults WHERE dag_id = ? LIMIT 1",
                (dag_id, dag_id, dag_id),
            )
            is not None
        )

    def task_group_tasks(self, dag_id: str, group_id: str) -> list[str] | None:
        """The task ids of a task group, or None when the DAG declares no such group."""
        row = self._one("SELECT task_groups FROM dags WHERE dag_id = ?", (dag_id,))
        groups = json.loads(row["task_groups"]) if row else {}
        return groups.get(group_id)

    def task_assets(self, dag_id: str, task_id: str) -> list[tuple[str, str]]:
        """The (name, uri) of every asset a task declares as inlet or outlet."""
        row = self._one("SELECT inlets, outlets FROM dags WHERE dag_id = ?", (dag_id,))
        if row is None:
            return []
        refs = json.loads(row["inlets"]).get(task_id, []) + json.loads(row["outlets"]).get(
            task_id, []
        )
        return [(r["name"], r["uri"]) for r in refs]

    # -- DAG runs ----------------------------------------------------------------------------

    def count_dag_runs(
        self,
        dag_id: str,
        *,
        logical_dates: list[datetime] | None = None,
        run_ids: list[str] | None = None,
        states: list[str] | None = None,
    ) -> int:
        """``GET /dag-runs/count``."""
        where = _Where()
        where.add("dag_id = ?", dag_id)
        where.any_of("logical_date", [db_time(d) for d in logical_dates or []])
        where.any_of("run_id", run_ids)
        where.any_of("state", states)
        row = self._one(f"SELECT COUNT(*) FROM dag_runs{where.sql}", tuple(where.args))
        return row[0] if row else 0

    def previous_dag_run(
        self, dag_id: str, before: datetime, state: str | None = None
    ) -> dict[str, Any] | None:
        """``GET /dag-runs/previous``: the latest run with a logical date before ``before``."""
        where = _Where()
        where.add("dag_id = ?", dag_id)
        where.add("logical_date < ?", db_time(before))
        if state:
            where.add("state = ?", state)
        row = self._one(
            f"SELECT * FROM dag_runs{where.sql} ORDER BY logical_date DESC LIMIT 1",
            tuple(where.args),
        )
        return dict(row) if row else None

    def previous_successful_run(self, ti_id: str) -> dict[str, Any] | None:
        """The run ``previous-successful-dagrun`` reports for a TI (None: nothing to report)."""
        ti = self._one(
            "SELECT r.dag_id, r.logical_date FROM task_instances t JOIN dag_runs r"
            " ON r.dag_id = t.dag_id AND r.run_id = t.run_id WHERE t.id = ?",
            (ti_id,),
        )
        if ti is None or ti["logical_date"] is None:
            return None
        row = self._one(
            "SELECT * FROM dag_runs WHERE dag_id = ? AND logical_date < ? AND state = 'success'"
            " ORDER BY logical_date DESC LIMIT 1",
            (ti["dag_id"], ti["logical_date"]),
        )
        return dict(row) if row else None

    def trigger_dag_run(
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
        # shape verified against real Airflow in the differential test tier (issue 6)
        interval = after if logical_date is not None else None
        with self._tx() as db:
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
                        json_or_none(conf),
                        triggering_user_name,
                        partition_key,
                        note,
                    ),
                )
            except sqlite3.IntegrityError:
                return False
        return True

    def clear_dag_run(self, dag_id: str, run_id: str) -> None:
        """``dag.clear(run_id=...)``: the run is queued again, its TIs lose their state (running
        ones become ``restarting``)."""
        with self._tx() as db:
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

    # -- task instances ----------------------------------------------------------------------

    def _ti_where(
        self,
        dag_id: str,
        *,
        map_index: int | None,
        task_ids: list[str] | None,
        logical_dates: list[datetime] | None,
        run_ids: list[str] | None,
    ) -> _Where:
        where = _Where()
        where.add("t.dag_id = ?", dag_id)
        where.any_of("t.task_id", task_ids)
        if map_index is not None:
            where.add("t.map_index = ?", map_index)
        where.any_of("r.logical_date", [db_time(d) for d in logical_dates or []])
        where.any_of("t.run_id", run_ids)
        return where

    def find_task_instances(
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
        where = self._ti_where(
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
                [_in("t.state", named)] if named else []
            )
            where.add("(" + " OR ".join(conds) + ")", *named)
        rows = self._all(
            "SELECT t.* FROM task_instances t LEFT JOIN dag_runs r"
            f" ON r.dag_id = t.dag_id AND r.run_id = t.run_id{where.sql}"
            " ORDER BY t.run_id, t.task_id, t.map_index",
            tuple(where.args),
        )
        return [dict(r) for r in rows]

    def breadcrumbs(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """``GET /task-instances/breadcrumbs``: the finished TIs of a run."""
        rows = self._all(
            "SELECT task_id, map_index, state, start_date, end_date FROM task_instances"
            f" WHERE dag_id = ? AND run_id = ? AND {_in('state', list(TERMINAL_TI_STATES))}"
            " ORDER BY task_id, map_index",
            (dag_id, run_id, *TERMINAL_TI_STATES),
        )
        # The stub has no operator classes: ``operator`` is unknown (null).
        # shape verified against real Airflow in the differential test tier (issue 6)
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

    def previous_task_instance(
        self,
        dag_id: str,
        task_id: str,
        *,
        before: datetime | None = None,
        map_index: int = -1,
        state: str | None = None,
    ) -> dict[str, Any] | None:
        """``GET /task-instances/previous/{dag_id}/{task_id}`` as a ``PreviousTIResponse``."""
        where = _Where()
        where.add("t.dag_id = ? AND t.task_id = ? AND t.map_index = ?", dag_id, task_id, map_index)
        if before is not None:
            where.add("r.logical_date < ?", db_time(before))
        if state:
            where.add("t.state = ?", state)
        row = self._one(
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
        row = self._one(
            "SELECT start_date FROM task_reschedules WHERE ti_id = ? ORDER BY id LIMIT 1",
            (ti_id,),
        )
        return row["start_date"] if row else None

    # -- assets ------------------------------------------------------------------------------

    def get_asset(
        self, *, name: str | None = None, uri: str | None = None, active_only: bool = True
    ) -> dict[str, Any] | None:
        """One asset by name or URI (active ones only, as the Execution API serves them)."""
        where = _Where()
        if name is not None:
            where.add("name = ?", name)
        if uri is not None:
            where.add("uri = ?", uri)
        if active_only:
            where.add("active = 1")
        row = self._one(f"SELECT * FROM assets{where.sql} ORDER BY id LIMIT 1", tuple(where.args))
        return _asset(row) if row else None

    def assets_by_alias(self, alias_name: str) -> list[dict[str, Any]]:
        """``expand_alias_to_assets``: every asset the alias resolved to (active or not)."""
        rows = self._all(
            "SELECT a.* FROM asset_aliases al JOIN asset_alias_assets aa ON aa.alias_id = al.id"
            " JOIN assets a ON a.id = aa.asset_id WHERE al.name = ? ORDER BY a.id",
            (alias_name,),
        )
        return [_asset(r) for r in rows]

    def asset_events(
        self,
        *,
        name: str | None = None,
        uri: str | None = None,
        alias_name: str | None = None,
        after: datetime | None = None,
        before: datetime | None = None,
        ascending: bool = True,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """``AssetEventResponse`` rows by asset (name and/or URI) or by alias, in time order.

        By name and URI together the asset need not be active; by one of them it must be
        (``asset_events.py``).
        """
        where = _Where()
        join = ""
        if alias_name is not None:
            join = (
                " JOIN asset_event_aliases ea ON ea.event_id = e.id"
                " JOIN asset_aliases al ON al.id = ea.alias_id"
            )
            where.add("al.name = ?", alias_name)
        else:
            if name:
                where.add("a.name = ?", name)
            if uri:
                where.add("a.uri = ?", uri)
            if not (name and uri):
                where.add("a.active = 1")
        if after:
            where.add("e.timestamp >= ?", db_time(after))
        if before:
            where.add("e.timestamp <= ?", db_time(before))
        order = "ASC" if ascending else "DESC"
        sql = (
            "SELECT e.*, a.name AS asset_name, a.uri AS asset_uri, a.group_name AS asset_group,"
            f" a.extra AS asset_extra FROM asset_events e JOIN assets a ON a.id = e.asset_id{join}"
            f"{where.sql} ORDER BY e.timestamp {order}, e.id {order}"
        )
        args: tuple[Any, ...] = tuple(where.args)
        if limit:
            sql, args = sql + " LIMIT ?", (*args, limit)
        return [_event(r) for r in self._all(sql, args)]

    def active_asset_keys(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        return {
            key
            for key in set(keys)
            if self._one("SELECT 1 FROM assets WHERE name = ? AND uri = ? AND active = 1", key)
            is not None
        }

    def register_outlet_events(
        self,
        ti: dict[str, Any],
        task_outlets: list[dict[str, Any]],
        outlet_events: list[dict[str, Any]],
        now: datetime,
    ) -> int:
        """Record asset events for a successful TI, as ``register_asset_changes_in_db`` does.

        ``Asset`` outlets (name and URI) and ``AssetNameRef``/``AssetUriRef`` outlets resolving
        to an active asset get one event per matching outlet event (or one with no extra);
        events emitted through an ``AssetAlias`` outlet create their asset when missing (as an
        inactive asset, like Airflow) and link the alias. One difference: the stub has no DAG
        processor, so an ``Asset`` outlet whose name and URI are both unknown is registered
        (active) first, as parsing the task's DAG would have. Returns the number of events.
        """
        if not task_outlets and not outlet_events:
            return 0
        stamp = db_time(now)
        source = (ti["task_id"], ti["dag_id"], ti["run_id"], ti["map_index"])
        payloads: dict[tuple[str, str], list[tuple[Any, Any]]] = defaultdict(list)
        for event in outlet_events:
            if "source_alias_name" in event:
                continue
            key = event.get("dest_asset_key") or {}
            payloads[(key.get("name"), key.get("uri"))].append(
                (event.get("extra"), event.get("partition_key"))
            )
        written = 0
        with self._tx() as db:
            run = db.execute(
                "SELECT partition_key FROM dag_runs WHERE dag_id = ? AND run_id = ?",
                (ti["dag_id"], ti["run_id"]),
            ).fetchone()
            run_pk = run["partition_key"] if run else None
            targets: dict[int, tuple[str, str]] = {}
            for outlet in task_outlets:
                kind, name, uri = outlet.get("type"), outlet.get("name"), outlet.get("uri")
                row = None
                if kind == "Asset" and name and uri:
                    row = db.execute(
                        "SELECT * FROM assets WHERE name = ? AND uri = ?", (name, uri)
                    ).fetchone()
                    if (
                        row is None
                        and not db.execute(
                            "SELECT 1 FROM assets WHERE name = ? OR uri = ?", (name, uri)
                        ).fetchone()
                    ):
                        cur = db.execute(
                            "INSERT INTO assets (name, uri, group_name, extra, active)"
                            " VALUES (?, ?, 'asset', '{}', 1)",
                            (name, uri),
                        )
                        row = db.execute(
                            "SELECT * FROM assets WHERE id = ?", (cur.lastrowid,)
                        ).fetchone()
                elif kind == "AssetNameRef" and name:
                    row = db.execute(
                        "SELECT * FROM assets WHERE name = ? AND active = 1", (name,)
                    ).fetchone()
                elif kind == "AssetUriRef" and uri:
                    row = db.execute(
                        "SELECT * FROM assets WHERE uri = ? AND active = 1", (uri,)
                    ).fetchone()
                if row is not None and row["active"]:
                    targets[row["id"]] = (row["name"], row["uri"])
            for asset_id, key in targets.items():
                for extra, pk in payloads.get(key) or [(None, None)]:
                    _insert_event(
                        db,
                        asset_id,
                        extra=extra,
                        source=source,
                        partition_key=pk if pk is not None else run_pk,
                        timestamp=stamp,
                    )
                    written += 1
            written += _register_alias_events(
                db, task_outlets, outlet_events, source, run_pk, stamp
            )
        return written

    # -- task state store (scope: the TI's dag, run, task and map index) ----------------------

    def get_task_state(self, scope: tuple[str, str, str, int], key: str, now: datetime) -> Any:
        """The stored JSON text, or None when missing or expired.

        Airflow deletes expired rows in a periodic cleanup; the stub reads as if it had just run.
        """
        row = self._one(
            "SELECT value, expires_at FROM task_state_store WHERE dag_id = ? AND run_id = ?"
            " AND task_id = ? AND map_index = ? AND key = ?",
            (*scope, key),
        )
        if row is None or (row["expires_at"] is not None and row["expires_at"] < db_time(now)):
            return None
        return row["value"]

    def set_task_state(
        self,
        scope: tuple[str, str, str, int],
        key: str,
        value_json: str,
        expires_at: datetime | None,
        now: datetime,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO task_state_store (dag_id, run_id, task_id, map_index, key,"
                " value, expires_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (*scope, key, value_json, opt_time(expires_at), db_time(now)),
            )

    def delete_task_state(self, scope: tuple[str, str, str, int], key: str | None = None) -> None:
        """Delete one key, or with ``key=None`` every key of the scope."""
        sql = (
            "DELETE FROM task_state_store WHERE dag_id = ? AND run_id = ? AND task_id = ?"
            " AND map_index = ?"
        )
        args: tuple[Any, ...] = scope
        if key is not None:
            sql, args = sql + " AND key = ?", (*scope, key)
        with self._tx() as db:
            db.execute(sql, args)

    # -- asset state store -------------------------------------------------------------------

    def get_asset_state(self, asset_id: int, key: str) -> str | None:
        row = self._one(
            "SELECT value FROM asset_state_store WHERE asset_id = ? AND key = ?", (asset_id, key)
        )
        return row["value"] if row else None

    def set_asset_state(self, asset_id: int, key: str, value_json: str, now: datetime) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO asset_state_store (asset_id, key, value, updated_at)"
                " VALUES (?, ?, ?, ?)",
                (asset_id, key, value_json, db_time(now)),
            )

    def delete_asset_state(self, asset_id: int, key: str | None = None) -> None:
        """Delete one key, or with ``key=None`` every key of the asset."""
        sql, args = "DELETE FROM asset_state_store WHERE asset_id = ?", (asset_id,)
        if key is not None:
            sql, args = sql + " AND key = ?", (asset_id, key)
        with self._tx() as db:
            db.execute(sql, args)

    # -- HITL --------------------------------------------------------------------------------

    def upsert_hitl_detail(
        self, ti_id: str, payload: dict[str, Any], now: datetime
    ) -> dict[str, Any]:
        """``POST /hitlDetails/{id}``: create the request part once; a later call returns it,
        dropping any response already received. Returns the ``HITLDetailRequest``."""
        with self._tx() as db:
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

    def respond_hitl_detail(
        self, ti_id: str, chosen_options: list[str], params_input: dict[str, Any], at: str
    ) -> None:
        """``PATCH /hitlDetails/{id}``: record the response (by nobody: the API has no user)."""
        with self._tx() as db:
            db.execute(
                "UPDATE hitl_details SET responded_by = NULL, responded_at = ?,"
                " chosen_options = ?, params_input = ? WHERE ti_id = ?",
                (at, json.dumps(chosen_options), json.dumps(params_input), ti_id),
            )

    def get_hitl_detail(self, ti_id: str) -> dict[str, Any] | None:
        row = self._one("SELECT * FROM hitl_details WHERE ti_id = ?", (ti_id,))
        return dict(row) if row else None


# -- helpers -----------------------------------------------------------------------------------


def _refs_json(refs: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    return {task: [{"name": r.name, "uri": r.uri} for r in items] for task, items in refs.items()}


def _digest(entry: Any) -> str:
    text = json.dumps(dataclasses.asdict(entry), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _duration(start: str | None, end: str | None) -> float | None:
    if start is None or end is None:
        return None
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    return (datetime.strptime(end, fmt) - datetime.strptime(start, fmt)).total_seconds()


def _asset(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "uri": row["uri"],
        "group": row["group_name"],
        "extra": json.loads(row["extra"]),
        "active": bool(row["active"]),
    }


def _event(row: sqlite3.Row) -> dict[str, Any]:
    """One ``AssetEventResponse`` as the API renders it (every key, nulls included)."""
    return {
        "id": row["id"],
        "timestamp": api_time(row["timestamp"]),
        "extra": json.loads(row["extra"]),
        "asset": {
            "name": row["asset_name"],
            "uri": row["asset_uri"],
            "group": row["asset_group"],
            "extra": json.loads(row["asset_extra"]),
        },
        # Runs the scheduler created from this event: the stub has no scheduler.
        "created_dagruns": [],
        "source_task_id": row["source_task_id"],
        "source_dag_id": row["source_dag_id"],
        "source_run_id": row["source_run_id"],
        "source_map_index": row["source_map_index"],
        "partition_key": row["partition_key"],
    }


def _ensure_alias(db: sqlite3.Connection, name: str) -> int:
    db.execute("INSERT OR IGNORE INTO asset_aliases (name) VALUES (?)", (name,))
    return db.execute("SELECT id FROM asset_aliases WHERE name = ?", (name,)).fetchone()["id"]


def _insert_event(
    db: sqlite3.Connection,
    asset_id: int,
    *,
    extra: Any,
    source: tuple[Any, Any, Any, Any],
    partition_key: str | None,
    timestamp: str,
    aliases: Iterable[str] = (),
) -> int:
    cur = db.execute(
        "INSERT INTO asset_events (asset_id, extra, source_task_id, source_dag_id,"
        " source_run_id, source_map_index, partition_key, timestamp)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (asset_id, json.dumps(extra or {}), *source, partition_key, timestamp),
    )
    event_id = cur.lastrowid
    for alias in aliases:
        db.execute(
            "INSERT OR IGNORE INTO asset_event_aliases (event_id, alias_id) VALUES (?, ?)",
            (event_id, _ensure_alias(db, alias)),
        )
    return event_id


def _register_alias_events(
    db: sqlite3.Connection,
    task_outlets: list[dict[str, Any]],
    outlet_events: list[dict[str, Any]],
    source: tuple[Any, Any, Any, Any],
    run_pk: str | None,
    stamp: str,
) -> int:
    """Events emitted through ``AssetAlias`` outlets (``register_asset_changes_in_db``)."""
    alias_names = {o.get("name") for o in task_outlets if o.get("type") == "AssetAlias"}
    alias_names.discard(None)
    grouped: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
    for event in outlet_events:
        alias = event.get("source_alias_name")
        if alias not in alias_names:
            continue
        key = event.get("dest_asset_key") or {}
        grouped[
            (
                key.get("name"),
                key.get("uri"),
                json.dumps(event.get("dest_asset_extra", {}), sort_keys=True),
                json.dumps(event.get("extra"), sort_keys=True),
            )
        ].add(alias)
    written = 0
    for (name, uri, asset_extra, event_extra), aliases in grouped.items():
        row = db.execute("SELECT id FROM assets WHERE name = ? AND uri = ?", (name, uri)).fetchone()
        if row is None:
            # "Dynamically creating AssetModel": no AssetActive row, so it is inactive.
            cur = db.execute(
                "INSERT INTO assets (name, uri, group_name, extra, active)"
                " VALUES (?, ?, 'asset', ?, 0)",
                (name, uri, asset_extra),
            )
            asset_id = cur.lastrowid
        else:
            asset_id = row["id"]
        for alias in sorted(aliases):
            db.execute(
                "INSERT OR IGNORE INTO asset_alias_assets (alias_id, asset_id) VALUES (?, ?)",
                (_ensure_alias(db, alias), asset_id),
            )
        _insert_event(
            db,
            asset_id,
            extra=json.loads(event_extra),
            source=source,
            partition_key=run_pk,
            timestamp=stamp,
            aliases=sorted(aliases),
        )
        written += 1
    return written


def _seed_run(db: sqlite3.Connection, run: RunFixture, now: str) -> None:
    """Write one ``[[runs]]`` entry: the DAG run, then its task instances."""
    run_after = opt_time(run.run_after) or opt_time(run.logical_date) or now
    started = run.state != "queued"
    start = opt_time(run.start_date) or (
        (opt_time(run.logical_date) or run_after) if started else None
    )
    end = opt_time(run.end_date) or (start if run.state in _FINISHED_RUN_STATES else None)
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
            json_or_none(run.conf),
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

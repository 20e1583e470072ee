"""The asset tables: ``assets`` (with their active flag), aliases, and asset events.

An asset is active when the DAG processor would have activated it: declared under ``[assets]``
(unless ``active = false``), declared as a task's inlet or outlet under ``[dags.*]`` (docs/
fixtures.md), or first named by a successful task's ``Asset`` outlet. Either way only a name
and URI unknown to the store are registered: Airflow does not activate an asset whose name or
URI another asset already has.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .._fixtures import Fixtures
from ._common import Where, api_time, db_time, digest, fixture_changed, opt_time
from ._database import Database

__all__ = [
    "SCHEMA",
    "Assets",
    "register_declared_asset",
    "seed_aliases_and_events",
    "seed_assets",
]

SCHEMA = """
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
"""


# -- seeding -----------------------------------------------------------------------------------


def seed_assets(db: sqlite3.Connection, fixtures: Fixtures) -> None:
    """``[assets.*]``: each declared asset, its URI, group, extra and active flag."""
    for asset in fixtures.assets.values():
        if not fixture_changed(db, "asset", asset.name, asset):
            continue
        row = db.execute("SELECT id FROM assets WHERE name = ?", (asset.name,)).fetchone()
        values = (asset.uri, asset.group, json.dumps(asset.extra), int(asset.active))
        if row is None:
            db.execute(
                "INSERT INTO assets (name, uri, group_name, extra, active) VALUES (?, ?, ?, ?, ?)",
                (asset.name, *values),
            )
        else:
            db.execute(
                "UPDATE assets SET uri = ?, group_name = ?, extra = ?, active = ? WHERE id = ?",
                (*values, row["id"]),
            )


def seed_aliases_and_events(db: sqlite3.Connection, fixtures: Fixtures, now: str) -> None:
    """``[asset_aliases]`` and ``[[asset_events]]`` (after the assets they name)."""
    for alias, names in fixtures.asset_aliases.items():
        if not fixture_changed(db, "asset_alias", alias, list(names)):
            continue
        alias_id = _ensure_alias(db, alias)
        db.execute("DELETE FROM asset_alias_assets WHERE alias_id = ?", (alias_id,))
        for name in names:
            asset = db.execute("SELECT id FROM assets WHERE name = ?", (name,)).fetchone()
            if asset is not None:
                db.execute(
                    "INSERT OR IGNORE INTO asset_alias_assets (alias_id, asset_id) VALUES (?, ?)",
                    (alias_id, asset["id"]),
                )
    for event in fixtures.asset_events:
        # Events are append-only: each distinct entry is written once, an edited one anew.
        if not fixture_changed(db, "asset_event", digest(event), event):
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


def register_declared_asset(db: sqlite3.Connection, name: str, uri: str) -> sqlite3.Row | None:
    """The asset ``(name, uri)``; registered active first when neither its name nor its URI is
    known, as the DAG processor does for a DAG's inlets and outlets. None: another asset holds
    the name or the URI, so Airflow would leave this one unregistered (inactive)."""
    row = db.execute("SELECT * FROM assets WHERE name = ? AND uri = ?", (name, uri)).fetchone()
    if row is not None:
        return row
    if db.execute("SELECT 1 FROM assets WHERE name = ? OR uri = ?", (name, uri)).fetchone():
        return None
    cur = db.execute(
        "INSERT INTO assets (name, uri, group_name, extra, active) VALUES (?, ?, 'asset', '{}', 1)",
        (name, uri),
    )
    return db.execute("SELECT * FROM assets WHERE id = ?", (cur.lastrowid,)).fetchone()


class Assets:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(
        self, *, name: str | None = None, uri: str | None = None, active_only: bool = True
    ) -> dict[str, Any] | None:
        """One asset by name or URI (active ones only, as the Execution API serves them)."""
        where = Where()
        if name is not None:
            where.add("name = ?", name)
        if uri is not None:
            where.add("uri = ?", uri)
        if active_only:
            where.add("active = 1")
        row = self._db.one(
            f"SELECT * FROM assets{where.sql} ORDER BY id LIMIT 1", tuple(where.args)
        )
        return _asset(row) if row else None

    def by_alias(self, alias_name: str) -> list[dict[str, Any]]:
        """``expand_alias_to_assets``: every asset the alias resolved to (active or not)."""
        rows = self._db.all(
            "SELECT a.* FROM asset_aliases al JOIN asset_alias_assets aa ON aa.alias_id = al.id"
            " JOIN assets a ON a.id = aa.asset_id WHERE al.name = ? ORDER BY a.id",
            (alias_name,),
        )
        return [_asset(r) for r in rows]

    def active_keys(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """The (name, uri) keys among ``keys`` that name an active asset."""
        return {
            key
            for key in set(keys)
            if self._db.one("SELECT 1 FROM assets WHERE name = ? AND uri = ? AND active = 1", key)
            is not None
        }

    def events(
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
        where = Where()
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
        return [_event(r) for r in self._db.all(sql, args)]

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
        inactive asset, like Airflow) and link the alias. An ``Asset`` outlet whose name and
        URI are both unknown is registered (active) first, as parsing the task's DAG would have
        (``register_declared_asset``). Returns the number of events.
        """
        if not task_outlets and not outlet_events:
            return 0
        stamp = db_time(now)
        source = (ti["task_id"], ti["dag_id"], ti["run_id"], ti["map_index"])
        payloads: dict[tuple[Any, Any], list[tuple[Any, Any]]] = defaultdict(list)
        for event in outlet_events:
            if "source_alias_name" in event:
                continue
            key = event.get("dest_asset_key") or {}
            payloads[(key.get("name"), key.get("uri"))].append(
                (event.get("extra"), event.get("partition_key"))
            )
        written = 0
        with self._db.tx() as db:
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
                    row = register_declared_asset(db, name, uri)
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


# -- rows and events ---------------------------------------------------------------------------


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
    assert event_id is not None
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
    grouped: dict[tuple[Any, Any, str, str], set[str]] = defaultdict(set)
    for event in outlet_events:
        alias = event.get("source_alias_name")
        if not isinstance(alias, str) or alias not in alias_names:
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
            asset_id: int = cur.lastrowid or 0
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

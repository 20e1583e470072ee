"""What every table module of the store shares: time text, ids, JSON columns, seed digests and
a small WHERE-clause builder."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import time
import uuid
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "Where",
    "api_time",
    "dag_version_id",
    "db_time",
    "digest",
    "fixture_changed",
    "json_or_none",
    "loads",
    "opt_time",
    "sql_in",
    "utcnow",
    "uuid7",
]


# -- time and ids ------------------------------------------------------------------------------


def utcnow() -> datetime:
    return datetime.now(UTC)


def db_time(value: datetime) -> str:
    """Fixed-width UTC text for storage (sortable as text)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def opt_time(value: datetime | None) -> str | None:
    return None if value is None else db_time(value)


def api_time(value: str | None) -> str | None:
    """Stored time as pydantic serialises an aware UTC datetime: ``Z``, no zero fraction."""
    if value is None:
        return None
    # shape verified against real Airflow in the differential test tier
    return value[:19] + "Z" if value[20:26] == "000000" else value


def uuid7() -> str:
    """A time-ordered UUIDv7, the kind Airflow gives task instances."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62 | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def dag_version_id(dag_id: str) -> str:
    # One stable "version" per DAG: the stub has no DAG files, only names.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"supervisor-sim:dag:{dag_id}"))


# -- JSON columns ------------------------------------------------------------------------------


def json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


# -- seeding -----------------------------------------------------------------------------------


def digest(entry: Any) -> str:
    """A fixture entry's content digest (a dataclass or plain JSON-able value)."""
    is_instance = dataclasses.is_dataclass(entry) and not isinstance(entry, type)
    value = dataclasses.asdict(entry) if is_instance else entry
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def fixture_changed(db: sqlite3.Connection, kind: str, ident: str, entry: Any) -> bool:
    """Record the entry's digest; True when it differs from the one seeded last time."""
    new = digest(entry)
    row = db.execute(
        "SELECT digest FROM fixture_seeds WHERE kind = ? AND ident = ?", (kind, ident)
    ).fetchone()
    if row is not None and row["digest"] == new:
        return False
    db.execute(
        "INSERT OR REPLACE INTO fixture_seeds (kind, ident, digest) VALUES (?, ?, ?)",
        (kind, ident, new),
    )
    return True


# -- queries -----------------------------------------------------------------------------------


def sql_in(column: str, values: list[Any]) -> str:
    return f"{column} IN ({', '.join('?' * len(values))})"


class Where:
    """A small WHERE-clause builder (AND of conditions, positional args)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.args: list[Any] = []

    def add(self, sql: str, *args: Any) -> None:
        self.parts.append(sql)
        self.args.extend(args)

    def any_of(self, column: str, values: list[Any] | None) -> None:
        if values:  # Airflow: an empty or missing filter means "no filter"
            self.add(sql_in(column, values), *values)

    @property
    def sql(self) -> str:
        return " WHERE " + " AND ".join(self.parts) if self.parts else ""

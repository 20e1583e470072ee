"""Fixtures: the variables, connections, XComs and DAG-run defaults a user seeds the stub with.

The file is TOML (docs/fixtures.md). Loading validates everything up front so a typo is reported
once, with the file and the key path (``connections.peer_conn.port: expected an integer, got
'abc'``), instead of surfacing later as a confusing 404 from the stub. Nothing here touches
SQLite; ``StubStore.seed`` consumes the result.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

__all__ = [
    "ConnectionFixture",
    "DagRunFixture",
    "FixtureError",
    "Fixtures",
    "VariableFixture",
    "XComFixture",
    "load_fixtures",
]

#: Airflow's DagRunType values (the client model rejects anything else).
RUN_TYPES = (
    "backfill",
    "scheduled",
    "manual",
    "operator_triggered",
    "asset_triggered",
    "asset_materialization",
)


class FixtureError(ValueError):
    """A fixtures file that cannot be read or does not match the documented format."""


@dataclass(frozen=True)
class VariableFixture:
    value: str
    description: str | None = None


@dataclass(frozen=True)
class ConnectionFixture:
    conn_type: str
    host: str | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = None
    port: int | None = None
    #: JSON text, as Airflow stores it (``extra`` is a string in the API, not an object).
    extra: str | None = None


@dataclass(frozen=True)
class XComFixture:
    dag_id: str
    run_id: str
    task_id: str
    key: str
    value: Any
    map_index: int = -1


@dataclass(frozen=True)
class DagRunFixture:
    """Defaults for DAG runs of one DAG that ``prepare_task_instance`` creates.

    With ``run_id`` set, that run is also created when seeding and becomes the run ``run-task``
    uses when no run id is given, so consecutive tasks share XComs.
    """

    dag_id: str
    run_id: str | None = None
    conf: dict[str, Any] | None = None
    logical_date: datetime | None = None
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    run_type: str = "manual"
    triggering_user_name: str | None = None
    partition_key: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Fixtures:
    variables: dict[str, VariableFixture] = field(default_factory=dict)
    connections: dict[str, ConnectionFixture] = field(default_factory=dict)
    xcoms: list[XComFixture] = field(default_factory=list)
    dag_runs: dict[str, DagRunFixture] = field(default_factory=dict)
    source: Path | None = None


def load_fixtures(path: str | os.PathLike[str]) -> Fixtures:
    """Read and validate a fixtures TOML file; raise ``FixtureError`` naming the file and key."""
    source = Path(path)
    try:
        raw = source.read_bytes()
    except OSError as exc:
        raise FixtureError(f"{source}: cannot read fixtures file: {exc.strerror or exc}") from exc
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise FixtureError(f"{source}: not UTF-8 text: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise FixtureError(f"{source}: invalid TOML: {exc}") from exc
    return _Parser(source).parse(doc)


class _Parser:
    def __init__(self, source: Path) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> FixtureError:
        return FixtureError(f"{self.source}: {where}: {message}")

    def parse(self, doc: dict[str, Any]) -> Fixtures:
        sections = {
            "variables": self.variables,
            "connections": self.connections,
            "xcoms": self.xcoms,
            "dag_runs": self.dag_runs,
        }
        parsed: dict[str, Any] = {}
        for name, value in doc.items():
            if name not in sections:
                raise self.fail(
                    name, f"unknown section; expected one of {', '.join(sorted(sections))}"
                )
            parsed[name] = sections[name](value)
        return Fixtures(**parsed, source=self.source)

    # -- sections ----------------------------------------------------------------------------

    def variables(self, section: Any) -> dict[str, VariableFixture]:
        table = self.table("variables", section)
        out: dict[str, VariableFixture] = {}
        for key, value in table.items():
            where = f"variables.{key}"
            if isinstance(value, dict):
                # The long form: a table with the value and an optional description.
                self.only_keys(where, value, {"value", "description"})
                if "value" not in value:
                    raise self.fail(where, "missing required key 'value'")
                out[key] = VariableFixture(
                    self.variable_value(f"{where}.value", value["value"]),
                    self.opt_str(f"{where}.description", value.get("description")),
                )
            else:
                out[key] = VariableFixture(self.variable_value(where, value))
        return out

    def connections(self, section: Any) -> dict[str, ConnectionFixture]:
        table = self.table("connections", section)
        out: dict[str, ConnectionFixture] = {}
        for conn_id, value in table.items():
            where = f"connections.{conn_id}"
            conn = self.table(where, value)
            self.only_keys(
                where, conn, {"conn_type", "host", "schema", "login", "password", "port", "extra"}
            )
            if "conn_type" not in conn:
                raise self.fail(where, "missing required key 'conn_type'")
            out[conn_id] = ConnectionFixture(
                conn_type=self.req_str(f"{where}.conn_type", conn["conn_type"]),
                host=self.opt_str(f"{where}.host", conn.get("host")),
                schema=self.opt_str(f"{where}.schema", conn.get("schema")),
                login=self.opt_str(f"{where}.login", conn.get("login")),
                password=self.opt_str(f"{where}.password", conn.get("password")),
                port=self.opt_int(f"{where}.port", conn.get("port")),
                extra=self.extra(f"{where}.extra", conn.get("extra")),
            )
        return out

    def xcoms(self, section: Any) -> list[XComFixture]:
        if not isinstance(section, list):
            raise self.fail(
                "xcoms", f"expected an array of tables ([[xcoms]]), got {_show(section)}"
            )
        out = []
        for i, value in enumerate(section):
            where = f"xcoms[{i}]"
            item = self.table(where, value)
            self.only_keys(
                where, item, {"dag_id", "run_id", "task_id", "key", "value", "map_index"}
            )
            for required in ("dag_id", "run_id", "task_id", "key", "value"):
                if required not in item:
                    raise self.fail(where, f"missing required key {required!r}")
            out.append(
                XComFixture(
                    dag_id=self.req_str(f"{where}.dag_id", item["dag_id"]),
                    run_id=self.req_str(f"{where}.run_id", item["run_id"]),
                    task_id=self.req_str(f"{where}.task_id", item["task_id"]),
                    key=self.req_str(f"{where}.key", item["key"]),
                    value=self.json_value(f"{where}.value", item["value"]),
                    map_index=self.opt_int(f"{where}.map_index", item.get("map_index"), -1),
                )
            )
        return out

    def dag_runs(self, section: Any) -> dict[str, DagRunFixture]:
        table = self.table("dag_runs", section)
        out: dict[str, DagRunFixture] = {}
        allowed = {
            "run_id",
            "conf",
            "logical_date",
            "data_interval_start",
            "data_interval_end",
            "run_type",
            "triggering_user_name",
            "partition_key",
            "note",
        }
        for dag_id, value in table.items():
            where = f"dag_runs.{dag_id}"
            run = self.table(where, value)
            self.only_keys(where, run, allowed)
            conf = run.get("conf")
            if conf is not None:
                conf = self.json_value(f"{where}.conf", self.table(f"{where}.conf", conf))
            run_type = self.opt_str(f"{where}.run_type", run.get("run_type")) or "manual"
            if run_type not in RUN_TYPES:
                raise self.fail(
                    f"{where}.run_type",
                    f"expected one of {', '.join(RUN_TYPES)}, got {run_type!r}",
                )
            out[dag_id] = DagRunFixture(
                dag_id=dag_id,
                run_id=self.opt_str(f"{where}.run_id", run.get("run_id")),
                conf=conf,
                logical_date=self.opt_datetime(f"{where}.logical_date", run.get("logical_date")),
                data_interval_start=self.opt_datetime(
                    f"{where}.data_interval_start", run.get("data_interval_start")
                ),
                data_interval_end=self.opt_datetime(
                    f"{where}.data_interval_end", run.get("data_interval_end")
                ),
                run_type=run_type,
                triggering_user_name=self.opt_str(
                    f"{where}.triggering_user_name", run.get("triggering_user_name")
                ),
                partition_key=self.opt_str(f"{where}.partition_key", run.get("partition_key")),
                note=self.opt_str(f"{where}.note", run.get("note")),
            )
        return out

    # -- value checks ------------------------------------------------------------------------

    def table(self, where: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a table, got {_show(value)}")
        return value

    def only_keys(self, where: str, table: dict[str, Any], allowed: set[str]) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(
                    f"{where}.{key}", f"unknown key; expected one of {', '.join(sorted(allowed))}"
                )

    def req_str(self, where: str, value: Any) -> str:
        if not isinstance(value, str):
            raise self.fail(where, f"expected a string, got {_show(value)}")
        return value

    def opt_str(self, where: str, value: Any) -> str | None:
        return None if value is None else self.req_str(where, value)

    def opt_int(self, where: str, value: Any, default: int | None = None) -> Any:
        if value is None:
            return default
        # bool is an int subclass in Python; TOML keeps them distinct, so must we.
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"expected an integer, got {_show(value)}")
        return value

    def variable_value(self, where: str, value: Any) -> str:
        # Airflow stores variables as text; non-strings are stored JSON-encoded, as
        # Variable.set(serialize_json=True) would.
        if isinstance(value, str):
            return value
        return json.dumps(self.json_value(where, value), separators=(",", ":"))

    def json_value(self, where: str, value: Any) -> Any:
        if isinstance(value, (datetime, date, time)):
            raise self.fail(
                where,
                f"TOML dates and times have no JSON form; quote it as a string, got {_show(value)}",
            )
        if isinstance(value, dict):
            return {k: self.json_value(f"{where}.{k}", v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.json_value(f"{where}[{i}]", v) for i, v in enumerate(value)]
        if isinstance(value, float) and value != value:  # NaN is not JSON
            raise self.fail(where, "NaN has no JSON form")
        return value

    def extra(self, where: str, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, dict):
            return json.dumps(self.json_value(where, value), separators=(",", ":"))
        if isinstance(value, str):
            try:
                json.loads(value)
            except ValueError as exc:
                raise self.fail(where, f"not valid JSON: {exc}") from None
            return value
        raise self.fail(where, f"expected a table or a JSON string, got {_show(value)}")

    def opt_datetime(self, where: str, value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise self.fail(
                    where, f"expected an ISO 8601 date-time, got {_show(value)}"
                ) from None
        if not isinstance(value, datetime):
            raise self.fail(where, f"expected a date-time, got {_show(value)}")
        # A local date-time (no offset) is taken as UTC: Airflow only keeps aware UTC times.
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)

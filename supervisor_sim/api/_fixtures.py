"""Fixtures: what a user seeds the stub with.

Variables, connections, XComs and DAG-run defaults, and the metadata Airflow's DAG processor,
scheduler and earlier runs would have left in the database: DAGs, assets and aliases, asset
events, and existing DAG runs with their task instances.

The file is TOML (docs/fixtures.md). Loading validates everything up front so a typo is reported
once, with the file and the key path (``connections.peer_conn.port: expected an integer, got
'abc'``), instead of surfacing later as a confusing 404 from the stub. Nothing here touches
SQLite; ``StubStore.seed`` consumes the result.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

__all__ = [
    "AssetEventFixture",
    "AssetFixture",
    "AssetRef",
    "ConnectionFixture",
    "DagFixture",
    "DagRunFixture",
    "FixtureError",
    "Fixtures",
    "RunFixture",
    "TaskInstanceFixture",
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


def _state_vocabulary() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Airflow's DAG-run and TI states (``protocol``'s vocabulary), imported only when a
    fixture names a state: ``run-task`` reads fixtures before it loads anything but the
    standard library, and the protocol package is not cheap to import."""
    from ..protocol import DAG_RUN_STATES, TI_STATES

    return DAG_RUN_STATES, TI_STATES


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
class AssetRef:
    """An asset as a task's inlet or outlet names it: Airflow's unique key (name, uri)."""

    name: str
    uri: str


@dataclass(frozen=True)
class DagFixture:
    """What the DAG processor would have stored for one DAG (``GET /dags/{dag_id}``)."""

    dag_id: str
    is_paused: bool = False
    bundle_name: str | None = "dags-folder"
    bundle_version: str | None = None
    relative_fileloc: str | None = None
    owners: str | None = "airflow"
    tags: tuple[str, ...] = ()
    next_dagrun: datetime | None = None
    #: task group id -> the task ids in it (for GetTICount / GetTaskStates ``task_group_id``).
    task_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: task id -> the assets it declares (for ValidateInletsAndOutlets).
    inlets: dict[str, tuple[AssetRef, ...]] = field(default_factory=dict)
    outlets: dict[str, tuple[AssetRef, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class AssetFixture:
    name: str
    uri: str
    group: str = "asset"
    extra: dict[str, Any] = field(default_factory=dict)
    #: Inactive assets exist but are not served (404), as after a name/URI conflict in Airflow.
    active: bool = True


@dataclass(frozen=True)
class AssetEventFixture:
    asset: str  # the asset's name, declared under [assets]
    extra: dict[str, Any] = field(default_factory=dict)
    timestamp: datetime | None = None  # None: the time of seeding
    source_dag_id: str | None = None
    source_run_id: str | None = None
    source_task_id: str | None = None
    source_map_index: int | None = None
    partition_key: str | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskInstanceFixture:
    task_id: str
    state: str | None = None  # None: no state yet (Airflow's NULL)
    map_index: int = -1
    try_number: int = 1
    start_date: datetime | None = None
    end_date: datetime | None = None


@dataclass(frozen=True)
class RunFixture:
    """A DAG run that already exists (an earlier run, say), with its task instances."""

    dag_id: str
    run_id: str
    state: str = "success"
    run_type: str = "manual"
    logical_date: datetime | None = None
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    run_after: datetime | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    conf: dict[str, Any] | None = None
    triggering_user_name: str | None = None
    partition_key: str | None = None
    note: str | None = None
    task_instances: tuple[TaskInstanceFixture, ...] = ()


@dataclass(frozen=True)
class Fixtures:
    variables: dict[str, VariableFixture] = field(default_factory=dict)
    connections: dict[str, ConnectionFixture] = field(default_factory=dict)
    xcoms: list[XComFixture] = field(default_factory=list)
    dag_runs: dict[str, DagRunFixture] = field(default_factory=dict)
    dags: dict[str, DagFixture] = field(default_factory=dict)
    assets: dict[str, AssetFixture] = field(default_factory=dict)
    asset_aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    asset_events: list[AssetEventFixture] = field(default_factory=list)
    runs: list[RunFixture] = field(default_factory=list)
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
            "dags": self.dags,
            "assets": self.assets,
            "asset_aliases": self.asset_aliases,
            "asset_events": self.asset_events,
            "runs": self.runs,
        }
        for name in doc:
            if name not in sections:
                raise self.fail(
                    name, f"unknown section; expected one of {', '.join(sorted(sections))}"
                )
        parsed: dict[str, Any] = {name: sections[name](value) for name, value in doc.items()}
        self._check_asset_names(parsed)
        return Fixtures(**parsed, source=self.source)

    def _check_asset_names(self, parsed: dict[str, Any]) -> None:
        """Cross-section checks: every named asset and alias is declared; refs get their URI."""
        assets: dict[str, AssetFixture] = parsed.get("assets", {})

        def resolve(refs: tuple[AssetRef, ...]) -> tuple[AssetRef, ...]:
            # Asset("name") in Airflow has uri == name; a declared asset lends its URI.
            return tuple(
                r if r.uri else AssetRef(r.name, assets[r.name].uri if r.name in assets else r.name)
                for r in refs
            )

        for dag_id, dag in parsed.get("dags", {}).items():
            parsed["dags"][dag_id] = dataclasses.replace(
                dag,
                inlets={t: resolve(refs) for t, refs in dag.inlets.items()},
                outlets={t: resolve(refs) for t, refs in dag.outlets.items()},
            )
        aliases: dict[str, tuple[str, ...]] = parsed.get("asset_aliases", {})
        for alias, names in aliases.items():
            for i, name in enumerate(names):
                if name not in assets:
                    raise self.fail(
                        f"asset_aliases.{alias}[{i}]",
                        f"unknown asset {name!r}; declare it under [assets]",
                    )
        for i, event in enumerate(parsed.get("asset_events", [])):
            if event.asset not in assets:
                raise self.fail(
                    f"asset_events[{i}].asset",
                    f"unknown asset {event.asset!r}; declare it under [assets]",
                )
            for j, alias in enumerate(event.aliases):
                if alias not in aliases:
                    raise self.fail(
                        f"asset_events[{i}].aliases[{j}]",
                        f"unknown asset alias {alias!r}; declare it under [asset_aliases]",
                    )

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

    def dags(self, section: Any) -> dict[str, DagFixture]:
        table = self.table("dags", section)
        out: dict[str, DagFixture] = {}
        allowed = {
            "is_paused",
            "bundle_name",
            "bundle_version",
            "relative_fileloc",
            "owners",
            "tags",
            "next_dagrun",
            "task_groups",
            "tasks",
        }
        for dag_id, value in table.items():
            where = f"dags.{dag_id}"
            dag = self.table(where, value)
            self.only_keys(where, dag, allowed)
            groups = self.table(f"{where}.task_groups", dag.get("task_groups", {}))
            inlets: dict[str, tuple[AssetRef, ...]] = {}
            outlets: dict[str, tuple[AssetRef, ...]] = {}
            for task_id, task in self.table(f"{where}.tasks", dag.get("tasks", {})).items():
                tw = f"{where}.tasks.{task_id}"
                self.only_keys(tw, self.table(tw, task), {"inlets", "outlets"})
                if "inlets" in task:
                    inlets[task_id] = self.asset_refs(f"{tw}.inlets", task["inlets"])
                if "outlets" in task:
                    outlets[task_id] = self.asset_refs(f"{tw}.outlets", task["outlets"])
            defaults = DagFixture(dag_id)
            out[dag_id] = DagFixture(
                dag_id=dag_id,
                is_paused=self.opt_bool(f"{where}.is_paused", dag.get("is_paused"), False),
                bundle_name=self.opt_str(f"{where}.bundle_name", dag.get("bundle_name"))
                or defaults.bundle_name,
                bundle_version=self.opt_str(f"{where}.bundle_version", dag.get("bundle_version")),
                relative_fileloc=self.opt_str(
                    f"{where}.relative_fileloc", dag.get("relative_fileloc")
                ),
                owners=self.opt_str(f"{where}.owners", dag.get("owners")) or defaults.owners,
                tags=self.str_list(f"{where}.tags", dag.get("tags", [])),
                next_dagrun=self.opt_datetime(f"{where}.next_dagrun", dag.get("next_dagrun")),
                task_groups={
                    gid: self.str_list(f"{where}.task_groups.{gid}", tasks)
                    for gid, tasks in groups.items()
                },
                inlets=inlets,
                outlets=outlets,
            )
        return out

    def asset_refs(self, where: str, value: Any) -> tuple[AssetRef, ...]:
        if not isinstance(value, list):
            raise self.fail(where, f"expected an array, got {_show(value)}")
        refs = []
        for i, item in enumerate(value):
            iw = f"{where}[{i}]"
            if isinstance(item, str):
                # Like Asset("name"): resolved against [assets] once everything is parsed.
                refs.append(AssetRef(item, ""))
                continue
            ref = self.table(iw, item)
            self.only_keys(iw, ref, {"name", "uri"})
            if "name" not in ref:
                raise self.fail(iw, "missing required key 'name'")
            name = self.req_str(f"{iw}.name", ref["name"])
            uri = self.opt_str(f"{iw}.uri", ref.get("uri"))
            refs.append(AssetRef(name, uri if uri is not None else ""))
        return tuple(refs)

    def assets(self, section: Any) -> dict[str, AssetFixture]:
        table = self.table("assets", section)
        out: dict[str, AssetFixture] = {}
        uris: dict[str, str] = {}
        for name, value in table.items():
            where = f"assets.{name}"
            asset = self.table(where, value)
            self.only_keys(where, asset, {"uri", "group", "extra", "active"})
            uri = self.opt_str(f"{where}.uri", asset.get("uri")) or name
            if uri in uris:
                raise self.fail(f"{where}.uri", f"uri {uri!r} is already used by {uris[uri]!r}")
            uris[uri] = name
            extra = asset.get("extra", {})
            out[name] = AssetFixture(
                name=name,
                uri=uri,
                group=self.opt_str(f"{where}.group", asset.get("group")) or "asset",
                extra=self.json_value(f"{where}.extra", self.table(f"{where}.extra", extra)),
                active=self.opt_bool(f"{where}.active", asset.get("active"), True),
            )
        return out

    def asset_aliases(self, section: Any) -> dict[str, tuple[str, ...]]:
        table = self.table("asset_aliases", section)
        return {alias: self.str_list(f"asset_aliases.{alias}", v) for alias, v in table.items()}

    def asset_events(self, section: Any) -> list[AssetEventFixture]:
        items = self.array_of_tables("asset_events", section)
        out = []
        allowed = {
            "asset",
            "extra",
            "timestamp",
            "source_dag_id",
            "source_run_id",
            "source_task_id",
            "source_map_index",
            "partition_key",
            "aliases",
        }
        for i, value in enumerate(items):
            where = f"asset_events[{i}]"
            event = self.table(where, value)
            self.only_keys(where, event, allowed)
            if "asset" not in event:
                raise self.fail(where, "missing required key 'asset'")
            out.append(
                AssetEventFixture(
                    asset=self.req_str(f"{where}.asset", event["asset"]),
                    extra=self.json_value(
                        f"{where}.extra", self.table(f"{where}.extra", event.get("extra", {}))
                    ),
                    timestamp=self.opt_datetime(f"{where}.timestamp", event.get("timestamp")),
                    source_dag_id=self.opt_str(
                        f"{where}.source_dag_id", event.get("source_dag_id")
                    ),
                    source_run_id=self.opt_str(
                        f"{where}.source_run_id", event.get("source_run_id")
                    ),
                    source_task_id=self.opt_str(
                        f"{where}.source_task_id", event.get("source_task_id")
                    ),
                    source_map_index=self.opt_int(
                        f"{where}.source_map_index", event.get("source_map_index")
                    ),
                    partition_key=self.opt_str(
                        f"{where}.partition_key", event.get("partition_key")
                    ),
                    aliases=self.str_list(f"{where}.aliases", event.get("aliases", [])),
                )
            )
        return out

    def runs(self, section: Any) -> list[RunFixture]:
        items = self.array_of_tables("runs", section)
        out = []
        seen: set[tuple[str, str]] = set()
        allowed = {
            "dag_id",
            "run_id",
            "state",
            "run_type",
            "logical_date",
            "data_interval_start",
            "data_interval_end",
            "run_after",
            "start_date",
            "end_date",
            "conf",
            "triggering_user_name",
            "partition_key",
            "note",
            "task_instances",
        }
        for i, value in enumerate(items):
            where = f"runs[{i}]"
            run = self.table(where, value)
            self.only_keys(where, run, allowed)
            for required in ("dag_id", "run_id"):
                if required not in run:
                    raise self.fail(where, f"missing required key {required!r}")
            dag_id = self.req_str(f"{where}.dag_id", run["dag_id"])
            run_id = self.req_str(f"{where}.run_id", run["run_id"])
            if (dag_id, run_id) in seen:
                raise self.fail(f"{where}.run_id", f"run {run_id!r} of {dag_id!r} is listed twice")
            seen.add((dag_id, run_id))
            conf = run.get("conf")
            if conf is not None:
                conf = self.json_value(f"{where}.conf", self.table(f"{where}.conf", conf))
            tis = []
            keys: set[tuple[str, int]] = set()
            for j, item in enumerate(
                self.array_of_tables(f"{where}.task_instances", run.get("task_instances", []))
            ):
                ti = self.task_instance(f"{where}.task_instances[{j}]", item)
                if (ti.task_id, ti.map_index) in keys:
                    raise self.fail(
                        f"{where}.task_instances[{j}]",
                        f"task {ti.task_id!r} (map_index {ti.map_index}) is listed twice",
                    )
                keys.add((ti.task_id, ti.map_index))
                tis.append(ti)
            out.append(
                RunFixture(
                    dag_id=dag_id,
                    run_id=run_id,
                    state=self.choice(
                        f"{where}.state",
                        run.get("state"),
                        _state_vocabulary()[0] if "state" in run else (),
                        "success",
                    ),
                    run_type=self.choice(
                        f"{where}.run_type", run.get("run_type"), RUN_TYPES, "manual"
                    ),
                    logical_date=self.opt_datetime(
                        f"{where}.logical_date", run.get("logical_date")
                    ),
                    data_interval_start=self.opt_datetime(
                        f"{where}.data_interval_start", run.get("data_interval_start")
                    ),
                    data_interval_end=self.opt_datetime(
                        f"{where}.data_interval_end", run.get("data_interval_end")
                    ),
                    run_after=self.opt_datetime(f"{where}.run_after", run.get("run_after")),
                    start_date=self.opt_datetime(f"{where}.start_date", run.get("start_date")),
                    end_date=self.opt_datetime(f"{where}.end_date", run.get("end_date")),
                    conf=conf,
                    triggering_user_name=self.opt_str(
                        f"{where}.triggering_user_name", run.get("triggering_user_name")
                    ),
                    partition_key=self.opt_str(f"{where}.partition_key", run.get("partition_key")),
                    note=self.opt_str(f"{where}.note", run.get("note")),
                    task_instances=tuple(tis),
                )
            )
        return out

    def task_instance(self, where: str, value: Any) -> TaskInstanceFixture:
        ti = self.table(where, value)
        self.only_keys(
            where, ti, {"task_id", "state", "map_index", "try_number", "start_date", "end_date"}
        )
        if "task_id" not in ti:
            raise self.fail(where, "missing required key 'task_id'")
        state = ti.get("state")
        return TaskInstanceFixture(
            task_id=self.req_str(f"{where}.task_id", ti["task_id"]),
            state=None
            if state is None
            else self.choice(f"{where}.state", state, _state_vocabulary()[1]),
            map_index=self.opt_int(f"{where}.map_index", ti.get("map_index"), -1),
            try_number=self.opt_int(f"{where}.try_number", ti.get("try_number"), 1),
            start_date=self.opt_datetime(f"{where}.start_date", ti.get("start_date")),
            end_date=self.opt_datetime(f"{where}.end_date", ti.get("end_date")),
        )

    # -- value checks ------------------------------------------------------------------------

    def array_of_tables(self, where: str, value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(where, f"expected an array of tables ([[{where}]]), got {_show(value)}")
        return value

    def choice(
        self, where: str, value: Any, allowed: tuple[str, ...], default: str | None = None
    ) -> str:
        if value is None and default is not None:
            return default
        text = self.req_str(where, value)
        if text not in allowed:
            raise self.fail(where, f"expected one of {', '.join(allowed)}, got {text!r}")
        return text

    def opt_bool(self, where: str, value: Any, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(where, f"expected true or false, got {_show(value)}")
        return value

    def str_list(self, where: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(where, f"expected an array of strings, got {_show(value)}")
        return tuple(self.req_str(f"{where}[{i}]", v) for i, v in enumerate(value))

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

"""Fixtures: what a user seeds the stub with.

Variables, connections, XComs and DAG-run defaults, and the metadata Airflow's DAG processor,
scheduler and earlier runs would have left in the database: DAGs, assets and aliases, asset
events, and existing DAG runs with their task instances.

The file is TOML (docs/fixtures.md). Its format is the dataclasses below, checked by
``supervisor_sim._typed_toml`` with the same policy as ``supervisor-sim.toml`` and published as
docs/schema/fixtures.schema.json: ``FixturesFile`` and its tables as written, the rest
(``Fixtures`` and its entries) what the stub is seeded with. Loading validates everything up
front so a typo is reported once, with the file and the key path
(``connections.peer_conn.port: expected an integer, got 'abc'``), instead of surfacing later as
a confusing 404 from the stub. Nothing here touches SQLite; ``StubStore.seed`` consumes the
result.
"""

# No ``from __future__ import annotations``: the models' types are read as objects when a
# file is checked, and evaluating strings would cost more (supervisor_sim._typed_toml).

import json
import os
import tomllib
import typing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from .._typed_toml import FROM_KEY, JSON, JSONText, ModelError, OneOf, load

__all__ = [
    "AssetEventFixture",
    "AssetFixture",
    "AssetRef",
    "ConnectionFixture",
    "DagFixture",
    "DagRunFixture",
    "FixtureError",
    "Fixtures",
    "FixturesFile",
    "RunFixture",
    "TaskInstanceFixture",
    "VariableFixture",
    "XComFixture",
    "load_fixtures",
]

#: Airflow's DagRunType values (the client model rejects anything else).
RunType = Literal[
    "backfill",
    "scheduled",
    "manual",
    "operator_triggered",
    "asset_triggered",
    "asset_materialization",
]
RUN_TYPES: tuple[str, ...] = typing.get_args(RunType)


def _dag_run_states() -> tuple[str, ...]:
    """Airflow's DAG-run states (``protocol``'s vocabulary), imported only when a fixture
    names a state: ``run-task`` reads fixtures before it loads anything but the standard
    library, and the protocol package is not cheap to import."""
    from ..protocol import DAG_RUN_STATES

    return DAG_RUN_STATES


def _ti_states() -> tuple[str, ...]:
    """Airflow's task-instance states, imported when needed (see ``_dag_run_states``)."""
    from ..protocol import TI_STATES

    return TI_STATES


class FixtureError(ValueError):
    """A fixtures file that cannot be read or does not match the documented format."""


# --- what the stub is seeded with (and, where the file says the same, its format) -----------


@dataclass(frozen=True)
class VariableFixture:
    value: str
    description: str | None = None


@dataclass(frozen=True)
class ConnectionFixture:
    """A connection, served by GET /connections/{conn_id}."""

    conn_type: str
    host: str | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = None
    port: int | None = None
    #: A table, or a string holding JSON; kept as JSON text, as Airflow stores it (``extra``
    #: is a string in the API, not an object).
    extra: JSONText | None = None


@dataclass(frozen=True)
class XComFixture:
    """An XCom "already pushed"."""

    dag_id: str
    run_id: str
    task_id: str
    key: str
    #: Any TOML value except dates and times (quote those); stored as JSON.
    value: JSON
    #: -1: not mapped.
    map_index: int = -1


@dataclass(frozen=True)
class DagRunFixture:
    """Defaults for DAG runs of one DAG that ``prepare_task_instance`` creates.

    With ``run_id`` set, that run is also created when seeding and becomes the run ``run-task``
    uses when no run id is given, so consecutive tasks share XComs.
    """

    dag_id: Annotated[str, FROM_KEY]
    #: The run run-task uses when given no --run-id; created when seeding.
    run_id: str | None = None
    conf: dict[str, JSON] | None = None
    logical_date: datetime | None = None
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    run_type: RunType = "manual"
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
    """An asset event "already emitted"."""

    #: The asset's name, declared under [assets].
    asset: str
    extra: dict[str, JSON] = field(default_factory=dict)
    #: Default: the time of seeding.
    timestamp: datetime | None = None
    source_dag_id: str | None = None
    source_run_id: str | None = None
    source_task_id: str | None = None
    source_map_index: int | None = None
    partition_key: str | None = None
    #: Alias names declared under [asset_aliases].
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskInstanceFixture:
    """A task instance of an existing DAG run."""

    task_id: str
    #: A task-instance state; none: no state yet (Airflow's NULL).
    state: Annotated[str, OneOf(_ti_states)] | None = None
    map_index: int = -1
    try_number: int = 1
    #: Default: the run's, once the task ran.
    start_date: datetime | None = None
    #: Default: the run's, once the task finished.
    end_date: datetime | None = None


@dataclass(frozen=True)
class RunFixture:
    """A DAG run that already exists (an earlier run, say), with its task instances."""

    dag_id: str
    run_id: str
    state: Annotated[str, OneOf(_dag_run_states)] = "success"
    run_type: RunType = "manual"
    logical_date: datetime | None = None
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    #: Default: the logical date, else the time of seeding.
    run_after: datetime | None = None
    #: Default: run_after, unless queued.
    start_date: datetime | None = None
    #: Default: start_date when success or failed.
    end_date: datetime | None = None
    conf: dict[str, JSON] | None = None
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


# --- the file's tables where they differ from what is seeded -----------------------------------

# The file's own tables are read once and dropped: only ``__init__`` is generated for them
# (``repr=False, eq=False``), since each generated method costs time at import, before run-task
# starts its runtime.


@dataclass(repr=False, eq=False)
class VariableTable:
    """The long form of a variable: its value and a description."""

    #: Stored by the rules of the short form.
    value: JSON
    description: str | None = None


@dataclass(repr=False, eq=False)
class AssetRefTable:
    """An inlet or outlet by name and URI."""

    name: str
    #: Default: the URI declared under [assets], else the name.
    uri: str | None = None


@dataclass(repr=False, eq=False)
class TaskTable:
    """The assets a task declares, for ValidateInletsAndOutlets."""

    #: Asset names (declared under [assets], or registered as they are) or {name, uri} tables.
    inlets: list[str | AssetRefTable] | None = None
    outlets: list[str | AssetRefTable] | None = None


@dataclass(repr=False, eq=False)
class DagTable:
    """What the DAG processor would have stored for a DAG, served by GET /dags/{dag_id}."""

    is_paused: bool = False
    #: Default: "airflow".
    owners: str | None = None
    #: Served sorted.
    tags: list[str] = field(default_factory=list)
    #: Default: "dags-folder".
    bundle_name: str | None = None
    bundle_version: str | None = None
    relative_fileloc: str | None = None
    next_dagrun: datetime | None = None
    #: Group id -> the task ids in it (the task_group_id of GetTICount and GetTaskStates).
    task_groups: dict[str, list[str]] = field(default_factory=dict)
    tasks: dict[str, TaskTable] = field(default_factory=dict)


@dataclass(repr=False, eq=False)
class AssetTable:
    """An asset, active unless said otherwise."""

    #: Unique among assets; default: the name.
    uri: str | None = None
    #: Default: "asset".
    group: str | None = None
    extra: dict[str, JSON] = field(default_factory=dict)
    #: Only active assets are served; an inactive one reads as not found.
    active: bool = True


@dataclass(frozen=True)
class FaultTable:
    """One ``[[faults]]`` entry: the fields of a ``--fault`` spec (docs/unhappy-paths.md)."""

    target: str | None = None
    action: str | None = None
    when: str | int | None = None
    event: str | None = None
    at: str | None = None
    seed: int | None = None
    token_expiry: str | None = None


@dataclass(repr=False, eq=False)
class FixturesFile:
    """A supervisor-sim fixtures file: what the embedded Execution API is seeded with."""

    #: name = value (a string as it is, anything else as its JSON text), or the long form.
    variables: dict[str, JSON | VariableTable] = field(default_factory=dict)
    connections: dict[str, ConnectionFixture] = field(default_factory=dict)
    xcoms: list[XComFixture] = field(default_factory=list)
    #: DAG id -> defaults for the runs run-task creates.
    dag_runs: dict[str, DagRunFixture] = field(default_factory=dict)
    dags: dict[str, DagTable] = field(default_factory=dict)
    #: Asset name -> the asset.
    assets: dict[str, AssetTable] = field(default_factory=dict)
    #: Alias -> the names of the assets it resolves to, declared under [assets].
    asset_aliases: dict[str, list[str]] = field(default_factory=dict)
    asset_events: list[AssetEventFixture] = field(default_factory=list)
    runs: list[RunFixture] = field(default_factory=list)
    #: Faults and outside events to inject, read by the commands (``FaultPlan``).
    faults: list[FaultTable] = field(default_factory=list)


# --- loading ----------------------------------------------------------------------------------


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
    try:
        return _seeded(load(FixturesFile, doc), source)
    except ModelError as exc:
        raise FixtureError(f"{source}: {exc}") from None


def _seeded(file: FixturesFile, source: Path) -> Fixtures:
    """What the file says, as the stub is seeded with it; checks what spans entries (unique
    URIs and runs, declared assets and aliases)."""
    assets: dict[str, AssetFixture] = {}
    uris: dict[str, str] = {}
    for name, asset in file.assets.items():
        uri = asset.uri or name
        if uri in uris:
            raise ModelError(f"assets.{name}.uri", f"uri {uri!r} is already used by {uris[uri]!r}")
        uris[uri] = name
        assets[name] = AssetFixture(name, uri, asset.group or "asset", asset.extra, asset.active)
    aliases = {alias: tuple(names) for alias, names in file.asset_aliases.items()}
    for alias, names in aliases.items():
        for i, name in enumerate(names):
            if name not in assets:
                raise ModelError(
                    f"asset_aliases.{alias}[{i}]",
                    f"unknown asset {name!r}; declare it under [assets]",
                )
    for i, event in enumerate(file.asset_events):
        if event.asset not in assets:
            raise ModelError(
                f"asset_events[{i}].asset",
                f"unknown asset {event.asset!r}; declare it under [assets]",
            )
        for j, alias in enumerate(event.aliases):
            if alias not in aliases:
                raise ModelError(
                    f"asset_events[{i}].aliases[{j}]",
                    f"unknown asset alias {alias!r}; declare it under [asset_aliases]",
                )
    _check_runs(file.runs)
    return Fixtures(
        variables={k: _variable(v) for k, v in file.variables.items()},
        connections=file.connections,
        xcoms=file.xcoms,
        dag_runs=file.dag_runs,
        dags={dag_id: _dag(dag_id, dag, assets) for dag_id, dag in file.dags.items()},
        assets=assets,
        asset_aliases=aliases,
        asset_events=file.asset_events,
        runs=file.runs,
        source=source,
    )


def _variable(value: Any) -> VariableFixture:
    if isinstance(value, VariableTable):
        return VariableFixture(_variable_text(value.value), value.description)
    return VariableFixture(_variable_text(value))


def _variable_text(value: Any) -> str:
    # Airflow stores variables as text; non-strings are stored JSON-encoded, as
    # Variable.set(serialize_json=True) would.
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _dag(dag_id: str, dag: DagTable, assets: dict[str, AssetFixture]) -> DagFixture:
    def refs(items: list[str | AssetRefTable]) -> tuple[AssetRef, ...]:
        out = []
        for item in items:
            name, uri = (item, None) if isinstance(item, str) else (item.name, item.uri)
            if uri is None:
                # Asset("name") in Airflow has uri == name; a declared asset lends its URI.
                uri = assets[name].uri if name in assets else name
            out.append(AssetRef(name, uri))
        return tuple(out)

    defaults = DagFixture(dag_id)
    return DagFixture(
        dag_id=dag_id,
        is_paused=dag.is_paused,
        bundle_name=dag.bundle_name or defaults.bundle_name,
        bundle_version=dag.bundle_version,
        relative_fileloc=dag.relative_fileloc,
        owners=dag.owners or defaults.owners,
        tags=tuple(dag.tags),
        next_dagrun=dag.next_dagrun,
        task_groups={gid: tuple(tasks) for gid, tasks in dag.task_groups.items()},
        inlets={t: refs(a.inlets) for t, a in dag.tasks.items() if a.inlets is not None},
        outlets={t: refs(a.outlets) for t, a in dag.tasks.items() if a.outlets is not None},
    )


def _check_runs(runs: list[RunFixture]) -> None:
    seen: set[tuple[str, str]] = set()
    for i, run in enumerate(runs):
        if (run.dag_id, run.run_id) in seen:
            raise ModelError(
                f"runs[{i}].run_id", f"run {run.run_id!r} of {run.dag_id!r} is listed twice"
            )
        seen.add((run.dag_id, run.run_id))
        keys: set[tuple[str, int]] = set()
        for j, ti in enumerate(run.task_instances):
            if (ti.task_id, ti.map_index) in keys:
                raise ModelError(
                    f"runs[{i}].task_instances[{j}]",
                    f"task {ti.task_id!r} (map_index {ti.map_index}) is listed twice",
                )
            keys.add((ti.task_id, ti.map_index))

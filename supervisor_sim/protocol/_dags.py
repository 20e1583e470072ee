"""Serialized DAGs as runtimes report them in ``DagFileParsingResult``: validation and structure.

A serialized DAG is valid when Airflow 3.3.2 would take it: its own serialized-DAG schema
(vendored in ``_data/``, checked against the apache-airflow-core wheel by a contract test)
passes, *and* its deserializer (``DagSerialization.from_dict``, which the scheduler and the API
server run on every stored DAG) would not fail. The schema never looks inside a task (it
declares ``tasks`` as an array with ``additionalProperties``, which JSON Schema ignores for
arrays), and its ``operator`` definition is not what Airflow's serializer writes (fields equal
to their default, such as ``ui_fgcolor``, are left out), so tasks and nested task groups are
checked against what the deserializer itself reads instead: ``deserializer_problems``.
docs/fidelity.md lists what that leaves unchecked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

__all__ = [
    "DagStructure",
    "TaskNode",
    "dag_structure",
    "deserializer_problems",
    "load_schema",
    "validate_serialized_dag",
]


@cache
def load_schema() -> dict[str, Any]:
    text = resources.files("supervisor_sim.protocol").joinpath("_data/serialized_dag_schema.json")
    return json.loads(text.read_text(encoding="utf-8"))


@cache
def _validator() -> Any:
    from jsonschema import Draft7Validator  # Airflow's own choice (serialization/json_schema.py)

    return Draft7Validator(load_schema())


def _path(prefix: str, parts: Any) -> str:
    out = prefix
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def validate_serialized_dag(data: Any) -> list[str]:
    """Every problem of one serialized DAG that would make Airflow refuse it, as
    'JSON path: message' sentences: its schema's, then its deserializer's."""
    problems = [
        f"{_path('$', e.absolute_path)}: {e.message}"
        for e in sorted(
            _validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path))
        )
    ]
    dag = data.get("dag") if isinstance(data, dict) else None
    if isinstance(dag, dict):
        problems += deserializer_problems(dag)
    return problems


# --- what DagSerialization.from_dict reads ------------------------------------------------------

#: Keys a mapped task's deserialization indexes unconditionally.
_MAPPED_REQUIRED = ("task_type", "_task_module", "_disallow_kwargs_override", "_expand_input_attr")
#: Keys every nested task group's deserialization indexes unconditionally.
_GROUP_REQUIRED = (
    "_group_id", "prefix_group_id", "tooltip", "ui_color", "ui_fgcolor", "children",
    "upstream_group_ids", "downstream_group_ids", "upstream_task_ids", "downstream_task_ids",
)  # fmt: skip
#: Keys ``start_trigger_args`` is read with.
_START_TRIGGER_REQUIRED = ("trigger_cls", "trigger_kwargs", "next_method", "next_kwargs", "timeout")
#: Task fields deserialized as ``timedelta(seconds=value)``.
_TIMEDELTA_FIELDS = ("retry_delay", "execution_timeout", "max_retry_delay")
#: The priority weight strategies Airflow registers itself (plugins can add more).
_WEIGHT_RULES = frozenset(
    {"absolute", "downstream", "upstream"}
    | {
        f"airflow.task.priority_strategy._{name}PriorityWeightStrategy"
        for name in ("Absolute", "Downstream", "Upstream")
    }
)
#: ``DagRunType`` values (``allowed_run_types``).
_RUN_TYPES = frozenset(
    {"backfill", "scheduled", "manual", "operator_triggered", "asset_triggered",
     "asset_materialization"}
)  # fmt: skip


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float)  # bool included: timedelta(seconds=True) works


def _floats(value: Any) -> bool:
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def deserializer_problems(dag: dict[str, Any]) -> list[str]:
    """What would make ``DagSerialization.from_dict`` fail on ``dag`` (the value of ``"dag"``)
    where the schema does not already say so: tasks, task groups and the references between
    them, and the few values it converts (durations, backoff, params, weight rules, run types,
    the timetable's class)."""
    problems: list[str] = []
    task_ids: set[str] = set()
    operators: list[tuple[str, dict[str, Any]]] = []
    tasks = dag.get("tasks")
    for i, entry in enumerate(tasks if isinstance(tasks, list) else []):
        where = f"$.dag.tasks[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: a task entry must be a map, got {_kind(entry)}")
            continue
        if entry.get("__type") != "operator":
            continue  # Airflow skips entries of any other type
        var = entry.get("__var")
        if not isinstance(var, dict):
            problems.append(f"{where}: an operator entry needs a '__var' map")
            continue
        task_id = var.get("task_id")
        if not isinstance(task_id, str):
            problems.append(f"{where}.__var: 'task_id' must be a string, got {_kind(task_id)}")
            continue
        task_ids.add(task_id)
        operators.append((f"{where}.__var", var))
    for where, var in operators:
        problems += _task_problems(where, var, task_ids)
    group = dag.get("task_group", _ABSENT)
    if group is not _ABSENT:
        problems += _group_problems("$.dag.task_group", group, task_ids, nested=False)
    problems += _dag_value_problems(dag)
    return problems


_ABSENT = object()


def _kind(value: Any) -> str:
    return "nil" if value is None else type(value).__name__


def _task_problems(where: str, var: dict[str, Any], task_ids: set[str]) -> Iterator[str]:
    if var.get("_is_mapped"):
        for key in _MAPPED_REQUIRED:
            if key not in var:
                yield f"{where}: a mapped task needs '{key}'"
    if var.get("_is_sensor", True) is False:
        yield f"{where}._is_sensor: only true may be serialized (leave the key out instead)"
    for key in _TIMEDELTA_FIELDS:
        value = var.get(key)
        if value is not None and not _is_number(value):
            yield f"{where}.{key}: must be a number of seconds, got {_kind(value)}"
    if "retry_exponential_backoff" in var and not _floats(var["retry_exponential_backoff"]):
        yield f"{where}.retry_exponential_backoff: must be a boolean or a number"
    if "params" in var:
        yield from _params_problems(f"{where}.params", var["params"])
    if "weight_rule" in var and var["weight_rule"] not in _WEIGHT_RULES:
        yield (
            f"{where}.weight_rule: {str(var['weight_rule'])[:60]!r} is not a priority weight "
            "strategy Airflow registers (absolute, downstream, upstream)"
        )
    for key in ("expand_input", "op_kwargs_expand_input"):
        value = var.get(key, _ABSENT)
        if value is not _ABSENT and (
            not isinstance(value, dict) or "type" not in value or "value" not in value
        ):
            yield f"{where}.{key}: must be a map with 'type' and 'value'"
    start_trigger = var.get("start_trigger_args")
    if start_trigger:
        missing = [
            k
            for k in _START_TRIGGER_REQUIRED
            if not isinstance(start_trigger, dict) or k not in start_trigger
        ]
        if missing:
            yield f"{where}.start_trigger_args: must be a map with {', '.join(map(repr, missing))}"
    if var.get("resources") is not None and not isinstance(var["resources"], dict):
        yield f"{where}.resources: must be a map, got {_kind(var['resources'])}"
    if "_operator_extra_links" in var and not isinstance(var["_operator_extra_links"], dict):
        yield f"{where}._operator_extra_links: must be a map of link name to XCom key"
    downstream = var.get("downstream_task_ids")
    if downstream is not None:
        if not isinstance(downstream, list):
            yield f"{where}.downstream_task_ids: must be an array of task ids"
        else:
            for j, down in enumerate(downstream):
                if not isinstance(down, str) or down not in task_ids:
                    yield f"{where}.downstream_task_ids[{j}]: {down!r} is not a task of this DAG"


def _params_problems(where: str, params: Any) -> Iterator[str]:
    if isinstance(params, dict):
        return
    if not isinstance(params, list):
        yield f"{where}: must be an array of [name, param] pairs or a map, got {_kind(params)}"
        return
    for j, pair in enumerate(params):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            yield f"{where}[{j}]: must be a [name, param] pair"


def _group_problems(where: str, group: Any, task_ids: set[str], *, nested: bool) -> Iterator[str]:
    if not isinstance(group, dict):
        if nested or group is None:  # the schema allows null at the top; the deserializer not
            yield f"{where}: a task group must be a map, got {_kind(group)}"
        return
    if nested:  # the schema checks the top-level group's keys
        for key in _GROUP_REQUIRED:
            if key not in group:
                yield f"{where}: a task group needs '{key}'"
    if group.get("is_mapped"):
        xi = group.get("expand_input")
        if not isinstance(xi, dict) or "type" not in xi or "value" not in xi:
            yield f"{where}.expand_input: a mapped task group needs a map with 'type' and 'value'"
    children = group.get("children")
    if not isinstance(children, dict):
        return
    for label, child in children.items():
        at = f"{where}.children.{label}"
        if not isinstance(child, list | tuple) or len(child) != 2:
            yield f"{at}: must be a [type, value] pair"
            continue
        kind, value = child
        if kind == "operator":
            if not isinstance(value, str) or value not in task_ids:
                yield f"{at}: {str(value)[:60]!r} is not a task of this DAG"
        else:
            yield from _group_problems(f"{at}[1]", value, task_ids, nested=True)


def _dag_value_problems(dag: dict[str, Any]) -> Iterator[str]:
    timetable = dag.get("timetable")
    if isinstance(timetable, dict):
        kind = timetable.get("__type")
        if not isinstance(kind, str) or "__var" not in timetable:
            yield "$.dag.timetable: must be a map with '__type' (a class path) and '__var'"
        elif not kind.startswith("airflow.timetables."):
            yield (
                f"$.dag.timetable.__type: {kind[:80]!r} is not one of Airflow's timetables "
                "(airflow.timetables.*); a custom one must be registered by an Airflow plugin"
            )
    run_types = dag.get("allowed_run_types")
    if isinstance(run_types, list):
        for j, run_type in enumerate(run_types):
            if run_type not in _RUN_TYPES:
                yield f"$.dag.allowed_run_types[{j}]: {run_type!r} is not a DagRunType"


@dataclass
class TaskNode:
    task_id: str
    downstream: list[str] = field(default_factory=list)
    upstream: list[str] = field(default_factory=list)
    #: For a mapped task: the upstream task whose list XCom it expands over.
    mapped_over: str | None = None
    trigger_rule: str = "all_success"
    retries: int = 0
    retry_delay: float = 300.0


@dataclass
class DagStructure:
    dag_id: str
    fileloc: str | None
    tasks: dict[str, TaskNode]

    def subset(self, task_ids: list[str]) -> DagStructure:
        """Only these tasks, with dependencies among them kept and the others dropped."""
        unknown = [t for t in task_ids if t not in self.tasks]
        if unknown:
            raise ValueError(f"no task(s) {', '.join(unknown)} in DAG {self.dag_id!r}")
        keep = set(task_ids)
        tasks = {}
        for tid, node in self.tasks.items():
            if tid in keep:
                tasks[tid] = TaskNode(
                    tid,
                    [d for d in node.downstream if d in keep],
                    [u for u in node.upstream if u in keep],
                    node.mapped_over,
                    node.trigger_rule,
                    node.retries,
                    node.retry_delay,
                )
        return DagStructure(self.dag_id, self.fileloc, tasks)

    def order(self) -> list[str]:
        """Task ids in a dependency order (upstream first), stable by declaration."""
        done: list[str] = []
        seen: set[str] = set()

        def visit(tid: str, stack: tuple[str, ...]) -> None:
            if tid in seen:
                return
            if tid in stack:
                raise ValueError(f"dependency cycle: {' -> '.join((*stack, tid))}")
            for up in self.tasks[tid].upstream:
                visit(up, (*stack, tid))
            seen.add(tid)
            done.append(tid)

        for tid in self.tasks:
            visit(tid, ())
        return done


def _xcom_ref_task(value: Any) -> str | None:
    """Find the task id of the first XComArg reference inside a serialized expand input."""
    if isinstance(value, dict):
        if value.get("__type") in ("xcomref", "xcom_ref") and isinstance(value.get("__var"), dict):
            return value["__var"].get("task_id")
        if "task_id" in value and value.get("key") == "return_value":
            return value["task_id"]
        for v in value.values():
            found = _xcom_ref_task(v)
            if found:
                return found
    elif isinstance(value, list):
        for v in value:
            found = _xcom_ref_task(v)
            if found:
                return found
    return None


def dag_structure(data: dict[str, Any]) -> DagStructure:
    """Tasks and dependencies of a serialized DAG (``downstream_task_ids`` of each operator)."""
    dag = data.get("dag", {})
    tasks: dict[str, TaskNode] = {}
    for entry in dag.get("tasks", []):
        var = entry.get("__var", {}) if isinstance(entry, dict) else {}
        tid = var.get("task_id")
        if not isinstance(tid, str):
            continue
        node = TaskNode(tid, downstream=list(var.get("downstream_task_ids") or []))
        node.trigger_rule = var.get("trigger_rule", "all_success")
        node.retries = int(var.get("retries", 0) or 0)
        delay = var.get("retry_delay", 300.0)
        node.retry_delay = float(delay.get("__var", 300.0) if isinstance(delay, dict) else delay)
        if var.get("_is_mapped"):
            node.mapped_over = _xcom_ref_task(var.get("expand_input") or var.get("partial_kwargs"))
        tasks[tid] = node
    for node in tasks.values():
        for down in node.downstream:
            if down in tasks:
                tasks[down].upstream.append(node.task_id)
    return DagStructure(dag.get("dag_id", "?"), dag.get("fileloc"), tasks)

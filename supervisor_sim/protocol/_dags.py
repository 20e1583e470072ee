"""Serialized DAGs as runtimes report them in ``DagFileParsingResult``: validation and structure.

Validation uses Airflow 3.3.2's own serialized-DAG schema (vendored in ``_data/``, checked
against the apache-airflow-core wheel by a contract test). That schema declares ``tasks`` as an
array with ``additionalProperties`` (which JSON Schema ignores for arrays), so it never looks
inside a task; supervisor-sim additionally checks each task's ``__var`` against the schema's own
``operator`` definition, the shape Airflow's deserializer relies on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["DagStructure", "TaskNode", "dag_structure", "load_schema", "validate_serialized_dag"]


@cache
def load_schema() -> dict[str, Any]:
    text = resources.files("supervisor_sim.protocol").joinpath("_data/serialized_dag_schema.json")
    return json.loads(text.read_text(encoding="utf-8"))


@cache
def _validators() -> tuple[Any, Any]:
    from jsonschema import Draft7Validator

    schema = load_schema()
    whole = Draft7Validator(schema)
    operator = Draft7Validator(
        {**schema["definitions"]["operator"], "definitions": schema["definitions"]}
    )
    return whole, operator


def _path(prefix: str, parts: Any) -> str:
    out = prefix
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def validate_serialized_dag(data: Any) -> list[str]:
    """Every schema problem of one serialized DAG, as 'JSON path: message' sentences."""
    whole, operator = _validators()
    problems = [
        f"{_path('$', e.absolute_path)}: {e.message}"
        for e in sorted(whole.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    ]
    tasks = data.get("dag", {}).get("tasks") if isinstance(data, dict) else None
    if isinstance(tasks, list):
        for i, task in enumerate(tasks):
            if not isinstance(task, dict) or task.get("__type") != "operator":
                problems.append(
                    f"$.dag.tasks[{i}]: expected {{'__type': 'operator', "
                    f"'__var': {{...}}}}, got {str(task)[:60]}"
                )
                continue
            for e in operator.iter_errors(task.get("__var")):
                problems.append(f"{_path(f'$.dag.tasks[{i}].__var', e.absolute_path)}: {e.message}")
    return problems


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

"""Airflow's own task SDK wheel, fetched once, as an oracle for the contract tests.

``sdk_root()`` downloads apache-airflow-task-sdk==1.3.2 with pip into
``.cache/airflow-task-sdk-1.3.2/`` and unpacks it there (nothing is installed, nothing is
imported from it). The tests then read Airflow's own files: the supervisor ``schema.json``, the
``ToSupervisor`` / ``ToTask`` unions in ``comms.py``, and the msgspec frame classes in
``comms.py``, which are executed on their own so that frames are encoded by Airflow's code.

A failed download fails the calling test with the pip output: CI has PyPI, and a contract that
silently skips checks nothing.
"""

from __future__ import annotations

import ast
import functools
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

SDK_VERSION = "1.3.2"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = PROJECT_ROOT / ".cache" / f"airflow-task-sdk-{SDK_VERSION}"
_MARKER = ".unpacked"

COMMS = "airflow/sdk/execution_time/comms.py"
SCHEMA = "airflow/sdk/execution_time/schema/schema.json"


def _download(dest: Path) -> Path:
    """The wheel in ``dest``, downloading it with pip when it is not there yet."""
    wheels = sorted(dest.glob(f"apache_airflow_task_sdk-{SDK_VERSION}-*.whl"))
    if wheels:
        return wheels[0]
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        f"apache-airflow-task-sdk=={SDK_VERSION}",
        "-d",
        str(dest),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob(f"apache_airflow_task_sdk-{SDK_VERSION}-*.whl"))
    if proc.returncode != 0 or not wheels:
        pytest.fail(
            f"could not download apache-airflow-task-sdk=={SDK_VERSION} for the contract tests "
            f"(`{' '.join(cmd)}` exited {proc.returncode}); these tests need PyPI or a wheel "
            f"placed in {dest}.\n--- pip stdout ---\n{proc.stdout[-3000:]}\n"
            f"--- pip stderr ---\n{proc.stderr[-3000:]}",
            pytrace=False,
        )
    return wheels[0]


@functools.cache
def sdk_root() -> Path:
    """The directory holding the unpacked wheel (``airflow/sdk/...``); idempotent."""
    if (CACHE_DIR / _MARKER).exists() and (CACHE_DIR / COMMS).exists():
        return CACHE_DIR
    wheel = _download(CACHE_DIR)
    # Unpack beside the target and move into place, so an interrupted run leaves no half tree.
    with tempfile.TemporaryDirectory(dir=CACHE_DIR) as tmp:
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(tmp)
        for entry in Path(tmp).iterdir():
            target = CACHE_DIR / entry.name
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            entry.rename(target)
    (CACHE_DIR / _MARKER).write_text(wheel.name + "\n")
    return CACHE_DIR


def read_text(relpath: str) -> str:
    path = sdk_root() / relpath
    if not path.exists():
        pytest.fail(f"{relpath} is not in the apache-airflow-task-sdk=={SDK_VERSION} wheel")
    return path.read_text(encoding="utf-8")


@functools.cache
def schema() -> dict[str, Any]:
    """Airflow's supervisor schema.json (JSON Schema 2020-12, bodies under ``$defs``)."""
    return json.loads(read_text(SCHEMA))


@functools.cache
def _comms_tree() -> ast.Module:
    return ast.parse(read_text(COMMS), filename=COMMS)


def _union_names(node: ast.expr) -> list[str]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union_names(node.left) + _union_names(node.right)
    if isinstance(node, ast.Name):
        return [node.id]
    raise AssertionError(f"unexpected union member in {COMMS}: {ast.dump(node)}")


@functools.cache
def union_members(name: str) -> tuple[str, ...]:
    """The members of ``name = Annotated[A | B | ..., Field(discriminator="type")]`` in comms.py."""
    for stmt in _comms_tree().body:
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and stmt.targets[0].id == name
        ):
            value = stmt.value
            assert isinstance(value, ast.Subscript), f"{name} is not Annotated[...]"
            assert isinstance(value.value, ast.Name) and value.value.id == "Annotated", name
            args = value.slice
            first = args.elts[0] if isinstance(args, ast.Tuple) else args
            return tuple(_union_names(first))
    raise AssertionError(f"{COMMS} defines no {name} union")


class _NoPydantic:
    """Stands in for pydantic's BaseModel in the hook: no such objects reach our frames."""


@functools.cache
def frame_classes() -> dict[str, Any]:
    """Airflow's ``_RequestFrame`` / ``_ResponseFrame`` msgspec classes, run from comms.py.

    Only the encoder hook, the frame mixin and the two frame structs are executed, taken verbatim
    from the wheel's source, so ``_RequestFrame(...).as_bytes()`` writes exactly Airflow's bytes.
    """
    import datetime as _dt
    from typing import ClassVar

    import msgspec

    wanted = {"_msgpack_enc_hook", "_new_encoder", "_FrameMixin", "_RequestFrame", "_ResponseFrame"}
    nodes = [
        stmt
        for stmt in _comms_tree().body
        if isinstance(stmt, ast.FunctionDef | ast.ClassDef) and stmt.name in wanted
    ]
    found = {n.name for n in nodes}
    if found != wanted:
        pytest.fail(f"{COMMS} no longer defines {sorted(wanted - found)}")
    # Compiled without this module's `from __future__ import annotations` (dont_inherit), so the
    # annotations are evaluated against this namespace and msgspec sees real types.
    namespace: dict[str, Any] = {
        "__name__": "_airflow_comms_frames",
        "Any": Any,
        "ClassVar": ClassVar,
        "msgspec": msgspec,
        "datetime": _dt.datetime,
        "Path": Path,
        "BaseModel": _NoPydantic,
    }
    module = ast.Module(body=nodes, type_ignores=[])
    exec(compile(module, COMMS, "exec", dont_inherit=True), namespace)
    return {
        "RequestFrame": namespace["_RequestFrame"],
        "ResponseFrame": namespace["_ResponseFrame"],
        "new_encoder": namespace["_new_encoder"],
    }


def startup_details() -> dict[str, Any]:
    """A realistic StartupDetails body as Airflow's supervisor holds it before encoding.

    These are the python-mode ``model_dump()`` values msgspec receives: UUID objects, aware
    datetimes (some with microseconds, one before 1970, one far in the future), nested DagRun
    with a consumed asset event, variables and connections.
    """
    import uuid
    from datetime import UTC, datetime, timedelta, timezone

    run_after = datetime(2025, 3, 1, 0, 0, tzinfo=UTC)
    return {
        "ti": {
            "id": uuid.UUID("0195e5c9-7d3a-7b5e-9a3b-1f2e3d4c5b6a"),
            "task_id": "extract",
            "dag_id": "etl_daily",
            "run_id": "scheduled__2025-03-01T00:00:00+00:00",
            "try_number": 1,
            "dag_version_id": uuid.UUID("0195e5c9-0000-7000-8000-000000000001"),
            "map_index": -1,
            "hostname": None,
            "context_carrier": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f0-01"},
            "queue": "java",
        },
        "dag_rel_path": "etl/etl_daily.py",
        "bundle_info": {"name": "dags-folder", "version": None},
        "start_date": datetime(2025, 3, 1, 0, 5, 12, 345678, tzinfo=UTC),
        "ti_context": {
            "dag_run": {
                "dag_id": "etl_daily",
                "run_id": "scheduled__2025-03-01T00:00:00+00:00",
                "logical_date": run_after,
                "data_interval_start": run_after - timedelta(days=1),
                "data_interval_end": run_after,
                "run_after": run_after,
                "start_date": datetime(2025, 3, 1, 0, 5, 1, 1, tzinfo=UTC),
                "end_date": None,
                "clear_number": 0,
                "run_type": "scheduled",
                "state": "running",
                "conf": {"threshold": 0.75, "tags": ["a", "b"], "nested": {"on": True}},
                "triggering_user_name": None,
                "consumed_asset_events": [
                    {
                        "asset": {"name": "raw", "uri": "s3://bucket/raw", "extra": {}},
                        "extra": {"rows": 1200},
                        "source_task_id": "load",
                        "source_dag_id": "upstream",
                        "source_run_id": "manual__1",
                        "source_map_index": -1,
                        "source_aliases": [{"name": "raw-alias"}],
                        "timestamp": datetime(1969, 7, 20, 20, 17, 40, tzinfo=UTC),
                        "partition_key": None,
                    }
                ],
                "partition_key": None,
                "partition_date": datetime(2600, 1, 1, tzinfo=timezone(timedelta(hours=2))),
                "note": "ünïcode ✓",
                "team_name": None,
            },
            "task_reschedule_count": 0,
            "max_tries": 3,
            "variables": [{"key": "env", "value": "prod"}, {"key": "empty", "value": None}],
            "connections": [
                {
                    "conn_id": "warehouse",
                    "conn_type": "postgres",
                    "host": "db.internal",
                    "schema": "analytics",
                    "login": "etl",
                    "password": "s3cr3t",
                    "port": 5432,
                    "extra": '{"sslmode": "require"}',
                }
            ],
            "next_method": None,
            "next_kwargs": None,
            "xcom_keys_to_clear": ["return_value"],
            "should_retry": False,
            "start_date": None,
        },
        "sentry_integration": "",
        "type": "StartupDetails",
    }

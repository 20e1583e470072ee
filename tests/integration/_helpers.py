"""Running supervisor-sim against the real Airflow, and making two runs comparable."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

from _cli import cli

from ._airflow import PEER, ROOT, RealAirflow

RECORDER = PEER / "recorder.py"
REFERENCE = ROOT / "runtimes" / "reference" / "runtime.py"
SHIM = PEER / "py_comm_shim.py"  # Airflow's own Python task runner as a --comm/--logs child

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$")


def run_task(
    airflow: RealAirflow,
    ti: dict[str, Any],
    tmp: Path,
    *extra: str,
    runtime: list[str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    name: str | None = None,
) -> tuple[int, dict[str, Any], str, Path]:
    """``supervisor-sim run-task`` of a queued real TI; (exit status, --json result, stderr,
    transcript path). ``runtime`` overrides the config's reference runtime."""
    transcript = tmp / f"{name or ti['task_id']}.{ti['ti_id']}.jsonl"
    args = [
        "run-task",
        ti["dag_id"],
        ti["task_id"],
        "--api-url",
        airflow.api_url,
        "--ti-id",
        ti["ti_id"],
        "--run-id",
        ti["run_id"],
        "--try-number",
        str(ti["try_number"]),
        "--dag-version-id",
        ti["dag_version_id"],
        "--jwt-secret",
        airflow.secret,
        "--json",
        "-q",
        "--transcript",
        str(transcript),
    ]
    if runtime is not None:
        args += ["--runtime", shlex.join(runtime)]
    proc = cli(*args, *extra, cwd=tmp, env={**airflow.env, **(env or {})}, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON result (exit {proc.returncode}); stderr:\n{proc.stderr[-4000:]}"
    return proc.returncode, json.loads(lines[-1]), proc.stderr, transcript


def transcript_http(path: Path) -> list[dict[str, Any]]:
    """The HTTP calls of a transcript, in the shape run_airflow_sup.py records them."""
    calls = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record.get("record") != "http":
            continue
        request = record.get("request") or {}
        response = record.get("response") or {}
        calls.append(
            {
                "method": record["method"],
                "path": record["path"],
                "query": record.get("query") or "",
                "status": record["status"],
                "request_json": request.get("json"),
                "response_json": response.get("json"),
            }
        )
    return calls


def normalize(value: Any, ids: dict[str, str]) -> Any:
    """Replace known ids by names and timestamps by ``<ts>``; keep every type tag."""
    if isinstance(value, dict):
        if set(value) == {"$datetime"}:
            return {"$datetime": "<ts>"}
        return {k: normalize(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v, ids) for v in value]
    if isinstance(value, str):
        if _ISO.match(value):
            return "<ts>"
        for raw, name in ids.items():
            value = value.replace(raw, name)
        return value
    return value


def normalize_call(call: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """One HTTP call with ids, timestamps, our pid and hostname made comparable."""
    body = call.get("request_json")
    if isinstance(body, dict):
        body = {
            k: ("<pid>" if k == "pid" else "<host>" if k == "hostname" else v)
            for k, v in body.items()
        }
    return {
        "call": f"{call['method']} {normalize(call['path'], ids)}"
        + (f"?{normalize(call['query'], ids)}" if call.get("query") else ""),
        "status": call["status"],
        "body": normalize(body, ids),
    }


def is_heartbeat(call: dict[str, Any]) -> bool:
    return call["method"] == "PUT" and call["path"].endswith("/heartbeat")

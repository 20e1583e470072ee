"""Run task instances under Airflow's *own* supervisor and record every HTTP call it makes.

Runs with the Airflow venv's python. Which child each TI gets is Airflow's decision:
``[sdk] queue_to_coordinator`` maps the TI's queue to an entry of ``[sdk] coordinators`` (set
both through the environment, e.g. with ``peer_coord.CommandCoordinator``; see that file).

    python run_airflow_sup.py JOBS.json RESULTS.json

``JOBS.json`` is a list of jobs, run one after the other in this process (importing Airflow
costs seconds; supervising a task does not)::

    {"ti": {"id", "task_id", "dag_id", "run_id", "try_number", "dag_version_id", "map_index",
            "queue"},
     "token": "<workload JWT>", "server": "http://127.0.0.1:P/execution/",
     "dag_rel_path": "example_dag.py", "env": {"NAME": "value"}}

``env`` is set in ``os.environ`` for that job only (the coordinator passes its environment to
the child). ``RESULTS.json`` gets one entry per job: ``rc`` (supervise_task's return), ``error``
(an exception it raised), ``duration_s`` and ``calls``: every HTTP request as it left the
client, in order, as ``{"method", "path", "query", "status", "request_json", "response_json"}``
(a retried call appears once per attempt). Airflow's own log output goes to stdout.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any

import httpx

CALLS: list[dict[str, Any]] = []
# Below the client's event hooks: Airflow's response hook raises on 4xx/5xx, and the status of
# such a response must be recorded too.
_original_send = httpx.Client._send_single_request


def _json_or_none(content: bytes) -> Any:
    if not content:
        return None
    try:
        return json.loads(content)
    except ValueError:
        return {"$text": content.decode("utf-8", "replace")}


def _recording_send(self: httpx.Client, request: httpx.Request) -> httpx.Response:
    call: dict[str, Any] = {
        "method": request.method,
        "path": request.url.path,
        "query": request.url.query.decode() if isinstance(request.url.query, bytes) else "",
        "status": None,
        "request_json": _json_or_none(request.content),
        "response_json": None,
    }
    CALLS.append(call)
    try:
        response = _original_send(self, request)
    except Exception as exc:
        call["status"] = f"EXC {type(exc).__name__}"
        raise
    call["status"] = response.status_code
    if response.headers.get("content-type", "").startswith("application/json"):
        response.read()
        call["response_json"] = _json_or_none(response.content)
    return response


httpx.Client._send_single_request = _recording_send  # type: ignore[method-assign]


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    from airflow.sdk.api.datamodels._generated import BundleInfo, TaskInstance
    from airflow.sdk.execution_time.supervisor import supervise_task

    saved = {k: os.environ.get(k) for k in job.get("env", {})}
    os.environ.update(job.get("env", {}))
    CALLS.clear()
    started = time.monotonic()
    result: dict[str, Any] = {"rc": None, "error": None}
    try:
        result["rc"] = supervise_task(
            ti=TaskInstance(**job["ti"]),
            bundle_info=BundleInfo(name="dags-folder", version=None),
            dag_rel_path=job.get("dag_rel_path", "example_dag.py"),
            token=job["token"],
            server=job["server"],
            subprocess_logs_to_stdout=True,
        )
    except BaseException as exc:  # recorded: the comparing test decides what it means
        result["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    result["duration_s"] = round(time.monotonic() - started, 3)
    result["calls"] = list(CALLS)
    return result


def main(argv: list[str]) -> int:
    jobs_path, results_path = argv
    with open(jobs_path) as f:
        jobs = json.load(f)
    results = []
    for job in jobs:
        results.append(run_job(job))
        with open(results_path, "w") as f:  # after each job, so a timeout keeps what finished
            json.dump(results, f, indent=1)
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

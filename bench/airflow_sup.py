"""Airflow 3.3.2's own supervisor driving the bench child: the comparison point.

Run with the Airflow venv's interpreter (``tools/airflow_venv.sh`` prints it)::

    .cache/airflow-venv/bin/python bench/airflow_sup.py --out RESULT.json -- CHILD_CMD...

``supervise_task`` routes the task's queue to ``CommandCoordinator`` (a ``SubprocessCoordinator``
subclass that runs CHILD_CMD with ``--comm``/``--logs`` appended) through the ``[sdk]
coordinators`` and ``[sdk] queue_to_coordinator`` settings, and talks to an Execution API that is
an ``httpx.MockTransport`` answering every call at once (``/run``, heartbeats, ``GET
variables/...``, ``/state``): what is measured is Airflow's supervisor and its API client, not a
server. Prints one JSON line with the child's measurement, the exit code, this process's peak
RSS (``VmHWM``) and CPU time.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime

QUEUE = "bench-queue"
COMMAND: list[str] = []


def peak_rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def configure(command: list[str]) -> None:
    """Airflow settings, all through the environment, before anything from Airflow is imported."""
    home = tempfile.mkdtemp(prefix="bench-airflow-home-")
    os.environ.setdefault("AIRFLOW_HOME", home)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = home
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = os.environ.get("BENCH_AIRFLOW_LOG", "INFO")
    os.environ["AIRFLOW__SDK__COORDINATORS"] = json.dumps(
        {"bench": {"classpath": "__main__.CommandCoordinator", "kwargs": {"command": command}}}
    )
    os.environ["AIRFLOW__SDK__QUEUE_TO_COORDINATOR"] = json.dumps({QUEUE: "bench"})


def make_coordinator_class() -> type:
    import attrs
    from airflow.sdk.coordinators._subprocess import SubprocessCoordinator

    @attrs.define(kw_only=True)
    class CommandCoordinator(SubprocessCoordinator):
        """Runs a fixed command (real-airflow-peers.md, Q4)."""

        command: list[str]
        schema_version: str | None = "2026-06-16"

        def _build_execute_task_command(self, *, what: object) -> tuple[list[str], str | None]:
            return list(self.command), self.schema_version

    return CommandCoordinator


def mock_api(ti_id: str, dag_id: str, run_id: str) -> tuple[object, dict[str, int]]:
    import httpx

    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    run_context = {
        "dag_run": {
            "dag_id": dag_id,
            "run_id": run_id,
            "logical_date": now,
            "data_interval_start": now,
            "data_interval_end": now,
            "run_after": now,
            "start_date": now,
            "end_date": None,
            "clear_number": 0,
            "run_type": "manual",
            "state": "running",
            "conf": {},
            "triggering_user_name": None,
            "consumed_asset_events": [],
            "partition_key": None,
        },
        "task_reschedule_count": 0,
        "max_tries": 0,
        "should_retry": False,
        "variables": [],
        "connections": [],
        "upstream_map_indexes": {},
    }
    calls: dict[str, int] = {}
    variable = json.dumps({"key": "bench_var", "value": "bench-value"}).encode()
    json_headers = {"content-type": "application/json"}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        method = request.method
        if path.endswith("/run") and method == "PATCH":
            key = "run"
            response = httpx.Response(200, json=run_context)
        elif path.endswith("/heartbeat"):
            key = "heartbeat"
            response = httpx.Response(204)
        elif "/variables/" in path and method == "GET":
            key = "variable"
            response = httpx.Response(200, content=variable, headers=json_headers)
        elif path.endswith("/state"):
            key = "state"
            response = httpx.Response(204)
        elif path.endswith("/rtif"):
            key = "rtif"
            response = httpx.Response(201, json={"message": "ok"})
        else:
            key = f"other {method} {path}"
            response = httpx.Response(404, json={"detail": {"reason": "not_found"}})
        calls[key] = calls.get(key, 0) + 1
        return response

    return httpx.MockTransport(handler), calls


def main() -> int:
    if "--" not in sys.argv:
        print("usage: airflow_sup.py [--out PATH] -- CHILD_CMD...", file=sys.stderr)
        return 2
    split = sys.argv.index("--")
    opts, command = sys.argv[1:split], sys.argv[split + 1 :]
    out_path = opts[opts.index("--out") + 1] if "--out" in opts else None
    configure(command)
    t_import = time.perf_counter()
    global CommandCoordinator
    CommandCoordinator = make_coordinator_class()  # type: ignore[misc]
    from airflow.sdk.api.client import Client
    from airflow.sdk.api.datamodels._generated import BundleInfo, TaskInstance
    from airflow.sdk.execution_time.supervisor import supervise_task

    import_s = time.perf_counter() - t_import
    ti_id, dag_id, run_id = str(uuid.uuid4()), "bench", "bench_run"
    transport, calls = mock_api(ti_id, dag_id, run_id)
    client = Client(base_url="http://mock.invalid/execution/", token="bench", transport=transport)
    ti = TaskInstance(
        id=ti_id,
        task_id="bench_task",
        dag_id=dag_id,
        run_id=run_id,
        try_number=1,
        dag_version_id=str(uuid.uuid4()),
        map_index=-1,
        queue=QUEUE,
    )
    rss_before_kb = peak_rss_kb()
    os.environ["BENCH_SPAWN_WALL"] = repr(time.time())
    cpu0 = cpu_s()
    started = time.perf_counter()
    exit_code = supervise_task(
        ti=ti,
        bundle_info=BundleInfo(name="dags-folder", version=None),
        dag_rel_path="bench.py",
        token="bench",
        client=client,
    )
    wall = time.perf_counter() - started
    result = {
        "exit_code": exit_code,
        "wall_s": wall,
        "session_cpu_s": cpu_s() - cpu0,
        "import_s": import_s,
        "calls": calls,
        "peak_rss_before_task_kb": rss_before_kb,
        "peak_rss_kb": peak_rss_kb(),
        "cpu_total_s": cpu_s(),
    }
    if out_path:
        with open(out_path, "w") as f:
            json.dump(result, f)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A real Airflow 3.3.2 with the Edge provider (edge3 5.1.0), for ``supervisor-sim worker`` tests.

Usable from tests and benches alike (nothing here is a fixture):

- ``start_edge_airflow(base, dag_files)``: a fresh AIRFLOW_HOME on sqlite, the DAG files copied
  into its DAGs folder (``dags reserialize`` registers them, unpaused), then ``airflow api-server``
  (all apps: core REST, execution, and the edge3 plugin's ``/edge_worker/v1`` API) and
  ``airflow scheduler`` with ``executor = airflow.providers.edge3.executors.EdgeExecutor``.
  Returns an ``EdgeAirflow``; ``stop_edge_airflow`` ends both (process groups).
- ``start_worker(airflow, args, log=...)``: one ``supervisor-sim worker --api-url ...`` process in
  its own process group, with the Airflow's JWT secret in its environment.
- ``trigger_dag(airflow, dag_id, run_id)`` and ``wait_dag_run(airflow, dag_id, run_id)``: a DAG
  run made by Airflow's own CLI code, and its final state read from the metadata DB.
- ``EdgeAirflow.ti_states``, ``xcom``, ``edge_workers``, ``task_log``: what Airflow says.

Airflow accepts sqlite with the EdgeExecutor (one scheduler), so no Postgres is needed.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ._airflow import (
    JWT_SECRET,
    PEER,
    ROOT,
    airflow_env,
    build_venv,
    free_port,
    run_step,
    stop_server,
    tail,
    wait_healthy,
)

__all__ = [
    "REFERENCE",
    "EdgeAirflow",
    "start_edge_airflow",
    "start_worker",
    "stop_edge_airflow",
    "stop_worker",
    "trigger_dag",
    "wait_dag_run",
]

REFERENCE = ROOT / "runtimes" / "reference" / "runtime.py"


@dataclass
class EdgeAirflow:
    """A running api-server + scheduler with the EdgeExecutor, on a sqlite metadata DB."""

    python: str
    home: Path
    env: dict[str, str]
    port: int
    api_log: Path
    scheduler_log: Path
    secret: str = JWT_SECRET
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def edge_api_url(self) -> str:
        """``[edge] api_url`` as Airflow's docs spell it."""
        return f"{self.base_url}edge_worker/v1/rpcapi"

    @property
    def db_path(self) -> Path:
        return self.home / "airflow.db"

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def ti_states(self, dag_id: str, run_id: str) -> dict[str, tuple[str | None, int]]:
        """task_id (``task[i]`` when mapped) -> (state, try_number) of every TI of the run."""
        rows = self.query(
            "SELECT task_id, map_index, state, try_number FROM task_instance"
            " WHERE dag_id = ? AND run_id = ?",
            (dag_id, run_id),
        )
        return {
            (task if index == -1 else f"{task}[{index}]"): (state, tries)
            for task, index, state, tries in rows
        }

    def ti_hostnames(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        rows = self.query(
            "SELECT task_id, hostname FROM task_instance WHERE dag_id = ? AND run_id = ?",
            (dag_id, run_id),
        )
        return dict(rows)

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        rows = self.query(
            "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ?"
            " AND key = 'return_value' AND map_index = ?",
            (dag_id, run_id, task_id, map_index),
        )
        if not rows or rows[0][0] is None:
            return None
        value = rows[0][0]
        return json.loads(value) if isinstance(value, str | bytes) else value

    def edge_workers(self) -> dict[str, dict[str, Any]]:
        """worker_name -> its edge_worker row (state, queues, sysinfo decoded)."""
        rows = self.query(
            "SELECT worker_name, state, queues, sysinfo, jobs_active FROM edge_worker"
        )
        return {
            name: {
                "state": state,
                "queues": _decode(queues) if queues else None,
                "sysinfo": _decode(sysinfo) if sysinfo else {},
                "jobs_active": jobs,
            }
            for name, state, queues, sysinfo, jobs in rows
        }

    def edge_jobs(self, dag_id: str, run_id: str) -> dict[str, tuple[str, str | None]]:
        """task_id -> (edge job state, worker that ran it)."""
        rows = self.query(
            "SELECT task_id, map_index, state, edge_worker FROM edge_job"
            " WHERE dag_id = ? AND run_id = ?",
            (dag_id, run_id),
        )
        return {(t if i == -1 else f"{t}[{i}]"): (state, worker) for t, i, state, worker in rows}

    def rest_token(self) -> str:
        """A core REST API token (SimpleAuthManager with every user an admin)."""
        reply = httpx.get(f"{self.base_url}auth/token", timeout=30)
        if reply.status_code == 405 or reply.status_code >= 400:
            reply = httpx.post(f"{self.base_url}auth/token", json={}, timeout=30)
        reply.raise_for_status()
        return str(reply.json()["access_token"])

    def edge_ui(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """A call of the edge plugin's UI API (``/edge_worker/ui/...``), as Airflow's UI makes
        it: ``edge_ui("POST", "worker/w1/maintenance", {"maintenance_comment": "..."})``."""
        reply = httpx.request(
            method,
            f"{self.base_url}edge_worker/ui/{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.rest_token()}"},
            timeout=30,
        )
        reply.raise_for_status()
        return reply.json() if reply.content else None

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1
    ) -> list[Any]:
        """The log of a try as Airflow's REST log endpoint returns it (its ``content``)."""
        url = (
            f"{self.base_url}api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
            f"/logs/{try_number}"
        )
        reply = httpx.get(
            url,
            params={"map_index": map_index, "full_content": "true"},
            headers={
                "Authorization": f"Bearer {self.rest_token()}",
                "Accept": "application/json",
            },
            timeout=30,
        )
        reply.raise_for_status()
        content = reply.json()["content"]
        return content if isinstance(content, list) else [content]


def _decode(text: str) -> Any:
    """A column edge3 stores as JSON (sysinfo) or as a Python list's repr (queues)."""
    try:
        return json.loads(text)
    except ValueError:
        return ast.literal_eval(text)


def edge_env(home: Path, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The tier's hermetic environment plus what the EdgeExecutor and its API need."""
    env = airflow_env(home, port)
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "airflow.providers.edge3.executors.EdgeExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__EDGE__API_ENABLED": "True",
            "AIRFLOW__EDGE__API_URL": f"http://127.0.0.1:{port}/edge_worker/v1/rpcapi",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
        }
    )
    env.update(extra or {})
    return env


def start_edge_airflow(
    base: Path, dag_files: Iterable[Path], *, extra_env: dict[str, str] | None = None
) -> EdgeAirflow:
    """Migrate a fresh sqlite AIRFLOW_HOME under ``base``, register ``dag_files`` and start the
    api-server and the scheduler (EdgeExecutor); returns once the API answers /health."""
    base.mkdir(parents=True, exist_ok=True)
    python = build_venv(base)
    home = base / "airflow_home"
    (home / "dags").mkdir(parents=True)
    for dag in dag_files:
        shutil.copy(dag, home / "dags" / Path(dag).name)
    port = free_port()
    env = edge_env(home, port, extra_env)
    run_step(
        [python, str(PEER / "setup_home.py")],
        env=env,
        timeout=300,
        what="airflow db migrate / dags reserialize / variables / connections",
        log=base / "setup_home.log",
    )
    airflow_bin = str(Path(python).with_name("airflow"))
    instance = EdgeAirflow(
        python=python,
        home=home,
        env=env,
        port=port,
        api_log=base / "api-server.log",
        scheduler_log=base / "scheduler.log",
    )
    try:
        for argv, log in (
            (["api-server", "-H", "127.0.0.1", "-p", str(port), "-w", "1"], instance.api_log),
            (["scheduler"], instance.scheduler_log),
        ):
            with open(log, "wb") as log_file:
                instance.procs.append(
                    subprocess.Popen(
                        [airflow_bin, *argv],
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log_file,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        wait_healthy(instance.procs[0], f"{instance.base_url}execution/", instance.api_log)
    except BaseException:
        stop_edge_airflow(instance)
        raise
    return instance


def stop_edge_airflow(airflow: EdgeAirflow) -> None:
    """SIGTERM the scheduler and the api-server (process groups), SIGKILL what lingers."""
    for proc in reversed(airflow.procs):
        stop_server(proc)
    airflow.procs.clear()


def worker_env(airflow: EdgeAirflow, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a worker: no Airflow config but the shared secret."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "SUPERVISOR_SIM_", "_AIRFLOW"))
    }
    env["SUPERVISOR_SIM_JWT_SECRET"] = airflow.secret
    env.update(extra or {})
    return env


def start_worker(
    airflow: EdgeAirflow,
    args: Sequence[str],
    *,
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    config: Path = ROOT / "supervisor-sim.toml",
) -> subprocess.Popen[bytes]:
    """``supervisor-sim --config CONFIG worker --api-url <airflow> ARGS`` in its own process
    group (CONFIG: the repository's supervisor-sim.toml unless given); its stdout and stderr
    go to ``log``."""
    with open(log, "wb") as log_file:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "supervisor_sim",
                "--config",
                str(config),
                "worker",
                "--api-url",
                airflow.base_url,
                *args,
            ],
            env=worker_env(airflow, env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_worker(proc: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """SIGKILL the worker's process group if it is still running; its exit status."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(timeout=30)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def trigger_dag(airflow: EdgeAirflow, dag_id: str, run_id: str, *, log: Path) -> None:
    """A manual DAG run, made by ``airflow dags trigger``."""
    run_step(
        [
            str(Path(airflow.python).with_name("airflow")),
            "dags",
            "trigger",
            dag_id,
            "--run-id",
            run_id,
        ],
        env=airflow.env,
        timeout=120,
        what=f"airflow dags trigger {dag_id}",
        log=log,
    )


def wait_dag_run(
    airflow: EdgeAirflow,
    dag_id: str,
    run_id: str,
    *,
    timeout: float = 300,
    states: tuple[str, ...] = ("success", "failed"),
) -> str:
    """The DAG run's state once it is one of ``states``; AssertionError (with the logs' tails)
    when it is not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        rows = airflow.query(
            "SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)
        )
        state = rows[0][0] if rows else None
        if state in states:
            return str(state)
        time.sleep(0.5)
    raise AssertionError(
        f"DAG run {dag_id}/{run_id} still {state!r} after {timeout:g}s;"
        f" TIs: {airflow.ti_states(dag_id, run_id)}\n--- scheduler\n"
        + tail(airflow.scheduler_log, 3000)
        + "\n--- api-server\n"
        + tail(airflow.api_log, 3000)
    )


#: ``edge_dag``: a few reference-runtime tasks on the ``reference`` queue, with an XCom between
#: two of them; ``edge_drain``: ``sleep >> hello``, for drains (hello is queued only after
#: sleep). The Python bodies never run: the worker's runtime for the queue runs
#: ``EDGE_BUNDLE``'s implementation of each task.
#: The head of each of EDGE_DAG's DAGs: every task on the reference queue, no retries.
_DAG_HEAD = """
with DAG(
    dag_id="{dag_id}",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1),
    catchup=False,
    default_args={{"retries": 0, "queue": "reference"}},
) as {name}:
"""

EDGE_DAG = (
    """
import datetime
from airflow.sdk import DAG, task
"""
    + _DAG_HEAD.format(dag_id="edge_dag", name="dag")
    + """
    @task
    def hello():
        pass

    @task
    def push_xcom():
        return {"numbers": [1, 2, 3]}

    @task
    def pull_xcom():
        pass

    @task
    def sleep():
        pass

    @task
    def secret():
        pass

    hello() >> push_xcom() >> pull_xcom()
    sleep()
    secret()
"""
    + _DAG_HEAD.format(dag_id="edge_drain", name="drain_dag")
    + """
    @task
    def sleep():
        pass

    @task
    def hello():
        pass

    sleep() >> hello()
"""
)

#: The reference runtime's bundle for ``edge_dag``: example_dag's implementations of the tasks.
EDGE_BUNDLE = f"""
import runpy
_EXAMPLE = runpy.run_path({str(ROOT / "runtimes" / "reference" / "example_dags.py")!r})["DAGS"]
_TASKS = ("hello", "push_xcom", "pull_xcom", "sleep")


def secret(ctx):
    # Logs peer_conn's password, in a record and on stdout: the worker must mask both.
    conn = ctx.get_connection("peer_conn")
    ctx.log.info("Using connection", conn_id="peer_conn", password=conn.get("password"))
    print(f"secret: password={{conn.get('password')}}", flush=True)


DAGS = {{
    "edge_dag": {{**{{t: _EXAMPLE["example_dag"][t] for t in _TASKS}}, "secret": secret}},
    "edge_drain": {{t: _EXAMPLE["example_dag"][t] for t in ("sleep", "hello")}},
}}
"""


def write_edge_dag(folder: Path) -> tuple[Path, Path]:
    """(``edge_dag``'s Airflow DAG file, the reference runtime's bundle for it) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    dag = folder / "edge_dag.py"
    dag.write_text(EDGE_DAG)
    bundle = folder / "edge_bundle.py"
    bundle.write_text(EDGE_BUNDLE)
    return dag, bundle

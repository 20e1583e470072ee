"""The airflow-proxy-worker service (profile ``proxy``): Airflow's own supervisor runs the tasks,
the reference runtime behind ``supervisor-sim proxy``, and the proxy records each try.

Runs once per ``docker compose --profile proxy up``, with the Python of the Airflow image that
compose/airflow-proxy.Dockerfile extends with supervisor-sim, and the environment
compose/docker-compose.yaml gives the service (tests/compose/test_compose.py runs this same file
natively, with that same environment). In order:

1. Install (what a deployment does once, in its image; here at start so the native twin runs
   it too): the runtime's executable bundle at ``$SIM_RUNTIME_BUNDLE`` (in a deployment the
   runtime's own build makes it; here the reference runtime that the supervisor-sim package
   carries, in the bundle layout Airflow's ExecutableCoordinator reads: metadata
   ``dags: {example_dag}``), then ``supervisor-sim proxy --write-wrapper $SIM_WRAPPER_BUNDLE --
   $SIM_RUNTIME_BUNDLE``: a wrapper bundle, declaring the same DAGs, in the folder that
   ``[sdk] coordinators`` names as the ExecutableCoordinator's ``executables_root``.
2. Queue one DAG run of ``$SIM_DAG_ID`` with the tasks ``$SIM_TASKS``, as the scheduler would
   (supervisor_sim.runner.airflow_queue_ti: Airflow's own trigger_dag, the TIs ``queued``).
3. For each task instance, in order: its workload, made as the scheduler makes it
   (``ExecuteTask.make`` with the executor's JWT generator, signed with ``[api_auth]
   jwt_secret``), run as Airflow's Edge worker runs each job: ``python -m
   airflow.sdk.execution_time.execute_workload --json-string WORKLOAD``. That is Airflow's
   ``supervise_task``; ``[sdk] queue_to_coordinator`` routes the TI's queue to the
   ExecutableCoordinator, which finds the wrapper bundle for the DAG and runs it with
   ``--comm/--logs``; the wrapper runs ``supervisor-sim proxy``, which runs the runtime bundle
   and writes the try's transcript into ``$SUPERVISOR_SIM_PROXY_DIR``.
4. Read each TI's state back from Airflow's DB, write ``$SUPERVISOR_SIM_PROXY_DIR/summary.json``
   (task, TI id, run id, try, state, transcript) and exit 0 only when every task ended
   ``success`` with one transcript.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

#: Seconds one task's workload may take before it is killed.
TASK_TIMEOUT = float(os.environ.get("SIM_TASK_TIMEOUT", "300"))
#: The supervisor schema version the reference runtime speaks (the bundle's metadata says it).
SCHEMA_VERSION = "2026-06-16"


def say(message: str) -> None:
    print(f"proxy-worker: {message}", file=sys.stderr, flush=True)


def write_runtime_bundle(path: Path, dag_id: str) -> None:
    """An executable bundle (the ExecutableCoordinator's layout: executable, source, metadata,
    the 64-byte ``AFBNDL01`` trailer) that execs the packaged reference runtime."""
    import supervisor_sim

    runtime = Path(supervisor_sim.__file__).parent / "_data" / "reference" / "runtime.py"
    exe = f'#!/bin/sh\nexec {shlex.join([sys.executable, str(runtime)])} "$@"\nexit 127\n'
    source = b"# the reference runtime (supervisor-sim's _data/reference/runtime.py)\n"
    meta = f'dags:\n  {dag_id}: {{}}\nsdk:\n  supervisor_schema_version: "{SCHEMA_VERSION}"\n'
    trailer = struct.pack("<III", len(source), len(meta.encode()), 1)
    trailer += hashlib.sha256(exe.encode()).digest() + b"\0" * 12 + b"AFBNDL01"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(exe.encode() + source + meta.encode() + trailer)
    path.chmod(0o755)


def install(dag_id: str) -> None:
    runtime = Path(os.environ["SIM_RUNTIME_BUNDLE"])
    wrapper = Path(os.environ["SIM_WRAPPER_BUNDLE"])
    write_runtime_bundle(runtime, dag_id)
    say(f"runtime bundle {runtime}")
    argv = ["supervisor-sim", "proxy", "--write-wrapper", str(wrapper), "--", str(runtime)]
    say("$ " + shlex.join(argv))
    subprocess.run(argv, check=True, timeout=120)


def jwt_generator() -> Any:
    """The JWT generator Airflow's executors sign workloads with (BaseExecutor.jwt_generator)."""
    from airflow.executors.base_executor import BaseExecutor

    return BaseExecutor().jwt_generator


def workload_json(ti_id: str, generator: Any) -> str:
    from airflow.executors.workloads import ExecuteTask
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        ti = session.scalar(select(TaskInstance).where(TaskInstance.id == ti_id))
        return ExecuteTask.make(ti, generator=generator).model_dump_json()


def ti_state(ti_id: str) -> str | None:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        state = session.scalar(select(TaskInstance.state).where(TaskInstance.id == ti_id))
        return None if state is None else str(state.value if hasattr(state, "value") else state)


def transcripts_of(folder: Path, ti: dict[str, Any]) -> list[str]:
    """The proxy's transcripts of one try: ``DAG.TASK.RUN_ID.tryN[.mapI].TIME.jsonl``."""
    run = re.sub(r"[^A-Za-z0-9._+-]", "_", ti["run_id"])
    prefix = f"{ti['dag_id']}.{ti['task_id']}.{run}.try{ti['try_number']}."
    return sorted(str(p) for p in folder.glob(prefix + "*.jsonl"))


def main() -> int:
    dag_id, tasks = os.environ["SIM_DAG_ID"], os.environ["SIM_TASKS"].split()
    folder = Path(os.environ["SUPERVISOR_SIM_PROXY_DIR"])
    install(dag_id)

    from supervisor_sim.runner.airflow_queue_ti import queue_tis

    tis = queue_tis(dag_id, tasks, None)
    say(f"queued {len(tis)} task instances of {dag_id} (run {tis[0]['run_id']})")
    generator = jwt_generator()
    results = []
    for ti in tis:
        say(f"{ti['task_id']} (ti {ti['ti_id']}, queue {ti['queue']}): execute_workload")
        argv = [sys.executable, "-m", "airflow.sdk.execution_time.execute_workload"]
        argv += ["--json-string", workload_json(ti["ti_id"], generator)]
        try:
            rc: int | None = subprocess.run(argv, timeout=TASK_TIMEOUT, check=False).returncode
        except subprocess.TimeoutExpired:
            rc = None
        results.append(
            {
                **{k: ti[k] for k in ("dag_id", "task_id", "ti_id", "run_id", "try_number")},
                "returncode": rc,
                "state": ti_state(ti["ti_id"]),
                "transcripts": transcripts_of(folder, ti),
            }
        )
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(results, indent=1) + "\n")
    say("outcomes")
    for r in results:
        print(
            f"  {r['task_id']:<16} {r['state']!s:<10} {' '.join(r['transcripts']) or '(none)'}",
            file=sys.stderr,
        )
    ok = all(r["state"] == "success" and len(r["transcripts"]) == 1 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

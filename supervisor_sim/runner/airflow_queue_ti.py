"""Queue task instances on a local Airflow for ``supervisor-sim run-task --api-url`` to drive.

Run it with the Python of the Airflow installation (for example the venv that
``tools/airflow_venv.sh`` prints), with the same environment as that Airflow (``AIRFLOW_HOME``,
``AIRFLOW__CORE__DAGS_FOLDER``, ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``...). The DAG must be
serialized in the metadata DB (``airflow dags reserialize``, or a running dag-processor).

There is no scheduler in this picture, so this does what the scheduler would: it triggers a
DAG run with Airflow's own ``trigger_dag`` (or reuses the run named by ``--run-id``), marks the
run ``running``, and puts the task instance in ``queued`` for its next try (try 1 for a new
run; a TI left ``up_for_retry`` gets its next try; a finished TI is archived to the TI history
and given a new id first, as clearing it would). ``PATCH .../run`` accepts exactly that.

    python airflow_queue_ti.py DAG_ID TASK_ID [TASK_ID ...] [--run-id RUN_ID]
    python airflow_queue_ti.py --batch requests.jsonl     # or --batch - (stdin)

Each queued TI is printed as one JSON line: ``ti_id, dag_id, task_id, run_id, try_number,
max_tries, dag_version_id, map_index, queue`` and ``command``, the ``supervisor-sim run-task``
command line that drives it. Without ``--batch`` the command lines are printed again after the
JSON, ready to paste. With ``AIRFLOW__API_AUTH__JWT_SECRET`` in the environment the command
passes ``--jwt-secret "$AIRFLOW__API_AUTH__JWT_SECRET"``; otherwise (or with ``--token``) a
workload token (valid 10 minutes) is minted with Airflow's own generator and passed as
``--token``.

Batch mode reads one JSON object per line, ``{"dag_id": .., "task_id": .. | "tasks": [..],
"run_id": .., "map_index": ..}`` (run_id optional, map_index -1 by default), and answers each
line at once with one line ``{"tis": [...]}`` or ``{"error": "..."}``: importing Airflow costs
about 2.5 s, so a test fixture keeps one process open and asks for TIs as it goes.

A mapped task is expanded first, as the scheduler does once its upstream tasks are done:
``{"dag_id": .., "expand": TASK_ID, "run_id": ..}`` runs Airflow's own
``TaskMap.expand_mapped_task`` on the run's serialized DAG, which creates one TI per map index
from the ``TaskMap`` rows the Execution API wrote when the upstream pushed its return value with
``mapped_length``. The answer is ``{"map_indexes": [0, 1, ...], "state": null}``, or no indexes
and the state Airflow gave the unexpanded TI (``skipped`` for a zero-length map,
``upstream_failed`` when it has no ``TaskMap`` to expand from) with ``reason``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

FINISHED = ("success", "failed", "skipped", "upstream_failed", "removed")


def _run_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"supervisor_sim__{stamp}_{uuid.uuid4().hex[:6]}"


def queue_tis(
    dag_id: str, task_ids: list[str], run_id: str | None, map_index: int = -1
) -> list[dict[str, Any]]:
    """Queue the next try of each task (at ``map_index``: a mapped task expanded first) in one
    DAG run (created when missing); describe them."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.models import DagRun, TaskInstance as TI
    from airflow.sdk import timezone
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType
    from sqlalchemy import select

    run_id = run_id or _run_id()
    out = []
    with create_session() as session:
        dr = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if dr is None:
            trigger_dag(
                dag_id,
                run_id=run_id,
                triggered_by=DagRunTriggeredByType.CLI,
                replace_microseconds=False,
                session=session,
            )
            session.flush()
            dr = session.scalar(
                select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
            )
        if dr.state != DagRunState.RUNNING:
            dr.state = DagRunState.RUNNING
            dr.end_date = None
        dr.start_date = dr.start_date or timezone.utcnow()
        session.flush()
        for task_id in task_ids:
            query = select(TI).where(
                TI.dag_id == dag_id,
                TI.run_id == run_id,
                TI.task_id == task_id,
                TI.map_index == map_index,
            )
            ti = session.scalar(query)
            if ti is None and map_index >= 0:
                raise LookupError(
                    f"{dag_id}.{task_id} has no map index {map_index} in run {run_id!r}"
                    " (expand it first)"
                )
            if ti is None:  # trigger_dag created a TI for every task of the DAG's version
                raise LookupError(f"DAG {dag_id!r} has no task {task_id!r} in run {run_id!r}")
            state = ti.state
            if state == TaskInstanceState.RUNNING:
                raise RuntimeError(
                    f"{dag_id}.{task_id} in run {run_id} is running; let it finish first"
                )
            if state in FINISHED:
                # What clearing does: archive this try, new TI id, then schedule the next try.
                ti.prepare_db_for_next_try(session)
            if state != TaskInstanceState.QUEUED:
                # The scheduler counts a try when it schedules the TI (a reschedule keeps it).
                if state != TaskInstanceState.UP_FOR_RESCHEDULE or ti.try_number == 0:
                    ti.try_number += 1
                ti.state = TaskInstanceState.QUEUED
                ti.end_date = None
            ti.queued_dttm = timezone.utcnow()
            ti.queue = ti.queue or "default"
            session.flush()
            out.append(
                {
                    "ti_id": str(ti.id),
                    "dag_id": dag_id,
                    "task_id": task_id,
                    "run_id": run_id,
                    "try_number": ti.try_number,
                    "max_tries": ti.max_tries,
                    "dag_version_id": str(ti.dag_version_id) if ti.dag_version_id else None,
                    "map_index": ti.map_index,
                    "queue": ti.queue,
                }
            )
    return out


def expand_mapped(dag_id: str, task_id: str, run_id: str) -> dict[str, Any]:
    """Expand a mapped task of a run with Airflow's own code, as the scheduler does once its
    upstream tasks are done; say which map indexes exist, or what became of the task."""
    from airflow.models import DagRun, TaskInstance as TI
    from airflow.models.dagbag import DBDagBag
    from airflow.models.expandinput import NotFullyPopulated
    from airflow.models.taskmap import TaskMap
    from airflow.serialization.definitions.mappedoperator import get_mapped_ti_count
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        dr = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if dr is None:
            raise LookupError(f"DAG {dag_id!r} has no run {run_id!r}")
        dag = DBDagBag().get_dag_for_run(dr, session=session)
        if dag is None:
            raise LookupError(f"no serialized DAG {dag_id!r} for run {run_id!r}")
        task = dag.get_task(task_id)
        missing: list[str] = []
        try:
            get_mapped_ti_count(task, run_id, session=session)
        except NotFullyPopulated as exc:  # expand_mapped_task marks the TI upstream_failed
            missing = sorted(exc.missing)
        TaskMap.expand_mapped_task(task, run_id, session=session)
        session.flush()
        rows = session.scalars(
            select(TI).where(TI.dag_id == dag_id, TI.run_id == run_id, TI.task_id == task_id)
        ).all()
        indexes = sorted(ti.map_index for ti in rows if ti.map_index >= 0)
        unmapped = [ti for ti in rows if ti.map_index < 0]
        raw = unmapped[0].state if unmapped else None
        state = None if raw is None else str(getattr(raw, "value", raw))
        reason = None
        if not indexes and state == "skipped":
            reason = "its upstream's value has no elements, so Airflow skipped it"
        elif not indexes and missing:
            reason = (
                f"Airflow has no mapped length for {', '.join(missing)}: its return value "
                "was pushed without mapped_length (SetXCom), so no TaskMap was written and "
                "Airflow marked the task upstream_failed"
            )
        return {"map_indexes": indexes, "state": None if indexes else state, "reason": reason}


def api_url(explicit: str | None) -> str:
    if explicit:
        return explicit
    from airflow.configuration import conf

    url = conf.get("core", "execution_api_server_url", fallback="") or ""
    if url:
        return url
    base = conf.get("api", "base_url", fallback="") or ""
    if not base or base.startswith("/"):
        base = "http://localhost:8080" + base
    return base.rstrip("/") + "/execution/"


def workload_token(ti_id: str) -> str:
    from airflow.api_fastapi.execution_api.app import _jwt_generator

    return _jwt_generator().generate(extras={"sub": ti_id, "scope": "workload"}, valid_for=600)


def command_line(ti: dict[str, Any], url: str, token: str | None) -> str:
    argv = [
        "supervisor-sim",
        "run-task",
        ti["dag_id"],
        ti["task_id"],
        "--api-url",
        url,
        "--ti-id",
        ti["ti_id"],
        "--run-id",
        ti["run_id"],
        "--try-number",
        str(ti["try_number"]),
    ]
    if ti["dag_version_id"]:
        argv += ["--dag-version-id", ti["dag_version_id"]]
    if ti["queue"] and ti["queue"] != "default":
        argv += ["--queue", ti["queue"]]
    text = shlex.join(argv)
    if token:
        return f"{text} --token {token}"
    return f'{text} --jwt-secret "$AIRFLOW__API_AUTH__JWT_SECRET"'


def describe(tis: list[dict[str, Any]], url: str, mint: bool) -> list[dict[str, Any]]:
    for ti in tis:
        token = workload_token(ti["ti_id"]) if mint else None
        if token:
            ti["token"] = token
        ti["command"] = command_line(ti, url, token)
    return tis


def _request_tasks(request: dict[str, Any]) -> list[str]:
    tasks = request.get("tasks") or ([request["task_id"]] if request.get("task_id") else [])
    if not request.get("dag_id") or not tasks:
        raise ValueError('a request needs "dag_id" and "task_id" or "tasks"')
    return [str(t) for t in tasks]


def serve_batch(stream: Any, out: Any, url: str, mint: bool) -> int:
    """Answer one JSON request line with one JSON line, flushing each, until EOF."""
    failures = 0
    for line in stream:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            answer: dict[str, Any]
            if request.get("expand"):
                answer = expand_mapped(request["dag_id"], request["expand"], request["run_id"])
            else:
                tis = queue_tis(
                    request["dag_id"],
                    _request_tasks(request),
                    request.get("run_id"),
                    int(request.get("map_index", -1)),
                )
                answer = {"tis": describe(tis, url, mint)}
        except Exception as exc:  # reported per request; the process keeps serving
            failures += 1
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(answer) + "\n")
        out.flush()
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Queue task instances on a local Airflow for supervisor-sim run-task."
    )
    parser.add_argument("dag_id", nargs="?")
    parser.add_argument("task_ids", nargs="*", metavar="task_id")
    parser.add_argument("--run-id", help="DAG run to use (created when missing; default: new)")
    parser.add_argument("--batch", metavar="FILE", help="JSON request lines ('-' for stdin)")
    parser.add_argument(
        "--api-url", help="Execution API URL for the printed command (default: Airflow's config)"
    )
    parser.add_argument(
        "--token", action="store_true", help="mint a workload token even when the secret is set"
    )
    args = parser.parse_args(argv)
    # Airflow logs to stdout; only our JSON and command lines go there.
    out, sys.stdout = sys.stdout, sys.stderr
    mint = args.token or not os.environ.get("AIRFLOW__API_AUTH__JWT_SECRET")
    if args.batch:
        url = api_url(args.api_url)
        if args.batch == "-":
            return serve_batch(sys.stdin, out, url, mint)
        with open(args.batch) as stream:
            return serve_batch(stream, out, url, mint)
    if not args.dag_id or not args.task_ids:
        parser.error("give DAG_ID and at least one TASK_ID, or --batch FILE")
    tis = describe(queue_tis(args.dag_id, args.task_ids, args.run_id), api_url(args.api_url), mint)
    for ti in tis:
        print(json.dumps(ti), file=out)
    print(file=out)
    for ti in tis:
        print(ti["command"], file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run, with supervisor-sim, every task instance the airflow-init service queued.

The supervisor-sim service's entry script (compose/docker-compose.yaml);
tests/compose/test_compose.py runs it natively with the same environment. Reads
``$SIM_QUEUED_TIS`` (``{"tis": [...]}``,
written by compose/scripts/airflow-init.sh), and for each task instance, in order, runs

    supervisor-sim run-task DAG TASK --api-url $SIM_API_URL --ti-id .. --run-id ..
        --try-number .. --map-index .. --dag-version-id .. --json
        --transcript $SIM_RUNS_DIR/DAG.TASK.RUN.tryN.jsonl

The workload token is minted by supervisor-sim from ``$SUPERVISOR_SIM_JWT_SECRET`` (Airflow's
``[api_auth] jwt_secret``). Each session's log goes to stderr as it happens; the outcomes are
written to ``$SIM_RUNS_DIR/summary.json``. Exit status 0 only when every task ended ``success``.
Standard library only: it runs in the supervisor-sim image.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

#: Seconds one run-task may take before it is killed (its runtime gets --timeout first).
TASK_TIMEOUT = float(os.environ.get("SIM_TASK_TIMEOUT", "300"))


def transcript_path(runs: Path, ti: dict[str, Any]) -> Path:
    name = f"{ti['dag_id']}.{ti['task_id']}.{ti['run_id']}.try{ti['try_number']}.jsonl"
    return runs / re.sub(r"[^A-Za-z0-9._+-]", "_", name)


def run_one(ti: dict[str, Any], api_url: str, runs: Path) -> dict[str, Any]:
    transcript = transcript_path(runs, ti)
    argv = [
        "supervisor-sim",
        "run-task",
        ti["dag_id"],
        ti["task_id"],
        "--api-url",
        api_url,
        "--ti-id",
        ti["ti_id"],
        "--run-id",
        ti["run_id"],
        "--try-number",
        str(ti["try_number"]),
        "--map-index",
        str(ti.get("map_index", -1)),
        "--timeout",
        str(TASK_TIMEOUT - 30),
        "--transcript",
        str(transcript),
        "--json",
    ]
    if ti.get("dag_version_id"):
        argv += ["--dag-version-id", ti["dag_version_id"]]
    print(f"run-queued: {ti['dag_id']}.{ti['task_id']} (ti {ti['ti_id']})", file=sys.stderr)
    try:
        proc = subprocess.run(
            argv, stdout=subprocess.PIPE, text=True, timeout=TASK_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return {**ti, "final_state": None, "exit_status": None, "error": "timed out"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    return {
        **ti,
        "final_state": result.get("final_state"),
        "exit_status": proc.returncode,
        "transcript": result.get("transcript"),
        "violations": result.get("violations", []),
        "error": result.get("error"),
    }


def main() -> int:
    queued = Path(os.environ.get("SIM_QUEUED_TIS", "/shared/queued_tis.json"))
    runs = Path(os.environ.get("SIM_RUNS_DIR", "/runs"))
    api_url = os.environ["SIM_API_URL"]
    if not os.environ.get("SUPERVISOR_SIM_JWT_SECRET"):
        print("run-queued: SUPERVISOR_SIM_JWT_SECRET is not set", file=sys.stderr)
        return 2
    tis = json.loads(queued.read_text())["tis"]
    runs.mkdir(parents=True, exist_ok=True)
    results = [run_one(ti, api_url, runs) for ti in tis]
    (runs / "summary.json").write_text(json.dumps(results, indent=1) + "\n")
    print("\nrun-queued: outcomes", file=sys.stderr)
    for r in results:
        print(
            f"  {r['task_id']:<16} {r['final_state']!s:<14} exit {r['exit_status']}"
            f"  {r.get('transcript') or ''}",
            file=sys.stderr,
        )
    return 0 if all(r["final_state"] == "success" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

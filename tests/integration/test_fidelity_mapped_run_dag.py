"""run-dag --api-url expands a mapped task on the real Airflow, with Airflow's own code.

``fanout_dag`` (runtimes/reference/fanout_dags.py) has ``square`` mapped over ``extract``'s list
of four. Its Python twin, written here, is registered in the tier's Airflow; run-dag then runs
the reference bundle's DAG against that Airflow. The queue tool expands ``square`` as the
scheduler does (``TaskMap.expand_mapped_task``, from the ``TaskMap`` row the Execution API wrote
when ``extract`` pushed its list with ``mapped_length``), and queues each map index in turn. The
run must end with the same states in Airflow's DB as in run-dag's report, one TI per map index.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from ._airflow import ROOT, RealAirflow, run_step

pytestmark = pytest.mark.real_airflow

BUNDLE = ROOT / "runtimes" / "reference" / "fanout_dags.py"
RUNTIME = ROOT / "runtimes" / "reference" / "runtime.py"

TWIN = '''
    """The Python twin of the reference bundle's fanout_dag: same task ids, same dependencies,
    square mapped over extract. Under supervisor-sim the reference runtime runs each task."""
    import datetime

    from airflow.sdk import DAG, task

    with DAG(dag_id="fanout_dag", schedule=None, start_date=datetime.datetime(2024, 1, 1),
             catchup=False):
        @task
        def extract():
            return [1, 2, 3, 4]

        @task
        def transform_a():
            return 0

        @task
        def transform_b():
            return 0

        @task
        def transform_c():
            return 0

        @task
        def load():
            return 0

        @task
        def square(x):
            return x * x

        @task
        def total():
            return 0

        e = extract()
        parts = [transform_a(), transform_b(), transform_c()]
        e >> parts
        parts >> load()
        square.expand(x=e) >> total()
'''


@pytest.fixture(scope="module")
def fanout(airflow: RealAirflow, tmp_path_factory: pytest.TempPathFactory) -> RealAirflow:
    """The tier's Airflow with fanout_dag registered."""
    tmp = tmp_path_factory.mktemp("fidelity_fanout")
    (airflow.home / "dags" / "fidelity_fanout_dag.py").write_text(textwrap.dedent(TWIN))
    run_step(
        [str(Path(airflow.python).with_name("airflow")), "dags", "reserialize"],
        env=airflow.env,
        timeout=300,
        what="airflow dags reserialize (fanout_dag)",
        log=tmp / "reserialize.log",
    )
    return airflow


def _db_states(airflow: RealAirflow, run_id: str) -> dict[str, list[tuple[int, str | None]]]:
    rows = airflow._query(
        "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ? AND run_id = ?"
        " ORDER BY task_id, map_index",
        ("fanout_dag", run_id),
    )
    out: dict[str, list[tuple[int, str | None]]] = {}
    for task_id, map_index, state in rows:
        out.setdefault(task_id, []).append((map_index, state))
    return out


def test_a_mapped_task_is_expanded_by_airflow_and_every_map_index_runs(
    fanout: RealAirflow, tmp_path: Path
) -> None:
    """square gets one TI per element of extract's list, created by Airflow; all succeed, and
    every task's state in Airflow's DB is the one run-dag reports."""
    run_id = f"fanout__{uuid.uuid4().hex[:8]}"
    runtime = f"{sys.executable} {RUNTIME} --bundle {BUNDLE}"
    proc = subprocess.run(
        [
            sys.executable, "-m", "supervisor_sim", "--config", str(ROOT / "supervisor-sim.toml"),
            "run-dag", "fanout_dag", "--runtime", runtime, "--run-id", run_id,
            "--api-url", fanout.api_url, "--jwt-secret", fanout.secret,
            "--airflow-python", fanout.python, "--state", str(tmp_path / "s.sqlite"),
            "--runs-dir", str(tmp_path / "runs"), "--json", "-q",
        ],
        cwd=tmp_path,
        env={**fanout.env, "FANOUT_SLEEP_S": "0"},
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])["tasks"]
    db = _db_states(fanout, run_id)
    assert {t: r["state"] for t, r in report.items()} == dict.fromkeys(report, "success")
    assert report["square"]["map_indexes"] == [0, 1, 2, 3]
    assert db["square"] == [(i, "success") for i in range(4)]
    assert {t: sorted({s for _, s in tis}) for t, tis in db.items()} == {
        t: [r["state"]] for t, r in report.items()
    }
    ti = {"dag_id": "fanout_dag", "run_id": run_id, "task_id": "total", "map_index": -1}
    assert fanout.xcom(ti) == 1 + 4 + 9 + 16

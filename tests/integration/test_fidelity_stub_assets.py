"""Assets a task declares only on itself are active on the stub as on a real Airflow.

A DAG whose task declares inlets and an outlet (no separate asset definition) is parsed by
Airflow's own ``airflow dags reserialize`` on the real server, which registers those assets
active; the stub gets the same declarations only under ``[dags.<dag>.tasks.<task>]`` in its
fixtures. The same calls (run, validate-inlets-and-outlets, assets by name and URI, a success
with the outlet and an outlet event, the asset's events) go to both, and each answer's status
and JSON body (ids and timestamps normalised) must be equal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from supervisor_sim.api import StubStore, StubTransport, TokenIssuer, load_fixtures, mint_token

from ._airflow import RealAirflow, run_step
from ._helpers import normalize

pytestmark = pytest.mark.real_airflow

DAG_ID = "stub_assets_dag"
TASK_ID = "produce"
DAG_FILE = f'''
import datetime
from airflow.sdk import DAG, Asset
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG(dag_id="{DAG_ID}", schedule=None, start_date=datetime.datetime(2024, 1, 1)):
    EmptyOperator(
        task_id="{TASK_ID}",
        inlets=[Asset("fid_raw")],
        outlets=[Asset(name="fid_report", uri="s3://bucket/fid_report")],
    )
'''
FIXTURES = f"""
[dags.{DAG_ID}.tasks.{TASK_ID}]
inlets = ["fid_raw"]
outlets = [{{ name = "fid_report", uri = "s3://bucket/fid_report" }}]
"""
RUN = {
    "state": "running",
    "hostname": "assets-host",
    "unixname": "assets",
    "pid": 4343,
    "start_date": "2026-01-01T00:00:00Z",
}
REPORT = {"name": "fid_report", "uri": "s3://bucket/fid_report"}
SUCCESS = {
    "state": "success",
    "end_date": "2026-01-01T00:01:00Z",
    "task_outlets": [{**REPORT, "type": "Asset"}],
    "outlet_events": [{"dest_asset_key": REPORT, "extra": {"rows": 3}}],
}
TI = "task-instances/{ti}/"
#: label, method, path, scope, request kwargs
STEPS: list[tuple[str, str, str, str, dict[str, Any]]] = [
    ("run", "PATCH", TI + "run", "workload", {"json": RUN}),
    ("validate-inlets-and-outlets", "GET", TI + "validate-inlets-and-outlets", "execution", {}),
    ("asset-by-name", "GET", "assets/by-name", "execution", {"params": {"name": "fid_report"}}),
    ("inlet-by-uri", "GET", "assets/by-uri", "execution", {"params": {"uri": "fid_raw"}}),
    ("state-success-with-outlet", "PATCH", TI + "state", "execution", {"json": SUCCESS}),
    (
        "outlet-events",
        "GET",
        "asset-events/by-asset",
        "execution",
        {"params": {"name": "fid_report", "uri": "s3://bucket/fid_report"}},
    ),
]


def _ask(
    client: httpx.Client, ti: str, run_id: str, secret: str, ids: dict[str, str]
) -> dict[str, Any]:
    answers = {}
    for label, method, path, scope, kwargs in STEPS:
        token = mint_token(secret, ti, scope=scope)
        r = client.request(
            method,
            path.format(ti=ti),
            headers={"authorization": f"Bearer {token}"},
            **kwargs,
        )
        body: Any = (
            r.json()
            if r.content and r.headers.get("content-type") == "application/json"
            else r.text
        )
        answers[label] = normalize({"status": r.status_code, "body": body}, ids | {run_id: "<run>"})
    return answers


@pytest.fixture(scope="module")
def answers(
    airflow: RealAirflow, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """label -> (real answer, stub answer) for the sequence, sent to both in order."""
    tmp = tmp_path_factory.mktemp("stub_assets")
    (airflow.home / "dags" / f"{DAG_ID}.py").write_text(DAG_FILE)
    run_step(
        [str(Path(airflow.python).with_name("airflow")), "dags", "reserialize"],
        env=airflow.env,
        timeout=300,
        what="airflow dags reserialize (registers the DAG's assets)",
        log=tmp / "reserialize.log",
    )
    (queued,) = airflow.queue([TASK_ID], dag_id=DAG_ID)
    run_id, real_ti = queued["run_id"], queued["ti_id"]

    fixtures = tmp / "fixtures.toml"
    fixtures.write_text(
        FIXTURES + f'[dag_runs.{DAG_ID}]\nrun_id = "{run_id}"\nrun_type = "manual"\n'
    )
    store = StubStore(tmp / "stub.sqlite")
    store.seed(load_fixtures(fixtures))
    stub_ti = store.prepare_task_instance(DAG_ID, TASK_ID, run_id=run_id).id
    real = httpx.Client(base_url=airflow.api_url, timeout=30)
    stub = httpx.Client(
        base_url="http://stub.invalid/execution/",
        transport=StubTransport(store, tokens=TokenIssuer(airflow.secret)),
    )
    try:
        got_real = _ask(real, real_ti, run_id, airflow.secret, {real_ti: "<ti>"})
        got_stub = _ask(stub, stub_ti, run_id, airflow.secret, {stub_ti: "<ti>"})
    finally:
        real.close()
        stub.close()
        store.close()
    return {label: (got_real[label], got_stub[label]) for label, *_ in STEPS}


@pytest.mark.parametrize("label", [step[0] for step in STEPS])
def test_stub_answers_task_declared_asset_calls_as_the_real_execution_api(
    answers: dict[str, tuple[dict[str, Any], dict[str, Any]]], label: str
):
    """For assets declared only on the task, the stub gives this call Airflow's status and
    JSON body (ids, timestamps normalised)."""
    real, stub = answers[label]
    assert stub == real


def test_the_real_server_reports_the_task_declared_assets_active(
    answers: dict[str, tuple[dict[str, Any], dict[str, Any]]],
):
    """The comparison is of the fixed case: Airflow itself finds no inactive asset and
    serves the outlet, and records one event for it."""
    real = {label: pair[0] for label, pair in answers.items()}
    assert real["validate-inlets-and-outlets"] == {"status": 200, "body": {"inactive_assets": []}}
    assert real["asset-by-name"]["status"] == 200
    assert len(real["outlet-events"]["body"]["asset_events"]) == 1

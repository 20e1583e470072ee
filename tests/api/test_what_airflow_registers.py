"""What Airflow itself would have put in its database, the stub puts there too: a DAG run's
``conf`` is ``{}`` unless one is given (``DagRun`` stores ``conf or {}``), and the assets a
DAG's tasks declare as inlets and outlets are registered active (the DAG processor does so when
it parses the DAG), unless another asset already holds their name or URI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from supervisor_sim.api import StubStore, StubTransport, TokenIssuer, load_fixtures

BASE = "http://stub.invalid/execution/"
RUN_BODY = {
    "state": "running",
    "hostname": "h",
    "unixname": "u",
    "pid": 1,
    "start_date": "2026-01-01T00:00:00Z",
}


def stub(tmp_path: Path, fixtures: str) -> tuple[StubStore, httpx.Client, TokenIssuer]:
    path = tmp_path / "fixtures.toml"
    path.write_text(fixtures)
    store = StubStore(tmp_path / "state.sqlite")
    store.seed(load_fixtures(path))
    tokens = TokenIssuer()
    return store, httpx.Client(base_url=BASE, transport=StubTransport(store, tokens=tokens)), tokens


@pytest.fixture
def close() -> Iterator[list[Any]]:
    opened: list[Any] = []
    yield opened
    for thing in opened:
        thing.close()


def run_context(store: StubStore, client: httpx.Client, tokens: TokenIssuer, **prepare: Any):
    """The TIRunContext of a new try of ``d.t`` (what StartupDetails carries) and its headers."""
    record = store.prepare_task_instance("d", "t", **prepare)
    token = tokens.issue(record.id, "workload")
    r = client.patch(
        f"task-instances/{record.id}/run",
        json=RUN_BODY,
        headers={"authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    return record, r.json(), {"authorization": f"Bearer {r.headers['refreshed-api-token']}"}


class TestDagRunConf:
    def test_a_run_created_for_a_try_has_an_empty_conf(self, tmp_path: Path, close: list[Any]):
        """Without fixtures, the run a try creates carries ``conf: {}`` to the runtime, as
        Airflow's DagRun does; ``null`` would reach StartupDetails otherwise."""
        store, client, tokens = stub(tmp_path, "")
        close += [client, store]
        _, context, _ = run_context(store, client, tokens, run_id="r")
        assert context["dag_run"]["conf"] == {}
        assert store.get_dag_run("d", "r")["conf"] == "{}"  # type: ignore[index]

    def test_named_and_existing_runs_without_conf_have_an_empty_one(
        self, tmp_path: Path, close: list[Any]
    ):
        """A ``[dag_runs]`` named run, a ``[[runs]]`` entry and a run whose defaults have no
        conf all answer ``conf: {}``; a given conf is kept."""
        store, client, tokens = stub(
            tmp_path,
            '[dag_runs.d]\nrun_id = "named"\n'
            "[dag_runs.e]\nconf = {k = 1}\n"
            '[[runs]]\ndag_id = "d"\nrun_id = "old"\n',
        )
        close += [client, store]
        _, context, headers = run_context(store, client, tokens)
        assert context["dag_run"]["run_id"] == "named" and context["dag_run"]["conf"] == {}
        assert client.get("dag-runs/d/old", headers=headers).json()["conf"] == {}
        store.prepare_task_instance("e", "t", run_id="given")
        assert client.get("dag-runs/e/given", headers=headers).json()["conf"] == {"k": 1}

    def test_a_triggered_run_without_conf_has_an_empty_one(self, tmp_path: Path, close: list[Any]):
        """TriggerDagRun with no ``conf`` key creates a run whose conf is ``{}``."""
        store, client, tokens = stub(tmp_path, "[dags.d]\n")
        close += [client, store]
        _, _, headers = run_context(store, client, tokens, run_id="r")
        assert client.post("dag-runs/d/new", json={}, headers=headers).status_code == 204
        assert client.get("dag-runs/d/new", headers=headers).json()["conf"] == {}


DECLARED = """
[dags.d.tasks.t]
inlets = ["raw", { name = "orders", uri = "s3://elsewhere/orders" }]
outlets = [{ name = "report", uri = "s3://bucket/report" }]
[assets.orders]
uri = "s3://bucket/orders"
"""


class TestDeclaredAssets:
    def test_inlets_and_outlets_declared_only_on_the_task_are_active(
        self, tmp_path: Path, close: list[Any]
    ):
        """An inlet or outlet named only under ``[dags.<dag>.tasks.<task>]`` is not reported
        inactive and is served like a declared asset; one whose name another asset already
        holds (with another URI) stays unregistered, so inactive, as in Airflow."""
        store, client, tokens = stub(tmp_path, DECLARED)
        close += [client, store]
        record, _, headers = run_context(store, client, tokens, run_id="r")
        r = client.get(f"task-instances/{record.id}/validate-inlets-and-outlets", headers=headers)
        assert r.json() == {
            "inactive_assets": [{"name": "orders", "uri": "s3://elsewhere/orders", "type": "Asset"}]
        }
        report = client.get("assets/by-name", params={"name": "report"}, headers=headers)
        assert report.json() == {
            "name": "report",
            "uri": "s3://bucket/report",
            "group": "asset",
            "extra": {},
        }
        # Asset("raw") has the name as its URI.
        raw = client.get("assets/by-uri", params={"uri": "raw"}, headers=headers)
        assert raw.status_code == 200 and raw.json()["name"] == "raw"

    def test_a_task_outlet_is_registered_once_across_reseeds(
        self, tmp_path: Path, close: list[Any]
    ):
        """Seeding again registers nothing new; an asset declared under ``[assets]`` keeps
        its own group and extra."""
        store, client, _ = stub(tmp_path, DECLARED)
        close += [client, store]
        store.seed(load_fixtures(tmp_path / "fixtures.toml"))
        rows = store.db.all("SELECT name, uri, group_name, active FROM assets ORDER BY name")
        assert [tuple(r) for r in rows] == [
            ("orders", "s3://bucket/orders", "asset", 1),
            ("raw", "raw", "asset", 1),
            ("report", "s3://bucket/report", "asset", 1),
        ]

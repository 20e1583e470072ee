"""The stub's DAG-run, DAG, task-instance query, asset, state-store and HITL routes; the fixtures
that seed them; and the exact calls and reply shapes of the dispatcher's handlers for them.

Route behaviour follows Airflow 3.3's ``execution_api/routes`` (execution-api.md §7-§8); the
dispatcher follows ``ActivitySubprocess._handle_request`` and the SDK client (protocol.md §3.2,
§3.3).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from supervisor_sim.api import (
    ExecutionAPIClient,
    FixtureError,
    RetryPolicy,
    StubStore,
    StubTransport,
    TokenIssuer,
    load_fixtures,
)
from supervisor_sim.protocol import TO_TASK, validate_body
from supervisor_sim.supervision._dispatch import Dispatcher

ROOT = Path(__file__).resolve().parents[2]
BASE = "http://stub.invalid/execution/"
RUN_BODY = {
    "state": "running",
    "hostname": "h1",
    "unixname": "u1",
    "pid": 100,
    "start_date": "2026-01-01T00:00:00Z",
}
FIXTURES = """
[dag_runs.d]
logical_date = 2026-01-05T00:00:00Z
triggering_user_name = "alice"
[dags.d]
is_paused = true
owners = "team"
tags = ["zeta", "alpha"]
bundle_version = "v7"
next_dagrun = 2026-01-06T00:00:00Z
task_groups = { grp = ["a", "b"], empty = [] }
[dags.d.tasks.t]
inlets = ["orders", { name = "retired" }]
outlets = [{ name = "ghost", uri = "s3://ghost" }]
[assets.orders]
uri = "s3://bucket/orders"
group = "sales"
extra = { owner = "sales" }
[assets.retired]
uri = "s3://bucket/retired"
active = false
[assets.plain]
[asset_aliases]
all_orders = ["orders"]
[[asset_events]]
asset = "orders"
extra = { n = 1 }
timestamp = 2026-01-01T00:00:00Z
aliases = ["all_orders"]
[[asset_events]]
asset = "orders"
extra = { n = 2 }
timestamp = 2026-01-02T00:00:00Z
source_dag_id = "d"
source_run_id = "old2"
source_task_id = "a"
source_map_index = -1
partition_key = "p1"
[[runs]]
dag_id = "d"
run_id = "old1"
state = "success"
logical_date = 2026-01-01T00:00:00Z
data_interval_start = 2025-12-31T00:00:00Z
data_interval_end = 2026-01-01T00:00:00Z
[[runs.task_instances]]
task_id = "t"
state = "success"
start_date = 2026-01-01T00:00:00Z
end_date = 2026-01-01T00:00:30Z
[[runs.task_instances]]
task_id = "a"
map_index = 0
state = "failed"
[[runs.task_instances]]
task_id = "a"
map_index = 1
[[runs]]
dag_id = "d"
run_id = "old2"
state = "failed"
logical_date = 2026-01-02T00:00:00Z
[[runs.task_instances]]
task_id = "t"
state = "failed"
try_number = 3
"""


def write(tmp_path: Path, text: str, name: str = "fixtures.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def fixture_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text, "bad.toml")
    with pytest.raises(FixtureError) as info:
        load_fixtures(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    return message[len(f"{path}: ") :]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StubStore]:
    s = StubStore(tmp_path / "state.sqlite")
    s.seed(load_fixtures(write(tmp_path, FIXTURES)))
    yield s
    s.close()


@pytest.fixture
def tokens() -> TokenIssuer:
    return TokenIssuer()


@pytest.fixture
def client(store: StubStore, tokens: TokenIssuer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=BASE, transport=StubTransport(store, tokens=tokens)) as c:
        yield c


class Started:
    """A TI of DAG ``d`` that went through /run, with its execution-token headers."""

    def __init__(
        self, store: StubStore, client: httpx.Client, tokens: TokenIssuer, task_id: str = "t"
    ):
        self.record = store.prepare_task_instance("d", task_id, run_id="cur")
        self.id = self.record.id
        r = client.patch(
            f"task-instances/{self.id}/run",
            json=RUN_BODY,
            headers={"authorization": f"Bearer {tokens.issue(self.id, 'workload')}"},
        )
        assert r.status_code == 200, r.text
        self.headers = {"authorization": f"Bearer {r.headers['refreshed-api-token']}"}


@pytest.fixture
def started(store: StubStore, client: httpx.Client, tokens: TokenIssuer) -> Started:
    return Started(store, client, tokens)


def detail(r: httpx.Response) -> Any:
    assert r.headers["content-type"] == "application/json"
    return r.json()["detail"]


# -- fixtures ----------------------------------------------------------------------------------


class TestFixtureSections:
    def test_new_sections_parse_into_typed_fixtures(self, tmp_path: Path):
        """[dags], [assets], [asset_aliases], [[asset_events]] and [[runs]] load with defaults."""
        f = load_fixtures(write(tmp_path, FIXTURES))
        dag = f.dags["d"]
        assert (dag.is_paused, dag.owners, dag.bundle_name, dag.tags) == (
            True,
            "team",
            "dags-folder",
            ("zeta", "alpha"),
        )
        assert dag.task_groups == {"grp": ("a", "b"), "empty": ()}
        # A string (or a name without uri) takes the declared asset's URI.
        assert [(r.name, r.uri) for r in dag.inlets["t"]] == [
            ("orders", "s3://bucket/orders"),
            ("retired", "s3://bucket/retired"),
        ]
        assert f.assets["plain"].uri == "plain" and f.assets["plain"].group == "asset"
        assert f.assets["retired"].active is False
        assert f.asset_aliases == {"all_orders": ("orders",)}
        assert [e.extra for e in f.asset_events] == [{"n": 1}, {"n": 2}]
        old1 = f.runs[0]
        assert (old1.run_id, old1.state, old1.run_type) == ("old1", "success", "manual")
        assert [(t.task_id, t.map_index, t.state) for t in old1.task_instances] == [
            ("t", -1, "success"),
            ("a", 0, "failed"),
            ("a", 1, None),
        ]

    def test_alias_naming_an_undeclared_asset_is_refused(self, tmp_path: Path):
        """An alias must resolve to assets declared under [assets]."""
        msg = fixture_error(tmp_path, '[asset_aliases]\nx = ["nope"]\n')
        assert msg == "asset_aliases.x[0]: unknown asset 'nope'; declare it under [assets]"

    def test_event_of_an_undeclared_asset_or_alias_is_refused(self, tmp_path: Path):
        """An asset event names a declared asset and declared aliases, with the key path."""
        msg = fixture_error(tmp_path, '[[asset_events]]\nasset = "nope"\n')
        assert msg == "asset_events[0].asset: unknown asset 'nope'; declare it under [assets]"
        text = '[assets.a]\n[[asset_events]]\nasset = "a"\naliases = ["x"]\n'
        assert fixture_error(tmp_path, text) == (
            "asset_events[0].aliases[0]: unknown asset alias 'x'; declare it under [asset_aliases]"
        )

    def test_run_and_task_instance_states_are_airflow_states(self, tmp_path: Path):
        """A run state must be a DagRunState and a TI state a TaskInstanceState."""
        msg = fixture_error(tmp_path, '[[runs]]\ndag_id = "d"\nrun_id = "r"\nstate = "done"\n')
        assert msg == "runs[0].state: expected one of queued, running, success, failed, got 'done'"
        text = (
            '[[runs]]\ndag_id = "d"\nrun_id = "r"\n'
            '[[runs.task_instances]]\ntask_id = "t"\nstate = "ok"\n'
        )
        assert fixture_error(tmp_path, text).startswith(
            "runs[0].task_instances[0].state: expected one of removed, scheduled"
        )

    def test_runs_must_be_an_array_of_tables_with_ids(self, tmp_path: Path):
        """[runs] as a table, or a run without run_id, is refused with the key path."""
        assert fixture_error(tmp_path, '[runs]\ndag_id = "d"\n') == (
            "runs: expected an array of tables ([[runs]]), got a table"
        )
        assert fixture_error(tmp_path, '[[runs]]\ndag_id = "d"\n') == (
            "runs[0]: missing required key 'run_id'"
        )

    def test_two_assets_cannot_share_a_uri(self, tmp_path: Path):
        """Airflow keeps asset URIs unique among active assets: a duplicate is refused."""
        msg = fixture_error(tmp_path, '[assets.a]\nuri = "u"\n[assets.b]\nuri = "u"\n')
        assert msg == "assets.b.uri: uri 'u' is already used by 'a'"

    def test_dag_keys_are_typed(self, tmp_path: Path):
        """is_paused must be a boolean and tags an array of strings."""
        assert fixture_error(tmp_path, "[dags.d]\nis_paused = 1\n") == (
            "dags.d.is_paused: expected true or false, got 1"
        )
        assert fixture_error(tmp_path, "[dags.d]\ntags = [1]\n") == (
            "dags.d.tags[0]: expected a string, got 1"
        )
        assert fixture_error(tmp_path, "[dags.d.tasks.t]\nsources = []\n").startswith(
            "dags.d.tasks.t.sources: unknown key"
        )

    def test_reseeding_events_and_runs_never_duplicates(self, store: StubStore, tmp_path: Path):
        """Seeding the same fixtures again adds no event, run or task instance."""
        counts = [
            len(store.db.all(f"SELECT * FROM {t}"))
            for t in ("asset_events", "dag_runs", "task_instances", "assets")
        ]
        store.seed(load_fixtures(write(tmp_path, FIXTURES)))
        assert counts == [
            len(store.db.all(f"SELECT * FROM {t}"))
            for t in ("asset_events", "dag_runs", "task_instances", "assets")
        ]
        assert counts == [2, 2, 4, 4]  # the assets: 3 declared, 1 a task's outlet

    def test_shipped_example_seeds_every_section(self, tmp_path: Path):
        """examples/fixtures.toml loads and seeds DAGs, assets, aliases, events and runs."""
        s = StubStore(tmp_path / "s.sqlite")
        s.seed(load_fixtures(ROOT / "examples" / "fixtures.toml"))
        assert s.dags.get("requests_dag")["owners"] == "data-team"
        assert s.assets.get(name="tour_asset")["uri"] == "s3://supervisor-sim/tour"
        assert s.assets.by_alias("tour_alias")[0]["name"] == "tour_asset"
        assert len(s.assets.events(name="tour_asset")) == 1
        assert s.get_dag_run("example_dag", "scheduled__2025-12-31")["state"] == "success"
        s.close()

    def test_docs_example_uses_every_section(self, tmp_path: Path):
        """The full example in docs/fixtures.md loads and has an entry in each section."""
        doc = (ROOT / "docs" / "fixtures.md").read_text()
        example = doc.split("## Full example", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
        f = load_fixtures(write(tmp_path, example, "doc.toml"))
        assert f.dags and f.assets and f.asset_aliases and f.asset_events and f.runs


# -- DAG runs and DAGs -------------------------------------------------------------------------


class TestDagRuns:
    def test_get_dag_run_returns_the_model_and_404_names_the_run(
        self, client: httpx.Client, started: Started
    ):
        """GET dag-runs/{dag}/{run} is the DagRun model; an unknown run is a not_found 404."""
        r = client.get("dag-runs/d/old1", headers=started.headers)
        body = r.json()
        assert (r.status_code, body["state"], body["logical_date"]) == (
            200,
            "success",
            "2026-01-01T00:00:00Z",
        )
        assert body["data_interval_start"] == "2025-12-31T00:00:00Z"
        r = client.get("dag-runs/d/nope/state", headers=started.headers)
        assert (r.status_code, detail(r)) == (
            404,
            {
                "reason": "not_found",
                "message": "Dag run with dag_id 'd' and run_id 'nope' was not found",
            },
        )

    def test_count_filters_by_state_run_id_and_logical_date(
        self, client: httpx.Client, started: Started
    ):
        """dag-runs/count applies every filter given, lists as repeated parameters."""
        count = lambda **p: client.get("dag-runs/count", params=p, headers=started.headers).json()  # noqa: E731
        assert count(dag_id="d") == 3
        assert count(dag_id="d", states=["success", "failed"]) == 2
        assert count(dag_id="d", run_ids=["old1", "cur"], states="running") == 1
        assert count(dag_id="d", logical_dates="2026-01-02T00:00:00+00:00") == 1

    def test_previous_is_the_latest_run_before_the_date_or_null(
        self, client: httpx.Client, started: Started
    ):
        """dag-runs/previous finds the latest earlier run (optionally in a state), else null."""
        get = lambda **p: client.get("dag-runs/previous", params=p, headers=started.headers)  # noqa: E731
        assert get(dag_id="d", logical_date="2026-01-03T00:00:00Z").json()["run_id"] == "old2"
        at = "2026-01-03T00:00:00Z"
        assert get(dag_id="d", logical_date=at, state="success").json()["run_id"] == "old1"
        assert get(dag_id="d", logical_date="2026-01-01T00:00:00Z").json() is None
        r = get(dag_id="d")
        assert r.status_code == 422
        assert detail(r)[0]["loc"] == ["query", "logical_date"]

    def test_trigger_creates_a_queued_operator_triggered_run(
        self, client: httpx.Client, started: Started, store: StubStore
    ):
        """POST dag-runs/{dag}/{run} makes a queued operator_triggered run with the conf, note
        and the calling task's triggering user; a second one is 409 already_exists."""
        body = {"conf": {"k": 1}, "note": "n", "logical_date": "2026-02-01T00:00:00Z"}
        r = client.post("dag-runs/d/new", json=body, headers=started.headers)
        assert (r.status_code, r.content) == (204, b"")
        run = store.get_dag_run("d", "new")
        assert (run["state"], run["run_type"], json.loads(run["conf"]), run["note"]) == (
            "queued",
            "operator_triggered",
            {"k": 1},
            "n",
        )
        assert run["triggering_user_name"] == "alice"
        assert run["logical_date"] == "2026-02-01T00:00:00.000000Z"
        r = client.post("dag-runs/d/new", json={"conf": {}}, headers=started.headers)
        assert (r.status_code, detail(r)) == (
            409,
            {
                "reason": "already_exists",
                "message": "A run already exists for Dag 'd' with run_id 'new'",
            },
        )

    def test_trigger_refuses_unknown_dags_and_bad_payloads(
        self, client: httpx.Client, started: Started
    ):
        """An unknown DAG is 404; a null conf or an unknown key is a 422 on the body."""
        r = client.post("dag-runs/nope/r", json={"conf": {}}, headers=started.headers)
        assert (r.status_code, detail(r)["message"]) == (404, "Dag with dag_id: 'nope' not found")
        r = client.post("dag-runs/d/r", json={"conf": None, "x": 1}, headers=started.headers)
        assert r.status_code == 422
        assert [e["loc"] for e in detail(r)] == [["body", "conf"], ["body", "x"]]

    def test_clear_requeues_the_run_and_resets_its_task_instances(
        self, client: httpx.Client, started: Started, store: StubStore
    ):
        """POST .../clear sets the run queued, bumps clear_number and resets its TIs' states."""
        r = client.post("dag-runs/d/old1/clear", headers=started.headers)
        assert r.status_code == 204
        run = store.get_dag_run("d", "old1")
        assert (run["state"], run["clear_number"], run["end_date"]) == ("queued", 1, None)
        states = {t["state"] for t in store.tis.find("d", run_ids=["old1"])}
        assert states == {None}
        r = client.post("dag-runs/d/gone/clear", headers=started.headers)
        assert (r.status_code, detail(r)["message"]) == (
            404,
            "Dag run with run_id: 'gone' not found",
        )

    def test_get_dag_sorts_tags_and_defaults_a_dag_that_only_has_runs(
        self, client: httpx.Client, started: Started, store: StubStore
    ):
        """GET dags/{id} serves the [dags] entry (tags sorted), a default for a DAG that only
        has runs, and 404 for a DAG nothing mentions."""
        assert client.get("dags/d", headers=started.headers).json() == {
            "dag_id": "d",
            "is_paused": True,
            "bundle_name": "dags-folder",
            "bundle_version": "v7",
            "relative_fileloc": None,
            "owners": "team",
            "tags": ["alpha", "zeta"],
            "next_dagrun": "2026-01-06T00:00:00Z",
        }
        store.prepare_task_instance("other", "t", run_id="r")
        assert client.get("dags/other", headers=started.headers).json()["owners"] == "airflow"
        r = client.get("dags/ghost", headers=started.headers)
        assert (r.status_code, detail(r)["message"]) == (
            404,
            "The Dag with dag_id: `ghost` was not found",
        )

    def test_routes_added_in_later_versions_are_missing_in_older_ones(
        self, client: httpx.Client, started: Started
    ):
        """dags/{id} (2026-04-06) and the state stores (2026-06-30) do not exist for clients
        asking for an older API version."""
        old = {**started.headers, "airflow-api-version": "2025-11-05"}
        assert client.get("dags/d", headers=old).status_code == 404
        assert client.get(f"store/ti/{started.id}/k", headers=old).status_code == 404
        assert client.get("dag-runs/d/old1/state", headers=old).status_code == 200


# -- task-instance queries ---------------------------------------------------------------------


class TestTaskInstanceQueries:
    def test_count_treats_null_in_states_as_no_state(self, client: httpx.Client, started: Started):
        """task-instances/count with states=null counts TIs without a state."""
        count = lambda **p: client.get(  # noqa: E731
            "task-instances/count", params={"dag_id": "d", **p}, headers=started.headers
        ).json()
        assert count() == 5
        assert count(states="null") == 1
        assert count(states=["null", "failed"]) == 3
        assert count(task_ids="a", map_index=1) == 1

    def test_task_group_filters_and_unknown_groups(self, client: httpx.Client, started: Started):
        """A task group counts its tasks' TIs; an empty group falls back to the group id as a
        task id; an unknown group or DAG is 404."""
        get = lambda **p: client.get("task-instances/count", params=p, headers=started.headers)  # noqa: E731
        assert get(dag_id="d", task_group_id="grp").json() == 2
        assert get(dag_id="d", task_group_id="empty").json() == 0
        r = get(dag_id="d", task_group_id="nope")
        assert (r.status_code, detail(r)["message"]) == (404, "Task group nope not found in DAG d")
        r = get(dag_id="ghost", task_group_id="g")
        assert detail(r)["message"] == "The Dag with ID: `ghost` was not found"

    def test_states_key_mapped_tis_by_task_and_index(self, client: httpx.Client, started: Started):
        """task-instances/states maps run -> task id (or task_<index>) -> state."""
        r = client.get(
            "task-instances/states",
            params={"dag_id": "d", "run_ids": ["old1", "cur"]},
            headers=started.headers,
        )
        assert r.json() == {
            "task_states": {
                "cur": {"t": "running"},
                "old1": {"a_0": "failed", "a_1": None, "t": "success"},
            }
        }

    def test_breadcrumbs_list_finished_tis_with_their_duration(
        self, client: httpx.Client, started: Started
    ):
        """Breadcrumbs are the finished TIs of a run, ordered, with duration in seconds."""
        r = client.get(
            "task-instances/breadcrumbs",
            params={"dag_id": "d", "run_id": "old1"},
            headers=started.headers,
        )
        assert r.json()["breadcrumbs"] == [
            {"task_id": "a", "map_index": 0, "state": "failed", "operator": None, "duration": 0.0},
            {
                "task_id": "t",
                "map_index": -1,
                "state": "success",
                "operator": None,
                "duration": 30.0,
            },
        ]

    def test_previous_ti_orders_by_logical_date_and_filters(
        self, client: httpx.Client, started: Started
    ):
        """previous/{dag}/{task} is the TI of the latest run before the date (in a state)."""
        get = lambda **p: client.get(  # noqa: E731
            "task-instances/previous/d/t", params=p, headers=started.headers
        ).json()
        at = "2026-01-05T00:00:00Z"
        assert get(logical_date=at)["run_id"] == "old2"
        found = get(logical_date=at, state="success")
        assert (found["run_id"], found["duration"], found["logical_date"]) == (
            "old1",
            30.0,
            "2026-01-01T00:00:00Z",
        )
        assert get(logical_date="2026-01-01T00:00:00Z") is None
        r = client.get(
            "task-instances/previous/d/t", params={"state": "bogus"}, headers=started.headers
        )
        assert r.status_code == 422

    def test_previous_successful_dagrun_is_the_last_success_before_the_tis_run(
        self, client: httpx.Client, started: Started
    ):
        """previous-successful-dagrun reports the latest successful earlier run's dates."""
        r = client.get(
            f"task-instances/{started.id}/previous-successful-dagrun", headers=started.headers
        )
        assert r.json() == {
            "data_interval_start": "2025-12-31T00:00:00Z",
            "data_interval_end": "2026-01-01T00:00:00Z",
            "start_date": "2026-01-01T00:00:00Z",
            "end_date": "2026-01-01T00:00:00Z",
        }

    def test_reschedule_start_date_is_the_first_reschedule_or_null(
        self, client: httpx.Client, started: Started, store: StubStore
    ):
        """task-reschedules/{id}/start_date is null until a reschedule, then its start."""
        url = f"task-reschedules/{started.id}/start_date"
        assert client.get(url, params={"try_number": 1}, headers=started.headers).json() is None
        when = datetime(2026, 1, 1, 8, tzinfo=UTC)
        store.tis.reschedule(
            started.id,
            try_number=1,
            start=when,
            end="2026-01-01T08:01:00.000000Z",
            reschedule="2026-01-01T09:00:00.000000Z",
        )
        assert client.get(url, headers=started.headers).json() == "2026-01-01T08:00:00Z"

    def test_query_routes_need_their_required_parameters(
        self, client: httpx.Client, started: Started
    ):
        """A missing dag_id is FastAPI's 422 'Field required' on the query parameter."""
        r = client.get(
            "task-instances/breadcrumbs", params={"run_id": "x"}, headers=started.headers
        )
        assert detail(r) == [
            {"type": "missing", "loc": ["query", "dag_id"], "msg": "Field required", "input": None}
        ]

    def test_validate_inlets_and_outlets_lists_inactive_declared_assets(
        self, client: httpx.Client, started: Started
    ):
        """validate-inlets-and-outlets names the task's declared assets that are not active:
        one declared inactive under [assets]; an outlet declared only on the task is active."""
        r = client.get(
            f"task-instances/{started.id}/validate-inlets-and-outlets", headers=started.headers
        )
        assert r.json() == {
            "inactive_assets": [{"name": "retired", "uri": "s3://bucket/retired", "type": "Asset"}]
        }


# -- assets and asset events -------------------------------------------------------------------


class TestAssets:
    def test_assets_by_name_and_uri_serve_only_active_ones(
        self, client: httpx.Client, started: Started
    ):
        """assets/by-name and by-uri return active assets; an inactive one is a 404."""
        r = client.get(
            "assets/by-uri", params={"uri": "s3://bucket/orders"}, headers=started.headers
        )
        assert r.json() == {
            "name": "orders",
            "uri": "s3://bucket/orders",
            "group": "sales",
            "extra": {"owner": "sales"},
        }
        r = client.get("assets/by-name", params={"name": "retired"}, headers=started.headers)
        assert (r.status_code, detail(r)) == (
            404,
            {"reason": "not_found", "message": "Asset with name retired not found"},
        )

    def test_alias_resolves_to_its_assets(self, client: httpx.Client, started: Started):
        """assets/by-alias lists the alias's assets, and nothing for an unknown alias."""
        get = lambda a: client.get(  # noqa: E731
            "assets/by-alias", params={"alias_name": a}, headers=started.headers
        ).json()
        assert [a["name"] for a in get("all_orders")] == ["orders"]
        assert get("nope") == []

    def test_events_by_asset_filter_order_and_limit(self, client: httpx.Client, started: Started):
        """asset-events/by-asset honours after/before, ascending and limit; it needs a name or
        a URI (400 otherwise)."""
        get = lambda **p: client.get(  # noqa: E731
            "asset-events/by-asset", params={"name": "", "uri": "", **p}, headers=started.headers
        )
        events = get(name="orders").json()["asset_events"]
        assert [e["extra"] for e in events] == [{"n": 1}, {"n": 2}]
        assert events[1]["source_run_id"] == "old2" and events[1]["partition_key"] == "p1"
        assert events[0]["created_dagruns"] == [] and events[0]["source_task_id"] is None
        newest = get(uri="s3://bucket/orders", ascending="false", limit=1).json()["asset_events"]
        assert [e["extra"] for e in newest] == [{"n": 2}]
        after = get(name="orders", after="2026-01-01T12:00:00Z").json()["asset_events"]
        assert [e["extra"] for e in after] == [{"n": 2}]
        r = get()
        assert (r.status_code, detail(r)) == (
            400,
            {"reason": "Missing parameter", "message": "name and uri cannot both be None"},
        )

    def test_events_by_alias_are_those_emitted_through_it(
        self, client: httpx.Client, started: Started
    ):
        """asset-events/by-asset-alias returns the events linked to the alias."""
        r = client.get(
            "asset-events/by-asset-alias", params={"name": "all_orders"}, headers=started.headers
        )
        assert [e["extra"] for e in r.json()["asset_events"]] == [{"n": 1}]

    def test_success_with_outlets_records_asset_events(
        self, client: httpx.Client, started: Started, store: StubStore
    ):
        """A success PATCH records one event per outlet event of an Asset outlet, one plain
        event for a resolved AssetNameRef, and none for an inactive asset."""
        payload = {
            "state": "success",
            "end_date": "2026-01-03T00:00:00Z",
            "task_outlets": [
                {"name": "orders", "uri": "s3://bucket/orders", "type": "Asset"},
                {"name": "plain", "type": "AssetNameRef"},
                {"name": "retired", "uri": "s3://bucket/retired", "type": "Asset"},
            ],
            "outlet_events": [
                {
                    "dest_asset_key": {"name": "orders", "uri": "s3://bucket/orders"},
                    "extra": {"x": 1},
                },
                {
                    "dest_asset_key": {"name": "orders", "uri": "s3://bucket/orders"},
                    "extra": {"x": 2},
                    "partition_key": "pk",
                },
            ],
        }
        r = client.patch(
            f"task-instances/{started.id}/state", json=payload, headers=started.headers
        )
        assert r.status_code == 204
        orders = store.assets.events(name="orders", after=datetime(2026, 1, 3, tzinfo=UTC))
        assert [(e["extra"], e["partition_key"]) for e in orders[-2:]] == [
            ({"x": 1}, None),
            ({"x": 2}, "pk"),
        ]
        assert orders[-1]["source_task_id"] == "t" and orders[-1]["source_run_id"] == "cur"
        assert [e["extra"] for e in store.assets.events(name="plain")] == [{}]
        assert store.assets.events(name="retired", uri="s3://bucket/retired") == []

    def test_alias_outlet_event_creates_an_inactive_asset_linked_to_the_alias(
        self, client: httpx.Client, started: Started, store: StubStore
    ):
        """An event emitted through an AssetAlias outlet creates its (inactive) asset, links it
        to the alias and can be read by alias."""
        payload = {
            "state": "success",
            "end_date": "2026-01-03T00:00:00Z",
            "task_outlets": [{"name": "dyn", "type": "AssetAlias"}],
            "outlet_events": [
                {
                    "source_alias_name": "dyn",
                    "dest_asset_key": {"name": "made", "uri": "s3://made"},
                    "dest_asset_extra": {"k": "v"},
                    "extra": {"e": 1},
                }
            ],
        }
        r = client.patch(
            f"task-instances/{started.id}/state", json=payload, headers=started.headers
        )
        assert r.status_code == 204
        assert store.assets.get(name="made") is None  # not active
        assert [a["name"] for a in store.assets.by_alias("dyn")] == ["made"]
        assert [e["extra"] for e in store.assets.events(alias_name="dyn")] == [{"e": 1}]

    def test_unknown_asset_outlet_is_registered_first(
        self, client: httpx.Client, started: Started, store: StubStore
    ):
        """With no DAG processor, an Asset outlet nobody declared is registered (active), as
        parsing its DAG would have, and gets its event."""
        payload = {
            "state": "success",
            "end_date": "2026-01-03T00:00:00Z",
            "task_outlets": [{"name": "new", "uri": "s3://new", "type": "Asset"}],
            "outlet_events": [],
        }
        client.patch(f"task-instances/{started.id}/state", json=payload, headers=started.headers)
        assert store.assets.get(name="new")["group"] == "asset"
        assert len(store.assets.events(name="new")) == 1


# -- state stores and HITL ---------------------------------------------------------------------


class TestStateStores:
    def test_task_state_round_trip_survives_a_new_try(
        self, client: httpx.Client, started: Started, store: StubStore, tokens: TokenIssuer
    ):
        """A value set under one TI id is read back, and by the next try's new id too, since
        the store is scoped to the DAG run, task and map index."""
        url = f"store/ti/{started.id}/a%2Fb"
        r = client.put(url, json={"value": {"n": 1}, "expires_at": None}, headers=started.headers)
        assert r.status_code == 204
        assert client.get(url, headers=started.headers).json() == {"value": {"n": 1}}
        client.patch(
            f"task-instances/{started.id}/state",
            json={"state": "success", "end_date": "2026-01-01T00:00:01Z"},
            headers=started.headers,
        )
        next_try = Started(store, client, tokens)
        assert next_try.id != started.id
        r = client.get(f"store/ti/{next_try.id}/a%2Fb", headers=next_try.headers)
        assert r.json() == {"value": {"n": 1}}

    def test_expired_or_deleted_key_reads_as_not_found(
        self, client: httpx.Client, started: Started
    ):
        """A key past its expires_at, or deleted, is a 404 naming the key."""
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        base = f"store/ti/{started.id}"
        client.put(f"{base}/old", json={"value": 1, "expires_at": past}, headers=started.headers)
        client.put(f"{base}/new", json={"value": 2, "expires_at": future}, headers=started.headers)
        r = client.get(f"{base}/old", headers=started.headers)
        assert (r.status_code, detail(r)) == (
            404,
            {"reason": "not_found", "message": "Task state store key 'old' not found"},
        )
        assert client.get(f"{base}/new", headers=started.headers).json() == {"value": 2}
        assert client.delete(f"{base}/new", headers=started.headers).status_code == 204
        assert client.get(f"{base}/new", headers=started.headers).status_code == 404
        client.put(f"{base}/x", json={"value": 3}, headers=started.headers)
        assert client.delete(base, headers=started.headers).status_code == 204
        assert client.get(f"{base}/x", headers=started.headers).status_code == 404

    def test_task_state_value_must_not_be_null(self, client: httpx.Client, started: Started):
        """A null value is refused with the server's value_error."""
        r = client.put(f"store/ti/{started.id}/k", json={"value": None}, headers=started.headers)
        assert r.status_code == 422
        [error] = detail(r)
        assert (error["type"], error["loc"], error["msg"]) == (
            "value_error",
            ["body", "value"],
            "Value error, value cannot be null",
        )

    def test_task_state_store_is_only_for_the_tokens_own_ti(
        self, client: httpx.Client, started: Started, store: StubStore
    ):
        """Another TI's store is 403 for this token (ti:self)."""
        other = store.prepare_task_instance("d", "other", run_id="cur")
        r = client.get(f"store/ti/{other.id}/k", headers=started.headers)
        assert (r.status_code, detail(r)) == (403, "Token subject does not match task instance ID")

    def test_asset_state_store_needs_an_active_asset(self, client: httpx.Client, started: Started):
        """Asset values round-trip by name or URI; a missing key, or an inactive asset, is 404."""
        h = started.headers
        by_name = {"name": "orders", "key": "wm"}
        r = client.put("store/asset/by-name/value", params=by_name, json={"value": "x"}, headers=h)
        assert r.status_code == 204
        by_uri = {"uri": "s3://bucket/orders", "key": "wm"}
        assert client.get("store/asset/by-uri/value", params=by_uri, headers=h).json() == {
            "value": "x"
        }
        client.delete("store/asset/by-uri/clear", params={"uri": "s3://bucket/orders"}, headers=h)
        r = client.get("store/asset/by-name/value", params=by_name, headers=h)
        assert detail(r)["message"] == "Asset state store key 'wm' not found"
        r = client.get(
            "store/asset/by-name/value", params={"name": "retired", "key": "k"}, headers=h
        )
        assert detail(r)["message"] == "Asset with name='retired' not found"
        r = client.get("store/asset/by-name/value", params={"name": "orders"}, headers=h)
        assert r.status_code == 422


class TestHumanInTheLoop:
    def _create(self, client: httpx.Client, started: Started, **kw: Any) -> httpx.Response:
        body = {
            "ti_id": started.id,
            "options": ["yes", "no"],
            "subject": "Go?",
            "body": None,
            "defaults": None,
            "multiple": False,
            "params": {},
            "assigned_users": [],
            "type": "CreateHITLDetailPayload",
            **kw,
        }
        return client.post(f"hitlDetails/{started.id}", json=body, headers=started.headers)

    def test_create_is_an_upsert_that_drops_a_received_response(
        self, client: httpx.Client, started: Started
    ):
        """POST hitlDetails returns the stored request (201) every time; a response already
        received is dropped by the next POST."""
        r = self._create(client, started, assigned_users=[{"id": "1", "name": "ann"}])
        assert r.status_code == 201
        assert r.json() == {
            "ti_id": started.id,
            "options": ["yes", "no"],
            "subject": "Go?",
            "body": None,
            "defaults": None,
            "multiple": False,
            "params": {},
            "assigned_users": [{"id": "1", "name": "ann"}],
        }
        url = f"hitlDetails/{started.id}"
        answer = {"ti_id": started.id, "chosen_options": ["yes"]}
        r = client.patch(url, json=answer, headers=started.headers)
        assert (r.status_code, r.json()["response_received"]) == (200, True)
        assert client.patch(url, json=answer, headers=started.headers).status_code == 409
        again = self._create(client, started, subject="changed")
        assert again.json()["subject"] == "Go?"
        assert client.get(url, headers=started.headers).json()["response_received"] is False

    def test_create_refuses_null_params_and_users(self, client: httpx.Client, started: Started):
        """params and assigned_users are not nullable on the server: nulls are a 422."""
        r = self._create(client, started, params=None, assigned_users=None)
        assert r.status_code == 422
        assert [e["loc"] for e in detail(r)] == [["body", "params"], ["body", "assigned_users"]]

    def test_reading_a_missing_detail_is_404(self, client: httpx.Client, started: Started):
        """GET hitlDetails for a TI without a request is a not_found 404."""
        r = client.get(f"hitlDetails/{started.id}", headers=started.headers)
        assert (r.status_code, detail(r)["reason"]) == (404, "not_found")


# -- the dispatcher: calls made and reply shapes ------------------------------------------------


class Recorder:
    """An httpx transport answering from a table and recording every request."""

    def __init__(self, answers: dict[str, tuple[int, Any]]):
        self.answers = answers
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        for key, (status, body) in self.answers.items():
            if key == f"{request.method} {request.url.path}":
                if status == 204:
                    return httpx.Response(204)
                return httpx.Response(status, json=body)
        return httpx.Response(404, json={"detail": "Not Found"})


TI_ID = "01900000-0000-7000-8000-000000000001"


async def dispatch(
    body: dict[str, Any], answers: dict[str, tuple[int, Any]]
) -> tuple[Any, Any, Recorder]:
    prefixed = {}
    for key, answer in answers.items():
        method, path = key.split(" ", 1)
        prefixed[f"{method} /execution/{path}"] = answer
    recorder = Recorder(prefixed)
    transport = httpx.MockTransport(recorder)
    async with httpx.AsyncClient(base_url=BASE, transport=transport) as http:
        api = ExecutionAPIClient(http, retry=RetryPolicy(attempts=1, timeout=5))
        dispatcher = Dispatcher(api, TI_ID)
        reply, error = await dispatcher.dispatch(body)
    for value in (reply, error):
        if value is not None:
            assert validate_body(value, TO_TASK) == [], value
    return reply, error, recorder


def query(recorder: Recorder, index: int = 0) -> list[tuple[str, str]]:
    return list(recorder.requests[index].url.params.multi_items())


class TestDispatcherCalls:
    async def test_ti_count_sends_repeated_lists_iso_dates_and_map_index_only_when_set(self):
        """GetTICount's filters go out in the SDK's order, lists repeated, datetimes as
        isoformat(), map_index only when it is 0 or more."""
        when = datetime(2026, 1, 1, tzinfo=UTC)
        body = {
            "type": "GetTICount",
            "dag_id": "d",
            "task_ids": ["a", "b"],
            "logical_dates": [when],
            "states": ["success", "null"],
            "map_index": -1,
        }
        reply, _, rec = await dispatch(body, {"GET task-instances/count": (200, 4)})
        assert reply == {"count": 4, "type": "TICount"}
        assert query(rec) == [
            ("dag_id", "d"),
            ("task_ids", "a"),
            ("task_ids", "b"),
            ("logical_dates", "2026-01-01T00:00:00+00:00"),
            ("states", "success"),
            ("states", "null"),
        ]
        _, _, rec = await dispatch({**body, "map_index": 2}, {})
        assert query(rec)[-1] == ("map_index", "2")

    async def test_trigger_body_leaves_out_defaults_but_always_sends_conf(self):
        """TriggerDagRun posts only the non-default fields, with conf {} when none was given,
        and never the partition key."""
        body = {"type": "TriggerDagRun", "dag_id": "d", "run_id": "r", "partition_key": "p"}
        reply, _, rec = await dispatch(body, {"POST dag-runs/d/r": (204, None)})
        assert reply == {"ok": True, "type": "OKResponse"}
        assert json.loads(rec.requests[0].content) == {"conf": {}}
        when = datetime(2026, 1, 1, tzinfo=UTC)
        body.update(logical_date=when, reset_dag_run=True, note="n", conf={"a": 1})
        _, _, rec = await dispatch(body, {"POST dag-runs/d/r": (204, None)})
        assert json.loads(rec.requests[0].content) == {
            "logical_date": "2026-01-01T00:00:00Z",
            "conf": {"a": 1},
            "reset_dag_run": True,
            "note": "n",
        }

    async def test_trigger_conflict_is_a_body_error_or_a_clear_with_reset(self):
        """A 409 answers DAGRUN_ALREADY_EXISTS in the body, or with reset_dag_run clears the
        run and answers OKResponse."""
        conflict = {"POST dag-runs/d/r": (409, {"detail": {"reason": "already_exists"}})}
        body = {"type": "TriggerDagRun", "dag_id": "d", "run_id": "r"}
        reply, error, _ = await dispatch(body, conflict)
        assert (reply, error) == (
            {"error": "DAGRUN_ALREADY_EXISTS", "detail": None, "type": "ErrorResponse"},
            None,
        )
        answers = {**conflict, "POST dag-runs/d/r/clear": (204, None)}
        reply, _, rec = await dispatch({**body, "reset_dag_run": True}, answers)
        assert reply == {"ok": True, "type": "OKResponse"}
        assert [r.url.path for r in rec.requests][-1] == "/execution/dag-runs/d/r/clear"

    async def test_missing_dag_run_or_dag_is_an_error_frame(self):
        """GetDagRun and GetDag on a 404 answer in the error slot with the API's detail."""
        missing = {"detail": {"reason": "not_found", "message": "gone"}}
        for body, key in (
            ({"type": "GetDagRun", "dag_id": "d", "run_id": "r"}, "GET dag-runs/d/r"),
            ({"type": "GetDag", "dag_id": "a b"}, "GET dags/a b"),
        ):
            reply, error, _ = await dispatch(body, {key: (404, missing)})
            assert reply is None
            # Airflow's client names a map detail "Server returned error" (its message).
            assert error["detail"] == {"status_code": 404, "message": "Server returned error",
                                       "detail": missing}  # fmt: skip

    async def test_asset_events_query_sends_empty_name_like_httpx_does_for_none(self):
        """GetAssetEventByAsset by URI sends name= empty, then ascending, as the SDK does."""
        body = {"type": "GetAssetEventByAsset", "name": None, "uri": "s3://x", "limit": 0}
        answer = {"GET asset-events/by-asset": (200, {"asset_events": []})}
        reply, _, rec = await dispatch(body, answer)
        assert reply == {"asset_events": [], "type": "AssetEventsResult"}
        assert query(rec) == [("name", ""), ("uri", "s3://x"), ("ascending", "true")]

    async def test_asset_lookups_without_a_name_or_uri_fail_like_the_sdk_client(self):
        """An empty name and no URI is the SDK client's ValueError, in the error slot."""
        body = {"type": "GetAssetStateStoreByName", "name": "", "key": "k"}
        reply, error, rec = await dispatch(body, {})
        assert reply is None and rec.requests == []
        assert error["detail"]["exception_type"] == "ValueError"

    async def test_hitl_create_posts_every_field_and_the_type(self):
        """CreateHITLDetailPayload is posted whole (nulls and type included) to the runtime's
        ti_id, and the reply leaves out the fields equal to their defaults."""
        body = {
            "type": "CreateHITLDetailPayload",
            "ti_id": TI_ID,
            "options": ["y"],
            "subject": "s",
        }
        stored = {
            "ti_id": TI_ID,
            "options": ["y"],
            "subject": "s",
            "body": None,
            "defaults": None,
            "multiple": False,
            "params": {},
            "assigned_users": [],
        }
        reply, _, rec = await dispatch(body, {f"POST hitlDetails/{TI_ID}": (201, stored)})
        assert json.loads(rec.requests[0].content) == {
            **stored,
            "params": None,
            "assigned_users": None,
            "type": "CreateHITLDetailPayload",
        }
        assert reply == {
            "ti_id": TI_ID,
            "options": ["y"],
            "subject": "s",
            "params": {},
            "assigned_users": [],
            "type": "HITLDetailRequestResult",
        }

    async def test_prev_successful_dagrun_asks_about_the_supervisors_ti_and_drops_nils(self):
        """GetPrevSuccessfulDagRun uses the supervisor's TI id, not the runtime's, and leaves
        out nil dates; the others arrive as aware datetimes."""
        body = {"type": "GetPrevSuccessfulDagRun", "ti_id": "01900000-0000-7000-8000-00000000ffff"}
        answer = {
            "data_interval_start": "2026-01-01T00:00:00Z",
            "data_interval_end": None,
            "start_date": None,
            "end_date": None,
        }
        path = f"GET task-instances/{TI_ID}/previous-successful-dagrun"
        reply, _, _ = await dispatch(body, {path: (200, answer)})
        assert reply == {
            "data_interval_start": datetime(2026, 1, 1, tzinfo=UTC),
            "type": "PrevSuccessfulDagRunResult",
        }


class TestReplyShapes:
    async def test_asset_result_leaves_out_a_nil_extra_but_alias_results_keep_it(self):
        """AssetResult (exclude_unset) has no extra key when it is nil; AssetsByAliasResult is
        a full dump, so each asset keeps extra: nil and its own type."""
        asset = {"name": "a", "uri": "u", "group": "g", "extra": None}
        reply, _, _ = await dispatch(
            {"type": "GetAssetByName", "name": "a"}, {"GET assets/by-name": (200, asset)}
        )
        assert reply == {"name": "a", "uri": "u", "group": "g", "type": "AssetResult"}
        reply, _, _ = await dispatch(
            {"type": "GetAssetsByAlias", "alias_name": "x"}, {"GET assets/by-alias": (200, [asset])}
        )
        assert reply["assets"] == [{**asset, "type": "AssetResult"}]

    async def test_asset_not_found_detail_names_what_was_asked(self):
        """A 404 for GetAssetByUri is ASSET_NOT_FOUND in the body with detail {uri}."""
        reply, error, _ = await dispatch({"type": "GetAssetByUri", "uri": "s3://x"}, {})
        assert error is None
        assert reply == {"error": "ASSET_NOT_FOUND", "detail": {"uri": "s3://x"},
                         "type": "ErrorResponse"}  # fmt: skip

    async def test_asset_events_leave_out_nil_keys_at_every_depth(self):
        """AssetEventsResult drops nil source fields and the asset's nil extra, and keeps the
        required ones; the timestamp is an aware datetime."""
        event = {
            "id": 1,
            "timestamp": "2026-01-01T00:00:00.5Z",
            "extra": {},
            "asset": {"name": "a", "uri": "u", "group": "g", "extra": None},
            "created_dagruns": [],
            "source_task_id": None,
            "source_dag_id": "d",
            "source_run_id": None,
            "source_map_index": None,
            "partition_key": None,
        }
        reply, _, _ = await dispatch(
            {"type": "GetAssetEventByAssetAlias", "alias_name": "x"},
            {"GET asset-events/by-asset-alias": (200, {"asset_events": [event]})},
        )
        assert reply["asset_events"] == [
            {
                "id": 1,
                "timestamp": datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC),
                "extra": {},
                "asset": {"name": "a", "uri": "u", "group": "g"},
                "created_dagruns": [],
                "source_dag_id": "d",
            }
        ]

    async def test_inactive_assets_key_is_missing_when_the_api_sends_null(self):
        """InactiveAssetsResult leaves out inactive_assets when it is nil, and profiles' nil
        name or uri."""
        path = f"GET task-instances/{TI_ID}/validate-inlets-and-outlets"
        body = {"type": "ValidateInletsAndOutlets", "ti_id": TI_ID}
        reply, _, _ = await dispatch(body, {path: (200, {"inactive_assets": None})})
        assert reply == {"type": "InactiveAssetsResult"}
        profiles = {"inactive_assets": [{"name": "n", "uri": None, "type": "AssetNameRef"}]}
        reply, _, _ = await dispatch(body, {path: (200, profiles)})
        assert reply["inactive_assets"] == [{"name": "n", "type": "AssetNameRef"}]

    async def test_dag_run_and_previous_ti_are_full_dumps_with_defaults(self):
        """DagRunResult and PreviousTIResult carry every field, defaults filled in, datetimes
        aware."""
        run = {
            "dag_id": "d",
            "run_id": "r",
            "logical_date": None,
            "data_interval_start": None,
            "data_interval_end": None,
            "run_after": "2026-01-01T00:00:00Z",
            "start_date": None,
            "end_date": None,
            "run_type": "manual",
            "state": "queued",
            "consumed_asset_events": [],
            "partition_key": None,
        }
        reply, _, _ = await dispatch(
            {"type": "GetDagRun", "dag_id": "d", "run_id": "r"}, {"GET dag-runs/d/r": (200, run)}
        )
        assert reply["clear_number"] == 0 and reply["team_name"] is None
        assert reply["run_after"] == datetime(2026, 1, 1, tzinfo=UTC)
        previous = {"task_id": "t", "dag_id": "d", "run_id": "r", "try_number": 1}
        reply, _, rec = await dispatch(
            {"type": "GetPreviousTI", "dag_id": "d", "task_id": "t"},
            {"GET task-instances/previous/d/t": (200, previous)},
        )
        assert reply["task_instance"]["map_index"] == -1
        assert reply["task_instance"]["duration"] is None
        assert query(rec) == [("map_index", "-1")]

    async def test_store_misses_reply_in_the_body_and_bad_values_in_the_error_slot(self):
        """A missing store key is TASK_STORE_NOT_FOUND / ASSET_STORE_NOT_FOUND {key} in the
        body; a 422 on a write is an API_SERVER_ERROR in the error slot."""
        reply, _, _ = await dispatch({"type": "GetTaskStateStore", "ti_id": TI_ID, "key": "k"}, {})
        assert reply["error"] == "TASK_STORE_NOT_FOUND" and reply["detail"] == {"key": "k"}
        reply, _, rec = await dispatch(
            {"type": "GetAssetStateStoreByUri", "uri": "u", "key": "k"}, {}
        )
        assert reply["error"] == "ASSET_STORE_NOT_FOUND"
        assert query(rec) == [("uri", "u"), ("key", "k")]
        body = {"type": "SetTaskStateStore", "ti_id": TI_ID, "key": "a/b", "value": None,
                "expires_at": "2026-01-01T00:00:00+00:00"}  # fmt: skip
        reply, error, rec = await dispatch(
            body, {f"PUT store/ti/{TI_ID}/a/b": (422, {"detail": []})}
        )
        assert rec.requests[0].url.raw_path.endswith(b"/a%2Fb")
        assert json.loads(rec.requests[0].content) == {
            "value": None,
            "expires_at": "2026-01-01T00:00:00Z",
        }
        assert reply is None and error["detail"]["status_code"] == 422

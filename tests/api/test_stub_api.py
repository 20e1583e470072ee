"""The embedded Execution API stub answers like Airflow 3.3's server: paths, status codes, JSON
bodies and headers (execution-api.md §2-§7, real-airflow-peers.md Q2), over SQLite state."""

from __future__ import annotations

import json
import os
import stat
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import trio
from hypothesis import given, settings, strategies as st

from supervisor_sim.api import (
    ExecutionAPIClient,
    Fault,
    RetryPolicy,
    ServerResponseError,
    StateFileError,
    StubStore,
    StubTransport,
    TokenIssuer,
    load_fixtures,
)

BASE = "http://stub.invalid/execution/"
NOW = "2026-01-01T00:00:00Z"
RUN_BODY = {"state": "running", "hostname": "h1", "unixname": "u1", "pid": 100, "start_date": NOW}
FIXTURES = """
[variables]
peer_var = "hello-from-var"
api_token = "tok-very-secret-123"
[connections.peer_conn]
conn_type = "http"
host = "example.invalid"
login = "bob"
password = "s3cret"
[connections.full]
conn_type = "postgres"
host = "db"
schema = "public"
login = "u"
password = "p"
port = 5432
extra = {sslmode = "require"}
[dag_runs.example_dag]
conf = {greeting = "hi"}
logical_date = 2026-01-01T00:00:00Z
"""


@pytest.fixture
def state(tmp_path: Path) -> StubStore:
    path = tmp_path / "fixtures.toml"
    path.write_text(FIXTURES)
    store = StubStore(tmp_path / "state" / "stub.sqlite")
    store.seed(load_fixtures(path))
    return store


@pytest.fixture
def tokens() -> TokenIssuer:
    return TokenIssuer()


@pytest.fixture
def transport(state: StubStore, tokens: TokenIssuer) -> StubTransport:
    return StubTransport(state, tokens=tokens)


@pytest.fixture
def client(transport: StubTransport) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=BASE, transport=transport) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


class Started:
    """A TI of example_dag that went through /run, with its execution-token headers."""

    def __init__(self, store: StubStore, client: httpx.Client, tokens: TokenIssuer, **kw: Any):
        self.record = store.prepare_task_instance("example_dag", kw.pop("task_id", "t"), **kw)
        self.id = self.record.id
        response = client.patch(
            f"task-instances/{self.id}/run",
            json=RUN_BODY,
            headers=bearer(tokens.issue(self.id, "workload")),
        )
        assert response.status_code == 200, response.text
        self.context = response.json()
        self.headers = bearer(response.headers["refreshed-api-token"])


@pytest.fixture
def started(state: StubStore, client: httpx.Client, tokens: TokenIssuer) -> Started:
    return Started(state, client, tokens, run_id="run1")


def detail(response: httpx.Response) -> Any:
    assert response.headers["content-type"] == "application/json"
    return response.json()["detail"]


# -- routing and headers -----------------------------------------------------------------------


class TestRoutingAndHeaders:
    def test_health_needs_no_token(self, client: httpx.Client):
        """GET /execution/health answers 200 {"status":"healthy"} without any token."""
        r = client.get("health")
        assert (r.status_code, r.json()) == (200, {"status": "healthy"})

    def test_json_content_type_is_exactly_application_json(self, client: httpx.Client):
        """Every JSON response says exactly application/json, with no charset parameter."""
        for r in (client.get("health"), client.get("nope"), client.get("variables/x")):
            assert r.headers["content-type"] == "application/json"

    def test_unknown_path_is_fastapi_404(self, client: httpx.Client):
        """A path no route matches gets 404 {"detail":"Not Found"}, before any auth check."""
        r = client.get("no/such/route")
        assert (r.status_code, detail(r)) == (404, "Not Found")

    def test_path_outside_execution_mount_is_404(self, transport: StubTransport):
        """Only paths under /execution/ are served; the same route at the root is 404."""
        with httpx.Client(base_url="http://stub.invalid/", transport=transport) as c:
            r = c.get("health")
        assert (r.status_code, detail(r)) == (404, "Not Found")

    def test_wrong_method_on_known_path_is_405(self, client: httpx.Client):
        """A known path with a method it does not serve gets 405 {"detail":"Method Not Allowed"}."""
        r = client.post("health")
        assert (r.status_code, detail(r)) == (405, "Method Not Allowed")
        assert "GET" in r.headers["allow"]

    def test_405_allows_the_method_of_the_first_route_on_the_path(
        self, client: httpx.Client, started: Started
    ):
        """FastAPI has one route per method; Allow names the first registered one's only."""
        for method, path, allow in [
            ("POST", "variables/peer_var", "GET"),  # GET, PUT, DELETE: GET comes first
            ("PUT", "xcoms/example_dag/run1/t/k", "HEAD"),  # HEAD, GET, POST, DELETE
            ("DELETE", f"hitlDetails/{started.id}", "POST"),  # POST, PATCH, GET
        ]:
            r = client.request(method, path, headers=started.headers)
            assert (r.status_code, r.headers["allow"]) == (405, allow), (method, path)

    def test_head_is_not_served_on_get_routes(self, client: httpx.Client, started: Started):
        """Unlike plain Starlette routes, FastAPI's serve no HEAD for GET: 405, no body."""
        for path in ("health", "variables/peer_var"):
            r = client.head(path, headers=started.headers)
            assert (r.status_code, r.headers["allow"], r.content) == (405, "GET", b"")

    def test_correlation_id_is_echoed(self, client: httpx.Client):
        """The request's correlation-id comes back on the response, errors included."""
        for path in ("health", "nope"):
            r = client.get(path, headers={"correlation-id": "c-123"})
            assert r.headers["correlation-id"] == "c-123"

    def test_api_version_defaults_to_latest(self, client: httpx.Client):
        """Without Airflow-API-Version the server answers as, and echoes, 2026-06-30."""
        assert client.get("health").headers["airflow-api-version"] == "2026-06-30"

    def test_api_version_header_is_echoed_as_sent(self, client: httpx.Client):
        """Cadwyn echoes the request's header verbatim, not the version it routed to: a known
        version, a later date (served as the latest), an earlier one (404) and even text that
        is no date (422) all come back as sent, on health as on every route."""
        for sent, status in [
            ("2025-08-10", 200),
            ("2099-01-01", 200),
            ("2024-01-01", 404),
            ("garbage", 422),
            ("", 404),  # sorts before every version
        ]:
            r = client.get("health", headers={"airflow-api-version": sent})
            assert (r.status_code, r.headers["airflow-api-version"]) == (status, sent), sent

    def test_api_version_that_is_not_a_date_is_422(self, client: httpx.Client, started: Started):
        """A version header that is not YYYY-MM-DD gets a FastAPI-shaped 422 on its header,
        named by its declared spelling whatever the case it was sent in."""
        r = client.get(
            "variables/peer_var", headers={**started.headers, "airflow-api-version": "garbage"}
        )
        assert r.status_code == 422
        [error] = detail(r)
        assert error["loc"] == ["header", "Airflow-API-Version"]
        assert error["input"] == "garbage"

    def test_api_version_before_the_first_one_matches_no_route(
        self, client: httpx.Client, started: Started
    ):
        """A date before 2025-04-11 has no routes at all: 404, even for a method the path
        does not serve (no 405)."""
        old = {**started.headers, "airflow-api-version": "2024-01-01"}
        for method in ("GET", "POST"):
            r = client.request(method, "variables/peer_var", headers=old)
            assert (r.status_code, detail(r)) == (404, "Not Found")


# -- authentication ----------------------------------------------------------------------------


class TestAuth:
    def test_missing_token_is_401(self, client: httpx.Client):
        """No Authorization header: 401 {"detail":"Missing auth token"}."""
        r = client.get("variables/peer_var")
        assert (r.status_code, detail(r)) == (401, "Missing auth token")

    def test_non_bearer_scheme_is_401(self, client: httpx.Client):
        """An Authorization header that is not a bearer token counts as missing: 401."""
        r = client.get("variables/peer_var", headers={"authorization": "Basic Ym9iOnB3"})
        assert (r.status_code, detail(r)) == (401, "Missing auth token")

    @pytest.mark.parametrize("kind", ["garbage", "other-secret", "expired", "wrong-audience"])
    def test_invalid_token_is_403(self, client: httpx.Client, tokens: TokenIssuer, kind: str):
        """A garbage, foreign, expired or wrong-audience token: 403 Invalid auth token."""
        ti = str(uuid.uuid4())
        token = {
            "garbage": lambda: "not.a.jwt",
            "other-secret": lambda: TokenIssuer().issue(ti, "execution"),
            "expired": lambda: tokens.issue(ti, "execution", valid_for=-60),
            "wrong-audience": lambda: TokenIssuer(tokens.secret, audience="urn:other").issue(
                ti, "execution"
            ),
        }[kind]()
        r = client.get("variables/peer_var", headers=bearer(token))
        assert (r.status_code, detail(r)) == (403, "Invalid auth token")

    def test_workload_token_is_refused_outside_run(self, client: httpx.Client, tokens: TokenIssuer):
        """A workload token is accepted only by /run; elsewhere 403 naming the allowed type."""
        r = client.get("variables/peer_var", headers=bearer(tokens.issue(str(uuid.uuid4()))))
        assert r.status_code == 403
        assert detail(r) == (
            "Token type 'workload' not allowed for this endpoint. Allowed types: execution"
        )

    def test_token_for_another_ti_is_refused_on_ti_routes(
        self, client: httpx.Client, tokens: TokenIssuer, started: Started
    ):
        """On /task-instances/{id}/... a token whose sub is another TI gets 403."""
        other = bearer(tokens.issue(str(uuid.uuid4()), "execution"))
        r = client.put(
            f"task-instances/{started.id}/heartbeat",
            json={"hostname": "h1", "pid": 100},
            headers=other,
        )
        assert (r.status_code, detail(r)) == (403, "Token subject does not match task instance ID")

    def test_run_exchanges_a_workload_token_for_an_execution_token(
        self, state: StubStore, client: httpx.Client, tokens: TokenIssuer
    ):
        """/run with a workload token returns Refreshed-API-Token: an execution token, same sub."""
        record = state.prepare_task_instance("example_dag", "t")
        r = client.patch(
            f"task-instances/{record.id}/run",
            json=RUN_BODY,
            headers=bearer(tokens.issue(record.id, "workload")),
        )
        assert r.status_code == 200
        claims = tokens.validate(r.headers["refreshed-api-token"])
        assert (claims["sub"], claims["scope"]) == (record.id, "execution")
        assert jwt.get_unverified_header(r.headers["refreshed-api-token"])["kid"] == "not-used"

    def test_execution_token_near_expiry_is_refreshed(
        self, client: httpx.Client, tokens: TokenIssuer
    ):
        """A token with <= max(20%, 30 s) left gets a new one, even on an error response."""
        ti = str(uuid.uuid4())
        short = bearer(tokens.issue(ti, "execution", valid_for=20))
        for path in ("variables/peer_var", "variables/missing"):
            r = client.get(path, headers=short)
            refreshed = tokens.validate(r.headers["refreshed-api-token"])
            assert (refreshed["sub"], refreshed["scope"]) == (ti, "execution")
            assert refreshed["exp"] - refreshed["iat"] == 600

    def test_fresh_execution_token_is_not_refreshed(
        self, client: httpx.Client, tokens: TokenIssuer
    ):
        """A token with most of its 600 s left is not refreshed."""
        r = client.get(
            "variables/peer_var", headers=bearer(tokens.issue(str(uuid.uuid4()), "execution"))
        )
        assert r.status_code == 200
        assert "refreshed-api-token" not in r.headers

    def test_refresh_follows_the_injected_clock(self, state: StubStore, tokens: TokenIssuer):
        """The sliding refresh uses the transport's clock, so it can be tested without waiting."""
        later = StubTransport(
            state, tokens=tokens, clock=lambda: datetime.now(UTC) + timedelta(seconds=500)
        )
        with httpx.Client(base_url=BASE, transport=later) as c:
            r = c.get("health", headers=bearer(tokens.issue(str(uuid.uuid4()), "execution")))
        assert "refreshed-api-token" in r.headers

    def test_without_token_issuer_everything_is_accepted(self, state: StubStore):
        """With tokens=None (like InProcessExecutionAPI) calls need no Authorization."""
        with httpx.Client(base_url=BASE, transport=StubTransport(state)) as c:
            r = c.get("variables/peer_var")
        assert r.json() == {"key": "peer_var", "value": "hello-from-var"}


# -- /run ----------------------------------------------------------------------------------------


class TestRun:
    def test_run_returns_the_ti_run_context(self, started: Started):
        """/run answers TIRunContext with exactly the keys Airflow sets and a full DagRun."""
        ctx = started.context
        assert list(ctx) == [
            "dag_run",
            "task_reschedule_count",
            "max_tries",
            "variables",
            "connections",
            "xcom_keys_to_clear",
            "should_retry",
        ]
        assert ctx["task_reschedule_count"] == 0
        assert (ctx["max_tries"], ctx["should_retry"]) == (0, False)
        assert (ctx["variables"], ctx["connections"], ctx["xcom_keys_to_clear"]) == ([], [], [])
        dag_run = ctx["dag_run"]
        assert list(dag_run) == [
            "dag_id",
            "run_id",
            "logical_date",
            "data_interval_start",
            "data_interval_end",
            "run_after",
            "start_date",
            "end_date",
            "clear_number",
            "run_type",
            "state",
            "conf",
            "triggering_user_name",
            "consumed_asset_events",
            "partition_key",
            "partition_date",
            "note",
            "team_name",
        ]
        assert dag_run["dag_id"] == "example_dag" and dag_run["run_id"] == "run1"
        assert dag_run["logical_date"] == "2026-01-01T00:00:00Z"
        assert dag_run["conf"] == {"greeting": "hi"}
        assert dag_run["run_after"].endswith("Z") and dag_run["start_date"].endswith("Z")
        assert (dag_run["run_type"], dag_run["state"]) == ("manual", "running")
        assert dag_run["consumed_asset_events"] == []

    def test_run_marks_the_ti_running_with_its_host_and_pid(
        self, state: StubStore, started: Started
    ):
        """After /run the TI is running with the hostname, unixname, pid and start date sent."""
        ti = state.get_ti(started.id)
        assert (ti["state"], ti["hostname"], ti["unixname"], ti["pid"]) == (
            "running",
            "h1",
            "u1",
            100,
        )
        assert ti["start_date"] == "2026-01-01T00:00:00.000000Z"
        assert ti["last_heartbeat_at"] is not None

    def test_run_lists_existing_xcoms_to_clear_and_retry_verdict(
        self, state: StubStore, client: httpx.Client, tokens: TokenIssuer
    ):
        """xcom_keys_to_clear lists this task's XComs in the run; should_retry follows max_tries."""
        state.prepare_task_instance("example_dag", "t", run_id="r")
        now = datetime.now(UTC)
        state.xcoms.set("example_dag", "r", "t", "return_value", "1", -1, now)
        state.xcoms.set("example_dag", "r", "t", "extra", "2", -1, now)
        state.xcoms.set("example_dag", "r", "other", "not_mine", "3", -1, now)
        ctx = Started(state, client, tokens, run_id="r", max_tries=1).context
        assert sorted(ctx["xcom_keys_to_clear"]) == ["extra", "return_value"]
        assert (ctx["max_tries"], ctx["should_retry"]) == (1, True)

    def test_repeated_run_from_the_same_process_is_accepted(
        self, client: httpx.Client, started: Started
    ):
        """A duplicate /run from the same hostname, unixname and pid answers 200 again."""
        r = client.patch(f"task-instances/{started.id}/run", json=RUN_BODY, headers=started.headers)
        assert r.status_code == 200

    def test_run_of_a_ti_running_elsewhere_is_409(self, client: httpx.Client, started: Started):
        """/run of a running TI from another pid is 409 invalid_state, previous_state running."""
        r = client.patch(
            f"task-instances/{started.id}/run",
            json={**RUN_BODY, "pid": 101},
            headers=started.headers,
        )
        assert r.status_code == 409
        assert detail(r) == {
            "reason": "invalid_state",
            "message": "TI was not in a state where it could be marked as running",
            "previous_state": "running",
        }

    def test_run_of_a_restarting_ti_is_allowed_and_should_retry(
        self, state: StubStore, client: httpx.Client, tokens: TokenIssuer
    ):
        """A TI in restarting may start, and then should_retry is true whatever max_tries says."""
        record = state.prepare_task_instance("example_dag", "t")
        state.tis.update(record.id, state="restarting")
        r = client.patch(
            f"task-instances/{record.id}/run",
            json=RUN_BODY,
            headers=bearer(tokens.issue(record.id, "workload")),
        )
        assert (r.status_code, r.json()["should_retry"]) == (200, True)

    def test_run_of_unknown_ti_is_404(self, client: httpx.Client, tokens: TokenIssuer):
        """/run of an id the server does not know: 404 not_found Task Instance not found."""
        ti = str(uuid.uuid4())
        r = client.patch(
            f"task-instances/{ti}/run", json=RUN_BODY, headers=bearer(tokens.issue(ti))
        )
        assert r.status_code == 404
        assert detail(r) == {"reason": "not_found", "message": "Task Instance not found"}

    @pytest.mark.parametrize(
        ("body", "error"),
        [
            ({**RUN_BODY, "extra": 1}, {"type": "extra_forbidden", "loc": ["body", "extra"]}),
            (
                {k: v for k, v in RUN_BODY.items() if k != "pid"},
                {"type": "missing", "loc": ["body", "pid"]},
            ),
            (
                {**RUN_BODY, "start_date": None},
                {"type": "datetime_type", "loc": ["body", "start_date"]},
            ),
            (
                {**RUN_BODY, "state": "queued"},
                {
                    "type": "literal_error",
                    "loc": ["body", "state"],
                    "msg": "Input should be <TaskInstanceState.RUNNING: 'running'>",
                },
            ),
            (
                {**RUN_BODY, "start_date": "2026-01-01T00:00:00"},
                {"type": "timezone_aware", "loc": ["body", "start_date"]},
            ),
        ],
    )
    def test_run_payload_is_validated_like_fastapi(
        self, state: StubStore, client: httpx.Client, tokens: TokenIssuer, body: dict, error: dict
    ):
        """Extra, missing, null or ill-typed /run fields get 422 with FastAPI's error items."""
        record = state.prepare_task_instance("example_dag", "t")
        r = client.patch(
            f"task-instances/{record.id}/run",
            json=body,
            headers=bearer(tokens.issue(record.id, "workload")),
        )
        assert r.status_code == 422
        [item] = detail(r)
        assert {k: item[k] for k in error} == error
        assert {"type", "loc", "msg", "input"} <= set(item)
        assert state.get_ti_state(record.id) == "queued"

    def test_malformed_json_is_422_before_auth(self, client: httpx.Client):
        """A body that is not JSON gets 422 json_invalid even without a token, as in FastAPI."""
        r = client.patch(
            f"task-instances/{uuid.uuid4()}/run",
            content=b"{nope",
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 422
        assert detail(r)[0]["type"] == "json_invalid"

    def test_non_uuid_ti_id_is_422(self, state: StubStore):
        """A task instance id that is not a UUID fails path validation with 422."""
        with httpx.Client(base_url=BASE, transport=StubTransport(state)) as c:
            r = c.put("task-instances/not-a-uuid/heartbeat", json={"hostname": "h", "pid": 1})
        assert r.status_code == 422
        assert detail(r)[0]["loc"] == ["path", "task_instance_id"]


# -- heartbeat -----------------------------------------------------------------------------------


class TestHeartbeat:
    def test_heartbeat_of_running_ti_is_204(
        self, state: StubStore, client: httpx.Client, started: Started
    ):
        """A heartbeat from the host and pid that started the TI answers 204 with no body."""
        state.tis.update(started.id, last_heartbeat_at=None)
        r = client.put(
            f"task-instances/{started.id}/heartbeat",
            json={"hostname": "h1", "pid": 100},
            headers=started.headers,
        )
        assert (r.status_code, r.headers["content-type"], r.content) == (
            204,
            "application/json",
            b"",
        )
        assert state.get_ti(started.id)["last_heartbeat_at"] is not None

    def test_heartbeat_of_a_ti_that_never_ran_is_running_elsewhere_with_empty_host(
        self, state: StubStore, client: httpx.Client, tokens: TokenIssuer
    ):
        """A queued TI has Airflow's default hostname "" and no pid."""
        record = state.prepare_task_instance("example_dag", "t")
        r = client.put(
            f"task-instances/{record.id}/heartbeat",
            json={"hostname": "h1", "pid": 100},
            headers=bearer(tokens.issue(record.id, "execution")),
        )
        assert r.status_code == 409
        assert detail(r) == {
            "reason": "running_elsewhere",
            "message": "TI is already running elsewhere",
            "current_hostname": "",
            "current_pid": None,
        }

    def test_null_body_is_a_missing_body(self, client: httpx.Client, started: Started):
        """FastAPI takes a JSON null for a required body as none: 422 missing on ["body"]."""
        r = client.put(
            f"task-instances/{started.id}/heartbeat",
            content=b"null",
            headers={**started.headers, "content-type": "application/json"},
        )
        assert r.status_code == 422
        assert detail(r) == [
            {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}
        ]

    def test_heartbeat_from_another_host_is_running_elsewhere(
        self, client: httpx.Client, started: Started
    ):
        """A heartbeat with another hostname or pid: 409 running_elsewhere with the current ones."""
        r = client.put(
            f"task-instances/{started.id}/heartbeat",
            json={"hostname": "other", "pid": 100},
            headers=started.headers,
        )
        assert r.status_code == 409
        assert detail(r) == {
            "reason": "running_elsewhere",
            "message": "TI is already running elsewhere",
            "current_hostname": "h1",
            "current_pid": 100,
        }

    def test_heartbeat_after_the_end_is_not_running(self, client: httpx.Client, started: Started):
        """Once the TI left running, a matching heartbeat gets 409 not_running."""
        client.patch(
            f"task-instances/{started.id}/state",
            json={"state": "failed", "end_date": NOW},
            headers=started.headers,
        )
        r = client.put(
            f"task-instances/{started.id}/heartbeat",
            json={"hostname": "h1", "pid": 100},
            headers=started.headers,
        )
        assert r.status_code == 409
        assert detail(r) == {
            "reason": "not_running",
            "message": "TI is no longer in the running state and task should terminate",
            "current_state": "failed",
        }

    def test_running_elsewhere_is_checked_before_state(
        self, client: httpx.Client, started: Started
    ):
        """A finished TI heartbeated from another pid reports running_elsewhere, not not_running."""
        client.patch(
            f"task-instances/{started.id}/state",
            json={"state": "failed", "end_date": NOW},
            headers=started.headers,
        )
        r = client.put(
            f"task-instances/{started.id}/heartbeat",
            json={"hostname": "h1", "pid": 7},
            headers=started.headers,
        )
        assert detail(r)["reason"] == "running_elsewhere"

    def test_heartbeat_of_unknown_ti_is_404(self, client: httpx.Client, tokens: TokenIssuer):
        """A heartbeat for an id that never existed: 404 not_found."""
        ti = str(uuid.uuid4())
        r = client.put(
            f"task-instances/{ti}/heartbeat",
            json={"hostname": "h", "pid": 1},
            headers=bearer(tokens.issue(ti, "execution")),
        )
        assert r.status_code == 404
        assert detail(r) == {"reason": "not_found", "message": "Task Instance not found"}

    def test_heartbeat_of_archived_try_is_410(
        self, state: StubStore, client: httpx.Client, started: Started
    ):
        """After the next try is prepared, the old id's heartbeat gets 410 (moved to history)."""
        state.prepare_task_instance("example_dag", "t", run_id="run1")
        r = client.put(
            f"task-instances/{started.id}/heartbeat",
            json={"hostname": "h1", "pid": 100},
            headers=started.headers,
        )
        assert r.status_code == 410
        assert detail(r) == {
            "reason": "not_found",
            "message": "Task Instance not found, it may have been moved to the Task Instance "
            "History table",
        }

    def test_heartbeat_with_extra_key_is_422(self, client: httpx.Client, started: Started):
        """The heartbeat payload forbids extra keys."""
        r = client.put(
            f"task-instances/{started.id}/heartbeat",
            json={"hostname": "h1", "pid": 100, "x": 1},
            headers=started.headers,
        )
        assert (r.status_code, detail(r)[0]["type"]) == (422, "extra_forbidden")


# -- state updates -------------------------------------------------------------------------------


def patch_state(client: httpx.Client, started: Started, body: dict) -> httpx.Response:
    return client.patch(f"task-instances/{started.id}/state", json=body, headers=started.headers)


class TestState:
    def test_success_is_applied_with_204(
        self, state: StubStore, client: httpx.Client, started: Started
    ):
        """state=success answers 204 and records success and the end date."""
        r = patch_state(
            client,
            started,
            {
                "state": "success",
                "end_date": "2026-01-01T00:01:00Z",
                "task_outlets": [],
                "outlet_events": [],
                "rendered_map_index": None,
            },
        )
        assert (r.status_code, r.headers["content-type"], r.content) == (
            204,
            "application/json",
            b"",
        )
        ti = state.get_ti(started.id)
        assert (ti["state"], ti["end_date"]) == ("success", "2026-01-01T00:01:00.000000Z")

    def test_repeating_the_current_state_is_an_empty_200(
        self, client: httpx.Client, started: Started
    ):
        """Asking again for the state the TI is in answers 200 with an empty body."""
        body = {"state": "success", "end_date": NOW, "task_outlets": [], "outlet_events": []}
        patch_state(client, started, body)
        r = patch_state(client, started, body)
        assert (r.status_code, r.content, r.headers.get("content-type")) == (200, b"", None)

    @pytest.mark.parametrize("target", ["failed", "skipped", "removed", "upstream_failed"])
    def test_terminal_states_are_applied(
        self, state: StubStore, client: httpx.Client, started: Started, target: str
    ):
        """failed, skipped, removed and upstream_failed each answer 204 and are recorded."""
        r = patch_state(
            client, started, {"state": target, "end_date": NOW, "rendered_map_index": "x"}
        )
        assert r.status_code == 204
        ti = state.get_ti(started.id)
        assert (ti["state"], ti["rendered_map_index"]) == (target, "x")

    def test_update_of_a_ti_that_is_not_running_is_409(
        self, state: StubStore, client: httpx.Client, tokens: TokenIssuer
    ):
        """A state change away from anything but running: 409 invalid_state."""
        record = state.prepare_task_instance("example_dag", "t")
        r = client.patch(
            f"task-instances/{record.id}/state",
            json={"state": "failed", "end_date": NOW},
            headers=bearer(tokens.issue(record.id, "execution")),
        )
        assert r.status_code == 409
        assert detail(r) == {
            "reason": "invalid_state",
            "message": "TI was not in the running state so it cannot be updated",
            "previous_state": "queued",
        }

    def test_state_update_of_unknown_ti_is_404(self, client: httpx.Client, tokens: TokenIssuer):
        """A state update for an unknown id: 404 not_found."""
        ti = str(uuid.uuid4())
        r = client.patch(
            f"task-instances/{ti}/state",
            json={"state": "failed", "end_date": NOW},
            headers=bearer(tokens.issue(ti, "execution")),
        )
        assert (r.status_code, detail(r)["reason"]) == (404, "not_found")

    @pytest.mark.parametrize(
        ("body", "loc", "type_"),
        [
            ({"state": "bogus"}, ["body", "_other_", "state"], "enum"),
            ({"state": "success"}, ["body", "success", "end_date"], "missing"),
            (
                {"state": "failed", "end_date": NOW, "x": 1},
                ["body", "_terminal_", "x"],
                "extra_forbidden",
            ),
            (
                {"state": "deferred", "classpath": "c"},
                ["body", "deferred", "next_method"],
                "missing",
            ),
        ],
    )
    def test_state_payload_is_validated_per_union_member(
        self, client: httpx.Client, started: Started, body: dict, loc: list, type_: str
    ):
        """Bad payloads get 422 located under the discriminated union's tag, as pydantic does."""
        r = patch_state(client, started, body)
        assert r.status_code == 422
        assert {"loc": loc, "type": type_} in [
            {"loc": e["loc"], "type": e["type"]} for e in detail(r)
        ]

    def test_bad_payload_lists_the_errors_of_every_union_member(
        self, client: httpx.Client, started: Started
    ):
        """Airflow's callable discriminator is not applied, so pydantic validates a smart union:
        a body no member takes gets every member's errors, in declaration order, under its tag
        (literal states named by their enum member)."""
        r = patch_state(client, started, {"state": "success"})
        assert r.status_code == 422
        errors = detail(r)
        assert [(e["loc"][1], e["type"], e["loc"][2]) for e in errors] == [
            ("_terminal_", "enum", "state"),
            ("_terminal_", "missing", "end_date"),
            ("success", "missing", "end_date"),
            ("_other_", "enum", "state"),
            ("deferred", "literal_error", "state"),
            ("deferred", "missing", "classpath"),
            ("deferred", "missing", "next_method"),
            ("up_for_reschedule", "literal_error", "state"),
            ("up_for_reschedule", "missing", "reschedule_date"),
            ("up_for_reschedule", "missing", "end_date"),
            ("awaiting_input", "literal_error", "state"),
            ("awaiting_input", "missing", "next_method"),
            ("up_for_retry", "literal_error", "state"),
            ("up_for_retry", "missing", "end_date"),
        ]
        assert errors[4]["msg"] == "Input should be <IntermediateTIState.DEFERRED: 'deferred'>"

    @pytest.mark.parametrize("raw", [b"", b"null"])
    def test_missing_or_null_payload_is_one_missing_body_error(
        self, client: httpx.Client, started: Started, raw: bytes
    ):
        """No body, or JSON null, is FastAPI's single missing error on ["body"]."""
        r = client.patch(
            f"task-instances/{started.id}/state",
            content=raw,
            headers={**started.headers, "content-type": "application/json"},
        )
        assert r.status_code == 422
        assert detail(r) == [
            {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}
        ]

    def test_intermediate_state_without_its_fields_is_taken_by_the_catch_all(
        self, state: StubStore, client: httpx.Client, started: Started
    ):
        """{"state": "up_for_retry"} without end_date is no 422: the smart union hands it to
        ``_other_``, whose transition Airflow cannot build, so the TI is failed (204)."""
        r = patch_state(client, started, {"state": "up_for_retry"})
        assert r.status_code == 204
        assert state.get_ti_state(started.id) == "failed"

    def test_invalid_outlet_partition_key_is_422(self, client: httpx.Client, started: Started):
        """An outlet event with a blank partition_key gets 422 invalid_partition_key."""
        r = patch_state(
            client,
            started,
            {"state": "success", "end_date": NOW, "outlet_events": [{"partition_key": " "}]},
        )
        assert (r.status_code, detail(r)["reason"]) == (422, "invalid_partition_key")

    def test_retry_archives_the_try_and_gives_the_ti_a_new_id(
        self, state: StubStore, client: httpx.Client, started: Started
    ):
        """up_for_retry answers 204, archives the try and renames the TI, so the old id is 410."""
        r = patch_state(
            client,
            started,
            {
                "state": "up_for_retry",
                "end_date": NOW,
                "retry_delay_seconds": 5.0,
                "retry_reason": "r" * 600,
            },
        )
        assert r.status_code == 204
        assert state.get_ti(started.id) is None
        [live] = state.tis.list_all("example_dag", "run1")
        assert live["id"] != started.id
        assert (live["state"], live["try_number"]) == ("up_for_retry", 1)
        assert len(live["retry_reason"]) == 500
        [archived] = state.tis.history(started.id)
        assert (archived["try_number"], archived["state"]) == (1, "failed")
        hb = client.put(
            f"task-instances/{started.id}/heartbeat",
            json={"hostname": "h1", "pid": 100},
            headers=started.headers,
        )
        assert hb.status_code == 410
        nxt = state.prepare_task_instance("example_dag", "t", run_id="run1")
        assert (nxt.id, nxt.try_number, nxt.state) == (live["id"], 2, "queued")

    def test_deferral_is_stored_and_resumed_on_the_same_try(
        self, state: StubStore, client: httpx.Client, tokens: TokenIssuer, started: Started
    ):
        """deferred stores next_method/kwargs; the resumed /run returns them and the start date."""
        r = patch_state(
            client,
            started,
            {
                "state": "deferred",
                "classpath": "my.Trigger",
                "trigger_kwargs": {"a": 1},
                "trigger_timeout": "PT30S",
                "queue": None,
                "next_method": "resume",
                "next_kwargs": {"event": 1},
                "rendered_map_index": None,
            },
        )
        assert r.status_code == 204
        resumed = state.prepare_task_instance("example_dag", "t", run_id="run1")
        assert (resumed.id, resumed.try_number) == (started.id, 1)
        r = client.patch(
            f"task-instances/{started.id}/run",
            json={**RUN_BODY, "start_date": "2026-02-02T00:00:00Z"},
            headers=bearer(tokens.issue(started.id, "workload")),
        )
        ctx = r.json()
        assert (ctx["next_method"], ctx["next_kwargs"]) == ("resume", {"event": 1})
        assert ctx["start_date"] == NOW
        assert ctx["xcom_keys_to_clear"] == []

    def test_reschedule_is_counted_on_the_next_run(
        self, state: StubStore, client: httpx.Client, tokens: TokenIssuer, started: Started
    ):
        """up_for_reschedule answers 204 and the resumed /run reports task_reschedule_count 1."""
        r = patch_state(
            client,
            started,
            {
                "state": "up_for_reschedule",
                "reschedule_date": "2026-01-01T01:00:00Z",
                "end_date": NOW,
            },
        )
        assert r.status_code == 204
        assert state.get_ti_state(started.id) == "up_for_reschedule"
        state.prepare_task_instance("example_dag", "t", run_id="run1")
        r = client.patch(
            f"task-instances/{started.id}/run",
            json=RUN_BODY,
            headers=bearer(tokens.issue(started.id, "workload")),
        )
        assert r.json()["task_reschedule_count"] == 1

    def test_awaiting_input_parks_the_ti(
        self, state: StubStore, client: httpx.Client, started: Started
    ):
        """awaiting_input answers 204 and stores the method to resume with."""
        r = patch_state(
            client,
            started,
            {
                "state": "awaiting_input",
                "timeout": None,
                "next_method": "on_input",
                "next_kwargs": None,
                "rendered_map_index": None,
            },
        )
        assert r.status_code == 204
        ti = state.get_ti(started.id)
        assert (ti["state"], ti["next_method"]) == ("awaiting_input", "on_input")

    def test_other_intermediate_state_fails_the_ti_like_airflow(
        self, state: StubStore, client: httpx.Client, started: Started
    ):
        """A bare intermediate state (e.g. queued) answers 204 but fails the TI, as Airflow does."""
        assert patch_state(client, started, {"state": "queued"}).status_code == 204
        assert state.get_ti_state(started.id) == "failed"


# -- other task-instance routes ------------------------------------------------------------------


class TestTaskInstanceExtras:
    def test_rtif_is_stored_with_201(
        self, state: StubStore, client: httpx.Client, started: Started
    ):
        """PUT rtif answers 201 with Airflow's message and stores the fields."""
        r = client.put(
            f"task-instances/{started.id}/rtif", json={"op_args": "[]"}, headers=started.headers
        )
        assert r.status_code == 201
        assert r.json() == {"message": "Rendered task instance fields successfully set"}
        assert state.tis.get_rtif(started.id) == {"op_args": "[]"}

    def test_rtif_for_archived_try_is_410_and_unknown_is_404(
        self, state: StubStore, client: httpx.Client, tokens: TokenIssuer, started: Started
    ):
        """A late rtif for an archived try gets 410 (which the supervisor ignores); unknown, 404."""
        state.prepare_task_instance("example_dag", "t", run_id="run1")
        r = client.put(f"task-instances/{started.id}/rtif", json={}, headers=started.headers)
        assert r.status_code == 410
        ti = str(uuid.uuid4())
        r = client.put(
            f"task-instances/{ti}/rtif", json={}, headers=bearer(tokens.issue(ti, "execution"))
        )
        assert r.status_code == 404

    def test_rtif_body_must_be_an_object(self, client: httpx.Client, started: Started):
        """An rtif body that is not a JSON object is a 422."""
        r = client.put(f"task-instances/{started.id}/rtif", json=[1], headers=started.headers)
        assert (r.status_code, detail(r)[0]["type"]) == (422, "dict_type")

    def test_rendered_map_index_is_stored_with_204(
        self, state: StubStore, client: httpx.Client, started: Started
    ):
        """PATCH rendered-map-index with a JSON string answers 204 and stores it."""
        r = client.patch(
            f"task-instances/{started.id}/rendered-map-index", json="label", headers=started.headers
        )
        assert r.status_code == 204
        assert state.get_ti(started.id)["rendered_map_index"] == "label"

    def test_empty_rendered_map_index_is_422(self, client: httpx.Client, started: Started):
        """An empty rendered_map_index is refused with Airflow's 422 message."""
        r = client.patch(
            f"task-instances/{started.id}/rendered-map-index", json="", headers=started.headers
        )
        assert (r.status_code, detail(r)) == (422, "rendered_map_index cannot be empty")

    def test_rendered_map_index_of_unknown_ti_is_404(
        self, client: httpx.Client, tokens: TokenIssuer
    ):
        """rendered-map-index for an unknown id: 404 {"detail":"Task Instance not found"}."""
        ti = str(uuid.uuid4())
        r = client.patch(
            f"task-instances/{ti}/rendered-map-index",
            json="x",
            headers=bearer(tokens.issue(ti, "execution")),
        )
        assert (r.status_code, detail(r)) == (404, "Task Instance not found")

    def test_skip_downstream_skips_only_skippable_tis(
        self, state: StubStore, client: httpx.Client, tokens: TokenIssuer, started: Started
    ):
        """Listed TIs are skipped unless running, success or failed; absent ones are created."""
        queued = state.prepare_task_instance("example_dag", "queued_one", run_id="run1")
        done = state.prepare_task_instance("example_dag", "done_one", run_id="run1")
        state.tis.update(done.id, state="success")
        r = client.patch(
            f"task-instances/{started.id}/skip-downstream",
            json={"tasks": ["queued_one", "done_one", ["mapped", 3], "t"]},
            headers=started.headers,
        )
        assert (r.status_code, r.content) == (204, b"")
        states = {
            (ti["task_id"], ti["map_index"]): ti["state"]
            for ti in state.tis.list_all("example_dag", "run1")
        }
        assert states == {
            ("t", -1): "running",
            ("queued_one", -1): "skipped",
            ("done_one", -1): "success",
            ("mapped", 3): "skipped",
        }
        assert state.get_ti_state(queued.id) == "skipped"

    def test_skip_downstream_of_unknown_ti_is_404(self, client: httpx.Client, tokens: TokenIssuer):
        """skip-downstream for an unknown id: 404 not_found."""
        ti = str(uuid.uuid4())
        r = client.patch(
            f"task-instances/{ti}/skip-downstream",
            json={"tasks": []},
            headers=bearer(tokens.issue(ti, "execution")),
        )
        assert (r.status_code, detail(r)["reason"]) == (404, "not_found")


# -- connections and variables -------------------------------------------------------------------


class TestConnections:
    def test_connection_has_every_key(self, client: httpx.Client, started: Started):
        """GET connections/{id} returns all eight keys, unset ones as null."""
        r = client.get("connections/peer_conn", headers=started.headers)
        assert r.json() == {
            "conn_id": "peer_conn",
            "conn_type": "http",
            "host": "example.invalid",
            "schema": None,
            "login": "bob",
            "password": "s3cret",
            "port": None,
            "extra": None,
        }

    def test_connection_extra_is_a_json_string(self, client: httpx.Client, started: Started):
        """extra is served as a JSON-encoded string, and port as an integer."""
        body = client.get("connections/full", headers=started.headers).json()
        assert (json.loads(body["extra"]), body["port"]) == ({"sslmode": "require"}, 5432)

    def test_unknown_connection_is_404(self, client: httpx.Client, started: Started):
        """An unknown connection id: 404 with Airflow's reason and message."""
        r = client.get("connections/nope", headers=started.headers)
        assert r.status_code == 404
        assert detail(r) == {"reason": "not_found", "message": "Connection with ID nope not found"}


class TestVariables:
    def test_get_variable(self, client: httpx.Client, started: Started):
        """GET variables/{key} returns exactly {"key","value"}."""
        r = client.get("variables/peer_var", headers=started.headers)
        assert (r.status_code, r.json()) == (200, {"key": "peer_var", "value": "hello-from-var"})

    def test_unknown_variable_is_404(self, client: httpx.Client, started: Started):
        """An unknown variable: 404 with the key quoted in the message."""
        r = client.get("variables/nope", headers=started.headers)
        assert r.status_code == 404
        assert detail(r) == {"reason": "not_found", "message": "Variable with key 'nope' not found"}

    def test_put_then_get_and_delete(
        self, state: StubStore, client: httpx.Client, started: Started
    ):
        """PUT answers 201, the value and description are stored, DELETE answers 204."""
        r = client.put(
            "variables/new_var", json={"val": "v1", "description": "d"}, headers=started.headers
        )
        assert (r.status_code, r.json()) == (201, {"message": "Variable successfully set"})
        assert client.get("variables/new_var", headers=started.headers).json()["value"] == "v1"
        row = state.db.one("SELECT description FROM variables WHERE key = 'new_var'")
        assert row["description"] == "d"
        r = client.delete("variables/new_var", headers=started.headers)
        assert (r.status_code, r.content) == (204, b"")
        assert client.get("variables/new_var", headers=started.headers).status_code == 404

    def test_put_variable_validates_its_body(self, client: httpx.Client, started: Started):
        """The PUT body needs 'val' and forbids other keys (such as 'value')."""
        r = client.put("variables/v", json={"value": "x"}, headers=started.headers)
        assert r.status_code == 422
        assert {(e["type"], tuple(e["loc"])) for e in detail(r)} == {
            ("missing", ("body", "val")),
            ("extra_forbidden", ("body", "value")),
        }

    def test_variable_keys_may_contain_slashes(self, client: httpx.Client, started: Started):
        """Variable keys are a path parameter, so a key with '/' round-trips."""
        client.put("variables/team/a", json={"val": "x"}, headers=started.headers)
        assert client.get("variables/team/a", headers=started.headers).json()["key"] == "team/a"

    def test_variable_keys_are_listed_sorted_with_total(
        self, client: httpx.Client, started: Started
    ):
        """GET variables/keys pages sorted keys, filters by prefix and reports the total."""
        for key in ("p_b", "p_a", "p_c"):
            client.put(f"variables/{key}", json={"val": "x"}, headers=started.headers)
        r = client.get("variables/keys", headers=started.headers)
        assert r.json() == {
            "keys": ["api_token", "p_a", "p_b", "p_c", "peer_var"],
            "total_entries": 5,
        }
        r = client.get(
            "variables/keys",
            params={"prefix": "p_", "limit": 1, "offset": 1},
            headers=started.headers,
        )
        assert r.json() == {"keys": ["p_b"], "total_entries": 3}

    @pytest.mark.parametrize(
        ("limit", "type_"),
        [("0", "greater_than_equal"), ("10001", "less_than_equal"), ("x", "int_parsing")],
    )
    def test_variable_keys_limit_is_bounded(
        self, client: httpx.Client, started: Started, limit: str, type_: str
    ):
        """limit must be an integer in 1..10000, else 422 on the query parameter."""
        r = client.get("variables/keys", params={"limit": limit}, headers=started.headers)
        assert r.status_code == 422
        [error] = detail(r)
        assert (error["type"], error["loc"]) == (type_, ["query", "limit"])


# -- XComs ---------------------------------------------------------------------------------------


class TestXComs:
    def url(self, key: str = "return_value", task: str = "t", run: str = "run1") -> str:
        return f"xcoms/example_dag/{run}/{task}/{key}"

    def test_set_then_get(self, client: httpx.Client, started: Started):
        """POST answers 201 and GET returns {"key","value"} with the JSON value."""
        r = client.post(self.url(), json={"a": [1, 2]}, headers=started.headers)
        assert (r.status_code, r.json()) == (201, {"message": "XCom successfully set"})
        r = client.get(self.url(), headers=started.headers)
        assert (r.status_code, r.json()) == (200, {"key": "return_value", "value": {"a": [1, 2]}})

    def test_set_replaces_and_map_index_selects(self, client: httpx.Client, started: Started):
        """A second POST replaces the value; map_index addresses mapped values separately."""
        client.post(self.url(), json=1, headers=started.headers)
        client.post(self.url(), json=2, headers=started.headers)
        client.post(self.url(), params={"map_index": 3}, json="m3", headers=started.headers)
        assert client.get(self.url(), headers=started.headers).json()["value"] == 2
        r = client.get(self.url(), params={"map_index": 3}, headers=started.headers)
        assert r.json()["value"] == "m3"

    def test_missing_xcom_is_404_with_airflow_message(self, client: httpx.Client, started: Started):
        """GET of an absent XCom: 404 naming key, map index, task, run and DAG."""
        r = client.get(self.url("nope"), headers=started.headers)
        assert r.status_code == 404
        assert detail(r) == {
            "reason": "not_found",
            "message": "XCom with key='nope' map_index=-1 not found for task 't' in DAG run "
            "'run1' of 'example_dag'",
        }

    def test_head_counts_values_across_map_indexes(self, client: httpx.Client, started: Started):
        """HEAD answers 200 with Content-Range: map_indexes N."""
        for i in range(3):
            client.post(self.url(), params={"map_index": i}, json=i, headers=started.headers)
        r = client.head(self.url(), headers=started.headers)
        assert (r.status_code, r.headers["content-range"]) == (200, "map_indexes 3")
        r = client.head(self.url("none_yet"), headers=started.headers)
        assert r.headers["content-range"] == "map_indexes 0"

    def test_head_with_map_index_is_400(self, client: httpx.Client, started: Started):
        """HEAD with a map_index query parameter is refused with 400 and, being a HEAD
        response, no body (the JSON content type stays)."""
        r = client.head(self.url(), params={"map_index": 0}, headers=started.headers)
        assert (r.status_code, r.headers["content-type"], r.content) == (
            400,
            "application/json",
            b"",
        )

    def test_mapped_length_over_the_limit_is_400(self, client: httpx.Client, started: Started):
        """POST with mapped_length > 1024 is refused with 400 unmappable_return_value_length."""
        r = client.post(
            self.url(), params={"mapped_length": 1025}, json=[0], headers=started.headers
        )
        assert (r.status_code, detail(r)["reason"]) == (400, "unmappable_return_value_length")
        r = client.post(
            self.url(), params={"mapped_length": 1024}, json=[0], headers=started.headers
        )
        assert r.status_code == 201

    def test_set_in_an_unknown_dag_run_is_404(self, client: httpx.Client, started: Started):
        """POST to a DAG run that does not exist: 404, as XComModel.set raises."""
        r = client.post(self.url(run="no_such_run"), json=1, headers=started.headers)
        assert r.status_code == 404
        assert detail(r) == "DAG run not found on DAG 'example_dag' with ID 'no_such_run'"

    def test_set_with_malformed_json_is_422(self, client: httpx.Client, started: Started):
        """A POST body that is not JSON is refused before reaching the route (422 json_invalid)."""
        r = client.post(
            self.url(),
            content=b"{bad",
            headers={**started.headers, "content-type": "application/json"},
        )
        assert (r.status_code, detail(r)[0]["type"]) == (422, "json_invalid")

    def test_delete_answers_200_with_message(
        self, state: StubStore, client: httpx.Client, started: Started
    ):
        """DELETE answers 200 with Airflow's message and removes the value."""
        client.post(self.url("k"), json=1, headers=started.headers)
        r = client.delete(self.url("k"), headers=started.headers)
        assert (r.status_code, r.json()) == (
            200,
            {"message": "XCom with key: k successfully deleted."},
        )
        assert client.get(self.url("k"), headers=started.headers).status_code == 404

    def test_item_indexes_by_map_index_from_either_end(
        self, client: httpx.Client, started: Started
    ):
        """GET .../item/{offset} returns the bare value; negative offsets count from the end."""
        for i in (2, 0, 1):
            client.post(self.url(), params={"map_index": i}, json=f"v{i}", headers=started.headers)
        got = [
            client.get(f"{self.url()}/item/{o}", headers=started.headers).json()
            for o in (0, 2, -1, -3)
        ]
        assert got == ["v0", "v2", "v2", "v0"]
        r = client.get(f"{self.url()}/item/3", headers=started.headers)
        assert (r.status_code, detail(r)["reason"]) == (404, "not_found")

    def test_slice_follows_python_slicing(self, state: StubStore, tokens: TokenIssuer):
        """GET .../slice?start&stop&step equals Python slicing of the values by map index."""
        record = state.prepare_task_instance("example_dag", "t", run_id="r")
        values = [f"v{i}" for i in range(5)]
        for i, v in enumerate(values):
            state.xcoms.set("example_dag", "r", "t", "k", json.dumps(v), i, datetime.now(UTC))
        client = httpx.Client(base_url=BASE, transport=StubTransport(state, tokens=tokens))
        headers = bearer(tokens.issue(record.id, "execution"))
        bound = st.one_of(st.none(), st.integers(-7, 7))

        @settings(max_examples=150, deadline=None)
        @given(bound, bound, st.one_of(st.none(), st.integers(-3, 3)))
        def check(start: int | None, stop: int | None, step: int | None) -> None:
            params = {
                k: v for k, v in (("start", start), ("stop", stop), ("step", step)) if v is not None
            }
            r = client.get("xcoms/example_dag/r/t/k/slice", params=params, headers=headers)
            assert r.status_code == 200
            assert r.json() == values[start : stop : step or 1]

        check()
        client.close()

    def test_include_prior_dates_reads_earlier_runs(
        self, state: StubStore, client: httpx.Client, tokens: TokenIssuer
    ):
        """include_prior_dates finds the newest value from this or an earlier run of the DAG."""
        old = datetime(2025, 1, 1, tzinfo=UTC)
        state.prepare_task_instance("example_dag", "t", run_id="early", logical_date=old)
        record = state.prepare_task_instance("example_dag", "t", run_id="late")
        state.xcoms.set("example_dag", "early", "t", "k", '"from-early"', -1, old)
        headers = bearer(tokens.issue(record.id, "execution"))
        url = "xcoms/example_dag/late/t/k"
        assert client.get(url, headers=headers).status_code == 404
        r = client.get(url, params={"include_prior_dates": "true"}, headers=headers)
        assert r.json()["value"] == "from-early"


# -- the store ---------------------------------------------------------------------------------


class TestStore:
    def test_new_task_instance_is_queued_try_one(self, state: StubStore):
        """A new TI is created queued at try 1 in a new running manual DAG run."""
        record = state.prepare_task_instance("example_dag", "t", max_tries=2, queue="q")
        assert (record.try_number, record.state, record.max_tries, record.queue) == (
            1,
            "queued",
            2,
            "q",
        )
        assert record.run_id.startswith("manual__")
        assert uuid.UUID(record.id).version == 7
        uuid.UUID(record.dag_version_id)
        run = state.get_dag_run("example_dag", record.run_id)
        assert (run["state"], run["run_type"]) == ("running", "manual")

    def test_queued_task_instance_is_returned_as_is(self, state: StubStore):
        """Preparing a TI that is still queued returns the same try."""
        first = state.prepare_task_instance("example_dag", "t", run_id="r")
        assert state.prepare_task_instance("example_dag", "t", run_id="r") == first

    def test_finished_task_gets_the_next_try_with_a_new_id(
        self, state: StubStore, client: httpx.Client, tokens: TokenIssuer, started: Started
    ):
        """After a finished try, the next one has a new id and try 2; the old one is history."""
        patch_state(client, started, {"state": "success", "end_date": NOW})
        nxt = state.prepare_task_instance("example_dag", "t", run_id="run1")
        assert nxt.id != started.id
        assert (nxt.try_number, nxt.state) == (2, "queued")
        assert uuid.UUID(nxt.id) > uuid.UUID(started.id)  # time-ordered ids
        [old] = state.tis.history(started.id)
        assert (old["try_number"], old["state"]) == (1, "success")
        ti = state.get_ti(nxt.id)
        assert (ti["hostname"], ti["pid"]) == (None, None)

    def test_crashed_running_try_is_archived_as_failed(self, state: StubStore, started: Started):
        """A TI left running by a crash is archived as failed when the next try is prepared."""
        nxt = state.prepare_task_instance("example_dag", "t", run_id="run1")
        assert nxt.try_number == 2
        assert state.tis.history(started.id)[0]["state"] == "failed"

    def test_try_number_can_be_forced(self, state: StubStore):
        """The try_number argument sets the try of the prepared TI."""
        assert state.prepare_task_instance("example_dag", "t", try_number=5).try_number == 5

    def test_list_task_instances_filters(self, state: StubStore):
        """list_task_instances filters by DAG and run."""
        state.prepare_task_instance("example_dag", "a", run_id="r1")
        state.prepare_task_instance("example_dag", "b", run_id="r2")
        state.prepare_task_instance("other_dag", "c", run_id="r1")
        assert [t["task_id"] for t in state.tis.list_all("example_dag")] == ["a", "b"]
        assert [t["task_id"] for t in state.tis.list_all(run_id="r1")] == ["a", "c"]

    def test_state_file_is_private_and_its_folder_created(self, tmp_path: Path):
        """A new state file is created with mode 0600, parent folders included."""
        path = tmp_path / "a" / "b" / "state.sqlite"
        StubStore(path).close()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    def test_xcom_persists_across_store_instances(self, tmp_path: Path, tokens: TokenIssuer):
        """An XCom pushed through one store is read through another opened on the same file."""
        path = tmp_path / "state.sqlite"
        first = StubStore(path)
        record = first.prepare_task_instance("example_dag", "push", run_id="shared")
        with httpx.Client(base_url=BASE, transport=StubTransport(first, tokens=tokens)) as c:
            r = c.post(
                "xcoms/example_dag/shared/push/return_value",
                json={"n": 1},
                headers=bearer(tokens.issue(record.id, "execution")),
            )
            assert r.status_code == 201
        first.close()
        second = StubStore(path)
        assert second.get_xcom("example_dag", "shared", "push", "return_value") == {"n": 1}
        reader = second.prepare_task_instance("example_dag", "pull", run_id="shared")
        with httpx.Client(base_url=BASE, transport=StubTransport(second, tokens=tokens)) as c:
            r = c.get(
                "xcoms/example_dag/shared/push/return_value",
                headers=bearer(tokens.issue(reader.id, "execution")),
            )
        assert r.json() == {"key": "return_value", "value": {"n": 1}}

    def test_schema_version_is_recorded_and_newer_files_are_refused(self, tmp_path: Path):
        """The file records its schema version; a file from a newer version is refused."""
        path = tmp_path / "state.sqlite"
        store = StubStore(path)
        assert store.db.one("SELECT version FROM schema_version")[0] == 1
        store.db.conn.execute("UPDATE schema_version SET version = 99")
        store.close()
        with pytest.raises(StateFileError, match="schema version 99"):
            StubStore(path)


# -- fault injection -----------------------------------------------------------------------------


class TestFaults:
    def test_status_fault_answers_instead_of_the_route_then_expires(
        self, transport: StubTransport, client: httpx.Client, started: Started
    ):
        """A status fault replaces the answer for `times` matching calls, then stops."""
        transport.faults.append(
            Fault("PUT", r"/heartbeat$", status=503, body={"detail": "down"}, times=2)
        )
        url = f"task-instances/{started.id}/heartbeat"
        statuses = [
            client.put(url, json={"hostname": "h1", "pid": 100}, headers=started.headers)
            for _ in range(3)
        ]
        assert [r.status_code for r in statuses] == [503, 503, 204]
        assert statuses[0].json() == {"detail": "down"}
        assert statuses[0].headers["content-type"] == "application/json"
        assert transport.faults[0].times == 0

    def test_fault_matches_only_its_method_and_path(
        self, transport: StubTransport, client: httpx.Client
    ):
        """A fault for another method or path leaves a request alone; method None matches any."""
        transport.faults.append(Fault("POST", "health", status=500))
        assert client.get("health").status_code == 200
        transport.faults.append(Fault(None, "health$", status=502))
        r = client.get("health")
        assert (r.status_code, r.json()) == (502, {"detail": "Bad Gateway"})

    def test_exception_fault_is_raised_to_the_client(
        self, transport: StubTransport, client: httpx.Client
    ):
        """A raise_exc fault raises that exception (e.g. a connect error) from the transport."""
        transport.faults.append(Fault(None, "health", raise_exc=httpx.ConnectError))
        with pytest.raises(httpx.ConnectError):
            client.get("health")
        assert client.get("health").status_code == 200

    def test_non_json_error_content_type_can_be_injected(
        self, transport: StubTransport, client: httpx.Client
    ):
        """A fault may answer with another content type, to exercise non-JSON error handling."""
        transport.faults.append(
            Fault(None, "health", status=500, body="oops", content_type="text/plain")
        )
        r = client.get("health")
        assert (r.status_code, r.headers["content-type"], r.text) == (500, "text/plain", "oops")

    async def test_delay_fault_sleeps_in_trio(self, transport: StubTransport, autojump_clock):
        """A delay fault waits with the async library's sleep before answering normally."""
        transport.faults.append(Fault("GET", "health", delay_s=30.0))
        async with httpx.AsyncClient(base_url=BASE, transport=transport) as c:
            before = trio.current_time()
            r = await c.get("health")
        assert r.status_code == 200
        assert trio.current_time() - before >= 30.0

    def test_delay_fault_sleeps_in_the_sync_path(
        self, transport: StubTransport, client: httpx.Client
    ):
        """In the sync transport a delay fault blocks with time.sleep."""
        transport.faults.append(Fault("GET", "health", delay_s=0.05))
        started = time.monotonic()
        assert client.get("health").status_code == 200
        assert time.monotonic() - started >= 0.05


# -- async, and Airflow's client semantics over the stub -----------------------------------------


class TestAsync:
    async def test_a_whole_try_through_the_async_client(
        self, state: StubStore, tokens: TokenIssuer
    ):
        """Through httpx.AsyncClient: run, heartbeat, XCom push and pull, success, then 409."""
        record = state.prepare_task_instance("example_dag", "t", run_id="async_run")
        transport = StubTransport(state, tokens=tokens)
        async with httpx.AsyncClient(base_url=BASE, transport=transport) as c:
            r = await c.patch(
                f"task-instances/{record.id}/run",
                json=RUN_BODY,
                headers=bearer(tokens.issue(record.id, "workload")),
            )
            assert r.status_code == 200
            headers = bearer(r.headers["refreshed-api-token"])
            hb = {"hostname": "h1", "pid": 100}
            url = f"task-instances/{record.id}/heartbeat"
            assert (await c.put(url, json=hb, headers=headers)).status_code == 204
            xcom = "xcoms/example_dag/async_run/t/return_value"
            assert (await c.post(xcom, json=[1, 2], headers=headers)).status_code == 201
            assert (await c.get(xcom, headers=headers)).json()["value"] == [1, 2]
            body = {"state": "success", "end_date": NOW, "task_outlets": [], "outlet_events": []}
            r = await c.patch(f"task-instances/{record.id}/state", json=body, headers=headers)
            assert r.status_code == 204
            assert (await c.put(url, json=hb, headers=headers)).status_code == 409
        assert state.get_ti_state(record.id) == "success"

    async def test_airflow_client_gets_structured_errors_from_the_stub(
        self, state: StubStore, tokens: TokenIssuer
    ):
        """The project's ExecutionAPIClient swaps to the exchanged token and gets
        ServerResponseError (exact application/json) for a 409."""
        record = state.prepare_task_instance("example_dag", "t")
        transport = StubTransport(state, tokens=tokens)
        async with httpx.AsyncClient(base_url=BASE, transport=transport) as http:
            api = ExecutionAPIClient(
                http,
                in_process=transport,
                token=tokens.issue(record.id, "workload"),
                retry=RetryPolicy(attempts=1),
            )
            await api.request("PATCH", f"task-instances/{record.id}/run", json_body=RUN_BODY)
            assert tokens.validate(api.token)["scope"] == "execution"
            with pytest.raises(ServerResponseError) as info:
                await api.request(
                    "PATCH", f"task-instances/{record.id}/run", json_body={**RUN_BODY, "pid": 1}
                )
        assert info.value.status_code == 409
        assert info.value.detail["detail"]["previous_state"] == "running"

"""An injected fault the client may retry says only what is true whatever the retries bring, and
what came of the call is a note of its own once the retries are over: retried and answered, or
given up and an ErrorResponse sent. The note once said the runtime got an ErrorResponse for a
500 the retry had already cured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
from _cli import cli

from supervisor_sim.api import (
    ExecutionAPIClient,
    FaultPlan,
    RetryPolicy,
    StubStore,
    StubTransport,
    TokenIssuer,
    stub_http,
)

#: Short back-off for the real command: the retries' waits are not what these tests are about.
FAST = {
    "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MIN": "0.01",
    "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MAX": "0.02",
}


def _records(transcript: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in transcript.read_text().splitlines()]


def _run(tmp_path: Path, *extra: str) -> tuple[list[dict[str, Any]], str]:
    transcript = tmp_path / "t.jsonl"
    proc = cli(
        "run-task",
        "example_dag",
        "read_var_conn",
        "--state",
        str(tmp_path / "s.sqlite"),
        "--transcript",
        str(transcript),
        "-q",
        *extra,
        cwd=tmp_path,
        env=FAST,
    )
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    shown = cli("show", str(transcript), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    return _records(transcript), shown.stdout


def test_a_500_the_retry_cures_is_not_said_to_reach_the_runtime(tmp_path: Path) -> None:
    """GetVariable:500@1: the fault's note says an ErrorResponse comes only if every attempt
    fails, and the outcome note says the retry was answered 200; no ErrorResponse was sent."""
    records, shown = _run(tmp_path, "--fault", "GetVariable:500@1")
    injected = [r["fault"] for r in records if r.get("record") == "note" and "fault" in r]
    assert len(injected) == 1, injected
    why = injected[0]["why"]
    assert "only if every attempt fails" in why, why
    assert (injected[0]["attempt"], injected[0]["attempts"]) == (1, 5), injected[0]
    outcomes = [r for r in records if r.get("record") == "note" and "fault_outcome" in r]
    assert len(outcomes) == 1, outcomes
    outcome = outcomes[0]["fault_outcome"]
    assert outcome["outcome"] == "answered" and outcome["when"] == "attempt 2 of 5", outcome
    assert "attempt 2 was answered 200" in outcome["why"], outcome
    assert "ErrorResponse" not in outcome["why"], outcome
    types = [r.get("type") for r in records if r.get("record") == "frame"]
    assert "ErrorResponse" not in types and "VariableResult" in types, types
    assert "outcome of GET /execution/variables/peer_var" in shown, shown


def test_a_call_every_attempt_of_which_fails_says_so_before_the_error_frame(
    tmp_path: Path,
) -> None:
    """GetVariable:503@1+ with two attempts: the outcome note says the client gave up after 2
    and that the runtime is answered with an ErrorResponse, which is the next frame out."""
    records, shown = _run(tmp_path, "--api-retries", "2", "--fault", "GetVariable:503@1+")
    injected = [r for r in records if r.get("record") == "note" and "fault" in r]
    assert len(injected) == 2, injected  # one note per attempt the rule took
    at = next(i for i, r in enumerate(records) if "fault_outcome" in r)
    outcome = records[at]["fault_outcome"]
    assert outcome["outcome"] == "failed", outcome
    assert "gave up after 2 attempts (the last answered 503)" in outcome["why"], outcome
    assert "ErrorResponse" in outcome["why"], outcome
    after = [r for r in records[at:] if r.get("record") == "frame" and r.get("dir") == "out"]
    assert after and after[0].get("type") == "ErrorResponse", after[:1]
    assert "note warning outcome of GET" in shown, shown


def test_a_heartbeat_fault_names_the_heartbeat_rule_not_an_error_response() -> None:
    """A 503 on a heartbeat says that a heartbeat failing every attempt counts towards
    max_failed_heartbeats, never that a runtime's request gets an ErrorResponse."""
    plan = FaultPlan.parse(["PUT /task-instances/*/heartbeat:503"])
    records: list[dict[str, Any]] = []
    plan.on_record = records.append
    path = "/execution/task-instances/0190e0c4-0000-7000-8000-000000000000/heartbeat"
    plan.before("PUT", path, 1, 3)
    plan.settled("PUT", path, 3, 3, status=503, cause="heartbeat")
    injected, outcome = records
    assert "max_failed_heartbeats" in injected["why"] and "ErrorResponse" not in injected["why"]
    assert "up to 3 attempts" in injected["why"], injected
    assert outcome["what"] == "outcome" and "ErrorResponse" not in outcome["why"], outcome
    assert "this heartbeat counts towards max_failed_heartbeats" in outcome["why"], outcome


@pytest.mark.parametrize(
    "spec",
    [
        "GetVariable:404",  # a 4xx: the note already says the call fails at once
        "GetVariable:malformed",  # never retried
        "GetConnection:500",  # another route than the call's
    ],
)
def test_no_outcome_is_recorded_for_a_call_no_retryable_fault_hit(spec: str) -> None:
    """settled() records an outcome only for a call a retryable fault (5xx, reset, timeout,
    delay) hit; a 4xx, a malformed body or another route's rule leave it unsaid."""
    plan = FaultPlan.parse([spec])
    records: list[dict[str, Any]] = []
    plan.on_record = records.append
    plan.before("GET", "/execution/variables/peer_var", 1, 5)
    plan.settled("GET", "variables/peer_var", 1, 5, status=404, cause=3)
    assert [r["what"] for r in records if r["what"] == "outcome"] == [], records


async def test_the_client_reports_the_outcome_of_a_reset_it_retried() -> None:
    """A reset on the first attempt of a call through the real client: the outcome says the
    second attempt was answered, with the attempt counts the client used."""
    store = StubStore(":memory:")
    try:
        record = store.prepare_task_instance("example_dag", "hello")
        store.set_variable("peer_var", "v")
        tokens = TokenIssuer()
        transport = StubTransport(store, tokens=tokens)
        plan = FaultPlan.parse(["GetVariable:reset@1"])
        records: list[dict[str, Any]] = []
        plan.on_record = records.append
        transport.fault_plan = plan
        async with stub_http(transport) as http:
            api = ExecutionAPIClient(
                http,
                in_process=transport,
                token=tokens.issue(record.id, scope="execution"),
                retry=RetryPolicy(attempts=3, wait_min=0.01, wait_max=0.02),
            )
            with trio.fail_after(10):
                response = await api.request("GET", "variables/peer_var", cause=1)
        assert response.status_code == 200
        assert [r["what"] for r in records] == ["reset", "outcome"], records
        outcome = records[1]
        assert outcome["when"] == "attempt 2 of 3", outcome
        assert "retried: attempt 2 was answered 200" in outcome["why"], outcome
    finally:
        store.close()

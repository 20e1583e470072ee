"""The Edge worker's sans-IO parts: the wire as edge3 5.1.0 speaks it, and the worker's state."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import jwt
import pytest

from supervisor_sim.runner.edge import (
    EdgeJob,
    RuntimeForError,
    WorkerState,
    _protocol as p,
    edge_base_url,
    edge_token,
    execution_url,
    parse_runtime_for,
    prune_transcripts,
)

SECRET = "s" * 64

JOB = {
    "dag_id": "d",
    "task_id": "t",
    "run_id": "manual__1",
    "map_index": -1,
    "try_number": 2,
    "concurrency_slots": 1,
    "task_instance_id": "0190-ti",
    "command": {
        "type": "ExecuteTask",
        "token": "workload-jwt",
        "ti": {"id": "0190-ti", "dag_id": "d", "task_id": "t", "queue": "go"},
        "dag_rel_path": "d.py",
        "bundle_info": {"name": "dags-folder", "version": None},
        "log_path": "dag_id=d/run_id=manual__1/task_id=t/attempt=2.log",
    },
}


def test_runtime_for_maps_each_queue_to_its_command_words():
    """--runtime-for QUEUE=CMD splits CMD into shell words; a later value for a queue wins."""
    got = parse_runtime_for(["go=./bundle --flag 'a b'", "java=java -jar x.jar", "go=./other"])
    assert got == {"go": ["./other"], "java": ["java", "-jar", "x.jar"]}


@pytest.mark.parametrize("value", ["go", "=cmd", "go=", "go=  ", "go='unclosed"])
def test_a_runtime_for_that_is_not_queue_equals_command_is_refused_in_one_line(value: str):
    """A --runtime-for without a queue, a command or with broken quoting is a one-line error."""
    with pytest.raises(RuntimeForError) as info:
        parse_runtime_for([value])
    assert "\n" not in str(info.value) and "--runtime-for" in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://h:8080",
        "http://h:8080/",
        "http://h:8080/edge_worker/v1/rpcapi",
        "http://h:8080/edge_worker/v1/",
    ],
)
def test_the_edge_base_and_execution_urls_come_from_the_base_url_or_edge_api_url(url: str):
    """Airflow's base URL and its [edge] api_url give the same /edge_worker/v1/ and /execution/."""
    assert edge_base_url(url) == "http://h:8080/edge_worker/v1/"
    assert execution_url(url) == "http://h:8080/execution/"


def test_the_edge_token_is_what_airflows_validator_accepts_for_that_path():
    """The JWT is HS512 for audience api, with the path as its method claim, valid 30 s."""
    now = time.time()
    token = edge_token(SECRET, "worker/w1", now=now)
    assert jwt.get_unverified_header(token)["alg"] == "HS512"
    claims = jwt.decode(token, SECRET, algorithms=["HS512"], audience="api")
    assert claims["method"] == "worker/w1"
    assert claims["exp"] - claims["iat"] == 30
    assert {"jti", "nbf", "iat", "exp", "aud"} <= set(claims)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "other" * 16, algorithms=["HS512"], audience="api")


def test_a_fetched_job_gives_its_key_paths_queue_and_token():
    """A job's state and log paths are its key unquoted, as api_client.py builds them."""
    job = EdgeJob.from_json(JOB)
    assert job.queue == "go" and job.token == "workload-jwt"
    assert p.job_state_path(job, "running") == "jobs/state/d/t/manual__1/2/-1/running"
    assert p.logs_push_path(job) == "logs/push/d/t/manual__1/2/-1"
    assert json.loads(p.job_state_body(job) or b"") == {"task_instance_id": "0190-ti"}
    body = json.loads(p.logs_push_body(job, "line\n"))
    assert body["log_chunk_data"] == "line\n" and body["task_instance_id"] == "0190-ti"


def test_a_fetched_job_without_a_workload_is_refused():
    """A fetch reply without the ExecuteTask command is a ValueError naming what is missing."""
    with pytest.raises(ValueError, match="command"):
        EdgeJob.from_json({k: v for k, v in JOB.items() if k != "command"})


def test_register_and_heartbeat_bodies_carry_the_fields_airflows_worker_sends():
    """Register omits maintenance_comments; both carry state, jobs, queues, sysinfo, team."""
    info = p.sysinfo(concurrency=4, free_concurrency=3, started=p.datetime.now(p.UTC))
    assert info["airflow_version"] == "3.3.2" and info["edge_provider_version"] == "5.1.0"
    assert info["status"] == 20 and info["free_concurrency"] == 3
    reg = json.loads(
        p.state_body("starting", jobs_active=0, queues=["go"], info=info, register=True)
    )
    assert set(reg) == {"state", "jobs_active", "queues", "sysinfo", "team_name"}
    beat = json.loads(p.state_body("idle", jobs_active=1, queues=None, info=info))
    assert beat["maintenance_comments"] is None and beat["queues"] is None
    fetch = json.loads(p.fetch_body(["go"], 2))
    assert fetch == {
        "queues": ["go"],
        "free_concurrency": 2,
        "team_name": None,
        "supports_task_instance_uuid": True,
    }


def _state(jobs: int = 0, **kw: bool) -> WorkerState:
    state = WorkerState(concurrency=2, queues=["go"], **kw)
    for i in range(jobs):
        state.jobs[i] = EdgeJob.from_json(JOB)
    return state


@pytest.mark.parametrize(
    ("jobs", "drain", "maintenance", "expected"),
    [
        (0, False, False, "idle"),
        (1, False, False, "running"),
        (1, True, False, "terminating"),
        (1, False, True, "maintenance pending"),
        (0, False, True, "maintenance mode"),
        (0, True, False, "offline"),
        (0, True, True, "offline maintenance"),
    ],
)
def test_the_reported_state_follows_airflows_worker(jobs, drain, maintenance, expected):
    """Jobs, drain and maintenance give the state EdgeWorker._get_state reports."""
    assert _state(jobs, drain=drain, maintenance=maintenance).state == expected


def test_a_full_draining_or_maintained_worker_fetches_nothing():
    """A job is fetched only with a free slot and neither drain nor maintenance on."""
    assert _state(1).may_fetch
    assert not _state(2).may_fetch
    assert not _state(0, drain=True).may_fetch
    assert not _state(0, maintenance=True).may_fetch


def test_a_maintenance_request_enters_and_its_end_leaves_maintenance():
    """'maintenance request' turns maintenance on; 'idle' from the server turns it off."""
    state = _state()
    notes, again = state.heartbeat(
        {"state": "maintenance request", "queues": ["go"], "maintenance_comments": "patching"},
        "idle",
    )
    assert state.maintenance and state.maintenance_comments == "patching" and again
    assert state.state == "maintenance mode" and notes
    state.heartbeat({"state": "idle", "queues": ["go"]}, "maintenance mode")
    assert not state.maintenance and state.maintenance_comments is None


def test_a_shutdown_request_drains_and_a_remote_concurrency_is_taken():
    """'shutdown request' starts the drain; a concurrency in the reply replaces ours."""
    state = _state()
    state.heartbeat({"state": "shutdown request", "queues": ["go"], "concurrency": 5}, "idle")
    assert state.drain and state.concurrency == 5 and state.state == "offline"


def test_log_lines_are_json_records_like_airflows_log_file():
    """Runtime records pass as JSON lines; stdout/stderr become task.stdout/task.stderr records."""
    line = p.log_line("logs", {"event": "hi", "level": "info", "logger": "x", "timestamp": "t"})
    assert json.loads(line) == {"event": "hi", "level": "info", "logger": "x", "timestamp": "t"}
    out = json.loads(p.log_line("stderr", {"event": "boom"}))
    assert out["logger"] == "task.stderr" and out["level"] == "error" and out["event"] == "boom"
    assert line.endswith("\n")


def test_transcript_retention_keeps_the_newest_files(tmp_path: Path):
    """prune_transcripts deletes the oldest transcripts beyond the newest N and nothing else."""
    for i in range(5):
        f = tmp_path / f"t{i}.jsonl"
        f.write_text("{}")
        os.utime(f, (1000 + i, 1000 + i))
    (tmp_path / "keep.txt").write_text("x")
    assert prune_transcripts(tmp_path, 2) == 3
    assert sorted(f.name for f in tmp_path.iterdir()) == ["keep.txt", "t3.jsonl", "t4.jsonl"]

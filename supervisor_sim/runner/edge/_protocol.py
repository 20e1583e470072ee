"""The Edge worker API as Airflow's edge3 5.1.0 worker speaks it, sans-IO.

Everything here is plain values: the endpoint paths and bodies (``airflow.providers.edge3.cli.
api_client``), the per-request JWT (``jwt_generator().generate({"method": rest_path})``, checked
by ``worker_api/auth.py``), the sysinfo the server's version check reads, the worker's state as
``EdgeWorker._get_state`` derives it and what a heartbeat reply asks of it (``heartbeat``).
"""

from __future__ import annotations

import json
import shlex
import sys
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

__all__ = [
    "AIRFLOW_VERSION",
    "EDGE_PROVIDER_VERSION",
    "EdgeJob",
    "RuntimeForError",
    "WorkerState",
    "edge_base_url",
    "edge_token",
    "execution_url",
    "job_state_path",
    "logs_push_body",
    "logs_push_path",
    "parse_runtime_for",
    "state_body",
    "sysinfo",
]

#: The versions the server's ``_assert_version`` compares with its own (a mismatch is a 400
#: unless ``[edge] minimum_acceptable_*_version_for_workers`` allows it).
AIRFLOW_VERSION = "3.3.2"
EDGE_PROVIDER_VERSION = "5.1.0"

#: EdgeWorkerState values (models/edge_worker.py).
STARTING = "starting"
RUNNING = "running"
IDLE = "idle"
SHUTDOWN_REQUEST = "shutdown request"
TERMINATING = "terminating"
OFFLINE = "offline"
MAINTENANCE_REQUEST = "maintenance request"
MAINTENANCE_PENDING = "maintenance pending"
MAINTENANCE_MODE = "maintenance mode"
OFFLINE_MAINTENANCE = "offline maintenance"


class RuntimeForError(ValueError):
    """A ``--runtime-for`` value that is not ``QUEUE=COMMAND``."""


def parse_runtime_for(values: Sequence[str]) -> dict[str, list[str]]:
    """``QUEUE=COMMAND`` values as queue -> argv (shell words); the last one for a queue wins."""
    out: dict[str, list[str]] = {}
    for value in values:
        queue, eq, command = value.partition("=")
        queue = queue.strip()
        if not eq or not queue or not command.strip():
            raise RuntimeForError(
                f"--runtime-for {value!r}: expected QUEUE=COMMAND, e.g. go=./bundle"
            )
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise RuntimeForError(f"--runtime-for {value!r}: {exc}") from None
        out[queue] = argv
    return out


def edge_base_url(api_url: str) -> str:
    """The ``.../edge_worker/v1/`` base of every call, from Airflow's base URL
    (``http://host:8080``) or its ``[edge] api_url`` (``.../edge_worker/v1/rpcapi``), as
    ``urljoin(api_url, rest_path)`` resolves the latter."""
    url = api_url.strip()
    marker = "/edge_worker/"
    if marker in url:
        return url[: url.index(marker) + len(marker)] + "v1/"
    return url.rstrip("/") + "/edge_worker/v1/"


def execution_url(api_url: str) -> str:
    """The Execution API next to the edge API, as Airflow's worker derives it when
    ``[core] execution_api_server_url`` is unset."""
    base = edge_base_url(api_url)
    return base[: -len("edge_worker/v1/")] + "execution/"


def edge_token(
    secret: str, rest_path: str, *, valid_for: int = 30, now: float | None = None
) -> str:
    """The ``Authorization`` header value of one call: an HS512 JWT for audience ``api`` whose
    ``method`` claim is the path after ``/edge_worker/v1/`` (no ``Bearer`` prefix)."""
    import jwt  # on first use

    issued = int(time.time() if now is None else now)
    claims = {
        "method": rest_path,
        "jti": uuid.uuid4().hex,
        "aud": "api",
        "nbf": issued,
        "exp": issued + valid_for,
        "iat": issued,
    }
    with warnings.catch_warnings():
        # PyJWT warns about secrets under 64 bytes; Airflow signs with whatever it is given.
        warnings.simplefilter("ignore")
        return jwt.encode(claims, secret, algorithm="HS512", headers={"kid": uuid.uuid4().hex})


def worker_path(hostname: str) -> str:
    return f"worker/{quote(hostname)}"


def fetch_path(hostname: str) -> str:
    return f"jobs/fetch/{quote(hostname)}"


@dataclass(frozen=True)
class EdgeJob:
    """One fetched job (``EdgeJobFetched``): its key, its ExecuteTask workload, its slots."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int
    try_number: int
    command: Mapping[str, Any]
    concurrency_slots: int = 1
    task_instance_id: str | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> EdgeJob:
        """A job from the fetch reply; ``ValueError`` naming what is missing."""
        try:
            command = body["command"]
            if not isinstance(command, Mapping) or not isinstance(command.get("ti"), Mapping):
                raise ValueError("the job's command is not an ExecuteTask workload")
            return cls(
                dag_id=str(body["dag_id"]),
                task_id=str(body["task_id"]),
                run_id=str(body["run_id"]),
                map_index=int(body["map_index"]),
                try_number=int(body["try_number"]),
                command=command,
                concurrency_slots=int(body.get("concurrency_slots") or 1),
                task_instance_id=body.get("task_instance_id"),
            )
        except KeyError as exc:
            raise ValueError(f"the fetched job has no {exc.args[0]!r}") from None

    @property
    def queue(self) -> str:
        return str(self.command["ti"].get("queue") or "default")

    @property
    def token(self) -> str:
        return str(self.command.get("token") or "")

    @property
    def key_path(self) -> str:
        # As api_client.py builds it: the key's parts unquoted.
        return f"{self.dag_id}/{self.task_id}/{self.run_id}/{self.try_number}/{self.map_index}"

    @property
    def identifier(self) -> str:
        name = f"{self.dag_id}.{self.task_id}"
        if self.map_index != -1:
            name += f"[{self.map_index}]"
        return f"{name} run {self.run_id} try {self.try_number}"


def job_state_path(job: EdgeJob, state: str) -> str:
    return f"jobs/state/{job.key_path}/{state}"


def job_state_body(job: EdgeJob) -> bytes | None:
    if job.task_instance_id:
        return json.dumps({"task_instance_id": str(job.task_instance_id)}).encode()
    return None


def logs_push_path(job: EdgeJob) -> str:
    return f"logs/push/{job.key_path}"


def logs_push_body(job: EdgeJob, data: str, *, at: datetime | None = None) -> bytes:
    body: dict[str, Any] = {
        "log_chunk_time": (at or datetime.now(UTC)).isoformat(),
        "log_chunk_data": data,
    }
    if job.task_instance_id:
        body["task_instance_id"] = str(job.task_instance_id)
    return json.dumps(body).encode()


def log_line(source: str, record: Any) -> str:
    """One line of the task's log file as Airflow's supervisor writes it: the runtime's JSON
    record, or stdout/stderr as a record of logger ``task.stdout``/``task.stderr``."""
    if isinstance(record, Mapping) and source == "logs":
        line = dict(record)
    else:
        text = record.get("event") if isinstance(record, Mapping) else record
        line = {
            "timestamp": datetime.now(UTC).isoformat(),
            "level": "error" if source == "stderr" else "info",
            "event": text if isinstance(text, str) else str(text),
            "logger": f"task.{source}",
        }
    return json.dumps(line, default=str, ensure_ascii=False) + "\n"


def sysinfo(
    *, concurrency: int, free_concurrency: int, started: datetime, versions_match: bool = True
) -> dict[str, Any]:
    """The sysinfo of a register or heartbeat (``EdgeWorker._get_sysinfo``)."""
    from ... import __version__

    info: dict[str, Any] = (
        {"status": 20}
        if versions_match
        else {"status": 30, "status_text": "Healthy but version mismatch"}
    )
    info.update(
        {
            "airflow_version": AIRFLOW_VERSION,
            "edge_provider_version": EDGE_PROVIDER_VERSION,
            "python_version": sys.version,
            "worker_start_time": started.isoformat(),
            "concurrency": concurrency,
            "free_concurrency": free_concurrency,
            "supervisor_sim_version": __version__,
        }
    )
    return info


def state_body(
    state: str,
    *,
    jobs_active: int,
    queues: Sequence[str] | None,
    info: Mapping[str, Any],
    maintenance_comments: str | None = None,
    register: bool = False,
) -> bytes:
    """The WorkerStateBody of a register (POST) or heartbeat (PATCH), with the fields
    ``model_dump_json(exclude_unset=True)`` keeps there."""
    body: dict[str, Any] = {
        "state": state,
        "jobs_active": jobs_active,
        "queues": list(queues) if queues is not None else None,
        "sysinfo": dict(info),
    }
    if not register:
        body["maintenance_comments"] = maintenance_comments
    body["team_name"] = None
    return json.dumps(body).encode()


def fetch_body(queues: Sequence[str] | None, free_concurrency: int) -> bytes:
    return json.dumps(
        {
            "queues": list(queues) if queues is not None else None,
            "free_concurrency": free_concurrency,
            "team_name": None,
            "supports_task_instance_uuid": True,
        }
    ).encode()


@dataclass
class WorkerState:
    """What the worker is doing, and what the server asked of it (``EdgeWorker``'s fields)."""

    concurrency: int
    queues: list[str] | None
    jobs: dict[int, EdgeJob] = field(default_factory=dict)
    drain: bool = False
    maintenance: bool = False
    maintenance_comments: str | None = None
    versions_match: bool = True

    @property
    def used_slots(self) -> int:
        return sum(job.concurrency_slots for job in self.jobs.values())

    @property
    def free_concurrency(self) -> int:
        return self.concurrency - self.used_slots

    @property
    def may_fetch(self) -> bool:
        """Whether a job may be fetched now: not draining, not in maintenance, a slot free."""
        return not self.drain and not self.maintenance and self.free_concurrency > 0

    @property
    def state(self) -> str:
        """The state a heartbeat reports (``EdgeWorker._get_state``)."""
        if self.jobs:
            if self.drain:
                return TERMINATING
            if self.maintenance:
                return MAINTENANCE_PENDING
            return RUNNING
        if self.drain:
            return OFFLINE_MAINTENANCE if self.maintenance else OFFLINE
        if self.maintenance:
            return MAINTENANCE_MODE
        return IDLE

    @property
    def offline_state(self) -> str:
        """The state of the last call, as the worker quits."""
        return OFFLINE_MAINTENANCE if self.maintenance else OFFLINE

    def heartbeat(self, reply: Mapping[str, Any], sent: str) -> tuple[list[str], bool]:
        """Take a heartbeat reply (``WorkerSetStateReturn``) as ``EdgeWorker.heartbeat`` does:
        (what changed, as short sentences for the log; whether the server's state differs from
        the one sent, so that the next heartbeat goes at once)."""
        changes: list[str] = []
        self.versions_match = bool(reply.get("versions_match", False))
        if "queues" in reply:
            self.queues = reply["queues"]
        wanted = reply.get("concurrency")
        if isinstance(wanted, int) and wanted != self.concurrency:
            changes.append(f"concurrency {self.concurrency} -> {wanted} by remote request")
            self.concurrency = wanted
        server_state = reply.get("state")
        if server_state == MAINTENANCE_REQUEST:
            if not self.maintenance:
                changes.append("maintenance mode requested")
            self.maintenance = True
        elif server_state in (IDLE, RUNNING) and self.maintenance:
            changes.append("maintenance mode ended by request")
            self.maintenance = False
        self.maintenance_comments = reply.get("maintenance_comments") if self.maintenance else None
        if server_state == SHUTDOWN_REQUEST and not self.drain:
            changes.append("shutdown requested: finishing running tasks, taking no new ones")
            self.drain = True
        return changes, server_state != sent

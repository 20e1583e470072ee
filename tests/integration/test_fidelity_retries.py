"""Retries under 5xx and connection resets: supervisor-sim's client as Airflow's (task-sdk 1.3.2).

Airflow's client (``airflow.sdk.api.client.Client.request``) retries with tenacity:
``stop_after_attempt([workers] execution_api_retries)``,
``wait_random_exponential(min=..._retry_wait_min, max=..._retry_wait_max)`` (after the Nth
attempt a wait drawn from ``[min, max(min, min(2**(N-1), max))]``), and only 5xx responses and
``httpx.RequestError`` (a reset, a timeout) are retried. Both clients get the same plan:

* against a tiny local HTTP server that applies it (``PLANS``: what the Nth request to a path
  gets), task-sdk's own ``Client`` in the Airflow venv and supervisor-sim's
  ``ExecutionAPIClient``; the server records when each attempt arrived;
* supervisor-sim's client alone with the same plan as a fault plan (``--fault`` specs, the
  faults injected by the client itself) against the same server answering every call.

The back-off is configured small through Airflow's own settings (``AIRFLOW__WORKERS__*``),
which both clients read. Compared: the attempts made, the outcome, and every wait between two
attempts against the window the policy gives for it (at least its lower end; at most its upper
end plus ``SLACK`` for a loaded machine), never a wall-clock time of its own.
"""

from __future__ import annotations

import itertools
import json
import socket
import socketserver
import struct
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from supervisor_sim.api import FaultPlan, RetryPolicy
from supervisor_sim.api._client import ExecutionAPIClient

from ._airflow import build_venv

#: Two policies: a fast one, and one whose minimum is above the first window (2**0 = 1 s), where
#: tenacity waits exactly the minimum after the first attempt.
POLICIES = {
    "fast": {"retries": 5, "wait_min": 0.05, "wait_max": 0.3},
    "min-above-first-window": {"retries": 3, "wait_min": 1.5, "wait_max": 2.0},
}
#: Plans: what the server answers the Nth request to a path ("ok" after the list ends, or the
#: last entry again with "..."), and the same plan as supervisor-sim fault specs.
PLANS: dict[str, dict[str, Any]] = {
    "500-twice-then-ok": {"answers": [500, 500], "faults": ["{T}:500@1", "{T}:500@2"]},
    "503-always": {"answers": [503, "..."], "faults": ["{T}:503"]},
    "reset-twice-then-ok": {"answers": ["reset", "reset"],
                            "faults": ["{T}:reset@1", "{T}:reset@2"]},
    "reset-always": {"answers": ["reset", "..."], "faults": ["{T}:reset"]},
    "502-then-reset-then-ok": {"answers": [502, "reset"], "faults": ["{T}:502@1", "{T}:reset@2"]},
    "404-not-retried": {"answers": [404, "..."], "faults": ["{T}:404"]},
    "409-not-retried": {"answers": [409, "..."], "faults": ["{T}:409"]},
}  # fmt: skip
CASES = [("fast", p) for p in PLANS] + [("min-above-first-window", "503-always")]
IDS = [f"{policy}-{plan}" for policy, plan in CASES]
TARGET = "GET /variables/*"
#: Seconds a wait may exceed its window's upper end on a loaded machine (scheduling, the
#: request itself); the lower end is exact.
SLACK = 1.0

AIRFLOW_CLIENT = '''
"""Call GET variables/KEY with task-sdk's Client for each key; print attempts' outcome."""
import json, sys
import httpx
from airflow.sdk.api import client as c

base, keys = sys.argv[1], sys.argv[2:]
policy = {"retries": c.API_RETRIES, "wait_min": c.API_RETRY_WAIT_MIN,
          "wait_max": c.API_RETRY_WAIT_MAX, "timeout": c.API_TIMEOUT}
client = c.Client(base_url=base, token="not-checked")
results = {}
for key in keys:
    try:
        results[key] = {"ok": client.get(f"variables/{key}").status_code}
    except httpx.HTTPStatusError as exc:
        results[key] = {"status": exc.response.status_code}
    except httpx.RequestError as exc:
        results[key] = {"error": "transport"}
print(json.dumps({"policy": policy, "results": results}))
'''


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.plans: dict[str, list[Any]] = {}  # path -> answers
        self.arrivals: dict[str, list[float]] = defaultdict(list)
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/execution/"


class _Handler(socketserver.BaseRequestHandler):
    """One HTTP/1.1 request per connection: answered by the path's plan, then closed."""

    server: _Server

    def handle(self) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            data += chunk
        path = data.split(b" ", 2)[1].decode().split("?")[0]
        with self.server.lock:
            arrivals = self.server.arrivals[path]
            arrivals.append(time.monotonic())
            answers = self.server.plans.get(path, [])
            n = len(arrivals)
        if n <= len(answers) and answers[n - 1] != "...":
            answer = answers[n - 1]
        elif answers and answers[-1] == "...":
            answer = answers[-2]
        else:
            answer = "ok"
        if answer == "reset":  # RST, as a peer that drops the connection
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.request.close()
            return
        status, body = (200, {"key": "k", "value": "v"}) if answer == "ok" else (answer, {
            "detail": "injected"})  # fmt: skip
        raw = json.dumps(body).encode()
        head = (
            f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
            f"content-length: {len(raw)}\r\nconnection: close\r\n\r\n"
        )
        self.request.sendall(head.encode() + raw)


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def _env(policy: str) -> dict[str, str]:
    p = POLICIES[policy]
    return {
        "AIRFLOW__WORKERS__EXECUTION_API_RETRIES": str(p["retries"]),
        "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MIN": str(p["wait_min"]),
        "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MAX": str(p["wait_max"]),
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "5",
    }


def _outcome(exc: BaseException | None, status: int | None) -> dict[str, Any]:
    if exc is None:
        return {"ok": status}
    response = getattr(exc, "response", None)
    if response is not None and getattr(response, "status_code", None):
        return {"status": response.status_code}
    if isinstance(exc, httpx.TransportError):
        return {"error": "transport"}
    status = getattr(exc, "status_code", None) or getattr(exc, "status", None)
    return {"status": status} if status else {"error": repr(exc)}


async def _sim_call(
    url: str, key: str, faults: FaultPlan | None, ends: list[float]
) -> dict[str, Any]:
    """One GET variables/KEY with supervisor-sim's client (its policy from the environment)."""
    async with ExecutionAPIClient(
        httpx.AsyncClient(base_url=url),
        retry=RetryPolicy(),
        faults=faults,
        on_exchange=lambda exchange: ends.append(time.monotonic()),
    ) as client:
        try:
            response = await client.request("GET", f"variables/{key}")
        except Exception as exc:  # the outcome is what is compared
            return _outcome(exc, None)
        return _outcome(None, response.status_code)


@pytest.fixture(scope="module")
def runs(server: _Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """case -> {side: {"outcome", "times"}} for "airflow", "sim" (same server plan) and
    "sim-plan" (supervisor-sim's fault plan, the server answering every call)."""
    tmp = tmp_path_factory.mktemp("fidelity_retries")
    python = build_venv(tmp)
    script = tmp / "airflow_client.py"
    script.write_text(AIRFLOW_CLIENT)
    found: dict[str, dict[str, Any]] = {name: {} for name in IDS}
    policies: dict[str, Any] = {}
    mp = pytest.MonkeyPatch()
    try:
        for policy in POLICIES:
            cases = [(name, plan) for name, (pol, plan) in zip(IDS, CASES, strict=True)
                     if pol == policy]  # fmt: skip
            for name, plan in cases:
                for side in ("airflow", "sim"):
                    server.plans[f"/execution/variables/{name}-{side}"] = PLANS[plan]["answers"]
            proc = subprocess.run(
                [python, str(script), server.url, *[f"{name}-airflow" for name, _ in cases]],
                env=_airflow_env(tmp, policy), capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr[-4000:]
            answer = json.loads(proc.stdout.strip().splitlines()[-1])
            policies[policy] = answer["policy"]
            for key, value in _env(policy).items():
                mp.setenv(key, value)
            for name, plan in cases:
                found[name]["airflow"] = {
                    "outcome": answer["results"][f"{name}-airflow"],
                    "times": server.arrivals[f"/execution/variables/{name}-airflow"],
                }
                outcome = trio.run(_sim_call, server.url, f"{name}-sim", None, [])
                found[name]["sim"] = {
                    "outcome": outcome,
                    "times": server.arrivals[f"/execution/variables/{name}-sim"],
                }
                specs = [f.replace("{T}", TARGET) for f in PLANS[plan]["faults"]]
                ends: list[float] = []
                outcome = trio.run(
                    _sim_call, server.url, f"{name}-plan", FaultPlan.parse(specs), ends
                )
                found[name]["sim-plan"] = {"outcome": outcome, "times": ends}
    finally:
        mp.undo()
    found["_policies"] = policies
    return found


def _airflow_env(tmp: Path, policy: str) -> dict[str, str]:
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    return {**base, "AIRFLOW_HOME": str(tmp / "airflow_home"), **_env(policy)}


def _expected_attempts(policy: str, plan: str) -> int:
    answers, retries = PLANS[plan]["answers"], POLICIES[policy]["retries"]
    if answers[0] in (404, 409):
        return 1
    return retries if answers[-1] == "..." else min(len(answers) + 1, retries)


def test_airflows_client_reads_the_configured_policy(runs: dict[str, dict[str, Any]]) -> None:
    """task-sdk's client took the attempts and back-off bounds from AIRFLOW__WORKERS__*, as
    supervisor-sim's RetryPolicy does."""
    for name, p in POLICIES.items():
        theirs = runs["_policies"][name]
        assert (theirs["retries"], theirs["wait_min"], theirs["wait_max"]) == (
            p["retries"], p["wait_min"], p["wait_max"])  # fmt: skip
        mp = pytest.MonkeyPatch()
        for key, value in _env(name).items():
            mp.setenv(key, value)
        try:
            ours = RetryPolicy()
        finally:
            mp.undo()
        assert (ours.attempts, ours.wait_min, ours.wait_max) == (
            p["retries"], p["wait_min"], p["wait_max"])  # fmt: skip


@pytest.mark.parametrize("name", IDS)
def test_both_clients_make_the_same_attempts_with_the_same_outcome(
    runs: dict[str, dict[str, Any]], name: str
) -> None:
    """As many attempts as the policy allows for 5xx and resets (none more for 4xx), and the
    same result: the status, a transport error, or the answer once the server recovers."""
    policy, plan = CASES[IDS.index(name)]
    theirs = runs[name]["airflow"]
    assert len(theirs["times"]) == _expected_attempts(policy, plan), theirs
    for side in ("sim", "sim-plan"):
        ours = runs[name][side]
        assert len(ours["times"]) == len(theirs["times"]), (side, ours)
        assert ours["outcome"] == theirs["outcome"], side


@pytest.mark.parametrize("name", IDS)
def test_every_wait_falls_in_the_policys_window(runs: dict[str, dict[str, Any]], name: str) -> None:
    """The wait after attempt N is at least the policy's minimum and at most
    max(min, min(2**(N-1), max)) (plus SLACK), for Airflow's client and supervisor-sim's."""
    policy = CASES[IDS.index(name)][0]
    p = POLICIES[policy]
    for side in ("airflow", "sim", "sim-plan"):
        times = runs[name][side]["times"]
        for n, (before, after) in enumerate(itertools.pairwise(times), start=1):
            high = max(p["wait_min"], min(2.0 ** (n - 1), p["wait_max"]))
            assert p["wait_min"] - 0.005 <= after - before <= high + SLACK, (side, n, times)

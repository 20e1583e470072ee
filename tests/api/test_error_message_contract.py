"""An API error's message is the one Airflow's client gives it (its supervisor puts that message
in the runtime's error frame), checked against task-sdk 1.3.2's own ServerResponseError."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from supervisor_sim.api import APIResponse, ServerResponseError
from supervisor_sim.api._client import ResponseHeaders

AIRFLOW_PYTHON = Path(__file__).resolve().parents[2] / ".cache" / "airflow-venv" / "bin" / "python"

BODIES: list[Any] = [
    {"detail": {"reason": "not_running", "message": "TI is not running"}},
    {"detail": [{"loc": ["body", "state"], "msg": "Field required", "type": "missing"}]},
    {"detail": [{"loc": ["body"], "msg": "x", "type": "t"}, {"loc": [], "msg": "y", "type": "u"}]},
    {"detail": []},
    {"detail": [1, 2]},
    {"detail": [{"msg": "no loc", "type": "t"}]},
    {"detail": "Not Found"},
    {"detail": ""},
    {"detail": None},
    {"detail": 5},
    {"message": "no detail key"},
    {},
    [1, 2, 3],
    "a string body",
    None,
]

_ORACLE = """
import json, sys, httpx
from airflow.sdk.api.client import ServerResponseError
out = []
for body in json.load(sys.stdin):
    request = httpx.Request("GET", "http://x/execution/variables/k")
    response = httpx.Response(
        409, request=request, content=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    err = ServerResponseError.from_response(response)
    out.append(None if err is None else str(err))
json.dump(out, sys.stdout)
"""


def _airflow_python() -> str:
    """The Airflow venv's interpreter, built by tools/airflow_venv.sh when it is not there yet
    (in a clean clone this test may run before the real-Airflow tier builds it): a contract
    that skips checks nothing."""
    if AIRFLOW_PYTHON.exists():
        return str(AIRFLOW_PYTHON)
    build = subprocess.run(
        ["sh", str(AIRFLOW_PYTHON.parents[3] / "tools" / "airflow_venv.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert build.returncode == 0, f"tools/airflow_venv.sh failed:\n{build.stderr[-4000:]}"
    return build.stdout.strip().splitlines()[-1]


@pytest.mark.contract
def test_the_error_message_is_airflows_for_every_body_shape() -> None:
    """For every JSON error body, ServerResponseError.message equals str() of Airflow's."""
    proc = subprocess.run(
        [_airflow_python(), "-c", _ORACLE],
        input=json.dumps(BODIES),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = json.loads(proc.stdout)
    ours = []
    for body in BODIES:
        headers = ResponseHeaders([("content-type", "application/json")])
        response = APIResponse("GET", "variables/k", 409, headers, json.dumps(body).encode())
        ours.append(ServerResponseError(response).message)
    assert list(zip(BODIES, ours, strict=True)) == list(zip(BODIES, theirs, strict=True))

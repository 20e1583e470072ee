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


@pytest.mark.contract
def test_the_error_message_is_airflows_for_every_body_shape() -> None:
    """For every JSON error body, ServerResponseError.message equals str() of Airflow's."""
    if not AIRFLOW_PYTHON.exists():
        pytest.skip(f"no Airflow venv at {AIRFLOW_PYTHON} (tools/airflow_venv.sh builds it)")
    proc = subprocess.run(
        [str(AIRFLOW_PYTHON), "-c", _ORACLE],
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

"""bench/airflow_sup.py with XCom calls answered too (run with the Airflow venv's Python).

    .cache/airflow-venv/bin/python bench/_airflow_xcom.py -- CHILD_CMD...

The same ``supervise_task`` and ``httpx.MockTransport`` as ``airflow_sup.py``, plus: ``POST
xcoms/...`` keeps the request body as it came (the JSON of the value) and answers 201; ``GET
xcoms/...`` answers ``{"key": KEY, "value": <those bytes>}`` without parsing them. The API side
is thus as cheap as it can be: what is measured is Airflow's supervisor and its client.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import airflow_sup

_original = airflow_sup.mock_api


def mock_api(ti_id: str, dag_id: str, run_id: str) -> tuple[object, dict[str, int]]:
    import httpx

    transport, calls = _original(ti_id, dag_id, run_id)
    inner = transport.handler  # type: ignore[attr-defined]
    stored: dict[str, bytes] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if "/xcoms/" not in path:
            return inner(request)
        key = path.rsplit("/", 1)[1]
        if request.method == "POST":
            calls["xcom_set"] = calls.get("xcom_set", 0) + 1
            stored[path] = request.read()
            return httpx.Response(201, json={"message": "ok"})
        calls["xcom_get"] = calls.get("xcom_get", 0) + 1
        if path not in stored:
            return httpx.Response(404, json={"detail": {"reason": "not_found"}})
        body = b'{"key": ' + json.dumps(key).encode() + b', "value": ' + stored[path] + b"}"
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    return httpx.MockTransport(handler), calls


airflow_sup.mock_api = mock_api
# The coordinator's classpath is "__main__.CommandCoordinator": main() defines it in airflow_sup.
sys.modules["__main__"] = airflow_sup
sys.exit(airflow_sup.main())

"""The embedded Execution API: an httpx transport answering like Airflow 3.3's API server from
a ``StubStore``, inside the process.

Supervisor code talks to it through a normal ``httpx.AsyncClient`` (``base_url=
"http://stub.invalid/execution/"``) and cannot tell it from the real server: same paths, status
codes, JSON bodies and headers. ``ExecutionAPIClient`` given the transport as ``in_process``
calls ``StubTransport.serve`` instead, with no httpx objects at all.

No web framework: ``_routes.ROUTES`` is the route table (method, path pattern, handler), the
handlers are plain functions of the store and the parsed request, one module per area
(``_ti``: a TI's lifecycle; ``_data``: connections, variables, XComs; ``_runs``: DAG runs,
DAGs, TI queries; ``_assets``: assets, events, asset state store; ``_stores``: task state
store, HITL), ``_validation`` shapes 422s like pydantic's, and ``_transport`` runs the
pipeline (version, route, body, auth, handler, response headers). A request costs tens of
microseconds.
"""

from ._transport import PREFIX, Fault, StubReply, StubRequest, StubTransport
from ._versions import API_VERSIONS, LATEST_VERSION

__all__ = [
    "API_VERSIONS",
    "LATEST_VERSION",
    "PREFIX",
    "Fault",
    "StubReply",
    "StubRequest",
    "StubTransport",
]

"""The Execution API behind httpx: one client, and backends that are httpx transports.

``ExecutionAPIClient`` speaks Airflow's HTTP semantics; ``StubTransport`` (``api.stub``) over a
``StubStore`` (``api.store``) is the embedded, SQLite-backed stand-in for Airflow's API server,
which the client calls in-process when it is given as ``in_process`` or its HTTP client is an
``InProcessClient`` (``stub_http``, ``stub_client``); a real server is just the default httpx
transport with a base URL (``real_api_client``).

The names below load their module on first use (PEP 562): ``run-task`` reads its fixtures file
(``_fixtures``, standard library only) before httpx and trio are imported, so the runtime it
starts next boots while they load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._client import (
        API_VERSION as API_VERSION,
        APIResponse as APIResponse,
        APIStatusError as APIStatusError,
        Exchange as Exchange,
        ExecutionAPIClient as ExecutionAPIClient,
        InProcessClient as InProcessClient,
        LeanServer as LeanServer,
        RetryPolicy as RetryPolicy,
        ServerResponseError as ServerResponseError,
    )
    from ._faults import FaultPlan as FaultPlan, FaultPlanError as FaultPlanError
    from ._fixtures import (
        FixtureError as FixtureError,
        Fixtures as Fixtures,
        FixturesFile as FixturesFile,
        load_fixtures as load_fixtures,
    )
    from ._real import mint_token as mint_token, real_api_client as real_api_client
    from ._stub_client import (
        STUB_BASE_URL as STUB_BASE_URL,
        stub_client as stub_client,
        stub_http as stub_http,
    )
    from ._tokens import TokenIssuer as TokenIssuer
    from .store import (
        StateFileError as StateFileError,
        StubStore as StubStore,
        TaskInstanceRecord as TaskInstanceRecord,
        ti_wire as ti_wire,
    )
    from .stub import Fault as Fault, StubTransport as StubTransport

#: Where each public name lives.
_MODULES = {
    "API_VERSION": "_client",
    "APIResponse": "_client",
    "APIStatusError": "_client",
    "Exchange": "_client",
    "ExecutionAPIClient": "_client",
    "Fault": "stub",
    "FaultPlan": "_faults",
    "FaultPlanError": "_faults",
    "FixtureError": "_fixtures",
    "Fixtures": "_fixtures",
    "FixturesFile": "_fixtures",
    "InProcessClient": "_client",
    "LeanServer": "_client",
    "RetryPolicy": "_client",
    "STUB_BASE_URL": "_stub_client",
    "ServerResponseError": "_client",
    "StateFileError": "store",
    "StubStore": "store",
    "StubTransport": "stub",
    "TaskInstanceRecord": "store",
    "TokenIssuer": "_tokens",
    "load_fixtures": "_fixtures",
    "mint_token": "_real",
    "real_api_client": "_real",
    "stub_client": "_stub_client",
    "stub_http": "_stub_client",
    "ti_wire": "store",
}

__all__ = sorted(_MODULES)


__getattr__, __dir__ = lazy_exports(__name__, _MODULES)

"""The Execution API behind httpx: one client, and backends that are httpx transports.

``ExecutionAPIClient`` speaks Airflow's HTTP semantics; ``StubTransport`` over a ``StubStore`` is
the embedded, SQLite-backed stand-in for Airflow's API server; a real server is just the default
httpx transport with a base URL.
"""

from ._client import (
    API_VERSION as API_VERSION,
)
from ._client import (
    APIResponse as APIResponse,
)
from ._client import (
    APIStatusError as APIStatusError,
)
from ._client import (
    Exchange as Exchange,
)
from ._client import (
    ExecutionAPIClient as ExecutionAPIClient,
)
from ._client import (
    RetryPolicy as RetryPolicy,
)
from ._client import (
    ServerResponseError as ServerResponseError,
)
from ._fixtures import FixtureError as FixtureError
from ._fixtures import Fixtures as Fixtures
from ._fixtures import load_fixtures as load_fixtures
from ._real import mint_token as mint_token
from ._real import real_api_client as real_api_client
from ._store import StubStore as StubStore
from ._store import TaskInstanceRecord as TaskInstanceRecord
from ._stub import Fault as Fault
from ._stub import StubTransport as StubTransport
from ._tokens import TokenIssuer as TokenIssuer

__all__ = [
    "API_VERSION",
    "APIResponse",
    "APIStatusError",
    "Exchange",
    "ExecutionAPIClient",
    "Fault",
    "FixtureError",
    "Fixtures",
    "RetryPolicy",
    "ServerResponseError",
    "StubStore",
    "StubTransport",
    "TaskInstanceRecord",
    "TokenIssuer",
    "load_fixtures",
    "mint_token",
    "real_api_client",
]

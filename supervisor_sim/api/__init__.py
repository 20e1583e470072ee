from ._client import *  # noqa: F403  (temporary while the stub lands)
from ._client import APIStatusError, Exchange, ExecutionAPIClient, RetryPolicy, ServerResponseError  # noqa

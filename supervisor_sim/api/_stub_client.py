"""``stub_client``: an ``ExecutionAPIClient`` over the embedded stub, served in-process."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ._client import ExecutionAPIClient, InProcessClient
from ._tokens import TokenIssuer
from .store import StubStore
from .stub import StubTransport

__all__ = ["STUB_BASE_URL", "stub_client", "stub_http"]

#: The base URL the stub is reached at (nothing is resolved or connected).
STUB_BASE_URL = "http://stub.invalid/execution/"


def stub_http(transport: StubTransport) -> InProcessClient:
    """An HTTP client on ``transport`` at ``STUB_BASE_URL``, declaring it in-process (an
    ``ExecutionAPIClient`` on it calls the stub directly)."""
    return InProcessClient(transport, base_url=STUB_BASE_URL)


def stub_client(
    store: StubStore,
    *,
    tokens: TokenIssuer | None = None,
    clock: Callable[[], datetime] | None = None,
    **options: Any,
) -> ExecutionAPIClient:
    """A client of a new ``StubTransport`` over ``store`` (``tokens``, ``clock``: see there),
    called in-process; ``options`` go to ``ExecutionAPIClient`` (``token``, ``retry``,
    ``on_exchange``...). The transport is ``client.in_process`` (for faults). Close the client
    when done (``async with`` or ``aclose``)."""
    transport = StubTransport(store, tokens=tokens, clock=clock)
    return ExecutionAPIClient(stub_http(transport), in_process=transport, **options)

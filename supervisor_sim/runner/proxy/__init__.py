"""``supervisor-sim proxy``: a transparent, recording stand-in for a runtime in a real Airflow.

Airflow's coordinator launches the proxy as it would the runtime; the proxy launches the real
runtime behind it and forwards every byte of --comm, --logs, stdout and stderr both ways,
unchanged, while it writes a transcript of the try (docs/proxy.md). ``run_proxy`` runs one try
and returns the runtime's exit status, ``exit_like`` ends this process the same way;
``write_wrapper`` writes the script (or executable bundle) that puts the proxy in front of a
runtime; ``ProxyReplayHooks`` let ``replay`` answer a runtime from a proxy transcript, which
holds Airflow's frames but none of its HTTP calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._lazy import lazy_exports

if TYPE_CHECKING:
    from ._recorder import transcript_name as transcript_name
    from ._replay import (
        ProxyReplayHooks as ProxyReplayHooks,
        is_proxy_transcript as is_proxy_transcript,
    )
    from ._run import (
        FORWARDED_SIGNALS as FORWARDED_SIGNALS,
        ProxySettings as ProxySettings,
        exit_like as exit_like,
        run_proxy as run_proxy,
    )
    from ._wrapper import bundle_metadata as bundle_metadata, write_wrapper as write_wrapper

#: Where each public name lives (loaded on first use: the wrapper needs none of the layers).
_MODULES = {
    "FORWARDED_SIGNALS": "_run",
    "ProxyReplayHooks": "_replay",
    "ProxySettings": "_run",
    "bundle_metadata": "_wrapper",
    "exit_like": "_run",
    "is_proxy_transcript": "_replay",
    "run_proxy": "_run",
    "transcript_name": "_recorder",
    "write_wrapper": "_wrapper",
}

__all__ = sorted(_MODULES)

__getattr__, __dir__ = lazy_exports(__name__, _MODULES)

"""Running task tries and DAG runs on top of the layers: one supervised try with its transcript
and signal forwarding (``supervise``, on the stub's store from ``open_store`` or on a real
Airflow), run-dag's scheduling over the stub or a real Airflow (``DagRunner`` and its backends),
and the project config file (``supervisor-sim.toml``).

The names below load their module on first use (PEP 562): ``--help`` reads the default paths
without importing trio, httpx or the layers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._config import (
        DEFAULT_NAME as DEFAULT_NAME,
        DEFAULT_RUNS as DEFAULT_RUNS,
        DEFAULT_STATE as DEFAULT_STATE,
        REFERENCE_RUNTIME as REFERENCE_RUNTIME,
        ConfigError as ConfigError,
        ConfigFile as ConfigFile,
        ProjectConfig as ProjectConfig,
        load_project_config as load_project_config,
        runtime_argv as runtime_argv,
    )
    from ._dagrun import (
        AirflowBackend as AirflowBackend,
        DagRunner as DagRunner,
        RunBackend as RunBackend,
        StubBackend as StubBackend,
        TaskResult as TaskResult,
    )
    from ._supervise import (
        FORWARDED_SIGNALS as FORWARDED_SIGNALS,
        SignalTarget as SignalTarget,
        default_transcript as default_transcript,
        forward_signals_to as forward_signals_to,
        open_store as open_store,
        supervise as supervise,
    )

#: The queueing helper run-dag --api-url launches with that Airflow's own Python: a script
#: shipped inside the package (it imports Airflow, so supervisor-sim never imports it).
QUEUE_TI_TOOL = Path(__file__).with_name("airflow_queue_ti.py")

#: Where each public name lives.
_MODULES = {
    "DEFAULT_NAME": "_config",
    "DEFAULT_RUNS": "_config",
    "DEFAULT_STATE": "_config",
    "REFERENCE_RUNTIME": "_config",
    "ConfigError": "_config",
    "ConfigFile": "_config",
    "ProjectConfig": "_config",
    "load_project_config": "_config",
    "runtime_argv": "_config",
    "AirflowBackend": "_dagrun",
    "DagRunner": "_dagrun",
    "RunBackend": "_dagrun",
    "StubBackend": "_dagrun",
    "TaskResult": "_dagrun",
    "FORWARDED_SIGNALS": "_supervise",
    "SignalTarget": "_supervise",
    "default_transcript": "_supervise",
    "forward_signals_to": "_supervise",
    "open_store": "_supervise",
    "supervise": "_supervise",
}

__all__ = sorted([*_MODULES, "QUEUE_TI_TOOL"])


__getattr__, __dir__ = lazy_exports(__name__, _MODULES)

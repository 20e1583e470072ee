"""A real Airflow 3.3.2 for the whole tier: venv, sqlite AIRFLOW_HOME, Execution API server.

The ``airflow`` fixture builds (or reuses) the Airflow venv with tools/airflow_venv.sh, makes a
fresh AIRFLOW_HOME with a sqlite DB (``airflow db migrate``), registers ``example_dag``
(tools/airflow_peer/example_dag.py: the task ids of the reference runtime's bundle), seeds
``peer_var`` and ``peer_conn``, and serves ``airflow api-server --apps execution`` on a free
loopback port. Every process gets the same environment, with a fixed JWT secret, so tests mint
task tokens themselves. Task instances are queued through the packaged
airflow_queue_ti.py (``supervisor_sim.runner.QUEUE_TI_TOOL``), kept open in batch mode for the
session (importing Airflow costs seconds; queueing a TI does not).

Nothing is skipped: CI runs this tier, and a missing PyPI or a server that does not come up
fails the session with the pip output or the server's log.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisor_sim.runner import QUEUE_TI_TOOL

from ._airflow import (
    PEER,
    LineChannel,
    RealAirflow,
    airflow_env,
    build_venv,
    free_port,
    run_step,
    stop_server,
    tail,
    wait_healthy,
)

_API_LOG: list[Path] = []  # the running server's log, for failure reports


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "real_airflow: runs against a real Airflow 3.3.2 (venv built once into .cache/ by "
        "tools/airflow_venv.sh; Execution API server on 127.0.0.1)",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failing real-Airflow test shows the tail of the Execution API server's log."""
    report = yield
    if report.failed and item.get_closest_marker("real_airflow") and _API_LOG:
        report.sections.append(("Execution API server log (tail)", tail(_API_LOG[0])))
    return report


@pytest.fixture(scope="package")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealAirflow]:
    """A real Airflow 3.3.2 Execution API on sqlite, with example_dag, peer_var and peer_conn.

    Package-scoped: the server and the queue helper stop once this tier is done, so the rest
    of the suite (which checks for leftover children and descriptors) never sees them.
    """
    base = tmp_path_factory.mktemp("real_airflow")
    python = build_venv(base)
    home = base / "airflow_home"
    (home / "dags").mkdir(parents=True)
    shutil.copy(PEER / "example_dag.py", home / "dags" / "example_dag.py")
    port = free_port()
    env = airflow_env(home, port)
    run_step(
        [python, str(PEER / "setup_home.py")],
        env=env,
        timeout=300,
        what="airflow db migrate / dags reserialize / variables / connections",
        log=base / "setup_home.log",
    )
    api_log = base / "api-server.log"
    _API_LOG[:] = [api_log]
    with open(api_log, "wb") as log_file:
        server = subprocess.Popen(
            [
                str(Path(python).with_name("airflow")),
                "api-server",
                "--apps",
                "execution",
                "-H",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                "1",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    helper = None
    try:
        # The queue helper imports Airflow while the server boots.
        helper = LineChannel(
            [python, str(QUEUE_TI_TOOL), "--batch", "-"],
            env=env,
            stderr=base / "airflow_queue_ti.log",
        )
        instance = RealAirflow(python=python, home=home, env=env, port=port, api_log=api_log)
        wait_healthy(server, instance.api_url, api_log)
        instance._queue = helper
        yield instance
    finally:
        if helper is not None:
            helper.close()
        stop_server(server)
        _API_LOG.clear()

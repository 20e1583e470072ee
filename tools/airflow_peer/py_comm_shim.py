"""Airflow's own Python task runner as a ``--comm/--logs`` child (real-airflow-peers.md app. E).

``task_runner.main()`` talks length-prefixed msgpack on fd 0 and has no ``--comm`` flag, so this
shim connects to both ports, puts the comm socket on fd 0, routes Airflow's structured JSON
logs to the logs socket, and runs the task runner. Run it with the Airflow venv's python and
the same ``AIRFLOW_HOME`` / ``AIRFLOW__CORE__DAGS_FOLDER`` as the API server, so that the
``dags-folder`` bundle resolves to the folder holding the DAG file::

    supervisor-sim run-task example_dag read_var_conn --api-url ... \
        --runtime "$AIRFLOW_PY tools/airflow_peer/py_comm_shim.py"
"""

import os
import socket
import sys

args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)


def connect(hostport: str) -> socket.socket:
    host, port = hostport.rsplit(":", 1)
    return socket.create_connection((host, int(port)))


comm, logs = connect(args["comm"]), connect(args["logs"])
os.dup2(comm.fileno(), 0)
comm.close()

from airflow.sdk.execution_time.supervisor import _configure_logs_over_json_channel  # noqa: E402

_configure_logs_over_json_channel(os.dup(logs.fileno()))
logs.close()

from airflow.sdk.execution_time.task_runner import main  # noqa: E402

main()

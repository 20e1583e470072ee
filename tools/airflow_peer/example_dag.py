"""``example_dag`` for a real Airflow: the task ids of the reference runtime's example bundle.

Copy this file into an Airflow DAGs folder (``airflow dags reserialize`` then registers it) so
that task instances exist for ``supervisor-sim run-task example_dag <task> --api-url ...`` to
drive. Under supervisor-sim the reference runtime runs its own implementation of each task
(runtimes/reference/example_dags.py); these Python bodies are only used when Airflow's own
Python task runner is the child (tools/airflow_peer/py_comm_shim.py), and they behave the same.

Only ``retry`` has retries (max_tries=1), so only its first failure is ``up_for_retry``.
"""

from __future__ import annotations

import datetime
import os
import time

from airflow.sdk import DAG, BaseHook, Variable, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

with DAG(
    dag_id="example_dag",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1),
    catchup=False,
    default_args={"retries": 0},
    tags=["supervisor-sim"],
) as dag:

    @task
    def hello():
        print("Hello from Airflow's Python task runner")

    @task
    def read_var_conn():
        value = Variable.get("peer_var")
        conn = BaseHook.get_connection("peer_conn")
        print(f"Read connection host={conn.host} login={conn.login}")
        return {"var": value, "host": conn.host}

    @task
    def push_xcom():
        return {"numbers": [1, 2, 3]}

    @task
    def pull_xcom():
        value = get_current_context()["ti"].xcom_pull(task_ids="push_xcom")
        if value is None:
            raise ValueError("no return_value XCom from push_xcom in this run")
        return sum(value["numbers"])

    @task
    def fail():
        raise RuntimeError("this task always fails")

    @task(retries=1, retry_delay=datetime.timedelta(seconds=1))
    def retry():
        try_number = get_current_context()["ti"].try_number
        if try_number < 2:
            raise RuntimeError(f"failing try {try_number} on purpose so that it is retried")
        return "ok"

    @task
    def sleep():
        time.sleep(float(os.environ.get("REFERENCE_SLEEP_S", "3")))

    @task
    def skip():
        raise AirflowSkipException("skipped on purpose")

    @task
    def ignore_sigterm():
        time.sleep(300)

    @task
    def no_terminal():
        os._exit(int(os.environ.get("REFERENCE_EXIT_CODE", "0")))

    @task
    def use_secret():
        conn = BaseHook.get_connection("peer_conn")
        print(f"use_secret: password={conn.password}")

    hello()
    read_var_conn()
    push_xcom() >> pull_xcom()
    fail()
    retry()
    sleep()
    skip()
    ignore_sigterm()
    no_terminal()
    use_secret()

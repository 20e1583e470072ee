"""``example_dag`` for the compose environment's Airflow.

It has exactly the task ids of the reference runtime's ``example_dag``
(runtimes/reference/example_dags.py) and the same one dependency (``push_xcom >> pull_xcom``),
so that Airflow creates a task instance for every task supervisor-sim can run. The bodies are
placeholders: under supervisor-sim each task runs in the reference runtime, never here. Only
``retry`` has a retry, as in the reference bundle's expectations (max_tries=1).

The airflow-init service registers this file with ``airflow dags reserialize``.
"""

from __future__ import annotations

import datetime

from airflow.sdk import DAG, task

with DAG(
    dag_id="example_dag",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1),
    catchup=False,
    default_args={"retries": 0},
    tags=["supervisor-sim"],
):

    @task
    def hello():
        print("hello")

    @task
    def read_var_conn():
        return None

    @task
    def push_xcom():
        return {"numbers": [1, 2, 3]}

    @task
    def pull_xcom():
        return None

    @task
    def fail():
        raise RuntimeError("this task always fails")

    @task(retries=1, retry_delay=datetime.timedelta(seconds=1))
    def retry():
        return None

    @task
    def sleep():
        return None

    @task
    def skip():
        return None

    @task
    def ignore_sigterm():
        return None

    @task
    def no_terminal():
        return None

    @task
    def use_secret():
        return None

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

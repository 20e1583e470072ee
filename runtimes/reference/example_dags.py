"""Example DAG bundle for the reference runtime (the default ``--bundle``).

A bundle is a plain Python file. ``runtime.py`` loads it and reads:

* ``DAGS``: ``{dag_id: {task_id: function}}``. Each function takes the runtime's ``TaskContext``
  and may return a value, which becomes the ``return_value`` XCom.
* ``DEPENDENCIES``: ``{dag_id: {task_id: [upstream task ids]}}``. The runtime ignores it; it is
  there for a driver that runs a whole DAG in dependency order.

The file uses only the standard library and does not import ``runtime.py``. Tasks reach the
runtime through ``ctx`` (``ctx.SkipTask`` and so on), so the supervisor side can also import this
module to read ``DEPENDENCIES``.

Each task exercises one supervisor behaviour. Tests choose one with ``ti.task_id``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any


def hello(ctx: Any) -> None:
    """Log one line and succeed, with no XCom."""
    ctx.log.info("Hello from the reference runtime")


def read_var_conn(ctx: Any) -> dict[str, Any]:
    """Read a variable and a connection. The result is pushed as the return_value XCom."""
    value = ctx.get_variable("peer_var")
    conn = ctx.get_connection("peer_conn")
    # No mask_secret call: the supervisor registers the connection password itself.
    ctx.log.info("Read connection", host=conn.get("host"), login=conn.get("login"))
    return {"var": value, "host": conn.get("host")}


def push_xcom(ctx: Any) -> dict[str, Any]:
    """Return a value, which the runtime pushes as the return_value XCom."""
    return {"numbers": [1, 2, 3]}


def pull_xcom(ctx: Any) -> int:
    """Pull push_xcom's return value from the same run and return the sum of its numbers."""
    value = ctx.xcom_pull("push_xcom")
    if value is None:
        raise ValueError("no return_value XCom from push_xcom in this run")
    total = sum(value["numbers"])
    ctx.log.info("Summed upstream numbers", total=total)
    return total


def fail(ctx: Any) -> None:
    """Always raise. Ends as failed, or as up_for_retry when the server says should_retry."""
    raise RuntimeError("this task always fails")


def retry(ctx: Any) -> str:
    """Fail on the first try and succeed from try 2. Needs max_tries >= 1 to be retried."""
    if ctx.try_number < 2:
        raise RuntimeError(f"failing try {ctx.try_number} on purpose so that it is retried")
    ctx.log.info("Succeeded after a retry", try_number=ctx.try_number)
    return "ok"


def sleep(ctx: Any) -> None:
    """Sleep REFERENCE_SLEEP_S seconds (default 3), logging progress, so heartbeats can run."""
    total = float(os.environ.get("REFERENCE_SLEEP_S", "3"))
    start = time.monotonic()
    # Sleep in short steps so the log shows the task is still alive.
    while (elapsed := time.monotonic() - start) < total:
        time.sleep(min(0.5, total - elapsed))
        ctx.log.info("Sleeping", elapsed=round(time.monotonic() - start, 2), total=total)
    ctx.log.info("Done sleeping", total=total)


def skip(ctx: Any) -> None:
    """Raise SkipTask, which ends the task as skipped."""
    raise ctx.SkipTask("skipped on purpose")


def ignore_sigterm(ctx: Any) -> None:
    """Ignore SIGTERM, start a grandchild, and hang without sending anything.

    This exercises the supervisor's kill escalation (SIGTERM, then SIGKILL). The grandchild
    ``sleep 300`` is in the same process group. It inherits the ignored SIGTERM (ignored
    dispositions survive exec), so only SIGKILL of the group, or its own 300 s, ends it.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    grandchild = subprocess.Popen(["sleep", "300"])
    ctx.log.info("Ignoring SIGTERM", grandchild_pid=grandchild.pid, pid=os.getpid())
    while True:
        time.sleep(1)


def no_terminal(ctx: Any) -> None:
    """Close both sockets and exit with REFERENCE_EXIT_CODE (default 0); no terminal message."""
    ctx.exit_without_terminal(int(os.environ.get("REFERENCE_EXIT_CODE", "0")))


def use_secret(ctx: Any) -> None:
    """Log a connection password and a variable value unmasked, so the supervisor's masking can
    be tested."""
    conn = ctx.get_connection("peer_conn")
    ctx.log.info("Using connection", conn_id="peer_conn", password=conn.get("password"))
    token = ctx.get_variable("api_token")
    ctx.log.info("Using API token", api_token=token)
    # The same secret on stdout exercises masking of captured output too.
    print(f"use_secret: password={conn.get('password')}", flush=True)
    print(f"use_secret: api_token={token}", file=sys.stderr, flush=True)


DAGS: dict[str, dict[str, Any]] = {
    "example_dag": {
        "hello": hello,
        "read_var_conn": read_var_conn,
        "push_xcom": push_xcom,
        "pull_xcom": pull_xcom,
        "fail": fail,
        "retry": retry,
        "sleep": sleep,
        "skip": skip,
        "ignore_sigterm": ignore_sigterm,
        "no_terminal": no_terminal,
        "use_secret": use_secret,
    }
}

# Upstream task ids per task. Every task is listed, so a task with [] is a root.
DEPENDENCIES: dict[str, dict[str, list[str]]] = {
    "example_dag": {
        "hello": [],
        "read_var_conn": [],
        "push_xcom": [],
        "pull_xcom": ["push_xcom"],
        "fail": [],
        "retry": [],
        "sleep": [],
        "skip": [],
        "ignore_sigterm": [],
        "no_terminal": [],
        "use_secret": [],
    }
}

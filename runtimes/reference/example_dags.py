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

``requests_dag`` holds the tasks that go beyond variables and XComs: ``tour`` sends one request of
every group the supervisor serves (DAG runs, task instances, the DAG, assets, state stores,
Human-in-the-loop) and logs each reply's type; ``produce_asset`` reports an asset event with its
``SucceedTask``; ``consume_asset`` reads it back in a later task.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

#: The asset and alias ``requests_dag`` uses (declare them in the fixtures: examples/fixtures.toml).
TOUR_ASSET = {"name": "tour_asset", "uri": "s3://supervisor-sim/tour", "type": "Asset"}
TOUR_ALIAS = "tour_alias"


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


# --- requests_dag ------------------------------------------------------------------------------


def _reply_type(reply: dict[str, Any] | None, error: dict[str, Any] | None) -> str:
    """What came back: the body's type, "error:<ErrorType>" for the error slot, or "ack"."""
    if error is not None:
        return f"error:{error.get('error')}"
    return "ack" if reply is None else str(reply.get("type"))


def tour(ctx: Any) -> None:
    """Send one request of every group the supervisor serves; log each reply type; succeed."""
    now = datetime.now(UTC)
    ti_id, dag_id, run_id = ctx.ti.get("id"), ctx.dag_id, ctx.run_id
    asset, alias = TOUR_ASSET, TOUR_ALIAS
    triggered = {"type": "TriggerDagRun", "dag_id": dag_id, "run_id": f"{run_id}__triggered"}
    requests: list[dict[str, Any]] = [
        # DAG runs
        {"type": "GetDagRun", "dag_id": dag_id, "run_id": run_id},
        {"type": "GetDagRunState", "dag_id": dag_id, "run_id": run_id},
        {"type": "GetDRCount", "dag_id": dag_id, "states": ["running", "success"]},
        {"type": "GetPreviousDagRun", "dag_id": dag_id, "logical_date": now},
        {**triggered, "conf": {"from": "tour"}},
        triggered,  # the run exists now: DAGRUN_ALREADY_EXISTS
        {**triggered, "reset_dag_run": True},  # cleared instead
        # task instances
        {"type": "GetTICount", "dag_id": dag_id, "run_ids": [run_id]},
        {"type": "GetTaskStates", "dag_id": dag_id, "run_ids": [run_id]},
        {"type": "GetTaskBreadcrumbs", "dag_id": dag_id, "run_id": run_id},
        {"type": "GetPreviousTI", "dag_id": dag_id, "task_id": ctx.task_id},
        {"type": "GetPrevSuccessfulDagRun", "ti_id": ti_id},
        {"type": "GetTaskRescheduleStartDate", "ti_id": ti_id, "try_number": ctx.try_number},
        {"type": "ValidateInletsAndOutlets", "ti_id": ti_id},
        # the DAG
        {"type": "GetDag", "dag_id": dag_id},
        # assets
        {"type": "GetAssetByName", "name": asset["name"]},
        {"type": "GetAssetByUri", "uri": "s3://supervisor-sim/no-such-asset"},
        {"type": "GetAssetsByAlias", "alias_name": alias},
        {"type": "GetAssetEventByAsset", "name": asset["name"], "uri": None},
        {"type": "GetAssetEventByAssetAlias", "alias_name": alias, "limit": 5},
        # task state store
        {"type": "SetTaskStateStore", "ti_id": ti_id, "key": "cursor", "value": {"page": 3},
         "expires_at": None},
        {"type": "GetTaskStateStore", "ti_id": ti_id, "key": "cursor"},
        {"type": "DeleteTaskStateStore", "ti_id": ti_id, "key": "cursor"},
        {"type": "GetTaskStateStore", "ti_id": ti_id, "key": "cursor"},  # TASK_STORE_NOT_FOUND
        {"type": "ClearTaskStateStore", "ti_id": ti_id},
        # asset state store
        {"type": "SetAssetStateStoreByName", "name": asset["name"], "key": "watermark",
         "value": "2026-01-01"},
        {"type": "GetAssetStateStoreByUri", "uri": asset["uri"], "key": "watermark"},
        {"type": "DeleteAssetStateStoreByUri", "uri": asset["uri"], "key": "watermark"},
        {"type": "ClearAssetStateStoreByName", "name": asset["name"]},
        # Human in the loop: the task supervisor serves only the creation
        {"type": "CreateHITLDetailPayload", "ti_id": ti_id, "options": ["approve", "reject"],
         "subject": "Ship it?", "params": {}, "assigned_users": []},
        {"type": "UpdateHITLDetail", "ti_id": ti_id, "chosen_options": ["approve"]},
        # fork mode only: an error over the TCP comm socket
        {"type": "ResendLoggingFD"},
    ]  # fmt: skip
    for body in requests:
        reply, error = ctx.request(body)
        ctx.log.info("Reply", request=body["type"], reply=_reply_type(reply, error))


def produce_asset(ctx: Any) -> None:
    """Succeed with TOUR_ASSET as outlet and one outlet event, so the server records an event.

    The runtime's own terminal message has no outlets, so this task sends its SucceedTask
    itself and then exits without another one.
    """
    asset = TOUR_ASSET
    extra = {"rows": int(os.environ.get("REFERENCE_ASSET_ROWS", "42")), "producer": ctx.run_id}
    succeed = {
        "type": "SucceedTask",
        "state": "success",
        "end_date": datetime.now(UTC),
        "task_outlets": [asset],
        "outlet_events": [
            {"dest_asset_key": {"name": asset["name"], "uri": asset["uri"]}, "extra": extra}
        ],
        "rendered_map_index": None,
    }
    reply, error = ctx.request(succeed)
    if reply is not None or error is not None:
        raise ctx.SupervisorError(error or reply)
    ctx.log.info("Asset event reported", asset=asset["name"], extra=extra)
    ctx.exit_without_terminal(0)


def consume_asset(ctx: Any) -> dict[str, Any]:
    """Read TOUR_ASSET's events (newest first) and return how many there are and the latest."""
    reply, error = ctx.request(
        {
            "type": "GetAssetEventByAsset",
            "name": TOUR_ASSET["name"],
            "uri": TOUR_ASSET["uri"],
            "ascending": False,
        }
    )
    if error is not None or reply is None or reply.get("type") != "AssetEventsResult":
        raise ctx.SupervisorError(error or reply or {"error": "GENERIC_ERROR"})
    events = reply["asset_events"]
    if not events:
        raise ValueError(f"no events for asset {TOUR_ASSET['name']!r} yet")
    latest = events[0]
    ctx.log.info("Read asset events", count=len(events), source=latest.get("source_task_id"))
    return {
        "count": len(events),
        "source": [latest.get("source_dag_id"), latest.get("source_run_id"),
                   latest.get("source_task_id")],
        "extra": latest.get("extra"),
    }  # fmt: skip


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
    },
    "requests_dag": {
        "tour": tour,
        "produce_asset": produce_asset,
        "consume_asset": consume_asset,
    },
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
    },
    "requests_dag": {"tour": [], "produce_asset": [], "consume_asset": ["produce_asset"]},
}

"""A second example bundle for `run-dag`: fan-out / fan-in, a mapped task, a failure chain.

    ./supervisor-sim run-dag fanout_dag --runtime \
        "{python} runtimes/reference/runtime.py --bundle runtimes/reference/fanout_dags.py"

``fanout_dag``: extract -> (transform_a, transform_b, transform_c) -> load, and
extract -> square (mapped over extract's list) -> total. Each transform sleeps
FANOUT_SLEEP_S seconds (default 0.5), so the run's wall time shows the parallelism.
``failing_dag``: flaky (fails its first try, retries once) -> broken (always fails) -> cleanup
(upstream_failed), and skipper (skips) -> after_skip (skipped).
``wide_dag``, 60 tasks for run-dag's live view: begin -> part_00 ... part_54 -> report -> notify,
and begin -> cube (mapped over begin's list of 6) -> sum_cubes. Each part sleeps
WIDE_SLEEP_S (default 0.3) times 1 to 5 seconds; part_13 raises, part_42 dies without a terminal
message, so report and notify end upstream_failed.
"""

from __future__ import annotations

import os
import time
from typing import Any

WIDE_PARTS = 55


def _pause() -> None:
    time.sleep(float(os.environ.get("FANOUT_SLEEP_S", "0.5")))


def extract(ctx: Any) -> list[int]:
    return [1, 2, 3, 4]


def transform_a(ctx: Any) -> int:
    _pause()
    return sum(ctx.xcom_pull("extract"))


def transform_b(ctx: Any) -> int:
    _pause()
    return max(ctx.xcom_pull("extract"))


def transform_c(ctx: Any) -> int:
    _pause()
    return len(ctx.xcom_pull("extract"))


def load(ctx: Any) -> int:
    parts = [ctx.xcom_pull(t) for t in ("transform_a", "transform_b", "transform_c")]
    ctx.log.info("Loaded", parts=parts)
    return sum(parts)


def square(ctx: Any) -> int:
    index = ctx.ti["map_index"]
    return ctx.xcom_pull("extract")[index] ** 2


def total(ctx: Any) -> int:
    values = [ctx.xcom_pull("square", map_index=i) for i in range(4)]
    return sum(values)


def flaky(ctx: Any) -> str:
    if ctx.ti["try_number"] < 2:
        raise RuntimeError("first try fails")
    return "ok"


def broken(ctx: Any) -> None:
    raise RuntimeError("always fails")


def cleanup(ctx: Any) -> None:
    ctx.log.info("never runs: its upstream failed")


def skipper(ctx: Any) -> None:
    raise ctx.SkipTask("nothing to do today")


def after_skip(ctx: Any) -> None:
    ctx.log.info("never runs: its upstream was skipped")


def begin(ctx: Any) -> list[int]:
    return list(range(6))


def part(ctx: Any) -> int:
    index = int(ctx.task_id.rsplit("_", 1)[1])
    time.sleep(float(os.environ.get("WIDE_SLEEP_S", "0.3")) * (1 + index % 5))
    if index == 13:
        raise ValueError(f"partition {index}: malformed row 1207")
    if index == 42:
        os._exit(3)  # no terminal message: the supervisor's verdict is all there is
    ctx.log.info("Partition done", rows=1000 + index)
    return index


def report(ctx: Any) -> None:
    ctx.log.info("never runs: two partitions failed")


def cube(ctx: Any) -> int:
    return ctx.xcom_pull("begin")[ctx.ti["map_index"]] ** 3


def sum_cubes(ctx: Any) -> int:
    return sum(ctx.xcom_pull("cube", map_index=i) for i in range(6))


PARTS = [f"part_{i:02d}" for i in range(WIDE_PARTS)]

DAGS = {
    "fanout_dag": {
        "extract": extract, "transform_a": transform_a, "transform_b": transform_b,
        "transform_c": transform_c, "load": load, "square": square, "total": total,
    },
    "failing_dag": {
        "flaky": flaky, "broken": broken, "cleanup": cleanup, "skipper": skipper,
        "after_skip": after_skip,
    },
    "wide_dag": {
        "begin": begin, **dict.fromkeys(PARTS, part), "report": report, "notify": report,
        "cube": cube, "sum_cubes": sum_cubes,
    },
}  # fmt: skip
DEPENDENCIES = {
    "fanout_dag": {
        "transform_a": ["extract"], "transform_b": ["extract"], "transform_c": ["extract"],
        "load": ["transform_a", "transform_b", "transform_c"], "square": ["extract"],
        "total": ["square"],
    },
    "failing_dag": {"broken": ["flaky"], "cleanup": ["broken"], "after_skip": ["skipper"]},
    "wide_dag": {
        **{p: ["begin"] for p in PARTS}, "report": PARTS, "notify": ["report"],
        "cube": ["begin"], "sum_cubes": ["cube"],
    },
}  # fmt: skip
MAPPED = {"fanout_dag": {"square": "extract"}, "wide_dag": {"cube": "begin"}}
TASK_SETTINGS = {"failing_dag": {"flaky": {"retries": 1, "retry_delay": 0.2}}}

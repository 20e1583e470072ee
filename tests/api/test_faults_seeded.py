"""A seeded probability fault plan gives the same transcript on every run (timestamps aside).

``run-task`` of the reference runtime's ``read_var_conn`` runs twice with the same plan (every
call answered 503 with probability 0.5, connection reads reset with probability 0.3, seed 3).
What may differ between two runs, and only that, is made comparable: times, durations and dates;
ids minted per run (the TI's, correlation ids: named by order of appearance); the runtime's pid
and ports; the bytes of a frame that carries a date; the footer's digest of the file's bytes;
and the interleaving of the runtime's stdout, stderr and log channels with the rest, which the
OS schedules (log and process records are compared as a multiset, every other record in order).
The heartbeat interval is longer than the run, and the client's back-off is short
(``AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_*``). A last test drives the plan alone with
heartbeats interleaved in two ways, which timing decides in a real run.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from _cli import cli

from supervisor_sim.api import FaultPlan

PLAN = "*:503@p=0.5;GetConnection:reset@p=0.3;seed={seed}"
ENV = {
    "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MIN": "0.001",
    "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MAX": "0.002",
}
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?")
_ADDR = re.compile(r"127\.0\.0\.1:\d+")
_UNORDERED = {"log", "process"}


def _run(tmp: Path, name: str, seed: int) -> Path:
    transcript = tmp / f"{name}.jsonl"
    proc = cli(
        "run-task", "example_dag", "read_var_conn", "--state", ":memory:",
        "--heartbeat-interval", "600", "--fault", PLAN.format(seed=seed),
        "--transcript", str(transcript), "-q", "--json",
        cwd=tmp, env=ENV,
    )  # fmt: skip
    assert transcript.exists(), proc.stderr[-3000:]
    return transcript


def _comparable(path: Path) -> tuple[list[str], Counter[str]]:
    """(the ordered records, the multiset of log and process records), normalised."""
    ids: dict[str, str] = {}
    ordered: list[str] = []
    unordered: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        record: dict[str, Any] = json.loads(line)
        # sha256: the footer's digest of the file's bytes, times included.
        # cause: the seq of the frame that made an HTTP call, which counts the log records
        # before it, so it moves with how logs and frames interleave (as seq does).
        for key in ("t", "seq", "cause", "duration_s", "created", "command", "pid", "sha256"):
            record.pop(key, None)
        for key in ("comm_port", "logs_port"):
            record.pop(key, None)
        if record.get("record") == "frame" and '"$ts"' in json.dumps(record.get("body")):
            record["raw"] = "<bytes with a date>"
        text = json.dumps(record, sort_keys=True)
        text = _ISO.sub("<ts>", text)
        text = _UUID.sub(lambda m: ids.setdefault(m.group(0), f"<id{len(ids)}>"), text)
        text = _ADDR.sub("<addr>", text)
        text = re.sub(r'"pid": \d+', '"pid": "<pid>"', text)
        if record.get("record") in _UNORDERED:
            unordered[text] += 1
        else:
            ordered.append(text)
    return ordered, unordered


def _faults(path: Path) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [
        {k: v for k, v in r["fault"].items() if k != "path"}
        | {"path": _UUID.sub("<id>", r["fault"].get("path", ""))}
        for r in records
        if r.get("record") == "note" and "fault" in r
    ]


def test_a_seeded_plan_gives_the_same_transcript_twice(tmp_path: Path) -> None:
    """Two runs of one seeded plan inject the same faults on the same calls and record the same
    transcript, record for record, once times and per-run ids are set aside."""
    first, second = _run(tmp_path, "first", 3), _run(tmp_path, "second", 3)
    assert _faults(first), "the plan injected nothing: the test would prove nothing"
    assert _faults(second) == _faults(first)
    ordered, unordered = _comparable(first)
    assert _comparable(second) == (ordered, unordered)


def test_another_seed_takes_other_calls(tmp_path: Path) -> None:
    """The seed is what decides: seed 4 injects on other calls than seed 3."""
    assert _faults(_run(tmp_path, "three", 3)) != _faults(_run(tmp_path, "four", 4))


def _notes(order: list[str]) -> list[dict[str, Any]]:
    plan = FaultPlan.parse(["*:503@p=0.5;seed=3"])
    notes: list[dict[str, Any]] = []
    plan.on_record = notes.append
    for call in order:
        method, path = call.split(" ")
        plan.before(method, path)
    return [n for n in notes if "variables" in n["path"]]


def test_a_seeded_fault_says_the_same_whatever_heartbeats_came_between() -> None:
    """The faults on a route, and what their records say, do not depend on how many heartbeats
    came between the calls (their number depends on timing)."""
    beat = "PUT /execution/task-instances/0190a000-0000-7000-8000-000000000001/heartbeat"
    gets = [f"GET /execution/variables/k{i}" for i in range(12)]
    sparse = [beat, *gets]
    dense = [c for get in gets for c in (beat, beat, get)]
    assert _notes(sparse), "the plan injected nothing on the route"
    assert _notes(dense) == _notes(sparse)

"""Heartbeat lateness while a runtime floods the supervisor with ``MaskSecret`` requests.

Airflow's supervisor serves requests and heartbeats from one loop; supervisor-sim gives
heartbeats their own task, and must keep them on time however much masking work arrives (each
``MaskSecret`` is a secret learnt, and every record after it is masked with all of them). A
real ``run-task`` runs ``tests/children/hostile.py mask-flood``: the runtime sends N
``MaskSecret`` requests without waiting for the replies, then lingers while heartbeats go on.
From the transcript's records:

* lateness of each heartbeat: when it started, minus when it was due (``interval`` after the
  previous one's answer, Airflow's cadence); the worst and the median, over the whole run and
  over the heartbeats due while the requests were being served;
* how long serving the N requests took (first request's record to the last reply's), and the
  CPU time and largest peak RSS of supervisor-sim and its runtime.

    heartbeat_under_load.py [--requests 10000] [--interval 0.2] [--linger 2] [--tmp DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "tests" / "children" / "hostile.py"


def measure(requests: int, interval: float, linger: float, tmp: Path) -> dict[str, Any]:
    transcript = tmp / f"heartbeat-{requests}.jsonl"
    cmd = [
        sys.executable, "-m", "supervisor_sim", "--config", str(ROOT / "supervisor-sim.toml"),
        "run-task", "d", "t",
        "--runtime", f"{sys.executable} {HOSTILE} mask-flood",
        "--state", ":memory:", "--transcript", str(transcript), "--json", "-q",
        "--heartbeat-interval", str(interval),
    ]  # fmt: skip
    env = {"HOSTILE_N": str(requests), "HOSTILE_LINGER": str(linger)}
    started = time.perf_counter()
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp,
        env={**os.environ, **env},
        check=False,
    )
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"run-task exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    beats = [r for r in records if r.get("record") == "http" and r.get("cause") == "heartbeat"]
    masks = [
        r
        for r in records
        if r.get("record") == "frame" and r.get("dir") == "in" and r.get("type") == "MaskSecret"
    ]
    last_id = masks[-1]["id"] if masks else None
    acks = [
        r
        for r in records
        if r.get("record") == "frame" and r.get("dir") == "out" and r.get("id") == last_id
    ]
    first_t = masks[0]["t"] if masks else 0.0
    served_t = acks[-1]["t"] if acks else first_t
    late_all: list[float] = []
    late_flood: list[float] = []
    for a, b in pairwise(beats):
        due = a["t"] + interval
        late = (b["t"] - b["duration_s"]) - due
        late_all.append(late)
        if first_t <= due <= served_t:
            late_flood.append(late)
    return {
        "requests": requests,
        "served": len(masks),
        "interval_s": interval,
        "heartbeats": len(beats),
        "serve_s": round(served_t - first_t, 4),
        "late_max_ms": _ms(max(late_all, default=None)),
        "late_p50_ms": _ms(statistics.median(late_all) if late_all else None),
        "flood_heartbeats": len(late_flood),
        "flood_late_max_ms": _ms(max(late_flood, default=None)),
        "wall_s": round(wall, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e3, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--linger", type=float, default=2.0)
    parser.add_argument("--tmp", type=Path)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.tmp or Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        result = measure(args.requests, args.interval, args.linger, tmp)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['served']:,} MaskSecret requests served in {result['serve_s']:.2f} s; "
            f"{result['heartbeats']} heartbeats every {args.interval:g} s, the latest "
            f"{result['late_max_ms']} ms late ({result['flood_late_max_ms']} ms while the "
            f"requests were served, median {result['late_p50_ms']} ms); CPU {result['cpu_s']} s, "
            f"peak RSS {result['peak_rss_mb']} MB (supervisor-sim and the runtime)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Replay time against the run it replays, at growing sizes.

For each size N: ``supervisor-sim run-task`` records the lock-step bench child (bench/child.py,
N GetVariable round trips) into a transcript, then ``supervisor-sim replay`` replays it; both are
timed from the outside as whole commands (start-up included). Replay answers every request from
the transcript, so its time should grow with N as the run's does: the ratio replay / run stays
flat (goal: at most 1.5 at 100,000 requests, docs/performance.md).

    replay_bench.py [--sizes 10000,100000] [--tmp DIR]   prints one JSON object

Run by ``bench/run.py`` (``--only replay``); each command runs in a process of its own.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CLI = [sys.executable, "-m", "supervisor_sim"]
CHILD = [sys.executable, str(HERE / "child.py")]


class BenchError(Exception):
    pass


def _timed(cmd: list[str], cwd: Path, timeout: float) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise BenchError(
            f"`{shlex.join(cmd)}` exited {proc.returncode}\n{proc.stdout[-1500:]}\n"
            f"{proc.stderr[-3000:]}"
        )
    return wall, proc


def measure(n: int, tmp: Path) -> dict[str, Any]:
    """Record N round trips, replay them; wall times of both commands and their ratio."""
    fixtures = tmp / "bench-fixtures.toml"
    if not fixtures.exists():
        fixtures.write_text('[variables]\nbench_var = "bench-value"\n')
    transcript = tmp / f"replay-{n}-{time.monotonic_ns()}.jsonl"
    runtime = shlex.join([*CHILD, "--n", str(n), "--warmup", "0"])
    record = [*CLI, "run-task", "bench", "bench_task", "--runtime", runtime, "--state", ":memory:"]
    record += ["--fixtures", str(fixtures), "--transcript", str(transcript), "-q"]
    record += ["--log-format", "json"]
    timeout = 120 + n / 200  # generous: ~0.2 ms per round trip on a loaded 2-core machine
    # From a scratch directory: no project config, nothing written into the checkout.
    run_s, _ = _timed(record, tmp, timeout)
    replay_s, proc = _timed([*CLI, "replay", str(transcript), "-q", "--json"], tmp, timeout * 2)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if not result.get("matched"):
        raise BenchError(f"the replay of {n} requests diverged: {result['divergences'][:3]}")
    size = transcript.stat().st_size
    transcript.unlink()
    return {
        "requests": n,
        "run_s": run_s,
        "replay_s": replay_s,
        "ratio": replay_s / run_s,
        "replay_us_per_req": replay_s / n * 1e6,
        "transcript_mb": size / 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated request counts")
    parser.add_argument("--tmp", type=Path, help="scratch directory (default: a new temporary)")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="supsim-replay-", dir=args.tmp) as name:
        tmp = Path(name)
        try:
            results = [measure(n, tmp) for n in sizes]
        except (BenchError, subprocess.TimeoutExpired) as exc:
            print(str(exc), file=sys.stderr)
            return 1
    print(json.dumps({"sizes": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

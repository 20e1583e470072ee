"""run-dag wall time against the DAG's critical path and the sum of its task times.

    .venv/bin/python bench/dag_critical_path.py [--sleep 1.0] [--parallelism 4] [--runs 3]

Runs fanout_dag (runtimes/reference/fanout_dags.py: extract -> three transforms that each sleep
--sleep seconds -> load, and a task mapped 4 ways) and reports, per run and as medians: the
wall time, the critical path (the longest chain of task durations through the dependency
graph), the sum of all task durations, and wall / critical path. With enough parallelism the
wall time should sit near the critical path, far below the sum. It asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEPS = {
    "transform_a": ["extract"],
    "transform_b": ["extract"],
    "transform_c": ["extract"],
    "load": ["transform_a", "transform_b", "transform_c"],
    "square": ["extract"],
    "total": ["square"],
    "extract": [],
}


def critical_path(durations: dict[str, float]) -> float:
    done: dict[str, float] = {}

    def finish(task: str) -> float:
        if task not in done:
            done[task] = durations[task] + max((finish(u) for u in DEPS[task]), default=0.0)
        return done[task]

    return max(finish(t) for t in durations)


def one_run(sleep: float, parallelism: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        runtime = (
            f"{sys.executable} {ROOT / 'runtimes/reference/runtime.py'} --bundle "
            f"{ROOT / 'runtimes/reference/fanout_dags.py'}"
        )
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "supervisor_sim",
                "--config",
                str(ROOT / "supervisor-sim.toml"),
                "run-dag",
                "fanout_dag",
                "--runtime",
                runtime,
                "--parallelism",
                str(parallelism),
                "--state",
                f"{tmp}/s.sqlite",
                "--no-transcript",
                "--json",
                "-q",
            ],
            cwd=tmp,
            env={**os.environ, "FANOUT_SLEEP_S": str(sleep)},
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    durations = {t: v["duration_s"] or 0.0 for t, v in result["tasks"].items()}
    return {
        "wall_s": result["wall_s"],
        "critical_path_s": round(critical_path(durations), 3),
        "sum_s": round(sum(durations.values()), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sleep", type=float, default=1.0)
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    runs = [one_run(args.sleep, args.parallelism) for _ in range(args.runs)]
    med = {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}
    med["wall_over_critical_path"] = round(med["wall_s"] / med["critical_path_s"], 2)
    med["wall_over_sum"] = round(med["wall_s"] / med["sum_s"], 2)
    print(
        f"fanout_dag, parallelism {args.parallelism}, transforms sleep {args.sleep}s, "
        f"{args.runs} runs (medians):"
    )
    for key, value in med.items():
        print(f"  {key:<26} {value}")
    if args.out:
        args.out.write_text(json.dumps({"runs": runs, "median": med}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

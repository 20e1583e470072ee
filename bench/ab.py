"""A/B: round trips (and the stub API alone) with two copies of the supervisor_sim package.

    .venv/bin/python bench/ab.py A_DIR B_DIR [--n 10000] [--runs 5] [--mode roundtrip|stubapi]
                                 [-- --transcript PATH]   (more sim_bench.py arguments)

Each directory holds a ``supervisor_sim/`` package (e.g. a scratch copy with one change). Runs
alternate A, B, A, B, ... so that machine load hits both alike; medians are printed. This is how
the gains in docs/performance.md were measured.
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

HERE = Path(__file__).resolve().parent


def run_once(tree: Path, mode: str, n: int, tmp: str, extra: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(HERE / "sim_bench.py"), mode, "--n", str(n)]
    if mode == "roundtrip":
        cmd += ["--tmp", tmp]
    cmd += extra
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def metric(result: dict, mode: str) -> dict[str, float]:
    if mode == "roundtrip":
        child = result["child"]
        requests = child["n"] + child["warmup"]
        return {
            "req_per_s": child["req_per_s"],
            "cpu_us_per_req": result["session_cpu_s"] / requests * 1e6,
        }
    out = {}
    for key, value in result.items():
        if isinstance(value, dict):
            out[f"{key}_rps"] = value["req_per_s"]
            out[f"{key}_cpu_us"] = value["cpu_us_per_req"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mode", default="roundtrip", choices=["roundtrip", "stubapi"])
    args, extra = parser.parse_known_args()
    args.extra = [a for a in extra if a != "--"]  # more sim_bench.py arguments
    samples: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            for name, tree in (("A", args.a), ("B", args.b)):
                samples[name].append(
                    metric(run_once(tree.resolve(), args.mode, args.n, tmp, args.extra), args.mode)
                )
    keys = list(samples["A"][0])
    print(f"{'metric':<16}{'A median':>12}{'B median':>12}{'B/A':>8}")
    for key in keys:
        a = statistics.median(s[key] for s in samples["A"])
        b = statistics.median(s[key] for s in samples["B"])
        print(f"{key:<16}{a:>12.1f}{b:>12.1f}{b / a:>8.2f}")
    print(json.dumps({"A": samples["A"], "B": samples["B"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A/B of ``comm_spin`` (30 µs, the default, against 0) on round trips, alternated, per condition.

    .venv/bin/python bench/spin_ab.py [--n 10000] [--runs 5] [--conditions quiet,loaded]
                                      [--spins 0,30,60]   (other spins to compare, in µs)

For each of ``--runs`` rounds and each condition (``bench/run.py``'s ``Condition``: ``loaded``
keeps the last CPU busy), runs ``bench/sim_bench.py``'s round-trip session once with the default
``comm_spin`` and once with ``comm_spin=0``, alternating which goes first; prints the medians of
req/s and of the supervisor's CPU µs per request as the child and ``getrusage`` saw them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import Condition  # noqa: E402

_INNER = """
import json, sys, trio
from dataclasses import replace
from pathlib import Path
sys.path.insert(0, {here!r})
import sim_bench
from supervisor_sim.supervision import SupervisorConfig
spin = {spin!r}
if spin is not None:
    sim_bench.SupervisorConfig = lambda: replace(SupervisorConfig(), comm_spin=spin)
out = trio.run(sim_bench.roundtrip, {n}, 200, None, Path({tmp!r}))
assert out["final_state"] == "success", out
print(json.dumps(out))
"""


def once(spin: float | None, n: int, tmp: str) -> dict[str, float]:
    code = _INNER.format(here=str(HERE), spin=spin, n=n, tmp=tmp)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    child = out["child"]
    requests = child["n"] + child["warmup"]
    return {
        "req_per_s": child["req_per_s"],
        "cpu_us_per_req": out["session_cpu_s"] / requests * 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--conditions", default="quiet,loaded")
    parser.add_argument(
        "--spins", help="comma-separated spins in µs to compare (default: the default against 0)"
    )
    args = parser.parse_args()
    variants: dict[str, float | None] = {"spin=30us": None, "spin=0": 0.0}
    if args.spins:
        variants = {f"spin={v}us": float(v) / 1e6 for v in args.spins.split(",")}
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.runs):
            for cond in args.conditions.split(","):
                with Condition(cond):
                    order = list(variants.items())
                    if r % 2:
                        order.reverse()
                    for name, spin in order:
                        m = once(spin, args.n, tmp)
                        results.setdefault(cond, {}).setdefault(name, []).append(m)
                        print(cond, name, json.dumps(m), flush=True)
    summary = {
        cond: {
            name: {k: round(statistics.median(m[k] for m in runs), 1) for k in runs[0]}
            for name, runs in by_variant.items()
        }
        for cond, by_variant in results.items()
    }
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Instructions per round trip in the supervisor, counted by callgrind (independent of load).

    .venv/bin/python bench/callgrind_roundtrip.py [--small 300] [--large 1300] [--transcript]
                                                  [--tree DIR] [--runs 1]

Runs ``bench/sim_bench.py``'s round-trip session (run-task's wiring, embedded stub) twice under
``valgrind --tool=callgrind`` (the supervisor process only; the child is not traced), with
``small`` and then ``large`` round trips, and prints ``(Ir(large) - Ir(small)) / (large -
small)``: the supervisor's user-space instructions per request, start-up and shut-down cancelled
out. ``comm_spin`` is set to 0 for the count, so polling does not add instructions that depend
on how fast the child answers. ``--tree DIR`` counts another copy of ``supervisor_sim/`` (A/B).
Kernel time (the ``write(2)`` that wakes the runtime) is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

_INNER = """
import sys, trio
from dataclasses import replace
from pathlib import Path
sys.path.insert(0, {here!r})
import sim_bench
from supervisor_sim.supervision import SupervisorConfig
sim_bench.SupervisorConfig = lambda: replace(SupervisorConfig(), comm_spin=0.0)
out = trio.run(sim_bench.roundtrip, {n}, 0, {transcript}, Path({tmp!r}))
assert out["final_state"] == "success", out
"""


def count(n: int, tree: Path | None, transcript: bool, tmp: str) -> int:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    out_file = Path(tmp) / f"cg.{n}.out"
    tpath = f"Path({str(Path(tmp) / f't{n}.jsonl')!r})" if transcript else "None"
    code = _INNER.format(here=str(HERE), n=n, transcript=tpath, tmp=tmp)
    cmd = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out_file}",
        "--trace-children=no",
        sys.executable,
        "-c",
        code,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    match = re.search(r"Collected : (\d+)", proc.stderr)
    if not match:
        raise SystemExit(proc.stderr[-3000:])
    return int(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=300)
    parser.add_argument("--large", type=int, default=1300)
    parser.add_argument("--transcript", action="store_true")
    parser.add_argument("--tree", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small = count(args.small, args.tree, args.transcript, tmp)
        large = count(args.large, args.tree, args.transcript, tmp)
    per = (large - small) / (args.large - args.small)
    print(json.dumps({"ir_small": small, "ir_large": large, "ir_per_request": round(per)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

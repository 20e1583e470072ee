"""What starting one runtime costs the supervisor: setpriv (vfork) against the preexec hook (fork).

Runtimes get PR_SET_PDEATHSIG either through ``setpriv --pdeathsig KILL`` (no ``preexec_fn``, so
CPython starts them with vfork) or, where setpriv is missing, through a ``preexec_fn`` (which
makes CPython fork the whole supervisor). This starts ``--launches`` sleeping runtimes with
``supervision._process.start_runtime`` from a process holding ``--ballast-mb`` of touched memory
(a supervisor at 1,000 children is ~150 MB), each way in turn for ``--rounds`` alternated rounds,
and reports the supervisor's own CPU (user + sys of this process, children excluded) and wall
time per launch, medians over the rounds.

    spawn_cost.py [--launches 100] [--ballast-mb 150] [--rounds 3]   prints one JSON object
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from supervisor_sim.supervision import SupervisorConfig, _process

SLEEPER = [sys.executable, "-c", "import time; time.sleep(30)"]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def one_round(way: str, launches: int) -> dict[str, float]:
    """``launches`` runtimes started ``way`` ("setpriv" or "preexec"), then all stopped."""
    found = _process._setpriv()
    _process._SETPRIV[:] = [found if way == "setpriv" else None]
    config = SupervisorConfig()
    started = []
    try:
        cpu0, t0 = _cpu(), time.perf_counter()
        for _ in range(launches):
            started.append(_process.start_runtime(SLEEPER, {}, None, config))
        wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    finally:
        for launch in started:
            launch.close()
        _process._SETPRIV[:] = [found]
    return {"cpu_ms_per_launch": 1e3 * cpu / launches, "wall_ms_per_launch": 1e3 * wall / launches}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launches", type=int, default=100)
    parser.add_argument("--ballast-mb", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ballast = bytearray(args.ballast_mb * 2**20)
    for i in range(0, len(ballast), 4096):  # touched, so that a fork must copy its page tables
        ballast[i] = 1
    ways = ["setpriv", "preexec"] if _process._setpriv() is not None else ["preexec"]
    runs: dict[str, list[dict[str, float]]] = {way: [] for way in ways}
    for _ in range(args.rounds):
        for way in ways:
            runs[way].append(one_round(way, args.launches))
    out: dict[str, Any] = {
        "launches": args.launches,
        "ballast_mb": args.ballast_mb,
        "rounds": args.rounds,
        "setpriv": _process._setpriv(),
        "ways": {
            way: {
                key: statistics.median(r[key] for r in rs)
                for key in ("cpu_ms_per_launch", "wall_ms_per_launch")
            }
            for way, rs in runs.items()
        },
        "runs": runs,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

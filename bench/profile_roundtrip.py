"""Profile supervisor-sim's round-trip path: one session serving N GetVariable round trips.

    .venv/bin/python bench/profile_roundtrip.py [--n 20000] [--cprofile] [--html PATH]

Needs pyinstrument (``.venv/bin/pip install pyinstrument``) unless ``--cprofile`` is given. The
session is the one ``bench/sim_bench.py roundtrip`` measures (run-task's wiring, embedded stub,
no console sink, no transcript unless ``--transcript``).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sim_bench


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--transcript", type=Path)
    parser.add_argument("--cprofile", action="store_true", help="deterministic cProfile instead")
    parser.add_argument("--html", type=Path, help="also write pyinstrument's HTML report here")
    parser.add_argument("--limit", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.cprofile:
            prof = cProfile.Profile()
            prof.enable()
            result = trio.run(sim_bench.roundtrip, args.n, 200, args.transcript, Path(tmp))
            prof.disable()
            out = io.StringIO()
            stats = pstats.Stats(prof, stream=out)
            stats.sort_stats("tottime").print_stats(args.limit)
            stats.sort_stats("cumulative").print_stats(args.limit)
            print(out.getvalue())
        else:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0002)
            profiler.start()
            result = trio.run(sim_bench.roundtrip, args.n, 200, args.transcript, Path(tmp))
            profiler.stop()
            print(profiler.output_text(unicode=False, color=False, show_all=False))
            if args.html:
                args.html.write_text(profiler.output_html())
    child = result.get("child") or {}
    print(f"round trips under the profiler: {child.get('req_per_s', 0):.0f} req/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

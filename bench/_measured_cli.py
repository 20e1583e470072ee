"""``python -m supervisor_sim`` with its own peak RSS and CPU written at exit (bench helper).

    _measured_cli.py ARGS...   (BENCH_SELF_OUT=PATH: where the JSON goes)

Writes ``{"peak_rss_kb": VmHWM, "cpu_s": user+sys of this process and its threads only (not
its children), "wall_s": ...}``: what the supervisor itself used, apart from its runtimes.
``BENCH_PROFILE=PATH``: also a cProfile of the whole command, written to PATH at exit (for
finding where the time goes; the profiler's own cost makes its times no measurement).
``BENCH_GC_OUT=PATH``: every garbage collection's generation, start (perf_counter) and pause,
as JSON at exit.
"""

import atexit
import json
import os
import resource
import runpy
import sys
import time

T0 = time.perf_counter()
OUT = os.environ.pop("BENCH_SELF_OUT", None)


def _dump() -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    hwm = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    if OUT:
        with open(OUT, "w") as f:
            json.dump(
                {
                    "peak_rss_kb": hwm,
                    "cpu_s": usage.ru_utime + usage.ru_stime,
                    "wall_s": time.perf_counter() - T0,
                },
                f,
            )


atexit.register(_dump)
GC_OUT = os.environ.pop("BENCH_GC_OUT", None)
if GC_OUT:
    import gc

    _gc_runs: list[tuple[int, float, float]] = []
    _gc_start = [0.0]

    def _gc_timer(phase: str, info: dict) -> None:
        if phase == "start":
            _gc_start[0] = time.perf_counter()
        else:
            t = time.perf_counter()
            _gc_runs.append((info["generation"], _gc_start[0] - T0, t - _gc_start[0]))

    gc.callbacks.append(_gc_timer)

    def _gc_dump() -> None:
        with open(GC_OUT, "w") as f:
            json.dump(_gc_runs, f)

    atexit.register(_gc_dump)
PROFILE = os.environ.pop("BENCH_PROFILE", None)
if PROFILE:
    import cProfile

    _profiler = cProfile.Profile()
    atexit.register(lambda: (_profiler.disable(), _profiler.dump_stats(PROFILE)))
    _profiler.enable()
sys.argv = ["supervisor-sim", *sys.argv[1:]]
runpy.run_module("supervisor_sim", run_name="__main__", alter_sys=True)

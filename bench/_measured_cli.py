"""``python -m supervisor_sim`` with its own peak RSS and CPU written at exit (bench helper).

    _measured_cli.py ARGS...   (BENCH_SELF_OUT=PATH: where the JSON goes)

Writes ``{"peak_rss_kb": VmHWM, "cpu_s": user+sys of this process and its threads only (not
its children), "wall_s": ...}``: what the supervisor itself used, apart from its runtimes.
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
sys.argv = ["supervisor-sim", *sys.argv[1:]]
runpy.run_module("supervisor_sim", run_name="__main__", alter_sys=True)

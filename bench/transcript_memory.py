"""Peak memory of the commands that read a transcript, against the transcript's size.

``supervisor-sim run-task`` records the lock-step bench child (bench/child.py, N GetVariable
round trips) twice; then ``show`` (its output thrown away), ``diff`` of the two recordings and
``replay`` of the first each run in a process of their own, and each one's peak resident set
size (the kernel's ``ru_maxrss`` for it, from ``wait4``), wall time and CPU time are taken.
``x_file`` is the peak over the size of the transcript read (for ``diff``, of both together).

    transcript_memory.py [--n 100000] [--tmp DIR]   prints one JSON object

Run by ``bench/run.py`` (``--only transcript_memory``); docs/performance.md, "Transcript memory".
"""

from __future__ import annotations

import argparse
import json
import os
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


def _run(cmd: list[str], cwd: Path, timeout: float) -> dict[str, Any]:
    """Run ``cmd`` (stdout thrown away); its wall and CPU time and peak RSS."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                proc.wait()
                raise BenchError(f"`{shlex.join(cmd)}` took more than {timeout:g} s")
            time.sleep(0.02)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read()[-3000:].decode(errors="replace")
            raise BenchError(f"`{shlex.join(cmd)}` exited {proc.returncode}\n{tail}")
    return {
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux: kilobytes
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


def record(n: int, tmp: Path, name: str) -> Path:
    fixtures = tmp / "bench-fixtures.toml"
    if not fixtures.exists():
        fixtures.write_text('[variables]\nbench_var = "bench-value"\n')
    transcript = tmp / f"{name}-{n}.jsonl"
    runtime = shlex.join([*CHILD, "--n", str(n), "--warmup", "0"])
    cmd = [*CLI, "run-task", "bench", "bench_task", "--runtime", runtime, "--state", ":memory:"]
    cmd += ["--fixtures", str(fixtures), "--transcript", str(transcript), "-q"]
    cmd += ["--log-format", "json"]
    _run(cmd, tmp, 120 + n / 200)
    return transcript


def measure(n: int, tmp: Path) -> dict[str, Any]:
    a, b = record(n, tmp, "a"), record(n, tmp, "b")
    size_a, size_b = a.stat().st_size / 1e6, b.stat().st_size / 1e6
    timeout = 120 + n / 100
    commands = {
        "show": ([*CLI, "show", str(a)], size_a),
        "diff": ([*CLI, "diff", str(a), str(b)], size_a + size_b),
        "replay": ([*CLI, "replay", str(a), "-q", "--json"], size_a),
    }
    out: dict[str, Any] = {"requests": n, "transcript_mb": size_a, "commands": {}}
    for name, (cmd, read_mb) in commands.items():
        figures = _run(cmd, tmp, timeout)
        figures["x_file"] = figures["peak_rss_mb"] / read_mb
        out["commands"][name] = figures
    a.unlink()
    b.unlink()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="round trips recorded")
    parser.add_argument("--tmp", type=Path, help="scratch directory (default: a new temporary)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="supsim-tmem-", dir=args.tmp) as name:
        try:
            result = measure(args.n, Path(name))
        except BenchError as exc:
            print(str(exc), file=sys.stderr)
            return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

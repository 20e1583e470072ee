"""Log ingestion: lines/s and MB/s a runtime can push through ``--logs``, ours beside Airflow's.

    .venv/bin/python bench/log_throughput.py [--lines 100000] [--line-bytes 200]
                                             [--airflow-python PY | --no-airflow] [--json]

The runtime (``bench/_load_child.py``, mode ``logs``) reads StartupDetails, then writes
``--lines`` pre-encoded JSON log lines of about ``--line-bytes`` bytes to ``--logs`` as fast as the
socket takes them, then sends ``SucceedTask`` and exits. Three supervisors serve it:

* ``sim_console_json``: ``supervisor-sim run-task --log-format json --no-transcript``: every line
  parsed, masked and printed as a JSON line on the console (stderr, to a file);
* ``sim_transcript``: ``run-task --transcript FILE -q``: every line parsed, masked and recorded
  in the transcript (the console prints nothing);
* ``airflow``: Airflow 3.3.2's ``supervise_task`` (``bench/airflow_sup.py``), which parses each line
  and hands it to its structlog logger (no log file: ``log_path`` is not set).

Throughput is lines (and bytes) over the time from the runtime's first ``sendall`` (its own
clock) to the supervisor process's exit (the harness's clock): the supervisor must have read
every line before it can exit, so its teardown (tens of ms) is included. Each output is checked
to hold every line (console and transcript; Airflow's output is counted and reported).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PY = sys.executable
CHILD = [PY, str(HERE / "_load_child.py")]
MARK = b"bench line "


def _run(cmd: list[str], env: dict[str, str], cwd: Path, out: Path) -> tuple[int, float, str]:
    with out.open("wb") as sink:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT)
        rc = proc.wait(timeout=900)
    return rc, time.time(), out.read_bytes()[-3000:].decode(errors="replace")


def _count(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if MARK in line)


def one(kind: str, lines: int, line_bytes: int, tmp: Path, airflow_py: str | None) -> dict:
    work = tmp / f"{kind}-{time.monotonic_ns()}"
    (work / "out").mkdir(parents=True)
    env = {
        **os.environ,
        "BENCH_MODE": "logs",
        "BENCH_LINES": str(lines),
        "BENCH_LINE_BYTES": str(line_bytes),
        "BENCH_OUT_DIR": str(work / "out"),
    }
    output = work / "output.txt"
    transcript = work / "transcript.jsonl"
    if kind == "airflow":
        assert airflow_py
        env["BENCH_AIRFLOW_LOG"] = "INFO"
        cmd = [airflow_py, str(HERE / "airflow_sup.py"), "--", *CHILD]
    else:
        fixtures = work / "fixtures.toml"
        fixtures.write_text("")
        cmd = [PY, "-m", "supervisor_sim", "run-task", "bench", "bench_task"]
        cmd += ["--runtime", " ".join(CHILD), "--state", ":memory:", "--fixtures", str(fixtures)]
        cmd += ["--log-format", "json"]
        if kind == "sim_console_json":
            cmd += ["--no-transcript"]
        else:
            cmd += ["--transcript", str(transcript), "-q"]
    rc, exited, tail = _run(cmd, env, work, output)
    results = list((work / "out").glob("*.json"))
    if rc != 0 or not results:
        raise SystemExit(f"{kind}: exit {rc}, no child result:\n{tail}")
    child = json.loads(results[0].read_text())
    seconds = exited - child["first_send_wall"]
    seen = _count(transcript if kind == "sim_transcript" else output)
    if kind != "airflow" and seen != lines:
        raise SystemExit(f"{kind}: {seen} of {lines} lines came out:\n{tail}")
    return {
        "lines": lines,
        "bytes": child["bytes"],
        "seconds": seconds,
        "lines_per_s": lines / seconds,
        "mb_per_s": child["bytes"] / seconds / 1e6,
        "runtime_send_s": child["last_send_wall"] - child["first_send_wall"],
        "lines_out": seen,
        "output_bytes": (transcript if kind == "sim_transcript" else output).stat().st_size,
    }


KINDS = ("sim_console_json", "sim_transcript", "airflow")


def measure(
    lines: int, line_bytes: int, runs: int, airflow_py: str | None, tmp: Path
) -> dict[str, Any]:
    kinds = [k for k in KINDS if k != "airflow" or airflow_py]
    samples: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    for _ in range(runs):  # alternated: load hits every supervisor alike
        for kind in kinds:
            samples[kind].append(one(kind, lines, line_bytes, tmp, airflow_py))
    out: dict[str, Any] = {"lines": lines, "line_bytes": line_bytes, "runs": runs}
    for kind, rs in samples.items():
        rs.sort(key=lambda r: r["lines_per_s"])
        out[kind] = {**rs[len(rs) // 2], "lines_per_s_all": [r["lines_per_s"] for r in rs]}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--line-bytes", type=int, default=200)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--airflow-python")
    parser.add_argument("--no-airflow", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    airflow_py = None if args.no_airflow else args.airflow_python
    with tempfile.TemporaryDirectory(prefix="bench-logs-") as scratch:
        result = measure(args.lines, args.line_bytes, args.runs, airflow_py, Path(scratch))
    if args.json:
        print(json.dumps(result))
    else:
        for kind in KINDS:
            r = result.get(kind)
            if r:
                print(
                    f"{kind:<18}{r['lines_per_s']:>12,.0f} lines/s{r['mb_per_s']:>8.1f} MB/s"
                    f"  ({r['lines_out']:,} lines out)"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())

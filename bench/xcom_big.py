"""A 16 MiB XCom: SetXCom then GetXCom round trip times, ours beside Airflow's supervisor.

    .venv/bin/python bench/xcom_big.py [--mib 16] [--runs 3] [--airflow-python PY | --no-airflow]
                                       [--json]

The runtime (``bench/_load_child.py``, mode ``xcom``) sends ``SetXCom`` of a string of ``--mib``
MiB (the frame is that size plus a few bytes of msgpack), waits for the ack, sends ``GetXCom`` for
it and checks the value that comes back; ``--runs`` times, each timed by the runtime from the
request's ``sendall`` to its reply read. Served by:

* ``sim``: ``supervisor-sim run-task --no-transcript -q`` with its embedded stub (the value goes
  to the stub's SQLite store, ``:memory:``, and back: the stub's real work);
* ``sim_transcript``: the same with a transcript (every frame and HTTP body recorded);
* ``airflow``: Airflow 3.3.2's ``supervise_task`` (``bench/_airflow_xcom.py``), whose
  ``httpx.MockTransport`` keeps the POSTed body and returns it unparsed: a stub cheaper than
  Airflow's api-server, so Airflow's figure is its supervisor and client alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PY = sys.executable
CHILD = [PY, str(HERE / "_load_child.py")]
KINDS = ("sim", "sim_transcript", "airflow")


def one(kind: str, mib: float, runs: int, tmp: Path, airflow_py: str | None) -> dict[str, Any]:
    work = tmp / f"{kind}-{time.monotonic_ns()}"
    (work / "out").mkdir(parents=True)
    env = {
        **os.environ,
        "BENCH_MODE": "xcom",
        "BENCH_XCOM_MIB": str(mib),
        "BENCH_XCOM_RUNS": str(runs),
        "BENCH_OUT_DIR": str(work / "out"),
        "BENCH_AIRFLOW_LOG": "WARNING",
    }
    if kind == "airflow":
        assert airflow_py
        cmd = [airflow_py, str(HERE / "_airflow_xcom.py"), "--", *CHILD]
    else:
        fixtures = work / "fixtures.toml"
        fixtures.write_text("")
        cmd = [PY, "-m", "supervisor_sim", "run-task", "bench", "bench_task"]
        cmd += ["--runtime", " ".join(CHILD), "--state", ":memory:", "--fixtures", str(fixtures)]
        cmd += ["-q", "--log-format", "json"]
        if kind == "sim":
            cmd += ["--no-transcript"]
        else:
            cmd += ["--transcript", str(work / "transcript.jsonl")]
    proc = subprocess.run(
        cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    results = list((work / "out").glob("*.json"))
    if proc.returncode != 0 or not results:
        raise SystemExit(
            f"{kind}: exit {proc.returncode}, no result:\n{proc.stdout[-1500:]}"
            f"\n{proc.stderr[-2500:]}"
        )
    child = json.loads(results[0].read_text())
    return {
        "xcom_bytes": child["xcom_bytes"],
        "set_ms": child["set_ms"],
        "get_ms": child["get_ms"],
        "set_ms_median": statistics.median(child["set_ms"]),
        "get_ms_median": statistics.median(child["get_ms"]),
        "round_trip_ms": statistics.median(
            s + g for s, g in zip(child["set_ms"], child["get_ms"], strict=True)
        ),
    }


def measure(mib: float, runs: int, airflow_py: str | None, tmp: Path, rounds: int = 1) -> dict:
    kinds = [k for k in KINDS if k != "airflow" or airflow_py]
    samples: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    for _ in range(rounds):  # alternated
        for kind in kinds:
            samples[kind].append(one(kind, mib, runs, tmp, airflow_py))
    out: dict[str, Any] = {"mib": mib, "runs": runs, "rounds": rounds}
    for kind, rs in samples.items():
        rs.sort(key=lambda r: r["round_trip_ms"])
        out[kind] = rs[len(rs) // 2]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=float, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--airflow-python")
    parser.add_argument("--no-airflow", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    airflow_py = None if args.no_airflow else args.airflow_python
    with tempfile.TemporaryDirectory(prefix="bench-xcom-") as scratch:
        result = measure(args.mib, args.runs, airflow_py, Path(scratch))
    if args.json:
        print(json.dumps(result))
    else:
        for kind in KINDS:
            r = result.get(kind)
            if r:
                print(
                    f"{kind:<16} set {r['set_ms_median']:>8.1f} ms"
                    f"  get {r['get_ms_median']:>8.1f} ms"
                    f"  set+get {r['round_trip_ms']:>8.1f} ms"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())

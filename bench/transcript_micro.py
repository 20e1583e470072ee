"""Micro-benchmark: the transcript writer's cost per lock-step GetVariable round trip.

One real session (the bench child, the embedded stub, ``supervise`` as ``run-task`` calls it)
runs a few round trips once with a recording journal sink. The three events of its last
``GetVariable`` round trip (frame in, HTTP exchange, frame out) are then fed again and again to
a ``TranscriptWriter`` wired exactly as ``supervise`` wires it (redaction on by default, a real
file, one ``write(2)`` per record), and the cost per round trip is reported.

    transcript_micro.py [--n 20000] [--repeats 5] [--no-redact] [--profile] [--json]

Scenarios (each reported separately):

* ``no-secrets``: the masker knows no secret value, as in ``bench/run.py --only transcript``.
* ``secrets``: the masker has learned a connection's password and extra and a sensitive
  variable's value first (as after ``GetConnection``/``GetVariable("api_token")``), so every
  string is searched for them.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sim_bench import CHILD, new_store, ti_of

from supervisor_sim.api import StubTransport, TokenIssuer, stub_http
from supervisor_sim.protocol import SecretsMasker
from supervisor_sim.runner import supervise
from supervisor_sim.supervision import (
    Journal,
    SupervisorConfig,
    TaskSession,
    TaskSpec,
)
from supervisor_sim.transcript import TranscriptWriter


def capture(tmp: Path, n: int = 3) -> tuple[list[Any], dict[str, Any]]:
    """Run one real session of ``n`` round trips; return the 3 events of the last round trip."""
    events: list[Any] = []
    store = new_store()
    record = store.prepare_task_instance("bench", "bench_task")
    tokens = TokenIssuer()
    http = stub_http(StubTransport(store, tokens=tokens))
    out = tmp / "child.json"
    spec = TaskSpec(
        ti=ti_of(record),
        runtime=[*CHILD, "--n", str(n), "--warmup", "0", "--out", str(out)],
        dag_rel_path="bench.py",
    )
    journal = Journal()
    journal.sinks.append(events.append)
    header: dict[str, Any] = {}

    def factory(api: Any) -> TaskSession:
        return TaskSession(spec, api, config=SupervisorConfig(), journal=journal)

    outcome = trio.run(
        lambda: supervise(
            spec,
            http,
            token=tokens.issue(record.id, scope="workload"),
            config=SupervisorConfig(),
            journal=journal,
            transcript=None,
            redact=True,
            api_label="stub",
            session_factory=factory,
            forward_signals=False,
        )
    )
    if outcome.final_state != "success":
        raise SystemExit(f"capture session failed: {outcome.final_state} {outcome.error}")
    ins = [e for e in events if e.kind == "frame" and e.data.get("type") == "GetVariable"]
    frame_in = ins[-1]
    http_ev = next(e for e in events if e.kind == "http" and e.data.get("cause") == frame_in.seq)
    frame_out = next(
        e
        for e in events
        if e.kind == "frame" and e.data["direction"] == "out" and e.seq > frame_in.seq
    )
    header = {"command": ["transcript_micro"], "runtime": spec.runtime, "api": "stub"}
    return [frame_in, http_ev, frame_out], header


def make_writer(path: Path, header: dict[str, Any], masker: SecretsMasker, redact: bool) -> Any:
    # Exactly as supervisor_sim.runner._supervise.supervise wires it.
    return TranscriptWriter(
        path,
        header,
        redact=masker.redact if redact else None,
        redact_bytes=(lambda b: masker.redact(b.decode("utf-8", "replace")).encode())
        if redact
        else None,
    )


def masker_for(scenario: str) -> SecretsMasker:
    masker = SecretsMasker(min_length=SupervisorConfig().min_length_masked_secret)
    if scenario == "secrets":
        masker.add("s3cret-pw")
        masker.add({"extra_field": "xtra-s3cret-value", "region": "eu-west-1"})
        masker.add("tok-very-secret-123")
    return masker


def run_once(
    events: list[Any], header: dict[str, Any], tmp: Path, n: int, scenario: str, redact: bool
) -> tuple[float, float, int]:
    masker = masker_for(scenario)
    path = tmp / f"micro-{scenario}-{time.monotonic_ns()}.jsonl"
    writer = make_writer(path, header, masker, redact)
    for _ in range(min(n, 500)):  # warm caches
        for ev in events:
            writer(ev)
    started = time.perf_counter()
    cpu0 = time.process_time()
    for _ in range(n):
        for ev in events:
            writer(ev)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    writer.close({"final_state": "success"})
    size = path.stat().st_size
    path.unlink()
    return wall / n * 1e6, cpu / n * 1e6, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000, help="round trips per measurement")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-redact", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile one measurement")
    parser.add_argument("--scenario", choices=["no-secrets", "secrets", "both"], default="both")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--show", action="store_true", help="print the 3 records once")
    args = parser.parse_args()
    redact = not args.no_redact
    scenarios = ["no-secrets", "secrets"] if args.scenario == "both" else [args.scenario]
    with tempfile.TemporaryDirectory(prefix="transcript-micro-") as d:
        tmp = Path(d)
        events, header = capture(tmp)
        if args.show:
            path = tmp / "show.jsonl"
            writer = make_writer(path, header, masker_for(scenarios[0]), redact)
            for ev in events:
                writer(ev)
            writer.close()
            print("".join(path.read_text().splitlines(True)[1:4]), end="")
        results: dict[str, Any] = {"n": args.n, "redact": redact}
        for scenario in scenarios:
            if args.profile:
                prof = cProfile.Profile()
                prof.enable()
                run_once(events, header, tmp, args.n, scenario, redact)
                prof.disable()
                buf = io.StringIO()
                pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)
                print(f"--- cProfile, {scenario}, {args.n} round trips ---")
                print(buf.getvalue())
            runs = [
                run_once(events, header, tmp, args.n, scenario, redact) for _ in range(args.repeats)
            ]
            wall = sorted(r[0] for r in runs)
            cpu = sorted(r[1] for r in runs)
            results[scenario] = {
                "wall_us_per_rt_median": wall[len(wall) // 2],
                "wall_us_per_rt_min": wall[0],
                "cpu_us_per_rt_median": cpu[len(cpu) // 2],
                "bytes_per_rt": round(runs[0][2] / (args.n + min(args.n, 500))),
            }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"transcript writer, redaction {'on' if redact else 'off'}, n={args.n}")
        for scenario in scenarios:
            r = results[scenario]
            print(
                f"  {scenario:10s}: {r['wall_us_per_rt_median']:6.1f} µs/round trip wall "
                f"(min {r['wall_us_per_rt_min']:.1f}), "
                f"{r['cpu_us_per_rt_median']:6.1f} µs CPU, ~{r['bytes_per_rt']} bytes"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Drive a fuzz target for a time budget: coverage-guided with atheris, or random otherwise.

    .venv/bin/python fuzz/run.py --target frames --seconds 60
    .venv/bin/python fuzz/run.py --target frames --atheris -- -max_total_time=3600

The random driver mixes plain random bytes with mutations of valid frames and log lines (so it
reaches deep paths without coverage feedback) and prints a one-line report every minute:
iterations, the slowest input, and peak RSS. Any exception other than the expected ones is a
crash: the input is saved to fuzz/crashes/ and the driver exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from targets import TARGETS

from supervisor_sim.protocol import encode_request

SEEDS = {
    "frames": [
        encode_request(0, {"type": "GetVariable", "key": "k"}),
        encode_request(
            1, {"type": "SucceedTask", "end_date": datetime.now(UTC), "task_outlets": []}
        ),
        encode_request(
            2,
            {
                "type": "SetXCom",
                "key": "k",
                "value": {"a": [1, 2.5, None]},
                "dag_id": "d",
                "run_id": "r",
                "task_id": "t",
            },
        ),
        b"\x00\x00\x00\x00",
        b"\xff\xff\xff\xff",
    ],
    "logs": [
        json.dumps({"timestamp": "2026-01-01T00:00:00Z", "level": "info", "event": "x"}).encode()
        + b"\n",
        b'{"event": "no level"}\n',
        b"not json\n",
        b'{"level": 5, "timestamp": 3}\n',
        b"\xff\xfe\n",
        b"[1, 2]\n",
    ],
}


def mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    choice = rng.random()
    if choice < 0.2:
        return bytes([rng.randrange(256)]) + rng.randbytes(rng.randrange(0, 512))
    data = bytearray(b"".join(rng.choice(seeds) for _ in range(rng.randrange(1, 6))))
    for _ in range(rng.randrange(0, 8)):
        op = rng.randrange(4)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[pos:pos] = rng.randbytes(rng.randrange(1, 16))
        elif op == 2 and data:
            del data[pos : pos + rng.randrange(1, 16)]
        else:
            data[pos:pos] = rng.choice(seeds)
    return bytes([rng.randrange(256)]) + bytes(data)


def random_driver(name: str, seconds: float, seed: int) -> int:
    target = TARGETS[name]
    rng = random.Random(seed)
    start = last_report = time.monotonic()
    n, slowest, slowest_input = 0, 0.0, b""
    while time.monotonic() - start < seconds:
        data = mutate(rng, SEEDS[name])
        t0 = time.perf_counter()
        try:
            target(data)
        except Exception as exc:
            crashes = Path(__file__).parent / "crashes"
            crashes.mkdir(exist_ok=True)
            path = crashes / f"{name}-{int(time.time())}.bin"
            path.write_bytes(data)
            print(f"CRASH {type(exc).__name__}: {exc}; input saved to {path}", flush=True)
            return 1
        took = time.perf_counter() - t0
        if took > slowest:
            slowest, slowest_input = took, data
        n += 1
        if time.monotonic() - last_report >= 60:
            last_report = time.monotonic()
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
            print(
                f"{name}: {n} inputs in {last_report - start:.0f}s, slowest "
                f"{slowest * 1000:.1f} ms, peak RSS {rss} MB",
                flush=True,
            )
    # Keep the slowest input, to tell a pathological case from a busy machine: re-time it.
    (Path(__file__).parent / f"slowest-{name}.bin").write_bytes(slowest_input)
    t0 = time.perf_counter()
    target(slowest_input)
    print(
        f"{name}: slowest input re-timed alone: {(time.perf_counter() - t0) * 1000:.2f} ms",
        flush=True,
    )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(
        f"{name}: DONE {n} inputs in {time.monotonic() - start:.0f}s, no crash, slowest "
        f"{slowest * 1000:.1f} ms, peak RSS {rss} MB",
        flush=True,
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", choices=sorted(TARGETS), required=True)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "0")))
    parser.add_argument("--atheris", action="store_true", help="coverage-guided (libFuzzer)")
    args, rest = parser.parse_known_args()
    if args.atheris:
        try:
            import atheris
        except ImportError:
            print(
                "fuzz/run.py: --atheris needs atheris: `.venv/bin/python -m pip install atheris` "
                "(or drop --atheris for the random driver)",
                file=sys.stderr,
            )
            return 2
        target = TARGETS[args.target]
        atheris.Setup([sys.argv[0], *[a for a in rest if a != "--"]], target)
        atheris.Fuzz()
        return 0
    return random_driver(args.target, args.seconds, args.seed)


if __name__ == "__main__":
    sys.exit(main())

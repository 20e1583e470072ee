"""Micro-benchmark: secret masking's cost per log line, and of learning secrets one by one.

A runtime decides how many secrets the supervisor learns (each ``MaskSecret`` request is one),
and every log line and recorded value is masked with all of them. Measured here, with random
8-32 character secrets:

* per line, for 10, 1,000 and 10,000 secrets: ``redact`` of a structlog-style record that
  holds no secret, of one that holds one, and ``leaves_plain`` (the transcript writer's check);
* adding 10,000 secrets one by one, alone and with a line redacted after each (as a session
  does: the ``MaskSecret`` frame is recorded, the runtime logs on).

    masking.py [--secrets 10,1000,10000] [--adds 10000] [--repeats 5] [--impl FILE] [--json]

``--impl`` loads ``SecretsMasker`` from another copy of ``supervisor_sim/protocol/_masking.py``
(e.g. an older commit's, from ``git show REV:supervisor_sim/protocol/_masking.py``) to compare.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import statistics
import string
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RECORD = {
    "timestamp": "2026-01-01T00:00:00.000000Z",
    "level": "info",
    "event": "Connecting to the database at db.example.com:5432 as etl_user (attempt 1 of 3)",
    "logger": "airflow.task.hooks.postgres",
    "chan": "stdout",
}


def masker_class(impl: str | None) -> Any:
    if impl is None:
        from supervisor_sim.protocol import SecretsMasker

        return SecretsMasker
    spec = importlib.util.spec_from_file_location("masking_under_test", impl)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SecretsMasker


def secrets(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits
    return ["".join(rng.choices(alphabet, k=rng.randint(8, 32))) for _ in range(n)]


def per_call_us(fn: Any, value: Any, repeats: int, budget_s: float = 0.05) -> float:
    """Median over ``repeats`` runs of the mean cost of one call, in µs."""
    fn(value)  # compiles whatever is compiled lazily
    started = time.perf_counter()
    fn(value)
    one = time.perf_counter() - started
    calls = max(1, min(10_000, int(budget_s / max(one, 1e-7))))
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            fn(value)
        runs.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(runs)


def per_line(cls: Any, count: int, repeats: int) -> dict[str, float]:
    known = secrets(count)
    masker = cls()
    for secret in known:
        masker.add(secret)
    with_secret = dict(RECORD, event=f"token {known[count // 2]} refused")
    out = {
        "redact_us": per_call_us(masker.redact, RECORD, repeats),
        "redact_with_secret_us": per_call_us(masker.redact, with_secret, repeats),
        "leaves_plain_us": per_call_us(masker.leaves_plain, RECORD, repeats),
    }
    assert masker.redact(with_secret)["event"] == "token *** refused"
    return out


def adding(cls: Any, count: int, repeats: int) -> dict[str, float]:
    known = secrets(count, seed=2)
    alone, interleaved = [], []
    for _ in range(repeats):
        masker = cls()
        started = time.perf_counter()
        for secret in known:
            masker.add(secret)
        masker.redact(RECORD)  # the first line after them pays for what add() left lazy
        alone.append(time.perf_counter() - started)
        masker = cls()
        started = time.perf_counter()
        for secret in known:
            masker.add(secret)
            masker.redact(RECORD)
        interleaved.append(time.perf_counter() - started)
    return {
        "add_s": statistics.median(alone),
        "add_with_redact_s": statistics.median(interleaved),
        "add_with_redact_us_per_secret": statistics.median(interleaved) / count * 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--secrets", default="10,1000,10000", help="comma-separated counts")
    parser.add_argument("--adds", type=int, default=10_000, help="secrets added one by one")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--impl", help="a _masking.py to load SecretsMasker from instead")
    parser.add_argument("--json", action="store_true", help="only the JSON result line")
    args = parser.parse_args()
    cls = masker_class(args.impl)
    counts = [int(c) for c in args.secrets.split(",")]
    result: dict[str, Any] = {
        "impl": args.impl or "supervisor_sim.protocol",
        "per_line": {str(n): per_line(cls, n, args.repeats) for n in counts},
        "adds": args.adds,
        **adding(cls, args.adds, max(1, min(args.repeats, 3))),
    }
    if not args.json:
        print(f"{'secrets':>8}{'redact us':>11}{'+secret us':>12}{'leaves_plain us':>17}")
        for n, r in result["per_line"].items():
            print(
                f"{int(n):>8,}{r['redact_us']:>11.1f}{r['redact_with_secret_us']:>12.1f}"
                f"{r['leaves_plain_us']:>17.1f}"
            )
        print(
            f"adding {args.adds:,} secrets one by one: {result['add_s'] * 1e3:.1f} ms; with a "
            f"line redacted after each: {result['add_with_redact_s'] * 1e3:.1f} ms "
            f"({result['add_with_redact_us_per_secret']:.1f} us per secret)"
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

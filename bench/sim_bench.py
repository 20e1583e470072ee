"""supervisor-sim's side of the benchmarks: one measurement per process, printed as JSON.

Run by ``bench/run.py`` with the project's interpreter, one process per measurement, so that each
peak RSS (``VmHWM``) and CPU time belongs to that measurement alone.

    sim_bench.py roundtrip --n N [--transcript PATH]   one TaskSession, the bench child
    sim_bench.py many --children K --n N               K TaskSessions in one trio nursery
    sim_bench.py stubapi --n N                         the stub Execution API alone, per layer

A session is built the way ``supervisor-sim run-task`` builds it
(``supervisor_sim.runner.supervise`` with the embedded stub, its journal and HTTP hook), minus
the console sink (as with ``-q``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import trio

from supervisor_sim.api import ExecutionAPIClient, StubStore, StubTransport, TokenIssuer, ti_wire
from supervisor_sim.runner import supervise
from supervisor_sim.supervision import Journal, SupervisorConfig, TaskSession, journal_exchanges
from supervisor_sim.testing import stub_transport, task_client, task_spec

HERE = Path(__file__).resolve().parent
CHILD = [sys.executable, str(HERE / "child.py")]
BASE_URL = "http://stub.invalid/execution/"
VAR_KEY = "bench_var"
VAR_VALUE = "bench-value"


def peak_rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def new_store() -> StubStore:
    store = StubStore(":memory:")
    store.set_variable(VAR_KEY, VAR_VALUE)
    return store


#: The TaskInstance of StartupDetails (transcript_micro.py imports it under this name).
ti_of = ti_wire


def read_child_result(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# --- round trips: one session --------------------------------------------------------------------


async def roundtrip(n: int, warmup: int, transcript: Path | None, out_dir: Path) -> dict[str, Any]:
    store = new_store()
    record = store.prepare_task_instance("bench", "bench_task")
    tokens = TokenIssuer()
    http = stub_transport(store, tokens)
    child_out = out_dir / f"child-{os.getpid()}.json"
    runtime = [*CHILD, "--n", str(n), "--warmup", str(warmup), "--out", str(child_out)]
    spec = task_spec(
        record, runtime, dag_rel_path="bench.py", env={"BENCH_SPAWN_WALL": repr(time.time())}
    )
    journal = Journal()
    started = time.perf_counter()
    cpu0 = cpu_s()
    outcome = await supervise(
        spec,
        http,
        token=tokens.issue(record.id, scope="workload"),
        config=SupervisorConfig(),
        journal=journal,
        transcript=transcript,
        redact=True,
        api_label="stub",
        forward_signals=False,
    )
    wall = time.perf_counter() - started
    return {
        "final_state": outcome.final_state,
        "exit_code": outcome.exit_code,
        "error": outcome.error,
        "violations": [v.rule for v in outcome.violations],
        "counts": outcome.counts,
        "wall_s": wall,
        "session_cpu_s": cpu_s() - cpu0,
        "child": read_child_result(child_out),
        "transcript_bytes": transcript.stat().st_size if transcript else None,
    }


def _stderr_tail(tails: dict[int, list[str]], index: int) -> Any:
    """A journal sink keeping a child's last stderr lines (why a child failed)."""

    def sink(event: Any) -> None:
        if event.kind == "log" and event.data.get("source") == "stderr":
            record = event.data.get("record") or {}
            tails.setdefault(index, []).append(str(record.get("event", record))[:300])
            del tails[index][:-5]

    return sink


# --- many children under one process -------------------------------------------------------------


async def many(
    children: int,
    n: int,
    out_dir: Path,
    startup_timeout: float = 300.0,
    ownership_timeout: float | None = None,
) -> dict[str, Any]:
    store = new_store()
    tokens = TokenIssuer()
    # Start-up of K Python children at once on a small machine takes a while: give them time.
    config = replace(SupervisorConfig(), startup_timeout=startup_timeout)
    if ownership_timeout is not None:
        config = replace(config, ownership_check_timeout=ownership_timeout)
    outcomes: list[Any] = [None] * children
    stderr_tails: dict[int, list[str]] = {}
    results: list[Path] = []
    transport = stub_transport(store, tokens)
    sessions = []
    for i in range(children):
        record = store.prepare_task_instance("bench", f"task_{i:04d}")
        journal = Journal()
        journal.sinks.append(_stderr_tail(stderr_tails, i))
        api = task_client(transport, record, journal)
        out = out_dir / f"many-{os.getpid()}-{i}.json"
        results.append(out)
        runtime = [*CHILD, "--n", str(n), "--warmup", "0", "--out", str(out)]
        spec = task_spec(record, runtime, dag_rel_path="bench.py")
        sessions.append(TaskSession(spec, api, config=config, journal=journal))

    async def run_one(i: int) -> None:
        outcomes[i] = await sessions[i].run()

    cpu0 = cpu_s()
    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for i in range(children):
            nursery.start_soon(run_one, i)
    wall = time.perf_counter() - started
    cpu = cpu_s() - cpu0
    for session in sessions:
        await session.api.aclose()
    child_results = [read_child_result(p) for p in results]
    ok = [r for r in child_results if r]
    states: dict[str, int] = {}
    errors: dict[str, int] = {}
    violations: dict[str, int] = {}
    for o in outcomes:
        key = str(o.final_state if o else None)
        states[key] = states.get(key, 0) + 1
        if o is not None and o.error:
            why = o.error[:200]
            if o is not None and o.error and stderr_tails.get(outcomes.index(o)):
                why += " | child stderr: " + stderr_tails[outcomes.index(o)][-1][:200]
            errors[why] = errors.get(why, 0) + 1
        for v in o.violations if o is not None else ():
            violations[v.rule] = violations.get(v.rule, 0) + 1
    window = None
    if ok:
        window = max(r["rt_end_wall"] for r in ok) - min(r["rt_start_wall"] for r in ok)
    total = children * n
    return {
        "children": children,
        "n_per_child": n,
        "ownership_check_timeout": config.ownership_check_timeout,
        "succeeded": states.get("success", 0),
        "final_states": states,
        "errors": errors,
        "violations": violations,
        "wall_s": wall,
        "total_req_per_s": total / wall if wall else None,
        "round_trip_window_s": window,
        "window_req_per_s": sum(r["n"] for r in ok) / window if window else None,
        "median_child_req_per_s": sorted(r["req_per_s"] for r in ok)[len(ok) // 2] if ok else None,
        "children_reporting": len(ok),
        "cpu_s": cpu,
        "cpu_pct": 100 * cpu / wall if wall else None,
    }


# --- the stub API alone --------------------------------------------------------------------------


async def stubapi(n: int) -> dict[str, Any]:
    store = new_store()
    record = store.prepare_task_instance("bench", "bench_task")
    tokens = TokenIssuer()
    transport = StubTransport(store, tokens=tokens)
    token = tokens.issue(record.id, scope="execution")
    headers = {
        "authorization": f"Bearer {token}",
        "airflow-api-version": "2026-06-30",
        "accept": "application/json",
    }
    url = BASE_URL + f"variables/{VAR_KEY}"
    out: dict[str, Any] = {"n": n}

    async def timed(name: str, call: Any) -> None:
        for _ in range(min(200, n)):
            await call()
        started = time.perf_counter()
        cpu0 = time.process_time()
        for _ in range(n):
            await call()
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu0
        out[name] = {
            "req_per_s": n / elapsed,
            "us_per_req": elapsed / n * 1e6,
            "cpu_us_per_req": cpu / n * 1e6,
        }

    async def transport_only() -> None:
        request = httpx.Request("GET", url, headers=headers)
        response = await transport.handle_async_request(request)
        assert response.status_code == 200

    await timed("transport", transport_only)

    pairs = [("host", "stub.invalid"), *headers.items()]
    path = f"/execution/variables/{VAR_KEY}"

    async def serve_only() -> None:
        reply = transport.serve("GET", path, "", pairs, b"")
        assert reply.status == 200

    await timed("serve", serve_only)

    async with httpx.AsyncClient(base_url=BASE_URL, transport=transport) as http:

        async def bare_client() -> None:
            response = await http.get(f"variables/{VAR_KEY}", headers=headers)
            assert response.status_code == 200

        await timed("httpx_client", bare_client)

        journal = Journal()
        api = ExecutionAPIClient(
            http, in_process=transport, token=token, on_exchange=journal_exchanges(journal)
        )

        async def api_client() -> None:
            await api.request("GET", f"variables/{VAR_KEY}")

        await timed("api_client", api_client)

        from supervisor_sim.supervision._dispatch import Dispatcher

        dispatcher = Dispatcher(api, record.id)
        body = {"type": "GetVariable", "key": VAR_KEY}

        async def dispatch() -> None:
            reply, error = await dispatcher.dispatch(body)
            assert error is None and reply is not None

        await timed("dispatcher", dispatch)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("roundtrip")
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--transcript", type=Path)
    p.add_argument("--tmp", type=Path, required=True)
    p = sub.add_parser("many")
    p.add_argument("--children", type=int, required=True)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--startup-timeout", type=float, default=300.0)
    p.add_argument("--ownership-timeout", type=float, help="ownership_check_timeout (1.0)")
    p.add_argument("--tmp", type=Path, required=True)
    p = sub.add_parser("stubapi")
    p.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    if args.mode == "roundtrip":
        result = trio.run(roundtrip, args.n, args.warmup, args.transcript, args.tmp)
    elif args.mode == "many":
        result = trio.run(
            many, args.children, args.n, args.tmp, args.startup_timeout, args.ownership_timeout
        )
    else:
        result = trio.run(stubapi, args.n)
    result["peak_rss_kb"] = peak_rss_kb()
    result["cpu_total_s"] = cpu_s()
    print(json.dumps(result, default=repr))
    return 0


if __name__ == "__main__":
    sys.exit(main())

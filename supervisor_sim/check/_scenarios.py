"""The scenarios of `supervisor-sim check`, and running them.

Each scenario is one real session against the stub Execution API (its own in-memory store, its
own process, its own sockets). ``baseline`` runs first, alone: it is Airflow's supervisor
exactly, and it tells the other scenarios which request to treat specially (the first request
for the probe XCom key, or failing that the first request the runtime makes). The others then
run concurrently, a few at a time.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from ..api import (
    ExecutionAPIClient,
    Fixtures,
    RetryPolicy,
    StubStore,
    StubTransport,
    TokenIssuer,
    stub_http,
    ti_wire,
)
from ..protocol import TERMINAL
from ..supervision import (
    Event,
    Journal,
    ParseSession,
    ParseSpec,
    Session,
    SupervisorConfig,
    TaskOutcome,
    TaskSession,
    TaskSpec,
    journal_exchanges,
)
from ._session import (
    PROBE_XCOM_KEY,
    CheckHooks,
    Plan,
    Rewrite,
    Target,
    with_every_timestamp_size,
)

__all__ = ["SCENARIOS", "CheckContext", "ScenarioResult", "ScenarioSpec", "run_scenarios"]


@dataclass(frozen=True)
class CheckContext:
    """What every scenario shares: the runtime, the task, and the supervisor's settings."""

    runtime: Sequence[str]
    dag_id: str = "example_dag"
    task_id: str = "hello"
    dag_rel_path: str | None = None
    bundle_name: str = "dags-folder"
    parse_file: str | None = None
    bundle_path: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    fixtures: Fixtures = field(default_factory=Fixtures)
    config: SupervisorConfig = field(default_factory=SupervisorConfig)
    exit_bound: float = 10.0
    jobs: int = 4


@dataclass(frozen=True)
class ScenarioSpec:
    name: str
    title: str
    #: The rules this scenario exists for; it is not run when all of them are skipped.
    rules: tuple[str, ...]
    kind: str = "task"  # "task" or "parse"
    plan: Callable[[Target | None], Plan] = field(default=lambda target: Plan())
    unknown_task: bool = False
    #: Needs the baseline's target request to mean anything.
    needs_target: bool = False


@dataclass
class ScenarioResult:
    spec: ScenarioSpec
    outcome: TaskOutcome | None = None
    events: list[Event] = field(default_factory=list)
    #: The hooks the scenario's session ran with, and what they recorded.
    session: CheckHooks | None = None
    plan: Plan | None = None
    task_id: str = ""
    internal_error: str | None = None
    ran: bool = True

    @property
    def name(self) -> str:
        return self.spec.name

    def frames(self, direction: str) -> list[Event]:
        return [
            e for e in self.events if e.kind == "frame" and e.data.get("direction") == direction
        ]

    def process(self, event: str) -> list[Event]:
        return [e for e in self.events if e.kind == "process" and e.data.get("event") == event]

    @property
    def exit_code(self) -> int | None:
        return self.outcome.exit_code if self.outcome else None

    @property
    def exit_event(self) -> Event | None:
        exits = self.process("exit")
        return exits[-1] if exits else None

    @property
    def terminals(self) -> list[tuple[float, str, str | None]]:
        return list(self.session.terminals) if self.session is not None else []

    def terminal_summary(self) -> str:
        terms = self.terminals
        if not terms:
            return "no terminal message"
        return ", ".join(f"{t}({s})" if s and t == "TaskState" else t for _, t, s in terms)


def _rewrite(kind: str) -> Callable[[Target | None], Plan]:
    def make(target: Target | None) -> Plan:
        return Plan(startup=Rewrite(kind))  # type: ignore[arg-type]

    return make


def _targeted(action: str, **extra: Any) -> Callable[[Target | None], Plan]:
    def make(target: Target | None) -> Plan:
        return Plan(action=action, target=target, **extra)  # type: ignore[arg-type]

    return make


SCENARIOS: tuple[ScenarioSpec, ...] = (
    ScenarioSpec(
        "baseline",
        "Airflow's supervisor exactly: 3-element frames, every field sent",
        ("connects", "terminal-and-exit", "clears-xcom-keys", "reply-shapes"),
    ),
    ScenarioSpec(
        "unknown-fields",
        "unknown keys at every level of StartupDetails and reply bodies, a 4th frame element",
        ("unknown-fields",),
        plan=lambda target: Plan(startup=Rewrite("unknown"), unknown_reply_keys=True, shape="long"),
    ),
    ScenarioSpec(
        "missing-optional",
        "every optional field left out of StartupDetails",
        ("missing-optional-fields",),
        plan=_rewrite("drop"),
    ),
    ScenarioSpec(
        "null-optional",
        "nil in every nullable position of StartupDetails",
        ("null-optional-fields",),
        plan=_rewrite("null"),
    ),
    ScenarioSpec(
        "timestamps",
        "DagRun dates that need timestamp32, timestamp64 and timestamp96",
        ("timestamp-sizes",),
        plan=lambda target: Plan(startup=with_every_timestamp_size),
    ),
    ScenarioSpec(
        "short-replies",
        "short response arrays: [0, StartupDetails], acks as [id], results as [id, body]",
        ("reply-shapes",),
        plan=lambda target: Plan(shape="short"),
    ),
    ScenarioSpec(
        "wrong-reply-id",
        "the target request is answered with a reply carrying another id",
        ("reply-ids",),
        plan=_targeted("wrong-id"),
        needs_target=True,
    ),
    ScenarioSpec(
        "error-body",
        "the target request is answered with an ErrorResponse in the body slot (not found)",
        ("error-body",),
        plan=_targeted("error-body"),
        needs_target=True,
    ),
    ScenarioSpec(
        "error-slot",
        "the target request is answered with an ErrorResponse in the error slot (API failure)",
        ("error-slot",),
        plan=_targeted("error-slot"),
        needs_target=True,
    ),
    ScenarioSpec(
        "unknown-task",
        "StartupDetails names a task id that is in no bundle",
        ("unknown-task",),
        unknown_task=True,
    ),
    ScenarioSpec(
        "comm-closed",
        "the supervisor closes the comm connection instead of answering the target request",
        ("comm-close",),
        plan=_targeted("close-comm"),
        needs_target=True,
    ),
    ScenarioSpec(
        "parse",
        "DagFileParseRequest as the first frame",
        ("parse",),
        kind="parse",
    ),
)


def target_from(baseline: ScenarioResult | None) -> Target | None:
    """The request the targeted scenarios act on, learnt from what the baseline runtime did."""
    if baseline is None or baseline.session is None:
        return None
    frames = baseline.frames("in")
    bodies = [e.data.get("body") if isinstance(e.data.get("body"), dict) else None for e in frames]
    for body in bodies:
        if body and body.get("key") == PROBE_XCOM_KEY and body.get("type") not in TERMINAL:
            return Target(probe=True)
    for i, body in enumerate(bodies):
        if body and body.get("type") not in TERMINAL:
            return Target(probe=False, index=i)
    for i, body in enumerate(bodies):
        # Nothing but the terminal message: act on it (only comm-closed can say anything then).
        if body:
            return Target(probe=False, index=i, terminal_ok=True)
    return None


def _parse_file(ctx: CheckContext) -> str:
    if ctx.parse_file:
        return ctx.parse_file
    existing = [a for a in ctx.runtime if Path(a).is_file() and "python" not in Path(a).name]
    return str(Path(existing[-1] if existing else "dags.py").resolve())


async def run_scenario(
    spec: ScenarioSpec, ctx: CheckContext, target: Target | None
) -> ScenarioResult:
    plan = spec.plan(target)
    plan.exit_bound = ctx.exit_bound
    result = ScenarioResult(spec, plan=plan)
    hooks = CheckHooks(plan)
    session: Session
    journal = Journal()
    journal.sinks.append(result.events.append)
    store = StubStore(":memory:")
    try:
        store.seed(ctx.fixtures)
        tokens = TokenIssuer()
        http = stub_http(StubTransport(store, tokens=tokens))
        async with http:
            if spec.kind == "parse":
                api = ExecutionAPIClient(
                    http,
                    retry=RetryPolicy(attempts=1, timeout=10.0),
                    on_exchange=journal_exchanges(journal),
                )
                pspec = ParseSpec(
                    file=_parse_file(ctx),
                    runtime=list(ctx.runtime),
                    bundle_path=str(Path(ctx.bundle_path or Path.cwd()).resolve()),
                    bundle_name=ctx.bundle_name,
                    env=ctx.env,
                    cwd=ctx.cwd,
                )
                session = ParseSession(pspec, api, config=ctx.config, journal=journal, hooks=hooks)
            else:
                task_id = ctx.task_id
                if spec.unknown_task:
                    task_id = f"no_such_task_{uuid.uuid4().hex[:10]}"
                result.task_id = task_id
                record = store.prepare_task_instance(
                    ctx.dag_id, task_id, run_id=f"check__{spec.name}__{uuid.uuid4().hex[:8]}"
                )
                api = ExecutionAPIClient(
                    http,
                    token=tokens.issue(record.id, scope="workload"),
                    retry=RetryPolicy(attempts=2, wait_min=0.05, wait_max=0.1, timeout=10.0),
                    on_exchange=journal_exchanges(journal),
                )
                tspec = TaskSpec(
                    ti=ti_wire(record),
                    runtime=list(ctx.runtime),
                    dag_rel_path=ctx.dag_rel_path or f"{ctx.dag_id}.py",
                    bundle_info={"name": ctx.bundle_name, "version": None},
                    env=ctx.env,
                    cwd=ctx.cwd,
                )
                session = TaskSession(tspec, api, config=ctx.config, journal=journal, hooks=hooks)
            result.session = hooks
            result.outcome = await session.run()
    except Exception as exc:  # a bug here must not hide the other scenarios' results
        result.internal_error = f"{type(exc).__name__}: {exc}"
    finally:
        store.close()
    return result


async def run_scenarios(
    ctx: CheckContext,
    specs: Sequence[ScenarioSpec] = SCENARIOS,
    on_done: Callable[[ScenarioResult], None] | None = None,
) -> list[ScenarioResult]:
    """Run the baseline, then every other scenario (``jobs`` at a time); results in spec order."""
    results: dict[str, ScenarioResult] = {}
    # The baseline always runs, first and alone: the other rules compare against it, and it
    # shows which request the targeted scenarios act on.
    baseline = await run_scenario(SCENARIOS[0], ctx, None)
    results["baseline"] = baseline
    if on_done:
        on_done(baseline)
    target = target_from(baseline)
    limiter = trio.CapacityLimiter(max(1, ctx.jobs))

    async def one(spec: ScenarioSpec) -> None:
        async with limiter:
            if spec.needs_target and (
                target is None or (target.terminal_ok and spec.name != "comm-closed")
            ):
                results[spec.name] = ScenarioResult(spec, ran=False)
            else:
                results[spec.name] = await run_scenario(spec, ctx, target)
        if on_done:
            on_done(results[spec.name])

    async with trio.open_nursery() as nursery:
        for spec in specs:
            if spec.name != "baseline":
                nursery.start_soon(one, spec)
    order = ["baseline", *(s.name for s in specs if s.name != "baseline")]
    return [results[name] for name in order]

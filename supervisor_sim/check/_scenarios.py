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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import trio

from ..api import (
    ExecutionAPIClient,
    FaultPlan,
    FaultPlanError,
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
    Silence,
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
    #: A fresh fault plan for one scenario session: the command's ``--fault`` specs and
    #: ``[[faults]]`` plus the scenario's own specs (its argument); None when there is none.
    #: The CLI gives ``cli._faults.fault_plan`` over its options (docs/unhappy-paths.md).
    make_faults: Callable[[tuple[str, ...]], FaultPlan | None] | None = None
    #: Attaches a plan to a session's stub transport, journal and store (``note`` per fault
    #: applied): the CLI gives ``cli._faults.attach_fault_plan``. Without it no plan is used.
    attach_faults: Callable[[FaultPlan | None, Any, Journal, Any], None] | None = None
    #: The delay of the slow-api scenario's target call (below the API client's timeout).
    slow_api_delay: float = 3.0
    #: The command's own ``--fault`` specs (for the report; ``make_faults`` applies them).
    fault_specs: tuple[str, ...] = ()
    #: Told when a scenario's runtime has been silent a few seconds while the supervisor
    #: waits for it: (scenario, seconds so far, the last frame out, what ends the wait).
    on_waiting: Callable[[str, float, str, str], None] | None = None


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
    #: Still runs when the only target is the terminal message.
    terminal_ok: bool = False
    #: The scenario's own fault specs for the target (None: the scenario needs none); a
    #: string instead says why the scenario cannot be run for this runtime.
    faults: Callable[[Target, CheckContext], tuple[str, ...] | str] | None = None
    #: The scenario's supervisor settings, from the command's.
    config: Callable[[SupervisorConfig], SupervisorConfig] | None = None


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
    #: Why the scenario was not run (``ran`` False), when it is not the missing target.
    not_run_reason: str | None = None
    #: The fault specs the scenario's session ran with (the command's and its own).
    fault_specs: tuple[str, ...] = ()
    #: The supervisor settings the session ran with.
    config: SupervisorConfig | None = None
    #: The seconds of silence after which the runtime was killed, when the baseline hung.
    silence_bound: float | None = None

    @property
    def silence(self) -> Silence | None:
        """The silence the session ended in, when it was killed waiting for the runtime."""
        return self.session.silence if self.session is not None else None

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


def _api_call(target: Target) -> str | None:
    """The fault target for the target request's API call, or None when its type makes none."""
    name = target.type_name
    if not name:
        return None
    try:
        FaultPlan.parse([f"{name}:500"])
    except FaultPlanError:
        return None
    return name


def _no_call(target: Target) -> str:
    return (
        f"the target request ({target.type_name or 'unknown type'}) makes no Execution API "
        "call, so no fault can hit it"
    )


def _api_500(target: Target, ctx: CheckContext) -> tuple[str, ...] | str:
    name = _api_call(target)
    if name is None:
        return _no_call(target)
    # That call and every later one of its route: each retry fails too.
    return (f"{name}:500@{target.nth}+",)


def _slow_api(target: Target, ctx: CheckContext) -> tuple[str, ...] | str:
    name = _api_call(target)
    if name is None:
        return _no_call(target)
    return (f"{name}:delay={ctx.slow_api_delay:g}s@{target.nth}",)


#: Kill-from-outside: the target's call is held this long (under the client's 10 s timeout)
#: while the TI is marked failed and the next heartbeat meets it.
KILL_HOLD_S = 9.0
KILL_HEARTBEAT_S = 0.5
API_TIMEOUT_S = 10.0


def _killed(target: Target, ctx: CheckContext) -> tuple[str, ...] | str:
    name = _api_call(target)
    if name is None:
        return _no_call(target)
    nth = "" if target.nth == 1 else f"#{target.nth}"
    return (f"{name}:delay={KILL_HOLD_S:g}s@{target.nth}", f"event=ti-failed@{name}{nth}")


def _token(target: Target, ctx: CheckContext) -> tuple[str, ...] | str:
    # A token valid for a day, which the scenario's hooks expire at the target request.
    return ("token-expiry=86400s",) if _api_call(target) is not None else _no_call(target)


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
        terminal_ok=True,
    ),
    ScenarioSpec(
        "api-500",
        "the target request's API call answers 500 on every attempt, so the supervisor answers "
        "with an error frame",
        ("api-500",),
        plan=lambda target: Plan(watch_first_error=True),
        faults=_api_500,
        needs_target=True,
    ),
    ScenarioSpec(
        "slow-api",
        "the target request's API call is slow (--slow-api-delay), under the client's timeout",
        ("slow-api",),
        faults=_slow_api,
        needs_target=True,
        terminal_ok=True,
    ),
    ScenarioSpec(
        "token-expiry",
        "the task's token expires at the target request: every later call answers 403",
        ("token-expiry",),
        plan=_targeted("expire-token"),
        faults=_token,
        needs_target=True,
    ),
    ScenarioSpec(
        "killed",
        "marked failed from outside while the target request's call is held: heartbeat 409, "
        "SIGTERM, SIGKILL after the escalation delay",
        ("killed-from-outside",),
        faults=_killed,
        needs_target=True,
        config=lambda c: replace(c, heartbeat_interval=KILL_HEARTBEAT_S),
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

    def nth(i: int) -> dict[str, Any]:
        name = (bodies[i] or {}).get("type")
        same = sum(1 for b in bodies[: i + 1] if b and b.get("type") == name)
        return {"type_name": name, "nth": same}

    for i, body in enumerate(bodies):
        if body and body.get("key") == PROBE_XCOM_KEY and body.get("type") not in TERMINAL:
            return Target(probe=True, **nth(i))
    for i, body in enumerate(bodies):
        if body and body.get("type") not in TERMINAL:
            return Target(probe=False, index=i, **nth(i))
    for i, body in enumerate(bodies):
        # Nothing but the terminal message: act on it (only comm-closed can say anything then).
        if body:
            return Target(probe=False, index=i, terminal_ok=True, **nth(i))
    return None


def _parse_file(ctx: CheckContext) -> str:
    if ctx.parse_file:
        return ctx.parse_file
    existing = [a for a in ctx.runtime if Path(a).is_file() and "python" not in Path(a).name]
    return str(Path(existing[-1] if existing else "dags.py").resolve())


async def run_scenario(
    spec: ScenarioSpec,
    ctx: CheckContext,
    target: Target | None,
    silence_bound: float | None = None,
) -> ScenarioResult:
    """One scenario's session; ``silence_bound``: kill its runtime after that many seconds
    without a frame while the supervisor waits for it (after a baseline that hung)."""
    plan = spec.plan(target)
    plan.exit_bound = ctx.exit_bound
    plan.silence_bound = silence_bound
    config = spec.config(ctx.config) if spec.config else ctx.config
    result = ScenarioResult(spec, plan=plan, config=config, silence_bound=silence_bound)
    own: tuple[str, ...] = ()
    if spec.faults is not None:
        assert target is not None
        made = spec.faults(target, ctx)
        if isinstance(made, str) or ctx.make_faults is None or ctx.attach_faults is None:
            result.ran = False
            result.not_run_reason = made if isinstance(made, str) else "no fault plan support"
            return result
        own = made
    faults = ctx.make_faults(own) if ctx.make_faults is not None else None
    if faults is not None and ctx.attach_faults is None:
        faults = None
    if faults is not None:
        result.fault_specs = tuple(r.spec for r in [*faults.rules, *faults.events])
        if faults.expiry is not None:
            result.fault_specs += ("token-expiry",)
    hooks = CheckHooks(plan)
    hooks.fault_plan = faults
    on_waiting = ctx.on_waiting
    if on_waiting is not None:
        if silence_bound is not None:
            ends = f"it is killed after {silence_bound:g}s of silence, as the baseline hung"
        elif config.task_timeout is not None:
            ends = f"it times out after {config.task_timeout:g}s — --timeout to change"
        else:
            ends = "no --timeout is set"

        def waiting(seconds: float, after: str) -> None:
            on_waiting(spec.name, seconds, after, ends)

        hooks.on_silence = waiting
    session: Session
    journal = Journal()
    journal.sinks.append(result.events.append)
    store = StubStore(":memory:")
    try:
        store.seed(ctx.fixtures)
        tokens = TokenIssuer()
        transport = StubTransport(store, tokens=tokens)
        http = stub_http(transport)
        if faults is not None and ctx.attach_faults is not None:
            ctx.attach_faults(faults, transport, journal, store)
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
                session = ParseSession(pspec, api, config=config, journal=journal, hooks=hooks)
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
                    retry=RetryPolicy(
                        attempts=2, wait_min=0.05, wait_max=0.1, timeout=API_TIMEOUT_S
                    ),
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
                session = TaskSession(tspec, api, config=config, journal=journal, hooks=hooks)
            result.session = hooks
            result.outcome = await session.run()
            timeout = next(
                (
                    e
                    for e in result.events
                    if e.kind == "process"
                    and e.data.get("event") == "signal"
                    and e.data.get("reason") == "--timeout reached"
                ),
                None,
            )
            if timeout is not None:
                hooks.timed_out(timeout.t)
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
    # A baseline that hung (killed at --timeout while the supervisor waited for it) would hang
    # the same way in every scenario: there, a runtime silent for --exit-bound is killed.
    timeout = ctx.config.task_timeout
    hung = baseline.silence is not None
    shorter = timeout is None or ctx.exit_bound < timeout
    silence_bound = ctx.exit_bound if hung and shorter else None
    limiter = trio.CapacityLimiter(max(1, ctx.jobs))

    async def one(spec: ScenarioSpec) -> None:
        async with limiter:
            if spec.needs_target and (
                target is None or (target.terminal_ok and not spec.terminal_ok)
            ):
                results[spec.name] = ScenarioResult(spec, ran=False)
            else:
                results[spec.name] = await run_scenario(spec, ctx, target, silence_bound)
        if on_done:
            on_done(results[spec.name])

    async with trio.open_nursery() as nursery:
        for spec in specs:
            if spec.name != "baseline":
                nursery.start_soon(one, spec)
    order = ["baseline", *(s.name for s in specs if s.name != "baseline")]
    return [results[name] for name in order]

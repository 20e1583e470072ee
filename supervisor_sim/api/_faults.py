"""Fault plans: failures of the Execution API and outside events, injected on demand.

A plan is a list of rules parsed from compact specs (``--fault``, docs/unhappy-paths.md) or the
same fields as TOML tables (``[[faults]]`` in the fixtures file):

    GetVariable:500                      every GetVariable call answers 500
    PUT /task-instances/*/heartbeat:409@3   the third heartbeat answers 409
    *:delay=0.5s                         every call is half a second slower
    GetConnection:reset@p=0.5            a connection reset, half of the calls (seeded)
    event=ti-failed@2s                   someone marks the TI failed 2 s into the session
    event=variable-deleted:KEY@GetVariable   ...after the first GetVariable was answered
    token-expiry=10s                     the token expires: 403 "Invalid auth token" from then on
    seed=7                               the seed of every probability

The client applies request faults before the call leaves (so they work against a real server
too); events change the stub's store through its public parts, before the next request, which is
the first moment anything can observe them. Every fault and event applied is reported to
``on_record`` (the session's journal: a ``note`` record with a ``fault`` object).
"""

from __future__ import annotations

import functools
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

__all__ = ["EVENTS", "FaultAction", "FaultPlan", "FaultPlanError", "FaultRule", "parse_fault"]

_PREFIX = "/execution/"
_METHODS = ("GET", "PUT", "POST", "PATCH", "DELETE", "HEAD")
_ACTIONS = ("reset", "timeout", "malformed")

#: Outside events: kind -> whether it takes an argument (``variable-set:KEY=VALUE``).
EVENTS: Mapping[str, bool] = {
    "ti-failed": False,
    "ti-success": False,
    "ti-up_for_retry": False,
    "ti-cleared": False,
    "ti-deleted": False,
    "ti-hostname-changed": False,
    "dagrun-deleted": False,
    "variable-set": True,
    "variable-deleted": True,
    "connection-deleted": True,
}


class FaultPlanError(ValueError):
    """A plan entry that cannot be used; the message names the entry (exit 2 on the CLI)."""


def _body_for(status: int) -> Any:
    """An error body shaped as Airflow's API answers with ``status``."""
    if status == 422:
        return {
            "detail": [
                {
                    "type": "missing",
                    "loc": ["body", "injected"],
                    "msg": "Field required",
                    "input": None,
                }
            ]
        }
    if status == 409:
        return {
            "detail": {
                "reason": "not_running",
                "message": "TI is no longer in the running state and task should terminate",
                "current_state": "failed",
            }
        }
    if status == 403:
        return {"detail": "Invalid auth token"}
    if status == 500:
        return {"detail": "Internal Server Error"}
    return {"detail": HTTPStatus(status).phrase}


@dataclass(frozen=True)
class FaultAction:
    """What to do with one request: wait ``delay_s``, then fail (``reset``/``timeout``),
    answer ``status`` with ``body`` (bytes as they are), or go on (``kind == "delay"``)."""

    kind: str  # "status", "malformed", "delay", "reset", "timeout"
    rule: str
    status: int | None = None
    body: bytes = b""
    content_type: str = "application/json"
    delay_s: float = 0.0


@dataclass
class FaultRule:
    """One parsed entry: a request fault (``target`` + ``action``) or an event."""

    spec: str
    action: str = ""  # "500", "delay", "reset", "timeout", "malformed" or "event"
    method: str | None = None
    path: re.Pattern[str] | None = None  # over the path after /execution/; None: every route
    status: int | None = None
    delay_s: float = 0.0
    nth: int | None = None  # only the Nth matching call
    from_nth: bool = False  # the Nth and every later one
    probability: float | None = None
    event: str = ""
    event_arg: str = ""
    at_s: float | None = None  # events: seconds into the plan
    after: FaultRule | None = None  # events: after the first call this rule's target matched
    where: str = ""  # a [[faults]] table's file and index, for messages; "" for --fault
    calls: int = field(default=0, init=False)
    per_route: dict[str, int] = field(default_factory=dict, init=False)
    done: bool = field(default=False, init=False)

    def targets(self, method: str, rest: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        return self.path is None or self.path.fullmatch(rest) is not None


def _duration(text: str, entry: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s)?", text.strip())
    if m is None:
        raise FaultPlanError(f"fault {entry!r}: {text!r} is not a duration (e.g. 0.5s, 200ms)")
    value = float(m.group(1))
    return value / 1000 if m.group(2) == "ms" else value


def _route_regex(path: str, entry: str) -> re.Pattern[str]:
    rest = path.strip()
    if rest.startswith(_PREFIX):
        rest = rest[len(_PREFIX) :]
    rest = rest.lstrip("/")
    parts = []
    for segment in rest.split("/"):
        if segment == "**":
            parts.append(".*")
        else:
            parts.append("[^/]+".join(re.escape(p) for p in segment.split("*")))
    regex = re.compile("/".join(parts))
    sample = re.sub(r"\*+", "x", rest)
    if not _known_route(sample):
        raise FaultPlanError(f"fault {entry!r}: no Execution API route matches {path.strip()!r}")
    return regex


def _known_route(rest: str) -> bool:
    return _route_of(rest) != ""


@functools.cache
def _route_patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    from .stub._routes import ROUTES  # the stub's table names every route Airflow's API has

    return tuple((re.compile(r.pattern), r.pattern) for r in ROUTES)


def _route_of(rest: str) -> str:
    """The route pattern serving ``rest`` (ids and keys left out), or ""."""
    return next((p for regex, p in _route_patterns() if regex.fullmatch(rest)), "")


def _request_type_route(name: str, entry: str) -> tuple[str, re.Pattern[str]]:
    from ..protocol import CATALOGUE

    spec = CATALOGUE.get(name)
    call = spec.http if spec is not None else ""
    m = re.search(r"\b(GET|PUT|POST|PATCH|DELETE|HEAD) ([^ ?]+)", call)
    if m is None:
        known = sorted(n for n, s in CATALOGUE.items() if s.http and s.http[:4] != "none")
        hint = ", ".join(known[:6])
        raise FaultPlanError(
            f"fault {entry!r}: {name!r} is not a request type that calls the API"
            f" (e.g. {hint}, or METHOD /path)"
        )
    pattern = re.sub(r"\{[^}]+\}", "*", m.group(2))
    return m.group(1), _route_regex(pattern, entry)


def _target(text: str, entry: str) -> tuple[str | None, re.Pattern[str] | None]:
    text = text.strip()
    if text == "*":
        return None, None
    method, _, path = text.partition(" ")
    if method.upper() in _METHODS and path:
        return method.upper(), _route_regex(path, entry)
    if re.fullmatch(r"[A-Z][A-Za-z]+", text):
        return _request_type_route(text, entry)
    raise FaultPlanError(
        f"fault {entry!r}: {text!r} is not a target (a request type such as GetVariable,"
        " 'METHOD /path' with * for a segment, or *)"
    )


def _when(rule: FaultRule, text: str, entry: str) -> None:
    text = text.strip()
    if text == "*":
        return
    if m := re.fullmatch(r"(\d+)(\+?)", text):
        rule.nth, rule.from_nth = int(m.group(1)), bool(m.group(2))
        if rule.nth < 1:
            raise FaultPlanError(f"fault {entry!r}: calls are counted from 1")
        return
    if m := re.fullmatch(r"p=(\d*\.?\d+)", text):
        rule.probability = float(m.group(1))
        if not 0 <= rule.probability <= 1:
            raise FaultPlanError(f"fault {entry!r}: a probability is between 0 and 1")
        return
    raise FaultPlanError(f"fault {entry!r}: {text!r} is not a call selector (N, N+, p=0.5 or *)")


def parse_fault(spec: str) -> FaultRule | tuple[str, Any]:
    """One entry of a spec: a ``FaultRule``, or a setting (``("seed", 7)``,
    ``("token-expiry", (seconds, calls))``). Raises ``FaultPlanError`` naming the entry."""
    entry = spec.strip()
    if not entry:
        raise FaultPlanError("fault '': an empty entry")
    key, eq, value = entry.partition("=")
    key = key.strip()
    if eq and key == "seed":
        if not re.fullmatch(r"-?\d+", value.strip()):
            raise FaultPlanError(f"fault {entry!r}: the seed is an integer")
        return ("seed", int(value))
    if eq and key == "token-expiry":
        value = value.strip()
        if m := re.fullmatch(r"(\d+)\s*calls?", value):
            return ("token-expiry", (None, int(m.group(1))))
        return ("token-expiry", (_duration(value, entry), None))
    if eq and key == "event":
        return _event(entry, value)
    target, sep, action = entry.rpartition(":")
    if not sep or not target:
        raise FaultPlanError(
            f"fault {entry!r}: expected TARGET:ACTION[@WHEN], event=KIND@WHEN, token-expiry=T"
            " or seed=N"
        )
    action, _, when = action.partition("@")
    rule = FaultRule(spec=entry)
    rule.method, rule.path = _target(target, entry)
    action = action.strip()
    if action.isdigit():
        status = int(action)
        if not 400 <= status <= 599:
            raise FaultPlanError(f"fault {entry!r}: an injected status is 400-599, not {status}")
        rule.action, rule.status = "status", status
    elif action.startswith("delay="):
        rule.action, rule.delay_s = "delay", _duration(action[6:], entry)
    elif action in _ACTIONS:
        rule.action = action
    else:
        raise FaultPlanError(
            f"fault {entry!r}: unknown action {action!r} (a status 400-599, delay=0.5s, "
            + ", ".join(_ACTIONS)
            + ")"
        )
    if when:
        _when(rule, when, entry)
    return rule


def _event(entry: str, value: str) -> FaultRule:
    kind, at, when = value.partition("@")
    kind, colon, arg = kind.strip().partition(":")
    if kind not in EVENTS:
        raise FaultPlanError(
            f"fault {entry!r}: unknown event {kind!r} (one of {', '.join(EVENTS)})"
        )
    if EVENTS[kind] and not arg:
        raise FaultPlanError(f"fault {entry!r}: {kind} needs its argument ({kind}:KEY)")
    if not EVENTS[kind] and colon:
        raise FaultPlanError(f"fault {entry!r}: {kind} takes no argument")
    if kind == "variable-set" and "=" not in arg:
        raise FaultPlanError(f"fault {entry!r}: variable-set:KEY=VALUE")
    rule = FaultRule(spec=entry, action="event", event=kind, event_arg=arg)
    when = when.strip()
    if not at or not when:
        raise FaultPlanError(f"fault {entry!r}: an event needs @TIME (2s) or @TARGET (a request)")
    if re.fullmatch(r"\d+(?:\.\d+)?(?:ms|s)", when):
        rule.at_s = _duration(when, entry)
    elif re.fullmatch(r"[-+]?\d[\w.]*", when):
        raise FaultPlanError(
            f"fault {entry!r}: {when!r} is not a time (a number of seconds or milliseconds:"
            " 2s, 500ms)"
        )
    else:
        target, hash_, nth = when.partition("#")
        if hash_ and not (nth.isdigit() and int(nth) >= 1):
            raise FaultPlanError(
                f"fault {entry!r}: {'#' + nth!r} is not a call number (#2: after the second"
                " call; calls are counted from 1)"
            )
        trigger = FaultRule(spec=entry, action="trigger")
        trigger.method, trigger.path = _target(target, entry)
        trigger.nth = int(nth) if hash_ else 1
        rule.after = trigger
    return rule


_TABLE_KINDS = (("seed",), ("token_expiry",), ("event", "at"), ("target", "action", "when"))


def _from_table(table: Mapping[str, Any], where: str) -> str:
    """A ``[[faults]]`` table as the spec it mirrors: target/action/when, or event/at, or
    seed, or token_expiry; a table that mixes two kinds of entry is refused."""
    allowed = {key for kind in _TABLE_KINDS for key in kind}
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise FaultPlanError(f"{where}: unknown key {unknown[0]!r} (one of {sorted(allowed)})")
    kinds = [kind for kind in _TABLE_KINDS if set(kind) & set(table)]
    if len(kinds) > 1:
        a, b = (sorted(set(kind) & set(table))[0] for kind in kinds[-2:])
        raise FaultPlanError(
            f"{where}: {a!r} and {b!r} belong to two kinds of entry (target/action/when,"
            " event/at, seed, token_expiry): one [[faults]] table each"
        )
    for key, value in table.items():
        if key == "seed":
            ok = isinstance(value, int) and not isinstance(value, bool)
            expected = "an integer"
        elif key == "when":
            ok = isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
            expected = "a call number or a string ('3+', 'p=0.5', '*')"
        else:
            ok, expected = isinstance(value, str), "a string"
        if not ok:
            raise FaultPlanError(f"{where}.{key}: expected {expected}, got {value!r}")
    if "seed" in table:
        return f"seed={table['seed']}"
    if "token_expiry" in table:
        return f"token-expiry={table['token_expiry']}"
    if "event" in table:
        if "at" not in table:
            raise FaultPlanError(
                f"{where}: an event needs at (a time such as '2s', or a request such as"
                " 'GetVariable')"
            )
        return f"event={table['event']}@{table['at']}"
    if "target" not in table or "action" not in table:
        raise FaultPlanError(f"{where}: a fault needs target and action (or event, seed)")
    when = table.get("when")
    return f"{table['target']}:{table['action']}" + (f"@{when}" if when is not None else "")


@dataclass
class _Expiry:
    after_s: float | None
    after_calls: int | None


class FaultPlan:
    """Parsed rules, their call counters, a seeded RNG and the events still to apply.

    ``store``: the stub's ``StubStore`` (events need one; a plan with events and none is
    refused by ``check_real``). ``on_record``: called with each fault or event applied."""

    def __init__(self, rules: Iterable[FaultRule] = (), *, seed: int = 0) -> None:
        self.rules = [r for r in rules if r.action != "event"]
        self.events = [r for r in rules if r.action == "event"]
        self.seed = seed
        self.expiry: _Expiry | None = None
        self.store: Any = None
        self.ti_id: str | None = None
        self.on_record: Callable[[dict[str, Any]], None] | None = None
        self._started: float | None = None
        self._calls = 0
        #: Calls a retryable fault hit whose outcome the client has not reported yet:
        #: (method, path after /execution/, unquoted) -> (full path, the rules that hit it).
        self._open: dict[tuple[str, str], tuple[str, list[str]]] = {}
        self._attempt: tuple[int, int | None] = (1, None)  # of the call being taken

    @classmethod
    def parse(
        cls,
        specs: Iterable[str] = (),
        tables: Iterable[Mapping[str, Any]] = (),
        *,
        source: str = "",
    ) -> FaultPlan:
        """A plan of ``specs`` (each may hold several entries separated by ``;``) and TOML
        tables (``[[faults]]`` of the file ``source``); raises ``FaultPlanError`` naming the
        bad entry (a table by file and index)."""
        entries: list[tuple[str, str]] = []  # (where a table's entry is, the entry)
        for spec in specs:
            if not spec.strip(" ;"):
                raise FaultPlanError(f"fault {spec!r}: an empty entry")
            entries += [("", e) for e in spec.split(";") if e.strip()]
        for i, table in enumerate(tables):
            where = f"{source}: faults[{i}]" if source else f"faults[{i}]"
            entries.append((where, _from_table(table, where)))
        rules: list[FaultRule] = []
        seed = 0
        expiry = None
        for where, entry in entries:
            try:
                parsed = parse_fault(entry)
            except FaultPlanError as exc:
                if not where:
                    raise
                raise FaultPlanError(f"{where}: {exc}") from None
            if isinstance(parsed, FaultRule):
                parsed.where = where
                rules.append(parsed)
            elif parsed[0] == "seed":
                seed = parsed[1]
            else:
                expiry = _Expiry(*parsed[1])
        plan = cls(rules, seed=seed)
        plan.expiry = expiry
        return plan

    def __bool__(self) -> bool:
        return bool(self.rules or self.events or self.expiry)

    def check_real(self) -> None:
        """Refuse what a real API server cannot be made to do from here: outside events."""
        if self.events:
            event = self.events[0]
            where = f"{event.where}: " if event.where else ""
            raise FaultPlanError(
                f"{where}fault {event.spec!r}: outside events need the stub; against"
                " --api-url, change the task instance on that Airflow instead"
            )

    def start(self) -> None:
        """Start the plan's clock (the session's start); the first request starts it too."""
        if self._started is None:
            self._started = time.monotonic()

    def elapsed(self) -> float:
        self.start()
        assert self._started is not None
        return time.monotonic() - self._started

    # -- one request ---------------------------------------------------------------------------

    def before(
        self, method: str, path: str, attempt: int = 1, attempts: int | None = None
    ) -> FaultAction | None:
        """Apply the events now due, then the action for this request (``path``: the full
        path, ``/execution/...``), if any rule takes it. ``attempt`` is the client's attempt
        of this call (1 for its first) and ``attempts`` how many it makes at most, when the
        client says: the note then names them."""
        rest = path[len(_PREFIX) :] if path.startswith(_PREFIX) else path.lstrip("/")
        self._attempt = (attempt, attempts)
        if attempt == 1:
            # A new call: one still open here ended without an outcome (it was cancelled).
            self._open.pop((method, unquote(rest)), None)
        if self.ti_id is None:
            m = re.match(r"task-instances/([0-9a-f-]{36})/", rest)
            if m:
                self.ti_id = m.group(1)
        elapsed = self.elapsed()
        self._calls += 1
        for event in self.events:
            if not event.done and event.at_s is not None and elapsed >= event.at_s:
                self._apply_event(event, f"at {event.at_s:g}s")
            elif (
                not event.done
                and event.after is not None
                and event.after.calls >= (event.after.nth or 1)
            ):
                self._apply_event(event, f"after {event.after.spec.split('@', 1)[-1]}")
        for event in self.events:
            trigger = event.after
            if trigger is not None and not event.done and trigger.targets(method, rest):
                trigger.calls += 1
        expiry = self.expiry
        if expiry is not None and rest != "health" and not rest.startswith("health/"):
            expired = (expiry.after_s is not None and elapsed >= expiry.after_s) or (
                expiry.after_calls is not None and self._calls > expiry.after_calls
            )
            if expired:
                spec = "token-expiry"
                self._record("token-expired", method, path, spec, _expiry_when(expiry), _EXPIRY_WHY)
                return FaultAction(
                    "status", spec, 403, b'{"detail":"Invalid auth token"}', "application/json"
                )
        # Every rule counts every call to its target, so "@1" and "@2" on one route are two
        # consecutive calls whichever rule took the first.
        taken: FaultRule | None = None
        when = ""
        for rule in self.rules:
            if not rule.targets(method, rest):
                continue
            rule.calls += 1
            if taken is not None:
                continue
            if rule.nth is not None:
                hit = rule.calls >= rule.nth if rule.from_nth else rule.calls == rule.nth
            elif rule.probability is not None:
                # A draw of its own per rule, route and call number: the same calls are taken
                # in every run of the seed, however the heartbeats interleave with requests.
                route = f"{method} {_route_of(rest)}"
                n = rule.per_route[route] = rule.per_route.get(route, 0) + 1
                draw = random.Random(f"{self.seed}/{rule.spec}/{route}/{n}")
                hit = draw.random() < rule.probability
                # Said by the count the draw used: the rule's count over every route depends
                # on how heartbeats interleave, so a seeded run would not read the same twice.
                when = f"call {n} to {route}, drawn with seed {self.seed}"
            else:
                hit = True
                when = f"call {rule.calls}"
            if hit:
                taken = rule
                if rule.nth is not None:
                    when = f"call {rule.calls}"
        if taken is None:
            return None
        if _retried(taken):
            # The client will retry this: what came of the call is said once it is known.
            _, hits = self._open.setdefault((method, unquote(rest)), (path, []))
            if taken.spec not in hits:
                hits.append(taken.spec)
        return self._action(taken, method, path, when, attempts)

    def settled(
        self,
        method: str,
        path: str,
        attempt: int,
        attempts: int,
        *,
        status: int | None = None,
        error: str | None = None,
        cause: Any = None,
    ) -> None:
        """The client's last word on one call: its final ``attempt`` (of at most ``attempts``)
        was answered ``status`` or failed with ``error``. When a retryable fault hit the call,
        its outcome is recorded (``what`` "outcome"): retried and answered, or given up, and
        what the supervisor does then. ``cause`` is what made the call (a frame's sequence
        number for a runtime's request, or a duty such as "heartbeat")."""
        rest = path[len(_PREFIX) :] if path.startswith(_PREFIX) else path.lstrip("/")
        opened = self._open.pop((method, unquote(rest)), None)
        if opened is None or self.on_record is None:
            return
        full, specs = opened
        ok = error is None and status is not None and status < 400
        if ok and attempt == 1:
            return  # a delay the first attempt outlived: nothing was retried
        self.on_record(
            {
                "what": "outcome",
                "rule": "; ".join(specs),
                "method": method,
                "path": full,
                "when": f"attempt {attempt} of {attempts}",
                "why": _outcome_why(method, full, attempt, attempts, status, error, cause),
                "outcome": "answered" if ok else "failed",
            }
        )

    def _action(
        self, rule: FaultRule, method: str, path: str, when: str, attempts: int | None = None
    ) -> FaultAction:
        why = _request_why(rule, method, path, attempts)
        if rule.action == "status":
            assert rule.status is not None
            body = _json(_body_for(rule.status))
            self._record(f"status {rule.status}", method, path, rule.spec, when, why)
            return FaultAction("status", rule.spec, rule.status, body)
        if rule.action == "malformed":
            self._record("malformed body", method, path, rule.spec, when, why)
            return FaultAction("malformed", rule.spec, 200, b'{"value": ', "application/json")
        if rule.action == "delay":
            self._record(f"delay {rule.delay_s:g}s", method, path, rule.spec, when, why)
            return FaultAction("delay", rule.spec, delay_s=rule.delay_s)
        self._record(rule.action, method, path, rule.spec, when, why)
        return FaultAction(rule.action, rule.spec)

    def _record(self, what: str, method: str, path: str, spec: str, when: str, why: str) -> None:
        if self.on_record is not None:
            record: dict[str, Any] = {
                "what": what,
                "rule": spec,
                "method": method,
                "path": path,
                "when": when,
                "why": why,
            }
            attempt, attempts = self._attempt
            if attempts is not None:  # the client said which attempt of how many this is
                record["attempt"], record["attempts"] = attempt, attempts
            self.on_record(record)

    # -- outside events ------------------------------------------------------------------------

    def _apply_event(self, event: FaultRule, when: str) -> None:
        event.done = True
        store, ti_id = self.store, self.ti_id
        if store is None:
            raise FaultPlanError(f"fault {event.spec!r}: outside events need the stub")
        detail = _apply(store, ti_id, event.event, event.event_arg)
        if self.on_record is not None:
            self.on_record(
                {
                    "what": f"event {event.event}",
                    "rule": event.spec,
                    "when": when,
                    "why": _event_why(event.event, event.event_arg),
                    "detail": detail,
                }
            )


# -- why each fault and event exists: what Airflow would do next (transcript notes) ----------

_NO_RETRY = "Airflow's client does not retry a 4xx, so the call fails at once"
_TERMINATES = (
    "Airflow's supervisor sends SIGTERM, SIGKILL after the escalation delay, and the final state "
    "is server_terminated"
)
_EXPIRY_WHY = (
    "the task's token has expired, so Airflow's API answers every "
    "call but health 403 Invalid auth token; its client does not retry a 4xx, requests fail and "
    "after max_failed_heartbeats failed heartbeats the supervisor terminates the task"
)


def _expiry_when(expiry: _Expiry) -> str:
    if expiry.after_calls is not None:
        return f"after {expiry.after_calls} calls"
    return f"after {expiry.after_s:g}s"


def _retried(rule: FaultRule) -> bool:
    """Whether the client may retry the call this rule hit (a 5xx, a reset, a timeout, or a
    delay it may take for one), so that its outcome is said once the client knows it."""
    if rule.action == "status":
        return rule.status is not None and rule.status >= 500
    return rule.action in ("reset", "timeout", "delay")


def _is_heartbeat(method: str, path: str) -> bool:
    return method == "PUT" and path.endswith("/heartbeat")


def _if_every_attempt_fails(method: str, path: str) -> str:
    """What follows when the client gives up on a call to ``path``."""
    if _is_heartbeat(method, path):
        return (
            "the heartbeat counts as failed, and after max_failed_heartbeats (3) failed "
            "heartbeats the supervisor terminates the task"
        )
    if method == "PATCH" and path.endswith("/run"):
        return "the task cannot start"
    if method == "PATCH" and path.endswith("/state"):
        return "the state call fails (a terminal message's is re-sent once the process exits)"
    return "the supervisor answers the runtime's request with an ErrorResponse"


def _retries(what: str, method: str, path: str, attempts: int | None) -> str:
    """Airflow's retry of a failed attempt, and what happens only if every attempt fails."""
    then = _if_every_attempt_fails(method, path)
    if attempts == 1:
        return (
            f"Airflow's client retries {what}, but this session's client makes a single "
            f"attempt, so {then}"
        )
    n = (
        f"up to {attempts} attempts in all in this session"
        if attempts is not None
        else "up to execution_api_retries attempts in all, 5 by default"
    )
    return (
        f"Airflow's client retries {what} ({n}, with random exponential back-off); "
        f"only if every attempt fails, {then}"
    )


def _request_why(rule: FaultRule, method: str, path: str, attempts: int | None = None) -> str:
    """One sentence: what the injected fault stands for and what Airflow does with it —
    only what is true whatever the retries bring (their outcome is a record of its own)."""
    heartbeat = _is_heartbeat(method, path)
    if rule.action == "status":
        status = rule.status
        assert status is not None
        if status >= 500:
            return f"the API answered {status} as a failing Airflow API server would; " + _retries(
                f"a {status}", method, path, attempts
            )
        if heartbeat and status in (404, 409, 410):
            meaning = {
                404: "the task instance was deleted",
                409: "the task instance is no longer running (its state was changed elsewhere)",
                410: "the task instance was cleared and its try moved to the history",
            }[status]
            return (
                f"the heartbeat was answered {status}, as Airflow's is when {meaning}; "
                + _TERMINATES
            )
        meaning = {
            403: "as for an expired or revoked token (Invalid auth token)",
            409: "as Airflow's does when the task instance is no longer running",
            422: "rejecting the request body as invalid (a pydantic-style detail)",
        }.get(status, f"({HTTPStatus(status).phrase})")
        return f"the API answered {status} {meaning}; {_NO_RETRY}"
    if rule.action == "delay":
        return (
            f"the API answered {rule.delay_s:g}s late, as a slow or overloaded API server "
            "would; Airflow's client waits up to execution_api_timeout (5 s by default) per "
            "attempt and retries a call slower than that as a timeout"
        )
    if rule.action == "reset":
        return (
            "the connection was reset by the peer, as when the API server restarts or a "
            "proxy drops the connection; " + _retries("a reset", method, path, attempts)
        )
    if rule.action == "timeout":
        return (
            "no answer came within the per-attempt timeout, as from a hung API server; "
            + _retries("a timeout", method, path, attempts)
        )
    assert rule.action == "malformed", rule.action
    return (
        "the API answered 200 with a JSON body cut short, as a truncating proxy would; "
        "Airflow's client cannot decode it and does not retry, so the supervisor answers the "
        "runtime's request with an ErrorResponse"
    )


def _outcome_why(
    method: str,
    path: str,
    attempt: int,
    attempts: int,
    status: int | None,
    error: str | None,
    cause: Any,
) -> str:
    """One sentence: what came of a call a retryable fault hit, and what follows from it."""
    heartbeat = _is_heartbeat(method, path)
    request = isinstance(cause, int) and not isinstance(cause, bool)  # a frame's seq number
    if error is None and status is not None and status < 400:
        then = (
            "the heartbeat counts as sent"
            if heartbeat
            else "the runtime gets the normal reply"
            if request
            else "the supervisor goes on"
        )
        return f"retried: attempt {attempt} was answered {status}, so {then}"
    if error is not None or (status is not None and status >= 500):
        last = f"answered {status}" if error is None else f"failed: {error}"
        head = (
            f"every attempt failed, so the client gave up after {attempt} attempts (the last "
            f"{last})"
            if attempt > 1
            else f"the only attempt {last}, so the call failed"
        )
        if heartbeat:
            then = "this heartbeat counts towards max_failed_heartbeats (3)"
        elif request:
            then = "the supervisor answers the runtime's request with an ErrorResponse"
            if method == "PATCH" and path.endswith("/state"):
                then += " and re-sends the state call once the process exits"
        else:
            then = f"the supervisor's own call ({cause or 'no cause recorded'}) failed"
        return f"{head}; {then}"
    return (
        f"attempt {attempt} was answered {status}, which the client does not retry, so the "
        "call failed; what follows depends on that status"
    )


def _event_why(kind: str, arg: str) -> str:
    """One sentence: who makes the outside event in Airflow, and what follows from it."""
    if kind in ("ti-failed", "ti-success", "ti-up_for_retry"):
        return (
            f"someone else (the UI, the CLI, the scheduler) set the task instance to "
            f"{kind[3:]}, so Airflow's API answers the next heartbeat 409 not_running and "
            f"{_TERMINATES}"
        )
    if kind == "ti-cleared":
        return (
            f"someone cleared the running task instance: as Airflow's "
            "clear_task_instances, it gets a new try id and the state restarting, the old id "
            f"is moved to the history, so the next heartbeat is answered 410 and {_TERMINATES}"
        )
    if kind == "ti-deleted":
        return (
            f"someone deleted the task instance, so Airflow's API answers the next "
            f"heartbeat 404 and {_TERMINATES}"
        )
    if kind == "ti-hostname-changed":
        return (
            f"the task instance now records another host, as when it was started "
            "elsewhere, so Airflow's API answers the next heartbeat 409 running_elsewhere and "
            f"{_TERMINATES}"
        )
    if kind == "dagrun-deleted":
        return (
            f"someone deleted the DAG run and its task instances, so Airflow's API "
            f"answers the next heartbeat 404 and {_TERMINATES}"
        )
    if kind == "variable-set":
        key = arg.partition("=")[0]
        return (
            f"someone changed variable {key} (the UI, the CLI), so the runtime's next "
            "read of it gets the new value"
        )
    if kind == "variable-deleted":
        return (
            f"someone deleted variable {arg}, so the runtime's next read of it is "
            "answered ErrorResponse VARIABLE_NOT_FOUND"
        )
    assert kind == "connection-deleted", kind
    return (
        f"someone deleted connection {arg}, so the runtime's next read of it is "
        "answered ErrorResponse CONNECTION_NOT_FOUND"
    )


def _json(value: Any) -> bytes:
    import json

    return json.dumps(value, separators=(",", ":")).encode()


def _apply(store: Any, ti_id: str | None, kind: str, arg: str) -> str:
    """Change the store as someone else would (the UI, the CLI, the scheduler)."""
    from .store import db_time, utcnow

    now = db_time(utcnow())
    needs_ti = kind.startswith("ti-") or kind == "dagrun-deleted"
    if needs_ti and (ti_id is None or store.tis.get(ti_id) is None):
        return "no task instance to change yet"
    if kind in ("ti-failed", "ti-success", "ti-up_for_retry"):
        state = kind[3:]
        store.tis.update(ti_id, state=state, end_date=now)
        return f"task instance {ti_id} set to {state}"
    if kind == "ti-cleared":
        # Airflow's clear_task_instances: a running TI becomes ``restarting`` (the scheduler
        # queues it once its worker is gone), any other has its state reset.
        cleared = "restarting" if store.tis.state(ti_id) == "running" else None
        new_id = store.tis.retry(ti_id, state=cleared, end_date=None)
        return f"task instance {ti_id} cleared ({cleared or 'no state'}): the new try is {new_id}"
    if kind == "ti-hostname-changed":
        store.tis.update(ti_id, hostname="elsewhere.example")
        return f"task instance {ti_id} now runs on elsewhere.example"
    if kind == "ti-deleted":
        with store.db.tx() as db:
            db.execute("DELETE FROM task_instances WHERE id = ?", (ti_id,))
        return f"task instance {ti_id} deleted"
    if kind == "dagrun-deleted":
        ti = store.tis.get(ti_id)
        with store.db.tx() as db:
            db.execute(
                "DELETE FROM task_instances WHERE dag_id = ? AND run_id = ?",
                (ti["dag_id"], ti["run_id"]),
            )
            db.execute(
                "DELETE FROM dag_runs WHERE dag_id = ? AND run_id = ?",
                (ti["dag_id"], ti["run_id"]),
            )
        return f"DAG run {ti['dag_id']}/{ti['run_id']} deleted with its task instances"
    if kind == "variable-set":
        key, _, value = arg.partition("=")
        store.variables.set(key, value)
        return f"variable {key} set"
    if kind == "variable-deleted":
        store.variables.delete(arg)
        return f"variable {arg} deleted"
    if kind == "connection-deleted":
        with store.db.tx() as db:
            db.execute("DELETE FROM connections WHERE conn_id = ?", (arg,))
        return f"connection {arg} deleted"
    raise AssertionError(kind)

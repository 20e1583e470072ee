"""How `supervisor-sim check` makes real task/parse sessions misbehave on purpose.

A ``Plan`` says how one scenario's supervisor departs from Airflow's normal behaviour: rewrite
StartupDetails (unknown keys, dropped or nil optional fields, timestamps of every msgpack size),
send short or long response arrays, add unknown keys to reply bodies, or treat one *target*
request specially (answer it with the wrong id, with an ErrorResponse in the body or the error
slot, or close the comm connection instead of answering). ``CheckHooks`` carry the plan out
through the session's public hooks (``SessionHooks``); everything else is the ordinary
``TaskSession`` / ``ParseSession``, so each scenario is a real session: own process, own
sockets, the stub Execution API, and the journal.

On top of the journal the hooks record what the rules need and the journal does not hold: the
raw bytes of every --logs line, and whether a request arrived before the previous reply was
sent (the stream offset of each request against the bytes received when each reply went out).
"""

from __future__ import annotations

import copy
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import trio

from ..protocol import (
    DEFINITIONS,
    TERMINAL,
    AnyOf,
    Line,
    ListOf,
    Model,
    Ref,
    SecretsMasker,
    Type,
    packb,
)
from ..supervision import ParseWorkload, Reply, SessionHooks, error_response

__all__ = [
    "PROBE_XCOM_KEY",
    "UNKNOWN_KEY",
    "WAIT_HINT_AFTER",
    "CheckHooks",
    "Plan",
    "Silence",
    "Target",
    "add_unknown_fields",
    "drop_optional_fields",
    "null_optional_fields",
    "timestamp_size",
    "with_every_timestamp_size",
]

#: Listed in ti_context.xcom_keys_to_clear, so that a runtime makes a request we can answer
#: unusually (Airflow's runtime sends GetXCom + DeleteXCom for it before running the task).
PROBE_XCOM_KEY = "supervisor_sim_check_probe"
#: The key added to every map a decoder must tolerate unknown keys in.
UNKNOWN_KEY = "x_supervisor_sim_check_unknown"
UNKNOWN_VALUE = {"added_by": "supervisor-sim check", "nested": [1, "two", None, {"three": 3.0}]}

Action = Literal["wrong-id", "error-body", "error-slot", "close-comm", "expire-token"]
Shape = Literal["airflow", "short", "long"]


@dataclass(frozen=True)
class Target:
    """Which request a scenario treats specially: the first one naming the probe XCom key, or
    the n-th request (0-based) when the runtime does not clear XComs."""

    probe: bool = True
    index: int | None = None
    #: Also match terminal messages (only when the runtime makes no other request).
    terminal_ok: bool = False
    #: The target's message type, and which request of that type it is (1-based): what the
    #: fault scenarios aim their fault plan at.
    type_name: str | None = None
    nth: int = 1

    def describe(self) -> str:
        if self.probe:
            return f"the first request for the XCom key {PROBE_XCOM_KEY!r}"
        return f"request number {self.index} (0-based)"


@dataclass
class Plan:
    """How a scenario's supervisor behaves; the default is Airflow's behaviour exactly."""

    startup: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    shape: Shape = "airflow"
    unknown_reply_keys: bool = False
    probe_xcom_key: bool = True
    action: Action | None = None
    target: Target | None = None
    #: After close-comm, the runtime must exit within this many seconds.
    exit_bound: float = 10.0
    #: The first error reply (error slot or ErrorResponse body) starts the progress watch: the
    #: runtime must send something or exit within ``exit_bound`` (the fault scenarios).
    watch_first_error: bool = False
    #: Kill the runtime once it has sent nothing this many seconds while the supervisor waits
    #: for it (every request answered, no terminal message yet); None: only --timeout ends
    #: the wait. Set for every scenario after a baseline that hung (docs/runtime-authors.md).
    silence_bound: float | None = None


#: Seconds of silence from the runtime before the check says it is waiting, and for what.
WAIT_HINT_AFTER = 5.0


@dataclass(frozen=True)
class Silence:
    """The runtime was silent while the supervisor waited for it, when the session ended it:
    since ``since`` (journal seconds), after ``after`` (the last frame out), ``killed_by`` the
    task timeout ("--timeout") or the silence bound ("silence")."""

    since: float
    after: str
    seconds: float
    killed_by: str

    def describe(self) -> str:
        """'no frame within 60s of StartupDetails (killed at --timeout)'."""
        how = (
            "killed at --timeout"
            if self.killed_by == "--timeout"
            else "killed after --exit-bound, as the baseline hung"
        )
        return f"the runtime sent no frame within {self.seconds:.3g}s of {self.after} ({how})"


@dataclass
class Probe:
    """What happened to the plan's target request."""

    seq: int | None = None  # journal seq of the target's incoming frame
    id: int | None = None
    type: str | None = None
    sent_id: int | None = None  # the id actually used in the reply (wrong-id)
    at: float | None = None


class CheckHooks(SessionHooks):
    """The hooks that make a task or parse session follow a check ``Plan``, and what they
    recorded for the rules; a scenario's result keeps them as its ``session``."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        #: (t, raw bytes of one --logs line, truncated?)
        self.raw_logs: list[tuple[float, bytes, bool]] = []
        #: ids of requests whose reply was not sent yet when the runtime sent more bytes
        self.pipelined: list[int] = []
        self.terminals: list[tuple[float, str, str | None]] = []
        self.probe = Probe()
        self.closed_at: float | None = None
        self.hung_after_close = False
        self.startup_body: dict[str, Any] | None = None
        self.reply_unknown_paths: list[str] = []
        self._frame_end: int | None = None
        self.frames_in = 0
        #: Neither a frame nor an exit within exit_bound after the injected reply.
        self.stalled_after_injection = False
        self._pending_action: Action | None = None
        #: The session's fault plan (docs/unhappy-paths.md), when it has one.
        self.fault_plan: Any = None
        #: The first error reply sent, when ``watch_first_error``.
        self.first_error: Probe | None = None
        self.token_expired_at: float | None = None
        #: Called once per session when the runtime has been silent ``WAIT_HINT_AFTER``
        #: seconds while the supervisor waits for it, with the seconds so far.
        self.on_silence: Callable[[float, str], None] | None = None
        #: Journal time of the last frame in or out, and what the last frame out was, while
        #: the supervisor waits for the runtime (every request answered); None otherwise.
        self.waiting_since: float | None = None
        self._waiting_after = ""
        #: The silence the session ended in, when it was killed waiting for the runtime.
        self.silence: Silence | None = None

    # --- what the rules read from the session ----------------------------------------------------

    @property
    def masker(self) -> SecretsMasker:
        return self.session.masker

    @property
    def result(self) -> dict[str, Any] | None:
        """A parse session's DagFileParsingResult (None for a task session)."""
        workload = self.session.workload
        return workload.result if isinstance(workload, ParseWorkload) else None

    # --- the hooks -------------------------------------------------------------------------------

    def first_frame(self, body: dict[str, Any]) -> dict[str, Any]:
        self.session.start_soon(self._watch_silence)
        if body.get("type") != "StartupDetails":
            return body  # a parse request goes out as the parse workload made it
        if self.plan.probe_xcom_key:
            context = body["ti_context"]
            keys = list(context.get("xcom_keys_to_clear") or [])
            context["xcom_keys_to_clear"] = [*keys, PROBE_XCOM_KEY]
        if self.plan.startup is not None:
            body = self.plan.startup(copy.deepcopy(body))
        self.startup_body = body
        return body

    def on_frame(self, payload: bytes, offset: int) -> None:
        self.frames_in += 1
        self._frame_end = offset + 4 + len(payload)
        self.waiting_since = None  # the supervisor's turn, until its reply is out

    def on_log_line(self, line: Line, source: str) -> None:
        if source == "logs":
            self.raw_logs.append(
                (self.session.journal.now(), bytes(line.data), bool(line.truncated))
            )

    async def answer(self, body: dict[str, Any], frame_id: int, cause: int) -> Reply | None:
        index = self.frames_in - 1  # counts every frame, as target_from does
        type_name = body.get("type")
        now = self.session.journal.now
        if type_name in TERMINAL:
            self.terminals.append((now(), type_name, body.get("state")))
        if not self._is_target(body, index):
            return None
        self.probe = Probe(seq=cause, id=frame_id, type=type_name, at=now())
        self._pending_action = action = self.plan.action
        if action == "error-body":
            return error_response(
                "XCOM_NOT_FOUND" if body.get("key") == PROBE_XCOM_KEY else "GENERIC_ERROR",
                {"reason": "not_found", "message": "injected by supervisor-sim check"},
            ), None
        if action == "error-slot":
            return None, error_response(
                "API_SERVER_ERROR",
                {
                    "status_code": 500,
                    "message": "Server error (injected by supervisor-sim check)",
                    "detail": {"reason": "injected"},
                },
            )
        if action == "close-comm":
            return None, None
        if action == "expire-token":
            self._expire_token()
            return None  # the workload makes the call, with the expired token
        return None  # wrong-id: the workload answers, the reply goes out with another id

    def _is_target(self, body: dict[str, Any], index: int) -> bool:
        target = self.plan.target
        if target is None or self.plan.action is None or self.probe.seq is not None:
            return False
        if body.get("type") in TERMINAL and not target.terminal_ok:
            return False
        if target.probe:
            return body.get("key") == PROBE_XCOM_KEY
        return index == target.index

    async def send(
        self, req_id: int, body: dict[str, Any] | None, error: dict[str, Any] | None
    ) -> None:
        session = self.session
        now = session.journal.now
        action, self._pending_action = self._pending_action, None
        if action == "close-comm":
            await self._close_comm(req_id)
            return
        sent_id = req_id
        if action == "wrong-id":
            sent_id = req_id + 1000
            self.probe.sent_id = sent_id
        if body is not None and self.plan.unknown_reply_keys and self.startup_body is not body:
            body = add_unknown_fields(
                body, DEFINITIONS.get(body.get("type", "")), body.get("type", "body"),
                self.reply_unknown_paths,
            )  # fmt: skip
        frame: list[Any] = [sent_id, body, error]
        shape = self.plan.shape
        if shape == "short":
            while len(frame) > 1 and frame[-1] is None:
                frame.pop()
        elif shape == "long":
            frame.append(dict(UNKNOWN_VALUE))
        payload = packb(frame)
        session.journal.emit(
            "frame",
            direction="out",
            id=sent_id,
            type=(body or error or {}).get("type") if (body or error) else None,
            body=body,
            error=error,
            payload=payload,
            elements=len(frame),
            **({"answers": req_id} if sent_id != req_id else {}),
        )
        if self._frame_end is not None and self._more_pending():
            self.pipelined.append(req_id)
        self._frame_end = None
        erred = error is not None or (body is not None and body.get("type") == "ErrorResponse")
        if self.plan.watch_first_error and erred and self.first_error is None:
            self.first_error = Probe(id=req_id, type=(error or body or {}).get("error"), at=now())
            if action is None:
                session.start_soon(self._watch_progress, self.frames_in)
        if action is not None:
            session.start_soon(self._watch_progress, self.frames_in)
        await session.write(len(payload).to_bytes(4, "big") + payload, req_id)
        # The runtime's turn now (a request it sent meanwhile is read next and ends it).
        self.waiting_since = now()
        self._waiting_after = (
            str((body or {}).get("type") or "the first frame")
            if self.frames_in == 0
            else f"the reply to request {req_id}"
        )

    # --- helpers ---------------------------------------------------------------------------------

    def _more_pending(self) -> bool:
        """Did the runtime send anything after the request being answered — before its reply?"""
        session = self.session
        if self._frame_end is None or session.comm is None:
            return False
        if session.comm_received > self._frame_end:
            return True  # already read, waiting in the frame decoder
        try:
            fd = session.comm.socket.fileno()
            with socket.socket(fileno=os.dup(fd)) as peek:
                return bool(peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except OSError:  # nothing pending (BlockingIOError), or the socket is gone
            return False

    async def _watch_silence(self) -> None:
        """While the supervisor waits for the runtime (every request answered, no terminal
        message yet): after ``WAIT_HINT_AFTER`` seconds of silence say so once
        (``on_silence``); after ``plan.silence_bound`` seconds kill the runtime. When the
        session's own --timeout kills a silent runtime, remember the silence for the rules."""
        session = self.session
        child = session.child
        assert child is not None
        now = session.journal.now
        hinted = False
        bound = self.plan.silence_bound
        while child.alive:
            with trio.move_on_after(0.1):
                await child.exited.wait()
            since = self.waiting_since
            if since is None or self.terminals or self.closed_at is not None:
                continue
            silent = now() - since
            if not hinted and silent >= WAIT_HINT_AFTER and self.on_silence is not None:
                hinted = True
                self.on_silence(silent, self._waiting_after)
            if bound is not None and silent >= bound:
                self.silence = Silence(since, self._waiting_after, bound, "silence")
                session.journal.emit(
                    "note",
                    level="error",
                    message=f"check: no frame {bound:g}s after {self._waiting_after} (the "
                    "baseline's runtime hung the same way); killing the runtime",
                )
                await session.kill("no frame from the runtime")
                return

    def timed_out(self, killed_at: float) -> None:
        """The session's --timeout killed the runtime at ``killed_at`` (journal seconds): if
        the supervisor was waiting for it then, that silence is what the rules report."""
        since = self.waiting_since
        if self.silence is not None or since is None or self.terminals:
            return
        # A runtime that sent a frame a moment before the timeout was busy, not silent.
        if self.closed_at is None and killed_at - since >= 1.0:
            self.silence = Silence(since, self._waiting_after, killed_at - since, "--timeout")

    async def _watch_progress(self, frames_before: int) -> None:
        """After an injected reply the runtime must send something or exit within the bound;
        one that just waits is killed, so that no scenario waits for the task timeout."""
        child = self.session.child
        assert child is not None
        bound = self.plan.exit_bound
        with trio.move_on_after(bound):
            while child.alive and self.frames_in == frames_before:
                await trio.sleep(0.05)
        if child.alive and self.frames_in == frames_before:
            self.stalled_after_injection = True
            self.session.journal.emit(
                "note",
                level="error",
                message=f"check: no frame and no exit {bound:g}s after the injected reply; "
                "killing the runtime",
            )
            await self.session.kill("stalled after the injected reply")

    def _expire_token(self) -> None:
        """From now on every call of the session answers 403 ``Invalid auth token``: the fault
        plan's own token model (``token-expiry=``), started at the target request."""
        from ..api import FaultPlan

        plan = self.fault_plan
        if plan is None:  # every fault scenario runs with a plan; nothing to expire without
            return
        plan.expiry = FaultPlan.parse(["token-expiry=0s"]).expiry
        self.token_expired_at = self.session.journal.now()
        self.session.journal.emit(
            "note",
            level="warning",
            message="check: the task's token expires now, at the target request: every later "
            "call answers 403 Invalid auth token",
        )

    async def _close_comm(self, req_id: int) -> None:
        session = self.session
        self.closed_at = session.journal.now()
        session.journal.emit(
            "note",
            level="warning",
            message=f"check: closing the comm connection instead of answering request {req_id}",
        )
        assert session.comm is not None
        await session.comm.aclose()
        session.start_soon(self._watch_exit_after_close)

    async def _watch_exit_after_close(self) -> None:
        child = self.session.child
        assert child is not None
        bound = self.plan.exit_bound
        with trio.move_on_after(bound):
            await child.exited.wait()
        if child.alive:
            self.hung_after_close = True
            self.session.journal.emit(
                "note",
                level="error",
                message=f"check: the runtime is still running {bound:g}s after the comm "
                "connection closed; killing it",
            )
            await self.session.kill("still running after the comm connection closed")


# --- StartupDetails rewrites, driven by the message catalogue ----------------------------------


def _resolve(t: Type | None) -> Type | None:
    while isinstance(t, Ref):
        t = DEFINITIONS.get(t.name)
    return t


def _option_for(value: Any, t: Type | None) -> Type | None:
    """The branch of a type that a value takes (a model for a map, a list type for a list)."""
    t = _resolve(t)
    if isinstance(t, AnyOf):
        for option in t.options:
            o = _resolve(option)
            if isinstance(value, dict) and isinstance(o, Model):
                return o
            if isinstance(value, list) and isinstance(o, ListOf):
                return o
        return None
    return t


def add_unknown_fields(value: Any, t: Type | None, path: str, added: list[str]) -> Any:
    """A copy of ``value`` with an unknown key in every map of a known model at every level —
    except models Airflow itself declares extra="forbid" (DagRun, ...): its own runtime rejects
    unknown keys there, so no Airflow supervisor can send them."""
    t = _option_for(value, t)
    if isinstance(t, Model) and isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            f = t.by_name.get(key)
            out[key] = add_unknown_fields(item, f.type, f"{path}.{key}", added) if f else item
        if not t.forbid_extra:
            out[UNKNOWN_KEY] = copy.deepcopy(UNKNOWN_VALUE)
            added.append(path)
        return out
    if isinstance(t, ListOf) and isinstance(value, list):
        return [add_unknown_fields(v, t.item, f"{path}[{i}]", added) for i, v in enumerate(value)]
    return value


def drop_optional_fields(value: Any, t: Type | None, path: str, dropped: list[str]) -> Any:
    """A copy with every optional key (one with a default) removed, at every level; ``type``
    stays, because every body needs it."""
    t = _option_for(value, t)
    if isinstance(t, Model) and isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            f = t.by_name.get(key)
            if f is not None and not f.required and key != "type":
                dropped.append(f"{path}.{key}")
                continue
            out[key] = drop_optional_fields(item, f.type, f"{path}.{key}", dropped) if f else item
        return out
    if isinstance(t, ListOf) and isinstance(value, list):
        return [
            drop_optional_fields(v, t.item, f"{path}[{i}]", dropped) for i, v in enumerate(value)
        ]
    return value


def null_optional_fields(value: Any, t: Type | None, path: str, nulled: list[str]) -> Any:
    """A copy with nil in every position whose type accepts nil (optional or required-nullable),
    at every level."""
    t = _option_for(value, t)
    if isinstance(t, Model) and isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            f = t.by_name.get(key)
            if f is not None and f.nullable:
                nulled.append(f"{path}.{key}")
                out[key] = None
            else:
                out[key] = (
                    null_optional_fields(item, f.type, f"{path}.{key}", nulled) if f else item
                )
        # Keys the model defines but the body lacks are sent as nil too (nil in "optional" spots).
        for f in t.fields:
            if f.name not in out and f.nullable:
                nulled.append(f"{path}.{f.name}")
                out[f.name] = None
        return out
    if isinstance(t, ListOf) and isinstance(value, list):
        return [
            null_optional_fields(v, t.item, f"{path}[{i}]", nulled) for i, v in enumerate(value)
        ]
    return value


#: Dates that force each msgpack timestamp form (docs/protocol.md, "Framing").
TIMESTAMP_DATES: dict[str, datetime] = {
    # before 1970: negative seconds only fit timestamp96
    "logical_date": datetime(1969, 7, 20, 20, 17, 40, tzinfo=UTC),
    # whole seconds after 1970 below 2^32: timestamp32
    "data_interval_start": datetime(2024, 1, 1, tzinfo=UTC),
    # sub-second: timestamp64
    "data_interval_end": datetime(2024, 1, 2, 0, 0, 0, 123456, tzinfo=UTC),
    # seconds beyond 2^34 (after 2514): timestamp96 again, from the other side
    "run_after": datetime(2600, 1, 1, 12, 0, 0, 500000, tzinfo=UTC),
    "start_date": datetime(2024, 1, 2, 0, 0, 1, 654321, tzinfo=UTC),
}


def with_every_timestamp_size(body: dict[str, Any]) -> dict[str, Any]:
    """StartupDetails whose DagRun dates need all three timestamp forms."""
    dag_run = body["ti_context"]["dag_run"]
    for key, value in TIMESTAMP_DATES.items():
        dag_run[key] = value
    body["start_date"] = datetime.now(UTC).replace(microsecond=123456)
    return body


def timestamp_size(value: datetime) -> int:
    """32, 64 or 96: the msgpack timestamp form msgpack/msgspec use for an aware datetime."""
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    seconds = delta.days * 86400 + delta.seconds
    nanos = delta.microseconds * 1000
    if seconds >> 34 == 0:
        return 32 if nanos == 0 and seconds >> 32 == 0 else 64
    return 96


def walk_datetimes(value: Any, path: str = "") -> list[tuple[str, datetime]]:
    """Every datetime inside a decoded value, with its path."""
    out: list[tuple[str, datetime]] = []
    if isinstance(value, datetime):
        out.append((path, value))
    elif isinstance(value, dict):
        for k, v in value.items():
            out.extend(walk_datetimes(v, f"{path}.{k}" if path else str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(walk_datetimes(v, f"{path}[{i}]"))
    return out


@dataclass
class Rewrite:
    """A StartupDetails rewrite that remembers the paths it touched (for evidence)."""

    kind: Literal["unknown", "drop", "null"]
    paths: list[str] = field(default_factory=list)

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        model = DEFINITIONS["StartupDetails"]
        if self.kind == "unknown":
            return add_unknown_fields(body, model, "StartupDetails", self.paths)
        if self.kind == "drop":
            return drop_optional_fields(body, model, "StartupDetails", self.paths)
        return null_optional_fields(body, model, "StartupDetails", self.paths)

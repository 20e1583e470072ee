"""What a session observes, as plain records: the transcript, the console and the summary all
read this one stream, so none of them can disagree with another about what happened.

The journal is also where what the runtime did wrong is bounded and masked: a violation is
recorded in full only up to the limits' caps (``Limits.violations_per_rule`` and
``violations_per_session``; later ones are counted), and its message, path and bytes are masked
with the session's ``Redactor`` before any sink sees them (docs/reliability.md, "Secrets").
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from ..protocol import LIMITS, Limits

if TYPE_CHECKING:
    from ..api import Exchange
    from ._redaction import Redactor

__all__ = ["Event", "Journal", "Violation", "journal_exchanges"]

Kind = Literal["frame", "http", "log", "process", "violation", "note"]


@dataclass(slots=True)
class Event:
    """One thing that happened, ``t`` seconds after the session started."""

    kind: Kind
    t: float
    data: dict[str, Any]
    seq: int = 0


@dataclass(frozen=True)
class Violation:
    """A protocol rule the runtime broke, and what real Airflow would have done about it."""

    rule: str
    message: str
    airflow: str
    path: str | None = None
    frame_id: int | None = None
    #: The offending bytes, when they are not already in a frame record.
    raw: bytes | None = None
    #: Set when ``raw`` is the offending bytes with the secrets in them masked: how many bytes
    #: were received.
    raw_len: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if v is not None and k != "raw"}
        if self.raw:
            out["raw_b64"] = base64.b64encode(self.raw).decode()
        if self.raw_len is not None:
            out["raw_redacted"] = True
        return out


def _microseconds(seconds: float) -> float:
    """``seconds`` (>= 0) to the microsecond, as ``round(seconds, 6)`` gives it, at half the
    cost: k / 1e6 is the float nearest k millionths, which prints as those digits."""
    return int(seconds * 1e6 + 0.5) / 1e6


_FRAME_COUNTS: dict[Any, str] = {"in": "frames_in", "out": "frames_out"}


@dataclass
class Journal:
    """The session's event stream: numbers events, keeps counts, and fans out to sinks."""

    sinks: list[Callable[[Event], None]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    counts: dict[str, int] = field(default_factory=dict)
    #: The violations recorded in full, masked, up to the caps of ``limits``.
    violations: list[Violation] = field(default_factory=list)
    #: Violations past the caps, only counted: rule -> how many.
    suppressed: dict[str, int] = field(default_factory=dict)
    #: How many --comm bytes the suppressed violations consumed (not kept anywhere).
    suppressed_bytes: int = 0
    limits: Limits = LIMITS
    #: Masks what the journal is given (violations, notes); a session sets its own.
    redactor: Redactor | None = None
    _seq: int = 0
    _held: list[Event] | None = None
    _per_rule: dict[str, int] = field(default_factory=dict)

    def now(self) -> float:
        return time.monotonic() - self.started

    def emit(self, kind: Kind, **data: Any) -> Event:
        if kind == "note" and self.redactor is not None:
            # The supervisor's own words, but they may quote the API or the runtime.
            message = data.get("message")
            if type(message) is str:
                data["message"] = self.redactor.text(message)
        self._seq = seq = self._seq + 1
        event = Event(kind, _microseconds(time.monotonic() - self.started), data, seq)
        if kind == "frame":
            direction = data.get("direction")
            key = _FRAME_COUNTS.get(direction) or f"frames_{direction}"
        else:
            key = kind
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1
        if self._held is not None:
            self._held.append(event)
            return event
        for sink in self.sinks:
            sink(event)
        return event

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Deliver the events emitted inside the block to the sinks when it ends, in order.

        A session answers a request from the embedded stub without ever yielding, so it holds
        that request's records (frame in, HTTP exchange, frame out) until the reply is on the
        wire: the runtime gets its answer first and the transcript is written while it works.
        Numbering, counts and the returned events are immediate; only delivery waits. A sink
        with a ``batch`` method gets the held events in one call, in order.
        """
        held = self.hold()
        try:
            yield
        finally:
            self.release(held)

    def hold(self) -> list[Event] | None:
        """Start holding (``holding`` without a context manager, for the request path): the list
        to give ``release``, or None when an outer hold already delivers."""
        if self._held is not None:
            return None
        held: list[Event] = []
        self._held = held
        return held

    def release(self, held: list[Event] | None) -> None:
        """End the hold ``hold`` returned and deliver what it held, in order."""
        if held is None:
            return
        self._held = None
        for sink in self.sinks if held else ():
            # A sink may take the events together (the transcript writes them in one go).
            batch = getattr(sink, "batch", None)
            if batch is not None:
                batch(held)
            else:
                for event in held:
                    sink(event)

    def violation(self, violation: Violation) -> Event | None:
        """Record ``violation``, masked, or only count it once its rule or the session has
        reached the caps (``None`` then: no event). Past the caps nothing of it is kept."""
        rule = violation.rule
        per_rule = self._per_rule
        seen = per_rule[rule] = per_rule.get(rule, 0) + 1
        limits = self.limits
        if seen > limits.violations_per_rule or (
            len(self.violations) >= limits.violations_per_session
        ):
            suppressed = self.suppressed
            suppressed[rule] = suppressed.get(rule, 0) + 1
            if violation.raw:
                self.suppressed_bytes += len(violation.raw)
            return None
        if self.redactor is not None:
            violation = _masked(violation, self.redactor)
        self.violations.append(violation)
        return self.emit("violation", **violation.as_dict())

    @property
    def violation_count(self) -> int:
        """Every violation reported, recorded or only counted."""
        return len(self.violations) + sum(self.suppressed.values())

    def note_suppressed(self) -> None:
        """One note per rule some of whose violations were only counted: how many more."""
        limits = self.limits
        for rule, n in self.suppressed.items():
            self.emit(
                "note",
                level="warning",
                message=f"{n:,} more {rule} violation{'s' if n != 1 else ''} counted, not "
                f"recorded (at most {limits.violations_per_rule:,} of one rule and "
                f"{limits.violations_per_session:,} in all are recorded)",
                rule=rule,
                suppressed=n,
            )


def _masked(violation: Violation, redactor: Redactor) -> Violation:
    """``violation`` with its message and path masked, and its bytes unless they are kept."""
    message = redactor.text(violation.message)
    path = violation.path
    if path is not None:
        path = redactor.text(path)
    raw = violation.raw
    raw_len = violation.raw_len
    if raw and redactor.redacts_received and redactor.holds_secret(raw):
        raw_len = len(raw)
        raw = redactor.bytes(raw)
    if message == violation.message and path == violation.path and raw is violation.raw:
        return violation
    return replace(violation, message=message, path=path, raw=raw, raw_len=raw_len)


def journal_exchanges(journal: Journal) -> Callable[[Exchange], None]:
    """An ``on_exchange`` callback for ``ExecutionAPIClient`` that records each HTTP exchange
    as an ``http`` event of ``journal``, masked with the journal's redactor: the error always,
    the path and query unless received data is kept (``--no-redact``). The bodies' strings are
    the transcript writer's to mask, as it writes them."""

    def on_exchange(exchange: Exchange) -> None:
        path = exchange.path
        query = exchange.query
        error = exchange.error
        redactor = journal.redactor
        if redactor is not None:
            if error:
                error = redactor.text(error)
            if redactor.redacts_received:
                if redactor.text_holds_secret(path):
                    path = redactor.text(path)
                if query and redactor.text_holds_secret(query):
                    query = redactor.text(query)
        journal.emit(
            "http",
            method=exchange.method,
            path=path,
            query=query,
            status=exchange.status,
            error=error,
            attempt=exchange.attempt,
            duration_s=_microseconds(exchange.duration_s),
            cause=exchange.cause,
            request_headers=exchange.request_headers,
            request_body=exchange.request_body,
            response_headers=exchange.response_headers,
            response_body=exchange.response_body,
        )

    return on_exchange

"""What a session observes, as plain records: the transcript, the console and the summary all
read this one stream, so none of them can disagree with another about what happened."""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ..api import Exchange

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

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if v is not None and k != "raw"}
        if self.raw:
            out["raw_b64"] = base64.b64encode(self.raw).decode()
        return out


@dataclass
class Journal:
    """The session's event stream: numbers events, keeps counts, and fans out to sinks."""

    sinks: list[Callable[[Event], None]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    counts: dict[str, int] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)
    _seq: int = 0
    _held: list[Event] | None = None

    def now(self) -> float:
        return time.monotonic() - self.started

    def emit(self, kind: Kind, **data: Any) -> Event:
        self._seq = seq = self._seq + 1
        event = Event(kind, round(time.monotonic() - self.started, 6), data, seq)
        key = f"frames_{data.get('direction')}" if kind == "frame" else kind
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
        if self._held is not None:  # nested: the outer block delivers
            yield
            return
        held: list[Event] = []
        self._held = held
        try:
            yield
        finally:
            self._held = None
            for sink in self.sinks if held else ():
                # A sink may take the events together (the transcript writes them in one go).
                batch = getattr(sink, "batch", None)
                if batch is not None:
                    batch(held)
                else:
                    for event in held:
                        sink(event)

    def violation(self, violation: Violation) -> Event:
        self.violations.append(violation)
        return self.emit("violation", **violation.as_dict())


def journal_exchanges(journal: Journal) -> Callable[[Exchange], None]:
    """An ``on_exchange`` callback for ``ExecutionAPIClient`` that records each HTTP exchange
    as an ``http`` event of ``journal``."""

    def on_exchange(exchange: Exchange) -> None:
        journal.emit(
            "http",
            method=exchange.method,
            path=exchange.path,
            query=exchange.query,
            status=exchange.status,
            error=exchange.error,
            attempt=exchange.attempt,
            duration_s=round(exchange.duration_s, 6),
            cause=exchange.cause,
            request_headers=exchange.request_headers,
            request_body=exchange.request_body,
            response_headers=exchange.response_headers,
            response_body=exchange.response_body,
        )

    return on_exchange

"""What a session observes, as plain records: the transcript, the console and the summary all
read this one stream, so none of them can disagree with another about what happened."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Event", "Journal", "Violation"]

Kind = Literal["frame", "http", "log", "process", "violation", "note"]


@dataclass
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

    def now(self) -> float:
        return time.monotonic() - self.started

    def emit(self, kind: Kind, **data: Any) -> Event:
        self._seq += 1
        event = Event(kind, round(self.now(), 6), data, self._seq)
        key = kind
        if kind == "frame":
            key = f"frames_{data.get('direction')}"
        self.counts[key] = self.counts.get(key, 0) + 1
        for sink in self.sinks:
            sink(event)
        return event

    def violation(self, violation: Violation) -> Event:
        self.violations.append(violation)
        return self.emit("violation", **violation.as_dict())

"""The limits on what a runtime may send, in one place (docs/reliability.md, "Limits").

Everything a runtime writes is input to a supervisor that must outlive it. Each limit is set
below anything downstream can survive: the masker, the tagged-JSON conversion, the transcript
writer and reader, ``show`` and the HTML page all walk values by recursion, the deepest of them
using up to 6 Python frames per level of a frame's msgpack (the HTML page's NaN cleaning of a
map with non-string keys, which the transcript stores as ``{"$map": [[k, v]]}``: 3 JSON levels
per level). At 64 levels that is under 400 of Python's 1000 frames; at the 100-level bound,
600, still leaving room for the caller's own stack.

A breach is never silent: the frame or line is kept, as an undecodable frame or an unparsed line
(the path malformed input takes), with a violation whose rule id names the limit.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

__all__ = ["LIMITS", "Limits", "depth_exceeds"]


@dataclass(frozen=True, slots=True)
class Limits:
    """What a session accepts from its runtime. ``BOUNDS`` holds each field's sane range; a value
    outside it is refused with ``ValueError``."""

    #: Deepest nesting of arrays and maps in a comm frame; the envelope array is level 1, the
    #: body map level 2. Breach: ``frame-too-deep``.
    max_frame_depth: int = 64
    #: Deepest nesting of arrays and objects in a JSON log line; the record object is level 1.
    #: Breach: ``log-too-deep``.
    max_log_depth: int = 64
    #: Most digits in an integer of a JSON log line (its sign not counted). 640 is the lowest
    #: limit Python's ``int()`` can be configured to (``sys.set_int_max_str_digits``), so every
    #: accepted integer also converts back to text. Breach: ``log-number-too-long``.
    max_int_digits: int = 640
    #: Largest comm frame payload; larger ones are rejected from their 4-byte header and
    #: discarded unbuffered. Breach: ``frame-too-large``.
    max_frame_size: int = 64 * 1024 * 1024
    #: Longest log, stdout or stderr line kept; the rest is dropped and the line marked
    #: ``[truncated]``. Breach: ``log-line-too-long``.
    max_log_line: int = 1024 * 1024
    #: Violations of one rule recorded in full; later ones of that rule are only counted.
    violations_per_rule: int = 100
    #: Violations recorded in full in one session, all rules together; later ones are counted.
    violations_per_session: int = 1000

    #: (lowest, highest) accepted for each field.
    BOUNDS: ClassVar[dict[str, tuple[int, int]]] = {
        "max_frame_depth": (16, 100),
        "max_log_depth": (16, 100),
        "max_int_digits": (20, 4300),  # 64-bit integers always; CPython's default int() limit
        "max_frame_size": (1, 2**32 - 1),  # the length header's range
        "max_log_line": (1, 2**31 - 1),
        "violations_per_rule": (1, 1_000_000),
        "violations_per_session": (1, 1_000_000),
    }

    def __post_init__(self) -> None:
        for f in fields(self):
            value: Any = getattr(self, f.name)
            low, high = self.BOUNDS[f.name]
            if type(value) is not int or not low <= value <= high:
                raise ValueError(f"{f.name} must be an integer from {low} to {high}, not {value!r}")


#: The defaults, for every caller that is not given its own.
LIMITS = Limits()


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` nests ``list``/``dict`` containers more than ``limit`` deep (a container
    is level 1). Iterative and only following containers, so any depth costs no stack."""
    t = type(value)
    if t is not list and t is not dict:
        return False
    if limit < 1:
        return True
    stack = [(value, 1)]
    pop = stack.pop
    push = stack.append
    while stack:
        node, depth = pop()
        deeper = depth + 1
        for v in node.values() if type(node) is dict else node:
            t = type(v)
            if t is list or t is dict:
                if deeper > limit:
                    return True
                push((v, deeper))
    return False

"""Newline-delimited lines with a length cap, sans-IO (for the logs channel, stdout and stderr).

Trio has no readline, and a runtime may write a 10 MB line or never write a newline at all, so
the splitter keeps at most ``max_line_length`` bytes of any line: the rest is counted and
dropped, and the line comes out marked ``truncated``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ._limits import LIMITS

__all__ = ["DEFAULT_MAX_LINE_LENGTH", "Line", "LineSplitter"]

DEFAULT_MAX_LINE_LENGTH = LIMITS.max_log_line


@dataclass(frozen=True, slots=True)
class Line:
    """One line without its newline; ``dropped`` bytes past the cap were not kept."""

    data: bytes
    dropped: int = 0
    complete: bool = True  # False for a final line that had no newline before EOF

    @property
    def truncated(self) -> bool:
        return self.dropped > 0


class LineSplitter:
    def __init__(self, *, max_line_length: int = DEFAULT_MAX_LINE_LENGTH) -> None:
        if max_line_length < 1:
            raise ValueError("max_line_length must be positive")
        self.max_line_length = max_line_length
        self._buf = bytearray()
        self._dropped = 0  # bytes of the current line beyond the cap

    def feed(self, data: bytes | bytearray) -> Iterator[Line]:
        """Add bytes; yield every line they complete."""
        start = 0
        n = len(data)
        while start < n:
            nl = data.find(b"\n", start)
            end = n if nl < 0 else nl
            room = self.max_line_length - len(self._buf)
            chunk_len = end - start
            if chunk_len <= room:
                self._buf += data[start:end]
            else:
                self._buf += data[start : start + max(room, 0)]
                self._dropped += chunk_len - max(room, 0)
            if nl < 0:
                return
            yield Line(bytes(self._buf), self._dropped)
            self._buf.clear()
            self._dropped = 0
            start = nl + 1

    def end_of_stream(self) -> Line | None:
        """At EOF: the final line if it had no newline (Airflow still processes it)."""
        if not self._buf and not self._dropped:
            return None
        line = Line(bytes(self._buf), self._dropped, complete=False)
        self._buf.clear()
        self._dropped = 0
        return line

"""Reading transcripts, including ones cut short by a crash.

A transcript truncated at any byte yields every complete record before the cut and says that
it was truncated. Any other damage (a line that is not UTF-8, not JSON, not a record, a record
whose fields have the wrong types or that nests too deep) is a ``TranscriptError`` naming the
line: no reader past this one meets a value of the wrong shape.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..protocol import from_jsonable
from ._shape import MAX_DEPTH, depth_problem, header_problem, problem
from ._writer import FORMAT, VERSION

__all__ = ["Transcript", "TranscriptError", "read_transcript"]


class TranscriptError(Exception):
    """A file that is not a transcript this version can read; the message says why, and
    ``line`` is the number of the line at fault (None when it is the file as a whole)."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


@dataclass
class Transcript:
    path: Path
    header: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    footer: dict[str, Any] | None = None
    #: Why the transcript is incomplete, or None when it ended with a valid footer.
    truncated: str | None = None
    problems: list[str] = field(default_factory=list)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["record"] == kind]

    def frames(self, direction: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.of("frame") if direction is None or r["dir"] == direction]

    def http(self) -> list[dict[str, Any]]:
        return self.of("http")

    @property
    def task(self) -> dict[str, Any]:
        return self.header.get("task", {})


def frame_body(record: dict[str, Any]) -> Any:
    return from_jsonable(record.get("body"))


def read_transcript(path: str | os.PathLike[str]) -> Transcript:
    """Read a transcript file, tolerating a truncated tail; anything else wrong with it raises a
    ``TranscriptError`` naming the line (docs/transcript.md, "Reading")."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise TranscriptError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise TranscriptError(f"{p}: is a directory, not a transcript") from None
    except OSError as exc:
        raise TranscriptError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    # Decoding creates millions of objects and no cycles: the collector would only walk the
    # growing records again and again (a 100,000-request transcript reads 4x slower with it).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _parse(p, data)
    finally:
        if collecting:
            gc.enable()


def _parse(p: Path, data: bytes) -> Transcript:
    lines = data.split(b"\n")
    tail = lines.pop()  # what follows the last newline: a record cut short, or nothing
    transcript: Transcript | None = None
    records: list[dict[str, Any]] = []
    footer_line = 0
    offset = 0  # of the current line in data
    for number, raw in enumerate(lines, start=1):
        start = offset
        offset += len(raw) + 1
        if not raw.strip():
            continue
        if transcript is None:
            transcript = Transcript(p, _header(p, number, raw), records)
            continue
        record = _decode(p, number, raw)
        if footer_line:
            raise TranscriptError(
                f"{p}: line {number}: a record after the footer (line {footer_line})"
            )
        kind = record.get("record")
        if kind == "footer":
            transcript.footer = record
            footer_line = number
            if record.get("sha256") != hashlib.sha256(data[:start]).hexdigest():
                transcript.problems.append(
                    "footer digest does not match the records: the file was edited or damaged"
                )
        else:
            records.append(record)
    if transcript is None:
        if not data.strip():
            raise TranscriptError(f"{p}: empty file")
        raise TranscriptError(f"{p}: truncated before the end of its header line")
    if footer_line and tail.strip():
        raise TranscriptError(
            f"{p}: line {len(lines) + 1}: {len(tail)} bytes after the footer (line {footer_line})"
        )
    if not footer_line:
        cut = f"; {len(tail)} bytes of an incomplete record follow" if tail else ""
        transcript.truncated = (
            f"no footer after {len(records)} records{cut} (the session crashed or the file was cut)"
        )
    return transcript


def _header(p: Path, number: int, raw: bytes) -> dict[str, Any]:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        why = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else f"not JSON ({exc})"
        if isinstance(exc, RecursionError):
            why = f"nested more than {MAX_DEPTH} levels deep"
        raise TranscriptError(f"{p}: line {number} is {why}; not a transcript") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise TranscriptError(
            f"{p}: not a supervisor-sim transcript (no {FORMAT!r} header on line {number})"
        )
    if header.get("version") != VERSION:
        raise TranscriptError(
            f"{p}: transcript format version {header.get('version')}"
            f" is not supported (this supervisor-sim reads {VERSION})"
        )
    found = depth_problem(header, raw) or header_problem(header)
    if found:
        raise TranscriptError(f"{p}: line {number}: {found}", line=number)
    return header


def _decode(p: Path, number: int, raw: bytes) -> dict[str, Any]:
    """One record line, decoded and checked."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        at = f"byte 0x{raw[exc.start]:02x} at column {exc.start + 1}"
        raise TranscriptError(f"{p}: line {number}: not UTF-8 ({at})", line=number) from None
    try:
        record = json.loads(text)
    except RecursionError:
        raise TranscriptError(
            f"{p}: line {number}: nested more than {MAX_DEPTH} levels deep", line=number
        ) from None
    except ValueError as exc:
        raise TranscriptError(f"{p}: line {number}: not JSON ({exc})", line=number) from None
    found = depth_problem(record, raw) or problem(record, raw)
    if found:
        raise TranscriptError(f"{p}: line {number}: {found}", line=number)
    return record

"""Reading transcripts, including ones cut short by a crash.

A transcript truncated at any byte yields every complete record before the cut and says that
it was truncated; a damaged line in the middle is reported with its line number, never skipped
silently.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..protocol import from_jsonable
from ._writer import FORMAT, VERSION

__all__ = ["Transcript", "TranscriptError", "read_transcript"]


class TranscriptError(Exception):
    """A file that is not a transcript this version can read; the message says why."""


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
    """Read a transcript file, tolerating a truncated tail."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise TranscriptError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise TranscriptError(f"{p}: is a directory, not a transcript") from None
    lines = data.split(b"\n")
    complete = lines[:-1]
    tail = lines[-1]
    digest = hashlib.sha256()
    header: dict[str, Any] | None = None
    transcript: Transcript | None = None
    for number, raw in enumerate(_iter(complete), start=1):
        try:
            record = json.loads(raw)
        except ValueError as exc:
            if header is None:
                raise TranscriptError(
                    f"{p}: line 1 is not JSON ({exc}); not a transcript"
                ) from None
            assert transcript is not None
            transcript.problems.append(f"line {number}: not JSON ({exc}); skipped")
            digest.update(raw + b"\n")
            continue
        if header is None:
            if not isinstance(record, dict) or record.get("format") != FORMAT:
                raise TranscriptError(
                    f"{p}: not a supervisor-sim transcript (no {FORMAT!r} header on line 1)"
                )
            if record.get("version") != VERSION:
                raise TranscriptError(
                    f"{p}: transcript format version {record.get('version')}"
                    f" is not supported (this supervisor-sim reads {VERSION})"
                )
            header = record
            transcript = Transcript(p, header)
            digest.update(raw + b"\n")
            continue
        assert transcript is not None
        if record.get("record") == "footer":
            transcript.footer = record
            if record.get("sha256") != digest.hexdigest():
                transcript.problems.append(
                    "footer digest does not match the records: the file was edited or damaged"
                )
            break
        transcript.records.append(record)
        digest.update(raw + b"\n")
    if transcript is None:
        if not data:
            raise TranscriptError(f"{p}: empty file")
        raise TranscriptError(f"{p}: truncated before the end of its header line")
    if transcript.footer is None:
        cut = f"; {len(tail)} bytes of an incomplete record follow" if tail else ""
        transcript.truncated = (
            f"no footer after {len(transcript.records)} records{cut} "
            "(the session crashed or the file was cut)"
        )
    return transcript


def _iter(lines: list[bytes]) -> Iterator[bytes]:
    for line in lines:
        if line.strip():
            yield line

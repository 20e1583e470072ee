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
from array import array
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast, overload

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
    """A transcript read back. From ``read_transcript``, ``records`` and what ``of``,
    ``frames`` and ``http`` return are read-only sequences that hold each record's line as it
    is in the file and decode it again on access (a few hundred at a time): decoded records
    take ~7x the bytes of their JSON, and a reader that goes through them once (``show``,
    ``diff``, ``replay``) then needs little more memory than the file itself. ``records``
    iterated again after a full pass keeps what it decodes from then on (the HTML view goes
    through them four times); what ``of``, ``frames`` and ``http`` return never keeps."""

    path: Path
    header: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    footer: dict[str, Any] | None = None
    #: Why the transcript is incomplete, or None when it ended with a valid footer.
    truncated: str | None = None
    problems: list[str] = field(default_factory=list)

    def of(self, kind: str) -> list[dict[str, Any]]:
        records = self.records
        if isinstance(records, _Records):
            return records.select(kind)
        return [r for r in records if r["record"] == kind]

    def frames(self, direction: str | None = None) -> list[dict[str, Any]]:
        records = self.records
        if isinstance(records, _Records):
            return records.select("frame", direction)
        return [r for r in self.of("frame") if direction is None or r["dir"] == direction]

    def http(self) -> list[dict[str, Any]]:
        return self.of("http")

    @property
    def task(self) -> dict[str, Any]:
        return self.header.get("task", {})


def frame_body(record: dict[str, Any]) -> Any:
    return from_jsonable(record.get("body"))


#: Records decoded at a time: one ``json.loads`` of an array of this many lines (its keys are
#: shared between them, which a line at a time is not).
CHUNK = 512

#: Chunks a sequence keeps decoded for indexing (a reader going back and forth between a
#: request and its reply, or between two parts of a file, does not decode them again and again).
KEPT_CHUNKS = 8

_DIRS = {"in": 1, "out": 2}
_scan = cast(Any, json.decoder.JSONDecoder()).scan_once  # what json.loads scans with
_UNREAD = object()


class _Lines:
    """The record lines of one file: its bytes, where each record's line starts and ends, its
    kind and (frames) direction; blank lines and the header and footer are not among them."""

    __slots__ = ("blank", "data", "dirs", "ends", "kinds", "starts", "views")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.starts = array("q")
        self.ends = array("q")
        self.kinds: list[str] = []
        self.dirs = bytearray()
        #: Whether a blank line falls between two records (their lines are then not one span).
        self.blank = False
        self.views: dict[tuple[str, int], _Records] = {}

    def decode(self, positions: Sequence[int]) -> list[dict[str, Any]]:
        """The records at ``positions`` (ascending), decoded. Every line was decoded and checked
        when the file was read, so this cannot fail."""
        if not positions:
            return []
        data, starts, ends = self.data, self.starts, self.ends
        first, last = positions[0], positions[-1]
        if not self.blank and last - first == len(positions) - 1:  # consecutive lines
            text = data[starts[first] : ends[last]].replace(b"\n", b",")
        else:
            text = b",".join([data[starts[i] : ends[i]] for i in positions])
        collecting = gc.isenabled()
        gc.disable()  # thousands of new objects, no cycles (as in read_transcript)
        try:
            records: list[dict[str, Any]] = json.loads("[" + text.decode("utf-8") + "]")
        finally:
            if collecting:
                gc.enable()
        return records

    def view(self, kind: str = "", direction: str | None = None) -> _Records:
        """The records of ``kind`` (all of them for ""), of frames the ones in ``direction``."""
        code = 0 if direction is None else _DIRS.get(direction, 255)  # 255: no frame
        key = (kind, code)
        found = self.views.get(key)
        if found is None:
            kinds = self.kinds
            if not kind:
                positions: Sequence[int] = range(len(kinds))
            elif code:
                dirs = self.dirs
                positions = array(
                    "q", [i for i, k in enumerate(kinds) if k == kind and dirs[i] == code]
                )
            else:
                positions = array("q", [i for i, k in enumerate(kinds) if k == kind])
            found = self.views[key] = _Records(self, positions, keeps=not kind)
        return found


class _Records(Sequence[dict[str, Any]]):
    """A read-only sequence of records decoded from their lines on access; the last few chunks
    indexed are kept decoded. One that ``keeps`` (all the records of a file), iterated once more
    after an iteration that reached the end, keeps what it decodes from then on, as a list would
    hold it; the others decode again each time (their reader usually keeps what it needs)."""

    __slots__ = ("_chunks", "_done", "_keeps", "_kept", "_lines", "_positions")

    def __init__(self, lines: _Lines, positions: Sequence[int], *, keeps: bool = False) -> None:
        self._lines = lines
        self._positions = positions
        self._keeps = keeps
        #: Chunk number -> its records decoded, the most recently used last.
        self._chunks: OrderedDict[int, list[dict[str, Any]]] = OrderedDict()
        self._done = False  # whether an iteration reached the end
        #: The first records, decoded and kept (by the iterations after one that ended).
        self._kept: list[dict[str, Any]] = []

    def select(self, kind: str, direction: str | None = None) -> list[dict[str, Any]]:
        # A view of this file's records, typed as the list it stands for (read-only).
        return cast(list[dict[str, Any]], self._lines.view(kind, direction))

    def __len__(self) -> int:
        return len(self._positions)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        positions, kept = self._positions, self._kept
        if isinstance(index, slice):
            picked = range(*index.indices(len(positions)))
            if len(kept) == len(positions):
                return kept[index]
            if picked.step > 0:
                return self._lines.decode([positions[i] for i in picked])
            return [self[i] for i in picked]
        n = len(positions)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("record index out of range")
        if index < len(kept):
            return kept[index]
        number = index // CHUNK
        chunks = self._chunks
        records = chunks.get(number)
        if records is None:
            records = self._lines.decode(positions[number * CHUNK : (number + 1) * CHUNK])
            if len(chunks) >= KEPT_CHUNKS:
                chunks.popitem(last=False)
            chunks[number] = records
        elif number != next(reversed(chunks)):
            chunks.move_to_end(number)  # the most recently used last
        return records[index - number * CHUNK]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        positions, decode = self._positions, self._lines.decode
        n = len(positions)
        kept = self._kept
        if not kept and not (self._keeps and self._done):
            # Once through (show, diff, replay): decoded a chunk at a time, nothing kept.
            for at in range(0, n, CHUNK):
                yield from decode(positions[at : at + CHUNK])
            self._done = True
            return
        # Through again (the HTML view goes through them four times): what is decoded is kept.
        i = 0
        while i < n:
            if i == len(kept):
                kept.extend(decode(positions[i : i + CHUNK]))
            yield kept[i]
            i += 1

    def __reversed__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self) - 1, -1, -1):
            yield self[i]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Records | list | tuple):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{len(self)} transcript records>"


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
    # Decoding creates millions of objects and no cycles: the collector would only walk them
    # again and again (a 100,000-request transcript reads 4x slower with it).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _parse(p, data)
    finally:
        if collecting:
            gc.enable()


def _parse(p: Path, data: bytes) -> Transcript:
    """Every line is decoded and checked here, and then only where it is kept (``_Lines``)."""
    transcript: Transcript | None = None
    lines = _Lines(data)
    starts, ends, kinds, dirs = lines.starts, lines.ends, lines.kinds, lines.dirs
    names: dict[str, str] = {}  # one string per kind
    footer_line = 0
    offset = 0  # of the current line in data
    number = 0
    find = data.find
    while (stop := find(b"\n", offset)) >= 0:
        number += 1
        start = offset
        offset = stop + 1
        raw = data[start:stop]
        if not raw.strip():
            if transcript is not None and kinds:
                lines.blank = True
            continue
        if transcript is None:
            transcript = Transcript(p, _header(p, number, raw))
            continue
        record = _decode(p, number, raw)
        if footer_line:
            raise TranscriptError(
                f"{p}: line {number}: a record after the footer (line {footer_line})"
            )
        kind: str = record["record"]  # a string: checked by _decode
        if kind == "footer":
            transcript.footer = record
            footer_line = number
            if record.get("sha256") != hashlib.sha256(memoryview(data)[:start]).hexdigest():
                transcript.problems.append(
                    "footer digest does not match the records: the file was edited or damaged"
                )
        else:
            starts.append(start)
            ends.append(stop)
            kinds.append(names.setdefault(kind, kind))
            dirs.append(_DIRS.get(record["dir"], 0) if kind == "frame" else 0)
    tail = data[offset:]  # what follows the last newline: a record cut short, or nothing
    if transcript is None:
        if not data.strip():
            raise TranscriptError(f"{p}: empty file")
        raise TranscriptError(f"{p}: truncated before the end of its header line")
    if footer_line and tail.strip():
        raise TranscriptError(
            f"{p}: line {number + 1}: {len(tail)} bytes after the footer (line {footer_line})"
        )
    if not footer_line:
        cut = f"; {len(tail)} bytes of an incomplete record follow" if tail else ""
        transcript.truncated = (
            f"no footer after {len(kinds)} records{cut} (the session crashed or the file was cut)"
        )
    transcript.records = cast(list[dict[str, Any]], lines.view())
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
    record: Any = _UNREAD
    try:
        # json.loads without its wrappers (a line is one record from its first byte to its
        # last); anything else is left to json.loads, which reads it or says what is wrong.
        value, end = _scan(text, 0)
        if end == len(text):
            record = value
    except (StopIteration, ValueError, RecursionError):
        pass
    if record is _UNREAD:
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
    return cast(dict[str, Any], record)

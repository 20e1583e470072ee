"""A transcript read back holds its lines, not its records decoded, and gives the same records.

``read_transcript`` checks every line and keeps the file's bytes; ``records``, ``of``,
``frames`` and ``http`` decode the lines again when they are read. Whatever way a reader goes
through them (once, again, by index, by slice, from the end), it gets exactly the records the
lines hold, and reading a transcript through once keeps little more than the file in memory.
"""

from __future__ import annotations

import gc
import hashlib
import json
import tracemalloc
from pathlib import Path
from typing import Any

from supervisor_sim.transcript import FORMAT, VERSION, read_transcript
from supervisor_sim.transcript._reader import CHUNK


def _records(n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n):
        seq, t = len(out) + 1, i / 100
        out.append(
            {
                "record": "frame",
                "seq": seq,
                "t": t,
                "dir": "in",
                "id": i,
                "type": "GetVariable",
                "body": {"type": "GetVariable", "key": f"k{i}"},
            }
        )
        out.append(
            {
                "record": "http",
                "seq": seq + 1,
                "t": t,
                "method": "GET",
                "path": f"/execution/variables/k{i}",
                "query": "",
                "status": 200,
                "cause": seq,
                "response": {"headers": {"a": "b"}, "json": {"value": i}},
            }
        )
        out.append(
            {
                "record": "frame",
                "seq": seq + 2,
                "t": t,
                "dir": "out",
                "id": i,
                "type": "VariableResult",
                "body": {"key": f"k{i}", "value": i, "at": {"$ts": "2026-12-04T10:00:00Z"}},
            }
        )
        if i % 97 == 0:
            out.append(
                {
                    "record": "log",
                    "seq": seq + 3,
                    "t": t,
                    "source": "logs",
                    "line": {"event": f"é {i}", "level": "info"},
                }
            )
    return out


def _write(path: Path, records: list[dict[str, Any]], *, odd_lines: bool = False) -> Path:
    """A transcript of ``records``; with ``odd_lines`` some lines are followed by a blank line,
    end in CRLF or start with spaces, all of which a reader accepts."""
    header = {"record": "header", "format": FORMAT, "version": VERSION, "task": {}}
    lines = [json.dumps(header)]
    for i, r in enumerate(records):
        line = json.dumps(r, ensure_ascii=i % 2 == 0)
        if odd_lines and i % 211 == 5:
            line += "\n"
        if odd_lines and i % 307 == 7:
            line += "\r"
        if odd_lines and i % 401 == 9:
            line = "  " + line
        lines.append(line)
    body = ("\n".join(lines) + "\n").encode()
    footer = {
        "record": "footer",
        "final_state": "success",
        "exit_code": 0,
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    path.write_bytes(body + json.dumps(footer).encode() + b"\n")
    return path


def test_every_way_of_reading_the_records_gives_the_recorded_ones(tmp_path: Path) -> None:
    """Iterated once, again and again, indexed from either end, sliced with any step, and
    through ``of``, ``frames`` and ``http``: the records are those of the lines, in order."""
    records = _records(700)  # several chunks of each kind
    assert len(records) > 4 * CHUNK
    t = read_transcript(_write(tmp_path / "t.jsonl", records, odd_lines=True))
    assert not t.problems and t.truncated is None and t.footer is not None
    assert len(t.records) == len(records)
    for _ in range(3):  # streamed, then kept, then from what was kept
        assert list(t.records) == records
    assert t.records == records
    fresh = read_transcript(tmp_path / "t.jsonl")
    for i in (0, 1, CHUNK - 1, CHUNK, len(records) - 1, -1, -CHUNK - 1, 4 * CHUNK + 3, 2, 0):
        assert fresh.records[i] == records[i]
    for cut in (
        slice(3, 9),
        slice(None, 4),
        slice(-5, None),
        slice(None, None, 97),
        slice(800, 10, -3),
        slice(10, 10),
    ):
        assert fresh.records[cut] == records[cut]
    assert list(reversed(fresh.records)) == records[::-1]
    for kind in ("frame", "http", "log", "note"):
        assert fresh.of(kind) == [r for r in records if r["record"] == kind]
    for direction in ("in", "out"):
        want = [r for r in records if r["record"] == "frame" and r["dir"] == direction]
        got = fresh.frames(direction)
        assert len(got) == len(want) and got[-1] == want[-1] and got[CHUNK] == want[CHUNK]
        assert list(got) == want
    assert fresh.frames() == [r for r in records if r["record"] == "frame"]
    assert fresh.frames("sideways") == [] and fresh.frames("") == []
    assert fresh.http() == [r for r in records if r["record"] == "http"]
    assert fresh.http() is fresh.http()  # one view per kind, whose decoded chunks it keeps


def test_a_record_changed_by_a_reader_stays_changed_only_where_kept(tmp_path: Path) -> None:
    """A reader that keeps what it reads (a list of them) keeps records that are its own: two
    reads of one record are equal dicts, and a change to one does not reach the file's."""
    records = _records(50)
    t = read_transcript(_write(tmp_path / "t.jsonl", records))
    first = list(t.records)
    first[0]["type"] = "changed"
    assert read_transcript(tmp_path / "t.jsonl").records[0] == records[0]


def test_reading_a_transcript_through_once_keeps_little_more_than_the_file(
    tmp_path: Path,
) -> None:
    """Read and gone through once, as show, diff and replay go through it, a transcript costs
    at most twice its size in memory (decoded and kept, its records would take ~7x)."""
    path = _write(tmp_path / "big.jsonl", _records(6000))
    size = path.stat().st_size
    gc.collect()
    tracemalloc.start()
    try:
        t = read_transcript(path)
        after_read = tracemalloc.get_traced_memory()[0]
        times = [r["t"] for r in t.records]
        for r in t.frames("in"):
            assert r["dir"] == "in"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(times) == len(t.records)
    assert after_read < 1.5 * size, (after_read, size)
    assert peak < 2 * size, (peak, size)

"""The transcript file format: writing, reading, truncation, redaction (no processes needed)."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from supervisor_sim.protocol import SecretsMasker, encode_response
from supervisor_sim.supervision import Journal
from supervisor_sim.transcript import (
    TranscriptError,
    TranscriptWriter,
    read_transcript,
    render_timeline,
)


def _write(path: Path, *, redact: bool = True) -> Path:
    masker = SecretsMasker()
    masker.add("s3cret-pw")
    journal = Journal()
    writer = TranscriptWriter(
        path,
        {"task": {"dag_id": "d", "task_id": "t"}, "runtime": ["x"]},
        redact=masker.redact if redact else None,
    )
    journal.sinks.append(writer)
    body = {
        "type": "ConnectionResult",
        "conn_id": "c",
        "conn_type": "http",
        "host": "h",
        "schema": None,
        "login": "bob",
        "password": "s3cret-pw",
        "port": None,
        "extra": None,
    }
    journal.emit("process", event="spawn", argv=["x"], pid=1)
    journal.emit(
        "frame",
        direction="in",
        id=0,
        type="GetConnection",
        body={"type": "GetConnection", "conn_id": "c"},
        payload=b"\x93\x00\x81\xc0",
    )
    journal.emit(
        "frame",
        direction="out",
        id=0,
        type="ConnectionResult",
        body=body,
        error=None,
        payload=encode_response(0, body)[4:],
    )
    journal.emit(
        "http",
        method="GET",
        path="/execution/connections/c",
        query="",
        status=200,
        request_headers={"authorization": "Bearer eyJabc.def.ghi"},
        response_headers={"content-type": "application/json"},
        request_body=b"",
        response_body=json.dumps(body).encode(),
        cause=2,
    )
    journal.emit(
        "log",
        source="logs",
        record={"level": "info", "event": "at", "ts": datetime(2026, 1, 1, tzinfo=UTC)},
    )
    for i in range(20):
        journal.emit("log", source="stdout", record={"level": "info", "event": f"line {i}"})
    writer.close({"final_state": "success", "exit_code": 0})
    return path


class TestWriterAndReader:
    def test_round_trip_keeps_every_record_and_the_footer(self, tmp_path: Path):
        """Every record written is read back, in order, with a footer whose digest matches."""
        t = read_transcript(_write(tmp_path / "t.jsonl"))
        assert t.truncated is None and t.problems == []
        assert [r["record"] for r in t.records[:4]] == ["process", "frame", "frame", "http"]
        assert t.footer["final_state"] == "success"
        assert len(t.of("log")) == 21

    def test_file_is_readable_by_its_owner_only(self, tmp_path: Path):
        """A transcript is created with mode 0600: it may hold task data."""
        path = _write(tmp_path / "t.jsonl")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    def test_secrets_and_jwts_are_redacted_by_default(self, tmp_path: Path):
        """The connection password and the bearer token appear nowhere in the file."""
        text = _write(tmp_path / "t.jsonl").read_text()
        assert "s3cret-pw" not in text
        assert "eyJabc" not in text

    def test_no_redact_keeps_secrets(self, tmp_path: Path):
        """With redaction off the password is kept verbatim."""
        text = _write(tmp_path / "t.jsonl", redact=False).read_text()
        assert "s3cret-pw" in text

    def test_truncation_at_every_offset_keeps_every_complete_record(self, tmp_path: Path):
        """Cut anywhere, the reader returns each record whose line ended before the cut."""
        full = _write(tmp_path / "t.jsonl").read_bytes()
        lines = full.split(b"\n")[:-1]
        header_len = len(lines[0]) + 1
        ends, pos = [], 0
        for line in lines:
            pos += len(line) + 1
            ends.append(pos)
        cut_path = tmp_path / "cut.jsonl"
        for cut in range(header_len, len(full), 7):
            cut_path.write_bytes(full[:cut])
            t = read_transcript(cut_path)
            complete = sum(1 for e in ends[1:-1] if e <= cut)
            assert len(t.records) == complete, cut
            assert t.truncated is not None
        cut_path.write_bytes(full[: header_len - 3])
        with pytest.raises(TranscriptError, match="truncated before the end of its header"):
            read_transcript(cut_path)

    def test_not_a_transcript_is_a_clear_error(self, tmp_path: Path):
        """A random JSON file is refused with a message naming the missing header."""
        p = tmp_path / "x.jsonl"
        p.write_text('{"hello": 1}\n')
        with pytest.raises(TranscriptError, match="not a supervisor-sim transcript"):
            read_transcript(p)

    def test_edited_transcript_fails_its_digest(self, tmp_path: Path):
        """Changing a record makes the footer digest disagree, and the reader says so."""
        path = _write(tmp_path / "t.jsonl")
        path.write_text(path.read_text().replace("line 3", "line X"))
        assert "digest" in read_transcript(path).problems[0]

    def test_timeline_shows_frames_http_and_footer(self, tmp_path: Path):
        """The timeline names each frame and nests the HTTP call under it."""
        lines = render_timeline(read_transcript(_write(tmp_path / "t.jsonl")))
        text = "\n".join(lines)
        assert "GetConnection" in text and "ConnectionResult" in text
        assert "↳ GET /execution/connections/c → 200" in text
        assert "final state success" in text
        only_http = render_timeline(read_transcript(tmp_path / "t.jsonl"), only="http")
        assert sum("↳" in line for line in only_http) == 1


def test_lone_surrogates_are_recorded_shown_and_rendered(tmp_path: Path) -> None:
    """A lone surrogate (valid JSON, not UTF-8) in a log or an API body is written escaped, reads
    back as the same string, and `show` / `show --html` print it instead of failing."""
    import subprocess
    import sys

    path = tmp_path / "t.jsonl"
    masker = SecretsMasker()
    writer = TranscriptWriter(path, {"runtime": ["x"], "api": "stub"}, redact=masker.redact)
    journal = Journal(sinks=[writer])
    journal.emit("log", source="logs", record={"event": "half \ud800 pair", "level": "info"})
    journal.emit(
        "http",
        method="GET",
        path="/execution/variables/v",
        query="",
        status=200,
        error=None,
        attempt=1,
        duration_s=0.0,
        cause=None,
        request_headers={},
        request_body=b"",
        response_headers={},
        response_body=b'{"key":"v","value":"\\udc00"}',
    )
    writer.close({"final_state": "success"})
    raw = path.read_bytes()
    raw.decode("utf-8")  # the file is valid UTF-8
    t = read_transcript(path)
    assert t.problems == []
    assert t.of("log")[0]["line"]["event"] == "half \ud800 pair"
    assert t.of("http")[0]["response"]["json"]["value"] == "\udc00"
    cmd = [sys.executable, "-m", "supervisor_sim", "show", str(path)]
    shown = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "half \\ud800 pair" in shown.stdout
    html = tmp_path / "t.html"
    rendered = subprocess.run([*cmd, "--html", str(html)], capture_output=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    # the page's records (zlib-compressed JSON Lines, base64) hold it as its JSON escape
    import base64
    import re
    import zlib

    page = html.read_text(encoding="utf-8")
    chunks = re.findall(r'class="records-chunk"[^>]*>([^<]*)<', page)
    records = "".join(zlib.decompress(base64.b64decode(c)).decode("ascii") for c in chunks)
    assert "\\ud800" in records and "\\udc00" in records


def test_a_batch_of_events_is_recorded_exactly_as_one_by_one(tmp_path: Path) -> None:
    """``TranscriptWriter.batch`` (used for a held request) writes the same lines and counts as
    delivering each event on its own, and a journal's held events reach the file in order."""
    events = []
    collect = Journal(sinks=[events.append])
    with collect.holding():
        collect.emit(
            "frame",
            direction="in",
            id=1,
            type="GetVariable",
            body={"key": "k", "type": "GetVariable"},
            payload=b"\x93\x01\x80\xc0",
            offset=0,
            elements=3,
            context_carrier=None,
        )
        collect.emit("note", level="info", message="between")
        collect.emit(
            "frame",
            direction="out",
            id=1,
            type="VariableResult",
            body={"key": "k", "value": "v", "type": "VariableResult"},
            error=None,
            payload=b"\x93\x01\x80\xc0",
        )
    assert [e.seq for e in events] == [1, 2, 3]
    one, many = tmp_path / "one.jsonl", tmp_path / "many.jsonl"
    w1 = TranscriptWriter(one, {}, redact=SecretsMasker().redact)
    for event in events:
        w1(event)
    w2 = TranscriptWriter(many, {}, redact=SecretsMasker().redact)
    w2.batch(events)
    assert w1.counts == w2.counts
    w1.close()
    w2.close()
    lines1 = one.read_text().splitlines()
    lines2 = many.read_text().splitlines()
    assert lines1[1:-1] == lines2[1:-1]  # the header's time and the footer's digest may differ
    assert [json.loads(x)["seq"] for x in lines2[1:-1]] == [1, 2, 3]
    assert read_transcript(many).problems == []

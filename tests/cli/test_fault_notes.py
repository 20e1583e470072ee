"""What a user sees of an injected fault: `show` prints each fault's note with its rule, the call
or time that took it, and why (what Airflow does next), never an empty why."""

from __future__ import annotations

import json
import re
from pathlib import Path

from _cli import cli


def test_show_prints_each_fault_note_with_its_when_and_why(tmp_path: Path):
    """A 500 on the first GetVariable and the variable changed after it: both notes say why."""
    transcript = tmp_path / "t.jsonl"
    proc = cli(
        "run-task",
        "example_dag",
        "read_var_conn",
        "--state",
        str(tmp_path / "s.sqlite"),
        "--fault",
        "GetVariable:500@1",
        "--fault",
        "event=variable-set:peer_var=changed@GetVariable",
        "--transcript",
        str(transcript),
        "-q",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = cli("show", str(transcript), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    notes = [ln for ln in shown.stdout.splitlines() if "note warning injected" in ln]
    assert len(notes) == 2, shown.stdout
    assert "(GetVariable:500@1, call 1): the API answered 500" in notes[0]
    assert "retries" in notes[0]
    assert "after GetVariable): someone changed variable peer_var" in notes[1]
    for note in notes:
        assert not re.search(r": \)", note), note
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    faults = [r["fault"] for r in records if r.get("record") == "note" and "fault" in r]
    assert [f["when"] for f in faults] == ["call 1", "after GetVariable"]
    assert all(len(f["why"]) > 60 for f in faults), faults

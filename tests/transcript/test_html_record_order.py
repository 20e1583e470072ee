"""The HTML view draws records in ``seq`` order whatever order the file holds them in, and a
file already in order is not read once more just to check it (the lazy reader decodes on
every pass)."""

from __future__ import annotations

import json
from pathlib import Path

from _cli import ROOT, cli

from supervisor_sim.transcript._html import render_html
from supervisor_sim.transcript._reader import read_transcript


def _recorded(tmp_path: Path) -> Path:
    out = tmp_path / "t.jsonl"
    proc = cli(
        "run-task", "example_dag", "hello", "--state", str(tmp_path / "s.sqlite"),
        "--transcript", str(out), "-q", cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out


def test_records_out_of_seq_order_are_drawn_as_if_in_order(tmp_path: Path):
    """Two records swapped in the file: the page is the page of the file in order."""
    ordered = _recorded(tmp_path)
    # Without its footer (whose digest would tell the edit), as a cut-short file reads.
    lines = [x for x in ordered.read_text().splitlines() if '"record":"footer"' not in x]
    ordered.write_text("\n".join(lines) + "\n")
    body = [i for i, line in enumerate(lines) if '"seq"' in line and '"header"' not in line]
    a, b = body[2], body[5]
    assert json.loads(lines[a])["seq"] < json.loads(lines[b])["seq"]
    in_order = render_html(read_transcript(ordered))
    lines[a], lines[b] = lines[b], lines[a]
    ordered.write_text("\n".join(lines) + "\n")  # the same path: the page names its file
    assert render_html(read_transcript(ordered)) == in_order


def test_an_ordered_file_is_read_three_times_not_four(tmp_path: Path, monkeypatch):
    """In order (as every transcript is written), the records are decoded once for the index
    and once each for the two columns of lines, with no pass just to check their order."""
    from supervisor_sim.transcript import _reader

    passes = 0
    real = _reader._Records.__iter__

    def counting(self):
        nonlocal passes
        passes += 1
        return real(self)

    transcript = read_transcript(_recorded(tmp_path))
    monkeypatch.setattr(_reader._Records, "__iter__", counting)
    render_html(transcript)
    assert passes == 3

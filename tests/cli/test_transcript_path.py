"""--transcript in a folder that does not exist is a user mistake said in one line before the
runtime starts (exit 2), not a folder made behind the user's back; only the project's own
transcripts folder is made when missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _cli import CONFIG

#: A runtime that leaves a mark in its working directory as soon as it runs, then fails.
MARKING = f'{sys.executable} -c \'open("runtime-started", "w").close(); raise SystemExit(1)\''


def _sim(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "supervisor_sim", "--config", str(CONFIG), *args],
        cwd=tmp,
        env={**os.environ, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    return proc


@pytest.mark.parametrize("command", [["run-task", "example_dag", "hello"], ["parse"]])
def test_a_missing_folder_is_one_line_before_the_runtime_starts(tmp_path: Path, command):
    """run-task and parse refuse --transcript missing/dir/t.jsonl with exit 2 and one line
    naming the folder; nothing is created and the runtime never runs."""
    proc = _sim(
        tmp_path,
        *command,
        "--runtime",
        MARKING,
        "--state",
        ":memory:",
        "--transcript",
        "missing/dir/t.jsonl",
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.splitlines() == [
        "Error: --transcript: no such directory: missing/dir; create it, or give another path "
        "or --no-transcript"
    ]
    assert not (tmp_path / "missing").exists()
    assert not (tmp_path / "runtime-started").exists()


def test_an_existing_folder_is_used(tmp_path: Path):
    """The same --transcript once its folder exists records there (the runtime runs)."""
    (tmp_path / "missing" / "dir").mkdir(parents=True)
    proc = _sim(
        tmp_path,
        "run-task",
        "example_dag",
        "hello",
        "--state",
        ":memory:",
        "--transcript",
        "missing/dir/t.jsonl",
        "-q",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "missing" / "dir" / "t.jsonl").stat().st_size > 0


def test_the_default_transcripts_folder_is_made_for_it(tmp_path: Path):
    """--transcript inside the default transcripts folder (.supervisor-sim/runs), which the
    tool owns, makes that folder as a run without --transcript would."""
    proc = _sim(
        tmp_path,
        "run-task",
        "example_dag",
        "hello",
        "--state",
        ":memory:",
        "--transcript",
        ".supervisor-sim/runs/mine.jsonl",
        "-q",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / ".supervisor-sim" / "runs" / "mine.jsonl").stat().st_size > 0

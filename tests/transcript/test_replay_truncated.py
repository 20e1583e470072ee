"""Replay of a transcript cut short (no footer; its last line cut mid-record or not): the replay
says where the recording ends and what the runtime did there, never "recorded None".

One recording of read_var_conn (GetVariable, GetConnection, SetXCom, SucceedTask, each with its
API call), cut at record boundaries and in the middle of records, replayed through the real
command line with the recorded reference runtime.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from _cli import cli, run_task_json


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("cuts")
    code, result, stderr = run_task_json("read_var_conn", tmp)
    assert code == 0, stderr[-3000:]
    return Path(result["transcript"])


def _cut(recorded: Path, tmp: Path, after: str, into_next: int = 0) -> Path:
    """A copy of ``recorded`` ending after the first record matching ``after`` (a substring of
    its line), plus ``into_next`` bytes of the record after it (a cut mid-record)."""
    lines = recorded.read_bytes().splitlines(keepends=True)
    end = next(i for i, line in enumerate(lines) if after.encode() in line) + 1
    data = b"".join(lines[:end]) + lines[end][:into_next]
    path = tmp / "cut.jsonl"
    path.write_bytes(data)
    return path


def _replay(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = cli("replay", str(path), *args, cwd=path.parent)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "recorded None" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    return proc


def _json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, proc.stderr[-3000:]
    return json.loads(lines[-1])


def test_a_cut_after_the_last_runtime_frame_matches_up_to_the_cut(recorded: Path, tmp_path):
    """Cut after the last API call (in the reply to SucceedTask): every recorded runtime
    frame is sent again, so it is a match (exit 0), said to be one up to the cut, and there is
    no recorded final state to compare with."""
    path = _cut(recorded, tmp_path, '/state"', into_next=40)
    proc = _replay(path, "-q")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"supervisor-sim: {path} is truncated: no footer after " in proc.stderr
    assert "the replay compares the runtime with the 4 runtime frames it holds" in proc.stderr
    last = proc.stderr.rstrip().splitlines()[-1]
    assert last == (
        f"replay of {path}: MATCH of the 4 runtime frames recorded before the cut; final "
        "state success (recorded none: the transcript is truncated, no footer)"
    )


def test_a_runtime_going_past_the_end_is_told_where_the_recording_ends(recorded: Path, tmp_path):
    """Cut in the middle of the GetConnection's API call: the recording ends after runtime
    frame #1 and holds no answer to that call; the runtime (given an error for it) then sent
    TaskState, which is where the replay stops it, once, and exits 1."""
    path = _cut(recorded, tmp_path, '"GetConnection"', into_next=100)
    proc = _replay(path, "--json")
    assert proc.returncode == 1, proc.stderr[-3000:]
    result = _json(proc)
    assert [(d["kind"], d["index"]) for d in result["divergences"]] == [("recording-ends", 2)]
    message = result["divergences"][0]["message"]
    assert message.startswith(
        "the recording ends after runtime frame #1 (the transcript is truncated: no footer), "
        "and holds no answer to GET /execution/connections/peer_conn; the runtime then sent "
    )
    assert message.endswith("TaskState"), message
    assert result["recorded_final_state"] is None
    assert proc.stderr.count(message) == 1, proc.stderr[-3000:]
    assert proc.stderr.count("aborting: the recording ends before runtime frame #2") == 1
    assert "divergence at runtime frame" not in proc.stderr


def test_a_cut_before_the_first_runtime_frame_names_the_first_frame_sent(recorded, tmp_path):
    """Cut right after StartupDetails: the recording ends before the runtime's first frame,
    and the runtime then sent GetVariable; the last line says the recording ends there."""
    path = _cut(recorded, tmp_path, '"StartupDetails"')
    proc = _replay(path, "-q")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert (
        "the recording ends before the runtime's first frame (the transcript is truncated: no "
        "footer); the runtime then sent GetVariable"
    ) in proc.stderr
    last = proc.stderr.rstrip().splitlines()[-1]
    assert last.startswith(
        f"replay of {path}: RECORDING ENDS before its first frame (truncated), and the "
        "runtime went on; final state "
    )
    assert last.endswith(
        "(the replay stopped the runtime; recorded none: the transcript is truncated, no footer)"
    )


def test_a_cut_inside_the_first_frame_leaves_nothing_to_replay(recorded: Path, tmp_path):
    """Cut in the middle of the StartupDetails record: nothing to replay (exit 2), and the
    line says that the transcript is truncated before its first frame."""
    path = _cut(recorded, tmp_path, '/run"', into_next=500)
    proc = _replay(path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    (line,) = proc.stderr.splitlines()
    assert line.startswith(
        f"Error: {path}: nothing to replay: the transcript holds no frames (it is "
        "truncated before its first frame: no footer after "
    )
    assert "bytes of an incomplete record follow" in line


def test_a_whole_transcript_still_compares_its_final_state(recorded: Path):
    """The recording with its footer: a plain match, beside the recorded final state."""
    proc = _replay(recorded, "-q")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "truncated" not in proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1] == (
        f"replay of {recorded}: MATCH; final state success (recorded success)"
    )

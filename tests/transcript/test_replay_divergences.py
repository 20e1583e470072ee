"""Replay against a runtime that behaves differently, one way per test: never a crash.

A scripted runtime (tests/children/scripted.py) is recorded doing three requests; each test
replays that transcript with the same runtime told to do something else, through the real
command line, and checks that the divergence is reported once, of the right kind, with exit 1.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
from _cli import ROOT, cli, run_task_json

SCRIPTED = shlex.join([sys.executable, str(ROOT / "tests" / "children" / "scripted.py")])
GET_VAR = {"send": {"type": "GetVariable", "key": "peer_var"}}
GET_CONN = {"send": {"type": "GetConnection", "conn_id": "peer_conn"}}
SUCCEED = {
    "send": {
        "type": "SucceedTask",
        "state": "success",
        "end_date": "$now",
        "task_outlets": [],
        "outlet_events": [],
    }
}
RECORDED = [GET_VAR, GET_CONN, SUCCEED]


def _steps(steps: list[dict[str, Any]]) -> dict[str, str]:
    return {"SCRIPTED_STEPS": json.dumps(steps)}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("divergences")
    _, result, _ = run_task_json("hello", tmp, "--runtime", SCRIPTED, env=_steps(RECORDED))
    assert result["final_state"] == "success"
    return Path(result["transcript"])


def _replay(transcript: Path, steps: list[dict[str, Any]], *args: str, runtime: str = SCRIPTED):
    proc = cli(
        "replay",
        str(transcript),
        "--runtime",
        runtime,
        "--json",
        *args,
        cwd=transcript.parent,
        env=_steps(steps),
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, proc.stderr[-3000:]
    return proc, json.loads(lines[-1])


def _one(
    proc: Any, result: dict[str, Any], kind: str, index: int, status: int = 1
) -> dict[str, Any]:
    """The replay diverged once, of ``kind`` at runtime frame ``index``, and said so once; it
    exited ``status`` (1, or 3 when the runtime could not start)."""
    assert proc.returncode == status, proc.stderr[-2000:]
    assert result["matched"] is False
    assert [(d["kind"], d["index"]) for d in result["divergences"]] == [(kind, index)]
    assert proc.stderr.count("divergence at runtime frame") == 1, proc.stderr[-3000:]
    assert proc.stderr.count("aborting: replay diverged") <= 1, proc.stderr[-3000:]
    return result["divergences"][0]


def test_the_same_behaviour_matches(recorded: Path):
    """The recorded steps replay with no divergence (the baseline for the other tests)."""
    proc, result = _replay(recorded, RECORDED)
    assert proc.returncode == 0 and result["matched"], proc.stderr[-2000:]
    assert result["final_state"] == "success"


def test_an_extra_request_diverges_at_it(recorded: Path):
    """A request the recording does not have, before the terminal one, is named at its frame."""
    extra = {"send": {"type": "GetVariable", "key": "other_var"}}
    proc, result = _replay(recorded, [GET_VAR, GET_CONN, extra, SUCCEED])
    d = _one(proc, result, "frame", 2)
    assert "recorded SucceedTask" in d["message"] and "now sent GetVariable" in d["message"]


def test_a_request_past_the_recording_is_an_extra_frame(recorded: Path):
    """A runtime that sends more frames than were recorded gets an extra-frame divergence."""
    proc, result = _replay(recorded, [GET_VAR, GET_CONN, SUCCEED, GET_VAR])
    d = _one(proc, result, "extra-frame", 3)
    assert "recording has only 3 runtime frames" in d["message"]


def test_a_missing_request_diverges_where_it_was(recorded: Path):
    """Skipping the recorded GetConnection diverges at frame #1, naming both types."""
    proc, result = _replay(recorded, [GET_VAR, SUCCEED])
    d = _one(proc, result, "frame", 1)
    assert "recorded GetConnection" in d["message"] and "now sent SucceedTask" in d["message"]


def test_a_changed_body_names_the_field(recorded: Path):
    """Another variable key is a frame divergence listing exactly that field."""
    changed = {"send": {"type": "GetVariable", "key": "other_var"}}
    proc, result = _replay(recorded, [changed, GET_CONN, SUCCEED])
    d = _one(proc, result, "frame", 0)
    assert d["differences"] == ["body.key: recorded 'peer_var', now 'other_var'"]


def test_a_different_order_diverges_at_the_first_swapped_frame(recorded: Path):
    """The same requests in another order diverge at the first one."""
    proc, result = _replay(recorded, [GET_CONN, GET_VAR, SUCCEED])
    d = _one(proc, result, "frame", 0)
    assert "recorded GetVariable" in d["message"] and "now sent GetConnection" in d["message"]


def test_a_runtime_that_exits_early_misses_the_rest(recorded: Path):
    """A runtime exiting after its first request leaves the recorded frames missing."""
    proc, result = _replay(recorded, [GET_VAR, {"exit": 0}])
    d = _one(proc, result, "missing-frame", 1)
    assert "stopped after 1 frames" in d["message"] and "GetConnection" in d["message"]


def test_a_runtime_that_never_ends_is_stopped_by_the_timeout(recorded: Path):
    """A runtime that hangs is stopped when --timeout runs out, and that is the divergence."""
    proc, result = _replay(recorded, [GET_VAR, {"sleep": 120}], "--timeout", "1")
    d = _one(proc, result, "timeout", 1)
    assert "still running after 1s" in d["message"]
    assert "sent 1 of 3 recorded frames" in d["message"]


def test_a_runtime_that_crashes_at_start_is_a_divergence(recorded: Path):
    """A runtime that dies before connecting is a runtime that behaves otherwise than the
    recorded one, which connected: a missing-frame divergence at frame #0 saying how it ended
    and what the recorded one sent first, and exit 1 (the documented status of a divergence)."""
    crash = shlex.join([sys.executable, "-c", "import sys; sys.exit(3)"])
    proc, result = _replay(recorded, [], runtime=crash)
    d = _one(proc, result, "missing-frame", 0)
    assert "Error:" not in proc.stderr, proc.stderr[-3000:]
    assert d["message"].startswith(
        "the runtime did not start the task: process exited with 3 before connecting"
    )
    assert d["message"].endswith("; the recorded one connected and sent GetVariable first")
    assert result["exit_code"] == 3
    proc, result = _replay(recorded, [], "--keep-going", runtime=crash)
    assert [d["kind"] for d in result["divergences"]] == ["missing-frame", "final-state"]
    assert (
        "the run ended in state None, the recorded one in success"
        in (result["divergences"][1]["message"])
    )


def test_a_runtime_sending_another_first_frame_diverges_at_frame_0(recorded: Path):
    """Another first request than the recorded one: a frame divergence at #0, exit 1."""
    other = {"send": {"type": "GetXCom", "dag_id": "d", "run_id": "r", "task_id": "t", "key": "k"}}
    proc, result = _replay(recorded, [other, SUCCEED])
    d = _one(proc, result, "frame", 0)
    assert "recorded GetVariable" in d["message"] and "now sent GetXCom" in d["message"]


def test_a_runtime_command_that_cannot_be_run_is_exit_3_naming_it(recorded: Path, tmp_path):
    """A --runtime whose program does not exist replayed nothing: no divergence is claimed,
    and the one error line names the command; exit 3 (the runtime could not start)."""
    missing = tmp_path / "no-such-runtime"
    proc, result = _replay(recorded, [], runtime=f"{missing} --flag")
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert result["matched"] is False and result["divergences"] == []
    assert "divergence" not in proc.stderr and "DIVERGED" not in proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1] == (
        f"Error: the runtime could not start: cannot start runtime '{missing}': No such file or "
        f"directory (runtime command: {missing} --flag); check the recorded runtime command, or "
        "give --runtime"
    )


def test_keep_going_also_reports_requests_the_recording_cannot_answer(recorded: Path):
    """With --keep-going, the API call for a changed request is reported after the frame."""
    changed = {"send": {"type": "GetVariable", "key": "other_var"}}
    proc, result = _replay(recorded, [changed, GET_CONN, SUCCEED], "--keep-going")
    assert proc.returncode == 1
    kinds = [(d["kind"], d["index"]) for d in result["divergences"]]
    assert kinds[0] == ("frame", 0)
    assert ("http", 3) in kinds
    http = next(d for d in result["divergences"] if d["kind"] == "http")
    assert "GET /execution/variables/other_var" in http["message"]


def test_the_text_report_prints_the_divergence_once(recorded: Path):
    """Without --json the divergence and the verdict line are each printed once."""
    proc = cli(
        "replay",
        str(recorded),
        "--runtime",
        SCRIPTED,
        "-q",
        cwd=recorded.parent,
        env=_steps([GET_CONN, GET_VAR, SUCCEED]),
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("divergence at runtime frame #0") == 1, proc.stderr
    assert proc.stderr.count("DIVERGED (1)") == 1, proc.stderr


SECRET = "s3cr3t-token-value"
MASKED = [
    {"send": {"type": "MaskSecret", "value": SECRET, "name": "api_token"}, "no_wait": True},
    {"send": {"type": "SetXCom", "key": "auth", "value": f"Bearer {SECRET} for peer",
              "dag_id": "example_dag", "task_id": "hello", "run_id": "$run_id"}},
    SUCCEED,
]  # fmt: skip


@pytest.fixture(scope="module")
def recorded_masked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("masked")
    _, result, _ = run_task_json("hello", tmp, "--runtime", SCRIPTED, env=_steps(MASKED))
    assert result["final_state"] == "success", result
    path = Path(result["transcript"])
    assert SECRET not in path.read_text(), "the recording holds the secret"
    return path


def test_a_masked_secret_matches_whatever_the_runtime_sends_in_its_place(recorded_masked: Path):
    """A redacted recording keeps '***' where a secret was: replay does not compare what the
    mask hides, so the same runtime with another secret in the same places still matches."""
    other = json.loads(json.dumps(MASKED).replace(SECRET, "another-secret-now"))
    for steps in (MASKED, other):
        proc, result = _replay(recorded_masked, steps)
        assert proc.returncode == 0 and result["matched"], proc.stderr[-2000:]


def test_what_the_mask_does_not_hide_is_still_compared(recorded_masked: Path):
    """Around a masked secret the rest of the string still decides: a changed prefix diverges."""
    changed = json.loads(json.dumps(MASKED).replace("Bearer ", "Basic "))
    proc, result = _replay(recorded_masked, changed)
    d = _one(proc, result, "frame", 1)
    assert any("body.value" in line for line in d["differences"]), d


@pytest.mark.parametrize(
    ("recorded", "actual", "same"),
    [
        ("***", "anything", True),
        ("user:***@host", "user:pw@host", True),
        ("user:***@host", "admin:pw@host", False),
        ({"a": "***", "b": 1}, {"a": "x", "b": 1}, True),
        ({"a": "***", "b": 1}, {"a": "x", "b": 2}, False),
        (["***", "k"], ["v", "k"], True),
        ("***", 42, True),
        ("a***b***c", "aXbYc", True),
        ("a***b", "ab", False),
    ],
)
def test_unmask_hides_only_what_the_mask_covered(recorded: Any, actual: Any, same: bool):
    """A recorded '***' stands for one or more characters of any secret, nothing else."""
    from supervisor_sim.transcript._replay import unmask

    assert (unmask(recorded, actual) == recorded) is same

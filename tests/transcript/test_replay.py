"""Record, then replay without any Execution API: the runtime must get exactly the same answers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from _cli import ROOT, cli, run_task_json

# (task, extra run-task args, env) for every example task whose run is reproducible.
# ignore_sigterm is left out: it never ends by itself, so its run ends in a kill, not a replay.
TASKS = [
    ("hello", (), {}),
    ("read_var_conn", (), {}),
    ("push_xcom", (), {}),
    ("fail", (), {}),
    ("retry", ("--max-tries", "1"), {}),
    ("sleep", (), {"REFERENCE_SLEEP_S": "0.3"}),
    ("skip", (), {}),
    ("use_secret", (), {}),
    ("no_terminal", (), {}),
    ("no_such_task", ("--allow-unknown",), {}),  # Airflow's `removed`, recorded and replayed
]


@pytest.mark.parametrize(("task", "args", "env"), TASKS, ids=[t[0] for t in TASKS])
def test_replay_of_each_example_task_matches(tmp_path: Path, task, args, env):
    """Every example task replays from its transcript alone with zero divergences."""
    _, recorded, _ = run_task_json(task, tmp_path, *args, env=env)
    proc = cli("replay", recorded["transcript"], "--json", cwd=tmp_path, env=env)
    result = json.loads(proc.stdout)
    assert result["divergences"] == [], proc.stderr[-2000:]
    assert proc.returncode == 0
    assert result["final_state"] == recorded["final_state"]


def test_replay_of_pull_xcom_needs_no_state(tmp_path: Path):
    """pull_xcom replays with its upstream XCom coming from the transcript, not a database."""
    run_task_json("push_xcom", tmp_path, "--run-id", "r")
    _, recorded, _ = run_task_json("pull_xcom", tmp_path, "--run-id", "r")
    (tmp_path / "state.sqlite").unlink()
    proc = cli("replay", recorded["transcript"], "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["final_state"] == "success"


def test_a_changed_runtime_diverges_at_the_frame_and_field(tmp_path: Path):
    """A runtime that now reads another variable is stopped at that frame, naming the field."""
    _, recorded, _ = run_task_json("read_var_conn", tmp_path)
    bundle = tmp_path / "changed.py"
    bundle.write_text(
        (ROOT / "runtimes/reference/example_dags.py")
        .read_text()
        .replace('ctx.get_variable("peer_var")', 'ctx.get_variable("other_var")')
    )
    runtime = f"{sys.executable} {ROOT / 'runtimes/reference/runtime.py'} --bundle {bundle}"
    proc = cli("replay", recorded["transcript"], "--runtime", runtime, "--json", cwd=tmp_path)
    assert proc.returncode == 1
    result = json.loads(proc.stdout)
    first = result["divergences"][0]
    assert first["index"] == 0
    assert "GetVariable" in first["message"]
    assert first["differences"] == ["body.key: recorded 'peer_var', now 'other_var'"]
    assert "divergence at runtime frame #0" in proc.stderr
    assert "nearest recorded frames" in proc.stderr


def test_keep_going_counts_every_divergence(tmp_path: Path):
    """With --keep-going the replay runs to the end and reports each divergence."""
    _, recorded, _ = run_task_json("read_var_conn", tmp_path)
    bundle = tmp_path / "changed.py"
    bundle.write_text(
        (ROOT / "runtimes/reference/example_dags.py")
        .read_text()
        .replace('ctx.get_variable("peer_var")', 'ctx.get_variable("other_var")')
        .replace('ctx.get_connection("peer_conn")', 'ctx.get_connection("other_conn")')
    )
    runtime = f"{sys.executable} {ROOT / 'runtimes/reference/runtime.py'} --bundle {bundle}"
    proc = cli(
        "replay",
        recorded["transcript"],
        "--runtime",
        runtime,
        "--keep-going",
        "--json",
        cwd=tmp_path,
    )
    result = json.loads(proc.stdout)
    assert proc.returncode == 1
    assert [d["index"] for d in result["divergences"]][:2] == [0, 1]


def test_replay_of_a_truncated_transcript_still_runs(tmp_path: Path):
    """A transcript cut after the StartupDetails frame still replays up to the cut."""
    _, recorded, _ = run_task_json("hello", tmp_path)
    path = Path(recorded["transcript"])
    lines = path.read_text().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if '"StartupDetails"' in line)
    short = tmp_path / "short.jsonl"
    short.write_text("".join(lines[: cut + 1]))
    proc = cli("replay", str(short), "--json", cwd=tmp_path)
    result = json.loads(proc.stdout)
    # The recording stops before the runtime's first request, so that is where it ends: said
    # once, the replay stopping there (not once more per frame the runtime sends while it is
    # stopped).
    assert [d["kind"] for d in result["divergences"]] == ["recording-ends"]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("aborting: the recording ends before runtime frame #0") == 1
    assert proc.stderr.count("the recording ends before the runtime's first frame") == 1


def test_a_runtime_that_stops_early_is_reported_after_the_session_ended(tmp_path: Path):
    """A runtime sending nothing diverges only once the session is over, when there is no
    session left to stop: the replay reports it and exits 1 (it used to crash with
    "Nursery is closed to new arrivals")."""
    _, recorded, _ = run_task_json("hello", tmp_path)
    runtime = f"{sys.executable} {ROOT / 'runtimes/broken/no_terminal.py'}"
    proc = cli("replay", "--runtime", runtime, recorded["transcript"], cwd=tmp_path)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 1
    assert "the runtime stopped after 0 frames; the recording continues with SucceedTask" in (
        proc.stderr
    )
    assert "DIVERGED (1)" in proc.stderr

"""Security: loopback only, the right peer only, no token for the child, private files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from _cli import run_task_json
from _session_helpers import SCRIPTED, SUCCEED, run_task


async def test_listeners_bind_loopback_only(store, tmp_path: Path):
    """Both ports handed to the runtime are on 127.0.0.1."""
    out = tmp_path / "seen.json"
    run = await run_task(
        store, "hello", runtime=SCRIPTED, steps=[{"dump_env": True}, {"send": SUCCEED}], out=out
    )
    argv = json.loads(out.read_text())["argv"]
    assert [a.split("=")[1].split(":")[0] for a in argv if a.startswith("--")] == [
        "127.0.0.1",
        "127.0.0.1",
    ]
    assert run.outcome.final_state == "success"


async def test_the_jwt_never_reaches_the_child(store, tmp_path: Path):
    """Neither the environment, nor argv, nor any frame the child receives holds a token."""
    out = tmp_path / "seen.json"
    run = await run_task(
        store,
        "hello",
        runtime=SCRIPTED,
        out=out,
        steps=[
            {"dump_env": True},
            {"send": {"type": "GetVariable", "key": "peer_var"}},
            {"send": SUCCEED},
        ],
    )
    seen = out.read_text()
    assert "eyJ" not in seen
    sent = [
        e.data["payload"]
        for e in run.journal_events
        if e.kind == "frame" and e.data["direction"] == "out"
    ]
    assert sent and not any(b"eyJ" in p for p in sent)


def test_state_and_transcript_files_are_private(tmp_path: Path):
    """The stub's SQLite state and the transcript are created mode 0600."""
    _, result, _ = run_task_json("hello", tmp_path)
    for path in (tmp_path / "state.sqlite", Path(result["transcript"])):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


def test_a_hostile_run_id_cannot_move_the_transcript_out_of_its_folder(tmp_path: Path):
    """A run id with path separators still lands the transcript inside the runs folder."""
    status, result, _ = run_task_json("hello", tmp_path, "--run-id", "../../../../tmp/evil")
    assert status == 0
    path = Path(result["transcript"])
    assert path.parent == (tmp_path / ".supervisor-sim" / "runs").resolve()
    assert "/" not in path.name

"""A run whose calls the client retried replays to MATCH: replay's client makes as many
attempts as the recorded one did (no back-off), each answered from the recording in order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _cli import cli


@pytest.mark.parametrize(
    ("fault", "extra", "state"),
    [
        ("GetVariable:500@1", [], "success"),  # a 500 the retry cured
        ("GetVariable:reset@1", [], "success"),  # a reset the retry cured
        ("GetVariable:503@1+", ["--api-retries", "2"], "failed"),  # every attempt failed
    ],
)
def test_a_retried_call_replays_as_recorded(
    tmp_path: Path, fault: str, extra: list[str], state: str
):
    """Recorded with the fault, replayed without it: MATCH, the same final state, exit 0."""
    run = cli(
        "run-task", "example_dag", "read_var_conn", "--fault", fault, *extra,
        "--transcript", "t.jsonl", "--state", ":memory:", "-q", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode in (0, 1), run.stderr[-2000:]
    attempts = [
        json.loads(line).get("attempt")
        for line in (tmp_path / "t.jsonl").read_text().splitlines()
        if '"record":"http"' in line and "/variables/peer_var" in line
    ]
    assert max(a or 1 for a in attempts) == 2, attempts  # the client did retry
    replay = cli("replay", "t.jsonl", "--json", "-q", cwd=tmp_path)
    assert replay.returncode == 0, replay.stdout[-2000:] + replay.stderr[-2000:]
    result = json.loads(replay.stdout)
    assert result["matched"] and result["divergences"] == [], result
    assert result["final_state"] == result["recorded_final_state"] == state, result

"""run-dag --fault: every task session of the DAG run gets its own fault plan."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from _cli import ROOT, cli

REFERENCE = ROOT / "runtimes" / "reference" / "runtime.py"

BUNDLE = textwrap.dedent("""
    def read(ctx):
        try:
            ctx.get_variable("k")  # not in the stub: the retried read answers 404
        except Exception:
            pass
        return 1
    first = second = read
    DAGS = {"vars": {"first": first, "second": second}}
    DEPENDENCIES = {"vars": {"second": ["first"]}}
""")


def _run_dag(tmp: Path, *args: str):
    bundle = tmp / "bundle.py"
    bundle.write_text(BUNDLE)
    return cli(
        "run-dag",
        "vars",
        "--runtime",
        f"{sys.executable} {REFERENCE} --bundle {bundle}",
        "--state",
        str(tmp / "s.sqlite"),
        "--runs-dir",
        str(tmp / "runs"),
        "--json",
        "-q",
        *args,
        cwd=tmp,
        timeout=120,
    )


def _notes(transcript: str) -> list[dict]:
    records = [json.loads(line) for line in Path(transcript).read_text().splitlines() if line]
    return [r for r in records if r.get("record") == "note" and "fault" in r]


def test_each_task_of_the_dag_gets_the_fault_plan_with_its_own_counters(tmp_path: Path):
    """GetVariable:500@1 hits the first read of every task (not just the DAG's first), noted."""
    proc = _run_dag(tmp_path, "--fault", "GetVariable:500@1")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, proc.stderr[-3000:]
    result = json.loads(lines[-1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    for task_id in ("first", "second"):
        task = result["tasks"][task_id]
        assert task["state"] == "success"
        (transcript,) = task["transcripts"]
        notes = _notes(transcript)
        assert len(notes) == 1, notes
        fault = notes[0]["fault"]
        assert fault["rule"] == "GetVariable:500@1"
        assert fault["method"] == "GET" and "/variables/k" in fault["path"]


def test_a_bad_fault_spec_is_a_one_line_usage_error_before_any_task_runs(tmp_path: Path):
    """An unknown route in --fault: exit 2, one line naming the entry, no transcript written."""
    proc = _run_dag(tmp_path, "--fault", "GET /nope:500")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "GET /nope:500" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()

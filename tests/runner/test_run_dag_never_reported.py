"""run-dag and a runtime that exits 0 without a terminal message: as under Airflow, where the TI
stays running until the scheduler fails it (retrying it when tries remain), the try is no
success and its downstream tasks do not run on it."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from _cli import ROOT, cli

REFERENCE = ROOT / "runtimes" / "reference" / "runtime.py"

BUNDLE = textwrap.dedent("""
    import os
    def quits(ctx): os._exit(0)  # exit 0, no SucceedTask
    def after(ctx): return 1
    def quits_once(ctx):
        if ctx.ti["try_number"] < 2:
            os._exit(0)
        return "ok"
    DAGS = {"quits": {"quits": quits, "after": after, "quits_once": quits_once}}
    DEPENDENCIES = {"quits": {"after": ["quits"]}}
    TASK_SETTINGS = {"quits": {"quits_once": {"retries": 1}}}
""")


def test_a_task_that_never_reports_fails_and_its_retry_runs(tmp_path: Path):
    """quits (no retries) ends failed and after is upstream_failed; quits_once is retried, as
    the scheduler would, and its second try succeeds; the run fails, exit 1."""
    bundle = tmp_path / "bundle.py"
    bundle.write_text(BUNDLE)
    proc = cli(
        "run-dag", "quits", "--runtime", f"{sys.executable} {REFERENCE} --bundle {bundle}",
        "--state", str(tmp_path / "s.sqlite"), "--runs-dir", str(tmp_path / "runs"),
        "--retry-delay", "0", "--json", "-q", cwd=tmp_path, timeout=120,
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, proc.stderr[-3000:]
    result = json.loads(lines[-1])
    tasks = result["tasks"]
    assert {t: v["state"] for t, v in tasks.items()} == {
        "quits": "failed",
        "after": "upstream_failed",
        "quits_once": "success",
    }, tasks
    assert tasks["quits_once"]["tries"] == 2, tasks["quits_once"]
    assert "without a terminal message" in (tasks["quits"].get("error") or ""), tasks["quits"]
    assert proc.returncode == 1

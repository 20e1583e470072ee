"""tools/airflow_venv.sh never deletes a folder it did not make."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "airflow_venv.sh"


def _run(venv: Path) -> subprocess.CompletedProcess[str]:
    # PYTHON=false: should the script try to build, it fails at once instead of installing.
    env = {**os.environ, "SUPERVISOR_SIM_AIRFLOW_VENV": str(venv), "PYTHON": "false"}
    return subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


def test_a_folder_the_script_did_not_make_is_left_untouched(tmp_path: Path) -> None:
    """An existing venv without the script's mark keeps every file, and the script exits 2."""
    theirs = tmp_path / "their-venv"
    (theirs / "bin").mkdir(parents=True)
    (theirs / "bin" / "python").write_text("mine\n")
    proc = _run(theirs)
    assert proc.returncode == 2, proc.stderr
    assert "was not made by this script" in proc.stderr
    assert (theirs / "bin" / "python").read_text() == "mine\n"


def test_a_folder_with_the_scripts_mark_may_be_rebuilt(tmp_path: Path) -> None:
    """A folder the script made (its mark is there) is removed for a rebuild."""
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / ".supervisor-sim-owned").touch()
    (ours / "stale").write_text("x")
    proc = _run(ours)
    assert proc.returncode != 0  # PYTHON=false cannot build it
    assert not (ours / "stale").exists()

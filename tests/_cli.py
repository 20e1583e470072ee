"""Running the real command line in a child process, the way a user or CI runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "supervisor-sim.toml"


def cli(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """``supervisor-sim --config <repo config> ARGS`` in ``cwd``; never hangs past ``timeout``."""
    import os

    return subprocess.run(
        [sys.executable, "-m", "supervisor_sim", "--config", str(CONFIG), *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_task_json(
    task: str, tmp: Path, *extra: str, env: dict[str, str] | None = None, dag: str = "example_dag"
) -> tuple[int, dict[str, Any], str]:
    """run-task with --json into ``tmp``; returns (exit status, result object, stderr)."""
    proc = cli(
        "run-task",
        dag,
        task,
        "--state",
        str(tmp / "state.sqlite"),
        "--json",
        "-q",
        *extra,
        cwd=tmp,
        env=env,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON result; stderr:\n{proc.stderr[-3000:]}"
    return proc.returncode, json.loads(lines[-1]), proc.stderr

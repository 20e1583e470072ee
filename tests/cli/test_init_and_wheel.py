"""`supervisor-sim init` and the wheel: installed anywhere, `init` then `run-task example_dag
hello` works in an empty folder, with the reference runtime shipped in the package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from _cli import ROOT

from supervisor_sim.api import load_fixtures
from supervisor_sim.runner import REFERENCE_RUNTIME, load_project_config
from supervisor_sim.transcript import read_transcript


def sim(*args: str, cwd: Path, program: str | None = None) -> subprocess.CompletedProcess[str]:
    """``supervisor-sim ARGS`` in ``cwd`` with no --config: the folder's own files count."""
    argv = [program] if program else [sys.executable, "-m", "supervisor_sim"]
    proc = subprocess.run(
        [*argv, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=dict(os.environ)
    )
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    return proc


def schema_target(text: str) -> Path:
    """The file a ``#:schema file://...`` first line names."""
    first = text.splitlines()[0]
    assert first.startswith("#:schema file://"), first
    return Path(unquote(urlparse(first.split(" ", 1)[1]).path))


class TestInit:
    def test_writes_a_config_and_fixtures_that_run_hello(self, tmp_path: Path):
        """In an empty folder: two valid files naming their schemas, then hello succeeds with
        no flag at all."""
        proc = sim("init", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "next: supervisor-sim run-task example_dag hello" in proc.stdout
        config, fixtures = tmp_path / "supervisor-sim.toml", tmp_path / "fixtures.toml"
        project = load_project_config(config)
        assert project.runtime == [sys.executable, str(REFERENCE_RUNTIME)]
        assert project.fixtures == fixtures.resolve()
        assert load_fixtures(fixtures).variables["peer_var"].value == "hello-from-var"
        assert schema_target(config.read_text()).name == "supervisor-sim.schema.json"
        assert schema_target(fixtures.read_text()).name == "fixtures.schema.json"
        assert schema_target(config.read_text()).is_file()
        proc = sim("run-task", "example_dag", "hello", "-q", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert (tmp_path / ".supervisor-sim" / "state.sqlite").is_file()
        assert list((tmp_path / ".supervisor-sim" / "runs").glob("example_dag.hello.*.jsonl"))

    def test_refuses_to_overwrite_without_force(self, tmp_path: Path):
        """An existing file is kept (exit 2, one line); --force rewrites both."""
        (tmp_path / "supervisor-sim.toml").write_text("# mine\n")
        proc = sim("init", cwd=tmp_path)
        assert proc.returncode == 2
        assert proc.stderr.strip() == (
            f"Error: supervisor-sim.toml already in {tmp_path}; pass --force to overwrite it"
        )
        assert (tmp_path / "supervisor-sim.toml").read_text() == "# mine\n"
        assert not (tmp_path / "fixtures.toml").exists()
        assert sim("init", "--force", cwd=tmp_path).returncode == 0
        assert "[runtime]" in (tmp_path / "supervisor-sim.toml").read_text()


def test_the_wheel_ships_the_runtime_the_fixtures_and_the_schemas(tmp_path: Path):
    """What `init` and {reference_runtime} need is in the wheel, as files, not symlinks."""
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for name in (
            "supervisor_sim/_data/reference/runtime.py",
            "supervisor_sim/_data/reference/example_dags.py",
            "supervisor_sim/_data/reference/fanout_dags.py",
            "supervisor_sim/_data/fixtures.toml",
            "supervisor_sim/_data/schema/supervisor-sim.schema.json",
            "supervisor_sim/_data/schema/fixtures.schema.json",
        ):
            assert name in names, name
        runtime = zf.read("supervisor_sim/_data/reference/runtime.py")
    assert runtime == (ROOT / "runtimes" / "reference" / "runtime.py").read_bytes()


def _build_wheel(tmp_path: Path) -> Path:
    """The wheel, built from a copy of the tree: pip builds in the source folder, and two
    builds in the checkout at once (another test run) would share its build/ folder. The copy
    follows symlinks, as building the wheel does."""
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "supervisor_sim", source / "supervisor_sim", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("supervisor_sim-*.whl")
    return wheel


@pytest.mark.slow
@pytest.mark.integration
def test_installed_wheel_runs_hello_after_init_outside_a_checkout(tmp_path: Path):
    """pip install the wheel into a fresh venv (its dependencies from the package index),
    then, in an empty folder far from the checkout, `init` and `run-task example_dag hello`."""
    wheel = _build_wheel(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True, timeout=300)
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    empty = tmp_path / "project"
    empty.mkdir()
    program = str(venv / "bin" / "supervisor-sim")
    assert sim("init", cwd=empty, program=program).returncode == 0
    proc = sim("run-task", "example_dag", "hello", "-q", cwd=empty, program=program)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "final state   success" in proc.stderr
    # It ran the runtime inside the venv, not the checkout's.
    (transcript,) = (empty / ".supervisor-sim" / "runs").glob("example_dag.hello.*.jsonl")
    runtime = read_transcript(transcript).header["runtime"]
    assert runtime[1].startswith(str(venv)) and runtime[1].endswith("/_data/reference/runtime.py")
    assert schema_target((empty / "supervisor-sim.toml").read_text()).is_relative_to(venv)

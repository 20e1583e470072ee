"""Shared fixtures: fixtures files and a stub Execution API store on a temporary SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def fixtures_file(tmp_path: Path) -> Path:
    path = tmp_path / "fixtures.toml"
    path.write_text(
        '[variables]\npeer_var = "hello-from-var"\napi_token = "tok-very-secret-123"\n'
        '[connections.peer_conn]\nconn_type = "http"\nhost = "example.invalid"\n'
        'login = "bob"\npassword = "s3cret-pw"\n'
    )
    return path


@pytest.fixture
def store(tmp_path: Path, fixtures_file: Path):
    from supervisor_sim.api import StubStore, load_fixtures

    s = StubStore(tmp_path / "state.sqlite")
    s.seed(load_fixtures(fixtures_file))
    return s



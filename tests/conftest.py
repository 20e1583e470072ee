"""Shared fixtures: fixtures files and a stub Execution API store on a temporary SQLite file."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

#: Test folders whose every test needs a real peer (Airflow, Go, PostgreSQL, Chromium): marked
#: ``integration`` so that ``./test -m "not integration"`` is the fast selection of the unit tiers.
_INTEGRATION_DIRS = ("integration", "compose", "go")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        rel = Path(str(item.fspath)).relative_to(here)
        if rel.parts[0] in _INTEGRATION_DIRS or item.get_closest_marker("contract"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _signal_dispositions_restored():
    """Each test leaves SIGINT, SIGTERM and SIGHUP as it found them: a command run in-process
    may ignore SIGINT on its way out (``early_interrupt_exits_130``), and every child a later
    test starts would inherit that."""
    names = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = {sig: signal.getsignal(sig) for sig in names}
    yield
    for sig, handler in before.items():
        if signal.getsignal(sig) is not handler and handler is not None:
            signal.signal(sig, handler)


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


# --- every transcript the suite writes is checked for secrets --------------------------------

#: Secrets the fixtures hand out; none may appear in a redacted transcript.
FIXTURE_SECRETS = ("s3cret", "tok-very-secret-123", "etl-pw")
_JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any redacted transcript written by any test holds a JWT or a password."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None:
        return
    try:
        base = factory.getbasetemp()
    except Exception:  # no test used tmp_path
        return
    leaks, checked = [], 0
    for path in base.rglob("*.jsonl"):
        data = path.read_bytes()
        if b'"format":"supervisor-sim-transcript"' not in data[:400]:
            continue
        if b'"redacted":false' in data.split(b"\n", 1)[0]:
            continue
        checked += 1
        for secret in FIXTURE_SECRETS:
            if secret.encode() in data:
                leaks.append(f"{path}: contains fixture secret {secret!r}")
        if _JWT.search(data):
            leaks.append(f"{path}: contains a JWT")
    session.config.stash[_CHECKED] = checked
    if leaks:
        print("\nSECRET LEAK in transcripts:\n  " + "\n  ".join(leaks))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_CHECKED = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    checked = config.stash.get(_CHECKED, None)
    if checked is not None:
        terminalreporter.write_line(
            f"secret scan: {checked} redacted transcript(s) checked for JWTs and fixture secrets"
        )

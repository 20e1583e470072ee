"""run-task starts the runtime before it loads trio and the layers (_cmd_run_task.py), and
its session adopts it: the runtime must see exactly what a session-started one sees, and
whatever ends the command before the session takes over must leave nothing behind.

No wall-clock assertions here: bench/run.py measures what the early start buys.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from _cli import cli
from _session_helpers import REFERENCE, SCRIPTED, run_task
from click.testing import CliRunner

from supervisor_sim.supervision import _process

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="/proc and process groups")

#: The runtime used here: records what it was started with, then (by its options) starts a
#: grandchild in its own process group and waits, or exits at once; it never connects.
DUMP = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    out = sys.argv[1]
    seen = {
        "argv": sys.argv,
        "env": dict(os.environ),
        "cwd": os.getcwd(),
        "leads_its_group": os.getpgid(0) == os.getpid(),
        "stdin": os.readlink("/proc/self/fd/0"),
        "stdout": os.readlink("/proc/self/fd/1").split(":")[0],
        "stderr": os.readlink("/proc/self/fd/2").split(":")[0],
        "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
    }
    pids = [os.getpid()]
    if os.environ.get("DUMP_HANG"):
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", out])
        pids.append(grandchild.pid)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"{os.getpid()}.tmp"), "w") as f:
        json.dump({**seen, "pids": pids}, f)
    os.rename(os.path.join(out, f"{os.getpid()}.tmp"), os.path.join(out, f"{os.getpid()}.json"))
    if os.environ.get("DUMP_HANG"):
        time.sleep(60)
    """
)


def _dump_script(tmp_path: Path) -> Path:
    path = tmp_path / "dump.py"
    path.write_text(DUMP)
    return path


def _seen(out: Path, timeout: float = 20) -> dict[str, Any]:
    """What the one runtime started so far wrote (waits for it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sorted(out.glob("*.json")) if out.is_dir() else []
        if files:
            assert len(files) == 1, files
            return json.loads(files[0].read_text())
        time.sleep(0.02)
    raise AssertionError(f"the runtime wrote nothing to {out}")


def _live(marker: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose command line names ``marker``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and any(
                marker in arg for arg in proc.info["cmdline"] or ()
            ):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _group_alive(pgid: int) -> bool:
    """Any live (non-zombie) process left in process group ``pgid``?"""
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (OSError, psutil.Error):
            continue
    return False


def _reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # not (or no longer) our child: reaped
    return False


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _project(tmp_path: Path, runtime: list[str]) -> Path:
    """A config file with a runtime working directory of its own, and no fixtures."""
    (tmp_path / "rt-cwd").mkdir(exist_ok=True)
    config = tmp_path / "supervisor-sim.toml"
    config.write_text(f"[runtime]\ncommand = {json.dumps(runtime)}\ncwd = 'rt-cwd'\n")
    return config


# --- the runtime sees what a session-started runtime sees ------------------------------------


def test_the_early_started_runtime_gets_the_argv_env_cwd_and_fds_a_session_gives_it(
    tmp_path: Path,
):
    import trio

    from supervisor_sim.api import ExecutionAPIClient, StubStore, StubTransport
    from supervisor_sim.cli._common import supervisor_config
    from supervisor_sim.runner._config import load_project_config
    from supervisor_sim.supervision import TaskSession, TaskSpec

    runtime = [sys.executable, str(_dump_script(tmp_path))]
    early_out, session_out = tmp_path / "early", tmp_path / "session"
    config = _project(tmp_path, runtime)

    # 1. run-task, in a child process with our environment: the runtime is started early.
    command = [sys.executable, "-m", "supervisor_sim", "--config", str(config), "run-task"]
    options = ["--state", ":memory:", "--no-transcript", "-q", "--json", "--startup-timeout", "9"]
    proc = subprocess.run(
        [*command, "d", "t", *options, "--runtime", " ".join([*runtime, str(early_out)])],
        cwd=tmp_path,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr[-3000:]  # exited before connecting, as it should
    early = _seen(early_out)

    # 2. A TaskSession that starts the runtime itself, for the spec and config run-task builds.
    project = load_project_config(config)
    cfg = supervisor_config(project, {"startup_timeout": 9.0})
    spec = TaskSpec(
        ti={"id": "00000000-0000-0000-0000-000000000001"},
        runtime=[*runtime, str(session_out)],
        cwd=project.runtime_cwd,
    )

    async def session_run() -> Any:
        transport = StubTransport(StubStore(":memory:"))
        import httpx

        async with httpx.AsyncClient(base_url="http://stub.invalid/", transport=transport) as h:
            api = ExecutionAPIClient(h, in_process=transport, token="")
            return await TaskSession(spec, api, config=cfg).run()

    outcome = trio.run(session_run)
    assert outcome.started is False and "before connecting" in outcome.error
    by_session = _seen(session_out)

    # 3. What today's session gives a runtime, spelled out.
    expected_env = {
        **os.environ,
        "AIRFLOW__LOGGING__LOGGING_LEVEL": cfg.logging_level,
        "AIRFLOW__LOGGING__NAMESPACE_LEVELS": cfg.namespace_levels,
    }
    for seen, out in ((early, early_out), (by_session, session_out)):
        script, out_arg, comm, logs = seen["argv"]
        assert (script, out_arg) == (runtime[1], str(out))
        assert comm.startswith("--comm=127.0.0.1:") and int(comm.rsplit(":", 1)[1]) > 0
        assert logs.startswith("--logs=127.0.0.1:") and int(logs.rsplit(":", 1)[1]) > 0
        assert seen["env"] == expected_env
        assert seen["cwd"] == str(tmp_path / "rt-cwd")
        assert seen["leads_its_group"] is True
        assert seen["stdin"] == "/dev/null"
        assert seen["stdout"] == seen["stderr"] == "pipe"
        # Nothing of ours is inherited: no listener, no pipe read end, no pidfd.
        assert seen["fds"] == [0, 1, 2, 3]  # 3: the listing of /proc/self/fd itself
    ignore = {"argv", "pids"}
    assert {k: v for k, v in early.items() if k not in ignore} == {
        k: v for k, v in by_session.items() if k not in ignore
    }


# --- nothing is started for a usage error -----------------------------------------------------


def _invoke(args: list[str]) -> Any:
    from supervisor_sim.cli import main

    return CliRunner().invoke(main, args, catch_exceptions=True)


@pytest.fixture
def launches(monkeypatch: pytest.MonkeyPatch) -> list[_process.Launch]:
    """Every Launch start_runtime makes (run-task imports it when it starts the runtime)."""
    made: list[_process.Launch] = []
    real = _process.start_runtime

    def recording(*args: Any, **kwargs: Any) -> _process.Launch:
        made.append(real(*args, **kwargs))
        return made[-1]

    import supervisor_sim.supervision as supervision

    monkeypatch.setattr(supervision, "start_runtime", recording)
    return made


def test_a_bad_fixtures_file_fails_before_any_runtime_starts(tmp_path: Path, launches: list):
    bad = tmp_path / "bad.toml"
    bad.write_text('[connections.c]\nconn_type = "http"\nport = "abc"\n')
    runtime = f"{sys.executable} {_dump_script(tmp_path)} {tmp_path / 'out'}"
    result = _invoke(
        ["run-task", "d", "t", "--runtime", runtime, "--fixtures", str(bad), "--state", ":memory:"]
    )
    assert result.exit_code == 2, result.output
    assert "connections.c.port" in result.output
    assert launches == []


def test_api_url_without_ti_id_fails_before_any_runtime_starts(tmp_path: Path, launches: list):
    runtime = f"{sys.executable} {_dump_script(tmp_path)} {tmp_path / 'out'}"
    result = _invoke(["run-task", "d", "t", "--runtime", runtime, "--api-url", "http://x.invalid"])
    assert result.exit_code == 2, result.output
    assert "--api-url needs --ti-id and --run-id" in result.output
    assert launches == []


# --- a failure between the start and the session's adoption -----------------------------------


@pytest.mark.parametrize("failure", [RuntimeError("injected"), KeyboardInterrupt()])
def test_a_failure_before_the_session_adopts_the_runtime_kills_and_reaps_its_group(
    tmp_path: Path, launches: list, monkeypatch: pytest.MonkeyPatch, failure: BaseException
):
    out = tmp_path / "out"
    runtime = f"{sys.executable} {_dump_script(tmp_path)} {out}"

    async def failing_supervise(*args: Any, **kwargs: Any) -> Any:
        _seen(out)  # the runtime and its grandchild are running
        raise failure

    import supervisor_sim.runner as runner

    monkeypatch.setattr(runner, "supervise", failing_supervise)
    monkeypatch.setenv("DUMP_HANG", "1")
    fds = _fds()
    result = _invoke(["run-task", "d", "t", "--runtime", runtime, "--state", ":memory:"])
    if isinstance(failure, KeyboardInterrupt):
        # One line and 130, as for any interrupt (docs/cli.md), not click's "Aborted!" (1).
        assert result.exit_code == 130 and "interrupted (SIGINT)" in result.output
    else:  # an internal error: named, exit 4 (docs/cli.md)
        assert result.exit_code == 4 and "RuntimeError: injected" in result.output
    [launch] = launches
    pids = _seen(out)["pids"]
    assert len(pids) == 2 and pids[0] == launch.pid
    assert launch.proc is not None and launch.proc.returncode == -signal.SIGKILL
    assert _reaped(launch.pid)
    assert not _group_alive(launch.pid)
    assert _live(str(out)) == []
    assert _fds() - fds == set(), "a descriptor of the launch was left open"


def test_an_api_url_error_after_the_start_kills_the_runtime(tmp_path: Path):
    """--api-url is checked by the API layer, which loads after the runtime has started."""
    out = tmp_path / "out"
    proc = cli(
        "run-task",
        "d",
        "t",
        "--runtime",
        f"{sys.executable} {_dump_script(tmp_path)} {out}",
        "--api-url",
        "ftp://example.invalid/",
        "--ti-id",
        "0190a2a0-0000-7000-8000-000000000001",
        "--run-id",
        "r",
        cwd=tmp_path,
        env={"DUMP_HANG": "1"},
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "not an http(s) URL" in proc.stderr
    assert _live(str(out)) == []


def test_an_unreachable_api_leaves_no_process_behind(tmp_path: Path):
    """The session adopts the runtime, /run cannot be delivered: the runtime's group is killed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]  # nothing listens there once closed
    marker = str(tmp_path / "marker")
    steps = [{"grandchild": 60}, {"sleep": 60}]
    proc = cli(
        "run-task",
        "d",
        "t",
        "--runtime",
        " ".join([*SCRIPTED, marker]),
        "--api-url",
        f"http://127.0.0.1:{closed_port}/execution/",
        "--ti-id",
        "0190a2a0-0000-7000-8000-000000000001",
        "--run-id",
        "r",
        "--api-retries",
        "1",
        "--no-transcript",
        "--json",
        "-q",
        cwd=tmp_path,
        env={"SCRIPTED_STEPS": json.dumps(steps)},
    )
    assert proc.returncode == 4, proc.stderr[-3000:]  # the API is unreachable (docs/cli.md)
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["started"] is False and "/run failed" in result["error"]
    assert _live(marker) == []


def test_sigterm_before_the_session_kills_the_runtimes_group_then_this_process(tmp_path: Path):
    """SIGTERM between the start and the session's own signal handling: the runtime (which leads
    its own process group, so the signal does not reach it) is killed with its group, then the
    command dies of SIGTERM, as it did before the runtime was started early."""
    out = tmp_path / "out"
    script = textwrap.dedent(
        f"""
        import json, os, pathlib, signal, sys, time
        from supervisor_sim.cli._run_task import _runtime_started
        from supervisor_sim.supervision import SupervisorConfig
        runtime = [sys.executable, {str(_dump_script(tmp_path))!r}, {str(out)!r}]
        with _runtime_started(runtime, None, SupervisorConfig()) as launch:
            print(launch.pid, flush=True)
            while not list(pathlib.Path({str(out)!r}).glob("*.json")):
                time.sleep(0.02)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
        print("not reached", flush=True)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "DUMP_HANG": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGTERM, proc.stderr[-3000:]
    assert "not reached" not in proc.stdout
    pids = _seen(out)["pids"]
    assert str(pids[0]) == proc.stdout.split()[0]
    deadline = time.monotonic() + 10
    while _live(str(out)) and time.monotonic() < deadline:  # SIGKILL is delivered at once,
        time.sleep(0.05)  # but the kernel may take a moment to tear the processes down
    assert _live(str(out)) == []


# --- the adopted child under trio ---------------------------------------------------------------


async def test_without_a_pidfd_the_exit_is_awaited_in_a_thread(store, tmp_path, monkeypatch):
    """Where pidfd_open is missing (old kernels, other systems) the wait falls back to a
    waitid() thread; the task runs as usual and no descriptor is left behind."""
    monkeypatch.delattr(os, "pidfd_open")
    fds = _fds()
    run = await run_task(store, "hello", runtime=REFERENCE)
    assert run.outcome.final_state == "success" and run.outcome.exit_code == 0
    assert run.session.child._pidfd is None
    assert _fds() - fds == set()


async def test_a_cancelled_session_still_reaps_its_child(store, tmp_path):
    """Cancelling the session (its reaper task with it) still reaps the child and closes the
    pidfd and pipes: the cleanup waits for the exit itself."""
    import trio

    fds = _fds()
    with trio.move_on_after(1.0):
        await run_task(
            store,
            "hello",
            runtime=SCRIPTED,
            env={"SCRIPTED_NO_CONNECT": "60"},
            startup_timeout=30,
        )
    from _session_helpers import LAST_SESSION

    child = LAST_SESSION.child
    assert child is not None and child.returncode is not None
    assert _reaped(child.pid)
    assert not child.group_alive()
    assert _fds() - fds == set()


def test_the_launch_happens_before_trio_httpx_and_the_layers_are_imported(tmp_path: Path):
    """The point of it all: when run-task starts the runtime, none of the heavy imports ran."""
    probe = textwrap.dedent(
        """
        import json, sys
        from supervisor_sim.supervision import _process
        real, seen = _process.start_runtime, {}
        def recording(*args, **kwargs):
            seen["modules"] = sorted(sys.modules)
            return real(*args, **kwargs)
        _process.start_runtime = recording
        from supervisor_sim.cli import main
        try:
            main(sys.argv[1:], prog_name="supervisor-sim")
        except SystemExit as exc:
            seen["status"] = exc.code
        print(json.dumps(seen))
        """
    )
    runtime = f"{sys.executable} {_dump_script(tmp_path)} {tmp_path / 'out'}"
    options = ["--state", ":memory:", "--no-transcript", "-q", "--log-format", "json"]
    proc = subprocess.run(
        [sys.executable, "-c", probe, "run-task", "d", "t", "--runtime", runtime, *options],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert seen["status"] == 3, proc.stderr[-3000:]
    heavy = ("trio", "httpx", "supervisor_sim.runner._supervise")
    heavy += ("supervisor_sim.supervision._session",)
    # The api package itself loads its modules lazily; none of the heavy ones may be loaded.
    heavy += ("supervisor_sim.api._client", "supervisor_sim.api.stub", "supervisor_sim.api.store")
    assert [m for m in heavy if m in seen["modules"]] == []
    # The fixtures were validated first, with the fixtures module alone.
    assert "supervisor_sim.api._fixtures" in seen["modules"]

"""A runtime dies with the process supervising it (PR_SET_PDEATHSIG, Linux): a run-task or
run-dag SIGKILLed leaves no runtime running, and worker threads that come and go meanwhile
never kill a runtime (the signal follows the forking *thread*, so runtimes are forked by the
main thread or the one launcher thread, never by trio's short-lived worker threads).

Waits poll with a bound; nothing asserts how fast the kernel delivers the signal.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import trio
from _session_helpers import SCRIPTED, SUCCEED, run_task

from supervisor_sim.supervision import SupervisorConfig, _process

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = [sys.executable, str(ROOT / "tests" / "children" / "hostile.py")]
LOAD_CHILD = ROOT / "bench" / "_load_child.py"
CONFIG = ROOT / "supervisor-sim.toml"


def _running(pid: int) -> bool:
    """Is ``pid`` a live process (not gone, not a zombie nobody reaped yet)?"""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _spawned_pids(transcripts: list[Path]) -> list[int]:
    pids = []
    for path in transcripts:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            if '"event":"spawn"' in line:
                pids.append(json.loads(line)["pid"])
    return pids


def _kill_and_reap(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)


def test_runtime_dies_when_run_task_is_sigkilled(tmp_path: Path):
    """run-task killed with SIGKILL (no handler of its own runs) while its runtime sleeps: the
    runtime, forked by run-task's main thread before trio, is killed by the kernel."""
    transcript = tmp_path / "t.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor_sim", "--config", str(CONFIG), "run-task",
         "example_dag", "hello", "--runtime", " ".join([*HOSTILE, "sleep"]),
         "--state", str(tmp_path / "s.sqlite"), "--transcript", str(transcript), "-q"],
        cwd=tmp_path,
        env={**os.environ, "HOSTILE_SLEEP": "120"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        _wait_for(
            lambda: transcript.exists() and '"dir":"out"' in transcript.read_text(),
            "the runtime to have its StartupDetails",
        )
        [pid] = _spawned_pids([transcript])
        assert _running(pid)
    finally:
        _kill_and_reap(proc)
    _wait_for(lambda: not _running(pid), f"runtime {pid} to die with run-task")


def test_runtimes_die_when_run_dag_is_sigkilled(tmp_path: Path):
    """run-dag SIGKILLed with three runtimes running (each forked by the launcher thread, under
    trio): none of them outlives it."""
    ready, out, fifo = tmp_path / "ready", tmp_path / "out", tmp_path / "go.fifo"
    ready.mkdir()
    out.mkdir()
    os.mkfifo(fifo)
    config = tmp_path / "supervisor-sim.toml"
    config.write_text(f'[runtime]\ncommand = ["{{python}}", "{LOAD_CHILD}"]\n')
    fixtures = tmp_path / "fixtures.toml"
    fixtures.write_text('[variables]\nbench_var = "bench-value"\n')
    env = {
        **os.environ,
        "BENCH_MODE": "scale",
        "BENCH_TASKS": "3",
        "BENCH_READY_DIR": str(ready),
        "BENCH_GO_FIFO": str(fifo),
        "BENCH_OUT_DIR": str(out),
        "BENCH_RT": "1",
        "BENCH_GO_MAX": "120",
    }
    # A writer that never closes: the runtimes wait at the barrier until they are killed.
    holder = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor_sim", "--config", str(config), "run-dag",
         "scale_dag", "--parallelism", "3", "--state", ":memory:", "--fixtures", str(fixtures),
         "--runs-dir", str(runs), "-q"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    pids: list[int] = []
    try:
        try:
            _wait_for(
                lambda: len(os.listdir(ready)) == 3 or proc.poll() is not None,
                "three runtimes at the barrier",
            )
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            pids = _spawned_pids(sorted(runs.glob("*.jsonl")))
            assert len(pids) == 3 and all(_running(pid) for pid in pids)
        finally:
            _kill_and_reap(proc)
        # The barrier stays closed: a runtime still running now is one nobody killed.
        _wait_for(lambda: not any(_running(pid) for pid in pids), f"runtimes {pids} to die")
    finally:
        for pid in pids:  # what a failure left behind
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.close(holder)


async def test_runtime_survives_worker_threads_coming_and_going(store, tmp_path, monkeypatch):
    """While a runtime runs, trio's worker threads start and exit (idle timeout cut to 50 ms,
    so every thread call gets a fresh thread that then ends): the runtime is not killed, and
    its try succeeds."""
    from trio._core import _thread_cache

    monkeypatch.setattr(_thread_cache, "IDLE_TIMEOUT", 0.05)
    out = tmp_path / "seen.json"
    seen_threads: list[int] = []

    async def churn() -> None:
        # Each call runs on a new thread, which exits 50 ms after it is done.
        for _ in range(6):
            seen_threads.append(await trio.to_thread.run_sync(threading.get_native_id))
            await trio.sleep(0.25)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(churn)
        run = await run_task(
            store,
            "hello",
            runtime=SCRIPTED,
            steps=[{"sleep": 2.0}, {"send": SUCCEED}, {"exit": 0}],
            out=out,
            heartbeat_interval=0.2,
        )
    tasks = {int(t) for t in os.listdir("/proc/self/task")}
    assert len(set(seen_threads)) >= 2, seen_threads  # threads did come and go ...
    assert not set(seen_threads[:-1]) & tasks  # ... and the earlier ones have exited
    assert run.outcome.exit_code == 0, run.outcome
    assert run.outcome.final_state == "success"


def test_a_runtime_forked_by_a_short_lived_thread_is_not_killed_when_it_exits(tmp_path: Path):
    """``start_runtime`` called from some other thread that then exits: no parent-death signal
    was set there (it would fire at that thread's exit), so the runtime lives on."""
    launches: list[_process.Launch] = []
    worker = threading.Thread(
        target=lambda: launches.append(
            _process.start_runtime(
                [sys.executable, "-c", "import time; time.sleep(60)"], {}, None,
                SupervisorConfig(),
            )
        )
    )  # fmt: skip
    worker.start()
    worker.join()
    [launch] = launches
    try:
        assert launch.pid is not None
        # A runtime killed at its forking thread's exit would be dead (or dying) by now; give
        # the kernel a moment by polling the other way round: it must stay alive throughout.
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            assert _running(launch.pid)
            time.sleep(0.05)
    finally:
        launch.close()


def test_the_parent_death_signal_is_set_in_the_main_and_launcher_threads_only():
    """The preexec hook exists exactly for the threads that live as long as the process."""
    assert _process._parent_death_signal() is not None  # pytest runs tests in the main thread
    found: list[object] = []
    t = threading.Thread(target=lambda: found.append(_process._parent_death_signal()))
    t.start()
    t.join()
    assert found == [None]
    done = threading.Event()

    def in_launcher() -> None:
        found.append(_process._parent_death_signal())
        done.set()

    _process._LAUNCHER.submit(in_launcher)
    assert done.wait(30)
    assert found[1] is not None


def test_a_child_whose_parent_died_before_the_prctl_kills_itself(tmp_path: Path):
    """The race PR_SET_PDEATHSIG leaves open: the parent dies between fork and prctl. The hook
    compares getppid() with the parent it was made in and the child kills itself."""
    script = textwrap.dedent(
        """
        import subprocess, sys
        from supervisor_sim.supervision import _process
        # As if this process had died and the child been re-parented: the parent it checks
        # for is one it does not have (pid 0 is nobody's parent here).
        hook = _process._parent_death_signal(parent=0)
        proc = subprocess.Popen([sys.executable, "-c", "print('alive')"], preexec_fn=hook,
                                stdout=subprocess.PIPE)
        print(proc.communicate()[0].decode().strip() or "-", proc.returncode)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["-", str(-signal.SIGKILL)]


_LAUNCH_AND_WAIT = textwrap.dedent(
    """
    import sys, time
    from supervisor_sim.supervision import SupervisorConfig, _process
    if sys.argv[1] == "preexec":
        _process._SETPRIV[:] = [None]  # as on a machine without util-linux's setpriv
    launch = _process.start_runtime(
        [sys.executable, "-c", "import time; time.sleep(120)"], {}, None, SupervisorConfig()
    )
    print(launch.pid, flush=True)
    time.sleep(120)
    """
)


@pytest.mark.parametrize("way", ["setpriv", "preexec"])
def test_a_runtime_started_either_way_dies_with_its_sigkilled_supervisor(way: str):
    """Through setpriv (vfork, no preexec_fn) and through the preexec hook (where setpriv is
    missing) alike, SIGKILLing the process that started the runtime kills the runtime."""
    if way == "setpriv" and _process._setpriv() is None:
        pytest.skip("no setpriv with --pdeathsig on this machine")
    proc = subprocess.Popen(
        [sys.executable, "-c", _LAUNCH_AND_WAIT, way], stdout=subprocess.PIPE, text=True
    )
    pid = 0
    try:
        assert proc.stdout is not None
        pid = int(proc.stdout.readline())
        # The runtime, not setpriv, is what runs under that pid once setpriv has exec'd it.
        _wait_for(lambda: "time.sleep(120)" in " ".join(psutil.Process(pid).cmdline()), "exec")
        assert _running(pid)
    finally:
        _kill_and_reap(proc)
    try:
        _wait_for(lambda: not _running(pid), f"runtime {pid} to die with its supervisor")
    finally:
        if pid and _running(pid):
            os.kill(pid, signal.SIGKILL)


def test_setpriv_wraps_only_programs_exec_would_start_directly(tmp_path: Path):
    """A missing program, a non-executable file and a script without ``#!`` keep the preexec
    hook (so Popen's own error, or refusal, is what the session reports); an interpreter found
    on PATH and a ``#!`` script go through setpriv."""
    setpriv = _process._setpriv()
    if setpriv is None:
        pytest.skip("no setpriv with --pdeathsig on this machine")
    env = {"PATH": os.path.dirname(sys.executable) + os.pathsep + os.defpath}
    shebang = tmp_path / "ok.sh"
    shebang.write_text("#!/bin/sh\nexit 0\n")
    shebang.chmod(0o755)
    bare = tmp_path / "bare.sh"
    bare.write_text("exit 0\n")
    bare.chmod(0o755)
    plain = tmp_path / "plain.sh"
    plain.write_text("#!/bin/sh\n")
    for argv in (
        [os.path.basename(sys.executable), "-V"],
        [str(shebang)],
        ["./ok.sh"],  # relative to the runtime's cwd
    ):
        wrapped, hook = _process._with_parent_death_signal(argv, env, str(tmp_path))
        assert (wrapped, hook) == ([setpriv, "--pdeathsig", "KILL", "--", *argv], None), argv
    for argv in ([str(tmp_path / "missing")], ["no-such-program-here"], [str(bare)], [str(plain)]):
        wrapped, hook = _process._with_parent_death_signal(argv, env, str(tmp_path))
        assert wrapped == argv and hook is not None, argv

"""Every documented exit status of every command, driven for real (docs/cli.md, "Exit
statuses"): a user mistake is one line and status 2, a runtime that cannot start is 3 and an
Execution API that does not answer is 4 in every command, and no output holds a traceback."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from _cli import CONFIG, ROOT

REFERENCE = f"{{python}} {ROOT / 'runtimes' / 'reference' / 'runtime.py'}"
#: Exits at once, before connecting: a runtime that cannot start.
DEAD = f"{sys.executable} -c 'import sys; sys.exit(4)'"
BUNDLE = """\
def a(ctx):
    return 1

def b(ctx):
    raise RuntimeError("no")

def hello(ctx):
    ctx.get_variable("peer_var")

DAGS = {"tiny": {"a": a}, "bad": {"b": b}, "example_dag": {"hello": hello}}
"""


def sim(
    *args: str, cwd: Path, config: bool = True, env: dict[str, str] | None = None, timeout=90
) -> subprocess.CompletedProcess[str]:
    """``supervisor-sim ARGS`` in ``cwd`` (with the repository's config unless ``config`` is
    False); whatever it does, its output holds no traceback."""
    argv = [sys.executable, "-m", "supervisor_sim"]
    if config:
        argv += ["--config", str(CONFIG)]
    proc = subprocess.run(
        [*argv, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    return proc


def error_line(proc: subprocess.CompletedProcess[str], status: int = 2) -> str:
    """The one ``Error:`` line the command ended with, its exit status checked."""
    assert proc.returncode == status, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert proc.stderr.rstrip().splitlines()[-1] == errors[0]
    return errors[0]


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def bundle(tmp_path: Path) -> str:
    """A runtime command for the reference runtime over a small bundle of DAGs."""
    path = tmp_path / "bundle.py"
    path.write_text(BUNDLE)
    return f"{REFERENCE} --bundle {path}"


class TestRunTask:
    def test_0_for_success_and_1_for_a_failed_task(self, tmp_path: Path):
        """hello succeeds (0); fail ends failed (1)."""
        state = ["--state", str(tmp_path / "s.sqlite"), "-q"]
        assert sim("run-task", "example_dag", "hello", *state, cwd=tmp_path).returncode == 0
        assert sim("run-task", "example_dag", "fail", *state, cwd=tmp_path).returncode == 1

    def test_2_for_a_bad_flag_in_one_line(self, tmp_path: Path):
        """click's own usage errors are one line too, pointing at --help."""
        line = error_line(sim("run-task", "example_dag", "hello", "--bogus", cwd=tmp_path))
        assert "--bogus" in line and "(see 'supervisor-sim run-task --help')" in line
        line = error_line(sim("run-task", "example_dag", cwd=tmp_path))
        assert "TASK_ID" in line
        assert "No such command 'run-tsak'" in error_line(sim("run-tsak", cwd=tmp_path))

    def test_2_for_a_config_key_that_does_not_exist(self, tmp_path: Path):
        """`cmd` for `command` no longer passes silently into "no runtime command"."""
        config = tmp_path / "c.toml"
        config.write_text('[runtime]\ncmd = "x"\n')
        proc = sim("--config", str(config), "run-task", "d", "t", cwd=tmp_path, config=False)
        assert error_line(proc) == (
            f"Error: {config}: runtime.cmd: unknown key; expected one of command, cwd; "
            "did you mean 'command'?"
        )

    def test_2_for_a_missing_config_and_runtime(self, tmp_path: Path):
        """Without a config or --runtime, the line names --runtime, the file and `init`."""
        line = error_line(sim("run-task", "d", "t", cwd=tmp_path, config=False))
        assert "--runtime" in line and "supervisor-sim init" in line
        line = error_line(sim("--config", "nope.toml", "run-task", "d", "t", cwd=tmp_path))
        assert "config file not found" in line

    def test_2_for_a_bad_fixtures_file(self, tmp_path: Path):
        """A fixtures file with a misspelt key: the key path and the key meant."""
        bad = tmp_path / "f.toml"
        bad.write_text('[connections.c]\nconn_type = "x"\npasword = "p"\n')
        proc = sim("run-task", "example_dag", "hello", "--fixtures", str(bad), cwd=tmp_path)
        assert "connections.c.pasword: unknown key" in error_line(proc)
        assert "did you mean 'password'?" in error_line(proc)

    def test_2_for_a_transcript_or_state_that_cannot_be_written(self, tmp_path: Path):
        """A file in the way, or a place nobody may write (not even root), before any start."""
        (tmp_path / "afile").write_text("")
        proc = sim(
            "run-task", "example_dag", "hello", "--state", ":memory:",
            "--transcript", str(tmp_path / "afile" / "t.jsonl"), cwd=tmp_path,
        )  # fmt: skip
        assert error_line(proc) == (
            f"Error: --transcript: cannot create {tmp_path / 'afile'}: {tmp_path / 'afile'} "
            "is a file, not a folder; give another path or --no-transcript"
        )
        proc = sim(
            "run-task", "example_dag", "hello", "--state", ":memory:",
            "--transcript", "/sys/t.jsonl", cwd=tmp_path,
        )  # fmt: skip
        assert "--transcript: cannot write /sys/t.jsonl: Permission denied" in error_line(proc)
        proc = sim("run-task", "example_dag", "hello", "--state", "/sys/s.sqlite", cwd=tmp_path)
        assert "--state: cannot write /sys/s.sqlite: Permission denied" in error_line(proc)
        (tmp_path / "notdb.sqlite").write_text("this is no database\n" * 100)
        proc = sim(
            "run-task", "example_dag", "hello", "--state", str(tmp_path / "notdb.sqlite"),
            "--no-transcript", cwd=tmp_path,
        )  # fmt: skip
        assert "the stub's state file cannot be used" in error_line(proc)

    def test_2_for_a_task_or_dag_the_bundle_lacks_unless_allowed(self, tmp_path: Path):
        """Airflow's `removed` becomes one line listing what the bundle has; --allow-unknown
        keeps Airflow's behaviour (removed, exit 1)."""
        base = ["--state", ":memory:", "--no-transcript", "-q"]
        line = error_line(sim("run-task", "example_dag", "no_such_task", *base, cwd=tmp_path))
        assert line.startswith("Error: task 'no_such_task' is not in DAG 'example_dag', which has ")
        assert "hello" in line and "--allow-unknown" in line
        line = error_line(sim("run-task", "no_dag", "hello", *base, cwd=tmp_path))
        assert line.startswith("Error: DAG 'no_dag' is not in the runtime's bundle, which has ")
        assert "example_dag" in line
        proc = sim(
            "run-task", "example_dag", "no_such_task", *base, "--json", "--allow-unknown",
            cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 1
        assert json.loads(proc.stdout.splitlines()[-1])["final_state"] == "removed"

    def test_3_when_the_runtime_cannot_start(self, tmp_path: Path):
        """A runtime that exits at once, or does not exist, is 3."""
        base = ["--state", ":memory:", "--no-transcript", "-q"]
        assert sim("run-task", "d", "t", "--runtime", DEAD, *base, cwd=tmp_path).returncode == 3
        proc = sim("run-task", "d", "t", "--runtime", "/no/such/runtime", *base, cwd=tmp_path)
        assert proc.returncode == 3 and "cannot start runtime '/no/such/runtime'" in proc.stderr

    def test_4_when_the_api_url_does_not_answer_said_while_retrying(self, tmp_path: Path):
        """One line while the calls are retried, one line at the end, exit 4 (not 3)."""
        url = f"http://127.0.0.1:{closed_port()}/execution/"
        proc = sim(
            "run-task", "example_dag", "hello", "--api-url", url, "--api-retries", "2",
            "--ti-id", "0199a3c0-7f6e-7b1a-9c55-3f1e0d2c4b6a", "--run-id", "r",
            "--no-transcript", "-q", cwd=tmp_path,
        )  # fmt: skip
        line = error_line(proc, 4)
        assert line.startswith(f"Error: Execution API unreachable at {url}: ConnectError")
        assert proc.stderr.count(f"the Execution API at {url} does not answer") == 1
        assert "retrying (2 attempts per call)" in proc.stderr


class TestRunDag:
    def test_0_1_and_2(self, tmp_path: Path, bundle: str):
        """Every task succeeded (0), one failed (1), a DAG the bundle lacks (2)."""
        base = ["--runtime", bundle, "--state", ":memory:", "--no-transcript", "-q"]
        assert sim("run-dag", "tiny", *base, cwd=tmp_path).returncode == 0
        assert sim("run-dag", "bad", *base, cwd=tmp_path).returncode == 1
        line = error_line(sim("run-dag", "nope", *base, cwd=tmp_path))
        assert "'nope' not found" in line and "tiny" in line

    def test_2_for_paths_and_tools(self, tmp_path: Path, bundle: str):
        """--runs-dir that is a file, --state nobody may write, an --airflow-python that is
        no program: one line each."""
        (tmp_path / "afile").write_text("")
        base = ["--runtime", bundle, "-q"]
        proc = sim("run-dag", "tiny", *base, "--state", ":memory:", "--runs-dir", "afile",
                   cwd=tmp_path)  # fmt: skip
        assert "'afile' is a file" in error_line(proc)
        proc = sim("run-dag", "tiny", *base, "--state", "/sys/s.sqlite", cwd=tmp_path)
        assert "--state: cannot write /sys/s.sqlite" in error_line(proc)
        proc = sim(
            "run-dag", "tiny", *base, "--state", ":memory:", "--no-transcript",
            "--api-url", "http://127.0.0.1:9/execution/", "--jwt-secret", "s",
            "--airflow-python", "/no/such/python", cwd=tmp_path,
        )  # fmt: skip
        assert "--airflow-python: '/no/such/python' is not a program" in error_line(proc)

    def test_3_when_the_runtime_cannot_start(self, tmp_path: Path):
        """The parse that starts a run-dag cannot start: 3, not a usage error."""
        proc = sim("run-dag", "tiny", "--runtime", DEAD, "--state", ":memory:", cwd=tmp_path)
        assert error_line(proc, 3).startswith("Error: the runtime could not start: ")

    @pytest.mark.slow
    def test_4_when_the_api_url_does_not_answer(self, tmp_path: Path, bundle: str):
        """A health call before anything is queued: said once while retrying, then exit 4."""
        url = f"http://127.0.0.1:{closed_port()}/execution/"
        proc = sim(
            "run-dag", "tiny", "--runtime", bundle, "--state", ":memory:", "--no-transcript",
            "--api-url", url, "--jwt-secret", "s", "--airflow-python", sys.executable,
            cwd=tmp_path,
        )  # fmt: skip
        assert error_line(proc, 4).startswith(f"Error: Execution API unreachable at {url}")
        assert proc.stderr.count("does not answer") == 1


class TestParse:
    def test_0_1_2_and_3(self, tmp_path: Path, bundle: str):
        """Parsed and valid (0), an import error (1), an unwritable --state (2), a runtime that
        cannot start (3)."""
        base = ["--state", ":memory:", "--no-transcript", "-q"]
        assert sim("parse", "--runtime", bundle, *base, cwd=tmp_path).returncode == 0
        broken = tmp_path / "broken.py"
        broken.write_text("raise RuntimeError('boom')\n")
        proc = sim("parse", "--runtime", f"{REFERENCE} --bundle {broken}", *base, cwd=tmp_path)
        assert proc.returncode == 1 and "import error" in proc.stdout
        proc = sim("parse", "--runtime", bundle, "--state", "/sys/s.sqlite", cwd=tmp_path)
        assert "--state: cannot write" in error_line(proc)
        proc = sim("parse", "--runtime", DEAD, *base, cwd=tmp_path)
        assert error_line(proc, 3).startswith("Error: the runtime could not start: ")


class TestCheck:
    def test_0_1_2_and_3(self, tmp_path: Path):
        """No rule failed (0), one did (1), an unknown --skip (2), a runtime that cannot start
        (3: one line instead of a table of failures)."""
        assert sim("check", "--", *REFERENCE.split(), cwd=tmp_path).returncode == 0
        broken = [sys.executable, str(ROOT / "runtimes" / "broken" / "ignores_reply_ids.py")]
        assert sim("check", "--jobs", "2", "--", *broken, cwd=tmp_path).returncode == 1
        line = error_line(sim("check", "--skip", "nope", "--", *REFERENCE.split(), cwd=tmp_path))
        assert "unknown rule 'nope' for --skip" in line
        proc = sim("check", "--", *shlex.split(DEAD), cwd=tmp_path)
        assert error_line(proc, 3).startswith("Error: the runtime could not start: ")
        assert "connects" not in proc.stdout  # no table

    def test_2_for_a_junit_path_that_cannot_be_written(self, tmp_path: Path):
        """--junit under a file is refused before any scenario runs."""
        (tmp_path / "afile").write_text("")
        proc = sim("check", "--junit", "afile/j.xml", "--", "false", cwd=tmp_path)
        assert "--junit: cannot create afile" in error_line(proc)


class TestTranscripts:
    @pytest.fixture
    def recorded(self, tmp_path: Path) -> Path:
        path = tmp_path / "hello.jsonl"
        proc = sim(
            "run-task", "example_dag", "hello", "--state", ":memory:", "--transcript", str(path),
            "-q", cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        return path

    def test_replay_0_1_2_and_3(self, tmp_path: Path, recorded: Path, bundle: str):
        """Matched (0), diverged (1, also a runtime that exits before connecting), not a
        transcript (2), a runtime command that cannot be run (3)."""
        assert sim("replay", str(recorded), "-q", cwd=tmp_path).returncode == 0
        # The bundle's hello asks for a variable the recording never did.
        assert sim("replay", str(recorded), "--runtime", bundle, "-q", cwd=tmp_path).returncode == 1
        (tmp_path / "not.jsonl").write_text("hello\n")
        assert error_line(sim("replay", str(tmp_path / "not.jsonl"), cwd=tmp_path))
        assert sim("replay", str(recorded), "--runtime", DEAD, "-q", cwd=tmp_path).returncode == 1
        missing = str(tmp_path / "no-such-runtime")
        proc = sim("replay", str(recorded), "--runtime", missing, "-q", cwd=tmp_path)
        assert error_line(proc, 3).startswith("Error: the runtime could not start: ")

    def test_show_and_diff(self, tmp_path: Path, recorded: Path):
        """show: 0, or one line for a missing --html folder; diff: 0, 1 and 2."""
        assert sim("show", str(recorded), cwd=tmp_path).returncode == 0
        proc = sim("show", str(recorded), "--html", str(tmp_path / "no" / "x.html"), cwd=tmp_path)
        assert "--html: cannot write" in error_line(proc)
        assert sim("diff", str(recorded), str(recorded), cwd=tmp_path).returncode == 0
        other = tmp_path / "fail.jsonl"
        sim("run-task", "example_dag", "fail", "--state", ":memory:", "--transcript", str(other),
            "-q", cwd=tmp_path)  # fmt: skip
        assert sim("diff", str(recorded), str(other), cwd=tmp_path).returncode == 1
        assert error_line(sim("diff", str(recorded), str(tmp_path / "none.jsonl"), cwd=tmp_path))

    def test_141_when_the_reader_of_the_output_goes_away(self, tmp_path: Path, recorded: Path):
        """`show T | head`: the command stops quietly with 141 (as SIGPIPE would), no error."""
        # Far more output than a pipe holds, so the writer meets the closed end.
        big = tmp_path / "big.jsonl"
        lines = recorded.read_text().splitlines()
        big.write_text("\n".join([lines[0], *lines[1:-1] * 300, lines[-1]]) + "\n")
        argv = [sys.executable, "-m", "supervisor_sim", "show", str(big)]
        proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline()
        proc.stdout.close()  # the reader goes away after one line
        _, err = proc.communicate(timeout=60)
        assert (proc.returncode, err.decode()) == (141, "")

    def test_2_when_the_output_cannot_be_written(self, tmp_path: Path, recorded: Path):
        """A full disk behind standard output (/dev/full) is one line, status 2."""
        for args in (["show", str(recorded)], ["diff", str(recorded), str(recorded), "--json"]):
            with open("/dev/full", "w") as full:
                argv = [sys.executable, "-m", "supervisor_sim", *args]
                proc = subprocess.run(
                    argv, cwd=tmp_path, stdout=full, stderr=subprocess.PIPE, text=True, timeout=60
                )
            assert "the output cannot be written: No space left" in error_line(proc), args


class TestRuntimeCommand:
    @pytest.mark.parametrize("command", ["'x", "", "   "])
    @pytest.mark.parametrize("verb", ["run-task", "run-dag", "parse"])
    def test_2_for_a_runtime_command_that_cannot_be_split_or_is_empty(
        self, tmp_path: Path, command: str, verb: str
    ):
        """An unbalanced quote or an empty --runtime is one line naming the command, status 2:
        never a fall back to the config's runtime."""
        args = {"run-task": ["example_dag", "hello"], "run-dag": ["example_dag"], "parse": []}
        proc = sim(verb, *args[verb], "--runtime", command, cwd=tmp_path)
        line = error_line(proc)
        assert f"the runtime command {command!r}" in line, line

    def test_2_for_a_config_runtime_command_with_broken_quoting(self, tmp_path: Path):
        """[runtime] command with an unbalanced quote names the file and the key."""
        config = tmp_path / "supervisor-sim.toml"
        config.write_text('[runtime]\ncommand = "python \'x"\n')
        proc = sim("run-task", "example_dag", "hello", cwd=tmp_path, config=False)
        line = error_line(proc)
        assert "runtime.command" in line and "No closing quotation" in line, line


def test_fuzz_driver_without_atheris_says_how_to_install_it():
    """fuzz/run.py --atheris on a machine without atheris: one line, exit 2."""
    try:
        import atheris  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("atheris is installed here")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / "run.py"), "--target", "frames", "--atheris"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "fuzz/run.py: --atheris needs atheris: `.venv/bin/python -m pip install atheris` "
        "(or drop --atheris for the random driver)"
    ]

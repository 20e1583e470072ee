"""supervisor-sim proxy between Airflow 3.3.2's own supervisor and a real runtime.

Every try here is run by Airflow's ``supervise_task`` (tools/airflow_peer/run_airflow_sup.py)
against the real Execution API, its coordinator chosen by the TI's queue: the runtime alone
(``*-direct``), or the same runtime behind ``supervisor-sim proxy`` (``*-proxy``), which is what
docs/proxy.md installs. The proxy must be invisible: the same exit status, the same final
state and XComs in Airflow's DB. Its transcript must replay to MATCH with no Airflow and no
network, and a changed runtime to DIVERGED at the first changed frame. Airflow killing the try
(a heartbeat answered 409) must kill the runtime within Airflow's escalation, and a transcript
that cannot be written must change nothing.

The runtimes: the reference runtime (runtimes/reference/runtime.py, under the Airflow venv's
Python), Airflow's own Python task runner (``task_runner.main()`` over ``--comm/--logs`` through
tools/airflow_peer/py_comm_shim.py, running tools/airflow_peer/example_dag.py's real Python
tasks), and the Go runtime when tools/build_go_runtime.sh can build it; the executable
coordinator runs an executable bundle through a wrapper bundle written by ``proxy
--write-wrapper``.
"""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from supervisor_sim.api import mint_token
from supervisor_sim.transcript import read_transcript

from ._airflow import PEER, ROOT, RealAirflow
from ._helpers import REFERENCE, SHIM, replay, run_task, runner_config as _runner_config

pytestmark = pytest.mark.real_airflow

HEARTBEAT_INTERVAL = 1  # seconds: Airflow's [workers] min_heartbeat_interval here
GO_BUILD = ROOT / "tools" / "build_go_runtime.sh"
PROXY = [sys.executable, "-m", "supervisor_sim", "proxy"]
#: Airflow's kill escalation (SIGTERM, 5 s, SIGKILL), after a heartbeat interval, with slack.
KILL_BOUND_S = HEARTBEAT_INTERVAL + 5 + 5 + 10


def _go_binary() -> tuple[str | None, str]:
    try:
        proc = subprocess.run(
            ["bash", str(GO_BUILD)], capture_output=True, text=True, timeout=600, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"tools/build_go_runtime.sh: {exc}"
    path = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if proc.returncode != 0 or not path or not os.access(path, os.X_OK):
        return None, f"tools/build_go_runtime.sh failed: {proc.stderr[-500:]}"
    return path, ""


@dataclass(frozen=True)
class Case:
    """One task under one runtime, run directly and behind the proxy."""

    task: str
    runtime: str = "reference"  # or "go", or "python" (Airflow's own task runner)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.runtime}-{self.task}" + "".join(f"-{v}" for v in self.env.values())


CASES = [
    Case("hello"),
    Case("read_var_conn"),
    Case("push_xcom"),
    Case("fail"),
    Case("retry"),
    Case("skip"),
    Case("no_terminal", env={"REFERENCE_EXIT_CODE": "3"}),
    Case("hello", "go"),
    Case("read_var_conn", "go"),
    Case("fail", "go"),
    Case("hello", "python"),
    Case("read_var_conn", "python"),
    Case("push_xcom", "python"),
    Case("fail", "python"),
    Case("retry", "python"),
    Case("skip", "python"),
]


@dataclass
class Try:
    """One try as Airflow's supervisor ran it, and what Airflow's DB says of it after."""

    ti: dict[str, Any]
    rc: Any = None
    error: str | None = None
    state: str | None = None
    xcom: Any = None
    transcript: Path | None = None


def _job(ti: dict[str, Any], queue: str, airflow: RealAirflow, env: dict[str, str]) -> dict:
    return {
        "ti": {
            "id": ti["ti_id"],
            "task_id": ti["task_id"],
            "dag_id": ti["dag_id"],
            "run_id": ti["run_id"],
            "try_number": ti["try_number"],
            "dag_version_id": ti["dag_version_id"],
            "map_index": ti["map_index"],
            "queue": queue,
        },
        "token": mint_token(airflow.secret, ti["ti_id"], scope="workload"),
        "server": airflow.api_url,
        "dag_rel_path": "example_dag.py",
        "env": env,
    }


def _make_bundle(path: Path, command: list[str]) -> None:
    """An executable bundle (the executable coordinator's layout) that execs ``command``."""
    import hashlib
    import struct

    exe = f'#!/bin/sh\nexec {shlex.join(command)} "$@"\nexit 127\n'.encode()
    src = b"# the reference runtime, as a bundle\n"
    meta = b'dags:\n  example_dag: {}\nsdk:\n  supervisor_schema_version: "2026-06-16"\n'
    footer = struct.pack("<III", len(src), len(meta), 1) + hashlib.sha256(exe).digest()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(exe + src + meta + footer + b"\0" * 12 + b"AFBNDL01")
    path.chmod(0o755)


class Deployment:
    """Airflow's coordinator settings for every variant, and running jobs under them."""

    def __init__(self, airflow: RealAirflow, tmp: Path, go: str | None) -> None:
        self.airflow = airflow
        self.tmp = tmp
        self.transcripts = tmp / "transcripts"
        reference = [airflow.python, str(REFERENCE)]
        self.commands: dict[str, list[str]] = {
            "reference-direct": reference,
            "reference-proxy": [*PROXY, "--dir", str(self.transcripts), "--", *reference],
        }
        # Airflow's Python task runner: the coordinator passes it Airflow's environment
        # (AIRFLOW_HOME, the DAGS folder), from which it loads example_dag.py.
        python_runner = [airflow.python, str(SHIM)]
        self.commands["python-direct"] = python_runner
        self.commands["python-proxy"] = [
            *PROXY, "--dir", str(self.transcripts), "--", *python_runner,
        ]  # fmt: skip
        # The same, recording unredacted (--no-redact): see test_an_unredacted_recording_...
        self.unredacted = tmp / "transcripts-unredacted"
        self.commands["python-proxy-unredacted"] = [
            *PROXY, "--no-redact", "--dir", str(self.unredacted), "--", *python_runner,
        ]  # fmt: skip
        if go is not None:
            self.commands["go-direct"] = [go]
            self.commands["go-proxy"] = [*PROXY, "--dir", str(self.transcripts), "--", go]
        blocker = tmp / "a-file"
        blocker.write_text("")
        self.commands["unwritable-proxy"] = [
            *PROXY, "--dir", str(blocker / "transcripts"), "--", *reference,
        ]  # fmt: skip
        self.commands["full-proxy"] = [*PROXY, "--transcript", "/dev/full", "--", *reference]
        # A full disk: a tmpfs of 64 KiB for the transcript folder, filled up (nothing fits), or
        # with one page left (the transcript starts, then the disk fills under it).
        self.mounts: list[Path] = []
        self.tmpfs_problem = ""
        for variant, left in (("tmpfs-full-proxy", 0), ("tmpfs-nearly-full-proxy", 4096)):
            folder = tmp / variant
            problem = _full_tmpfs(folder, left)
            if problem:
                self.tmpfs_problem = problem
                continue
            self.mounts.append(folder)
            self.commands[variant] = [
                *PROXY, "--dir", str(folder / "transcripts"), "--", *reference,
            ]  # fmt: skip
        # The executable coordinator: a wrapper bundle, written by the proxy, in front of the
        # runtime's own bundle (kept outside executables_root).
        original = tmp / "bundles" / "example_dag.bundle"
        _make_bundle(original, reference)
        self.native_root = tmp / "proxied-bundles"
        wrote = subprocess.run(
            [*PROXY, "--dir", str(self.transcripts), "--write-wrapper",
             str(self.native_root / "example_dag.bundle"), "--", str(original)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert wrote.returncode == 0, wrote.stderr

    def close(self) -> None:
        for folder in self.mounts:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)

    def env(self) -> dict[str, str]:
        def command(argv: list[str]) -> dict[str, Any]:
            return {
                "classpath": "peer_coord.CommandCoordinator",
                "kwargs": {"command": argv, "schema_version": "2026-06-16"},
            }

        coordinators = {name: command(argv) for name, argv in self.commands.items()}
        coordinators["native-proxy"] = {
            "classpath": "airflow.sdk.coordinators.executable.ExecutableCoordinator",
            "kwargs": {"executables_root": [str(self.native_root)]},
        }
        return {
            **self.airflow.env,
            "PYTHONPATH": str(PEER),
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": str(HEARTBEAT_INTERVAL),
            "AIRFLOW__SDK__COORDINATORS": json.dumps(coordinators),
            "AIRFLOW__SDK__QUEUE_TO_COORDINATOR": json.dumps({n: n for n in coordinators}),
        }

    def run(
        self, jobs: list[dict[str, Any]], name: str, *, watch: Any = None, timeout: float = 600
    ) -> list[dict[str, Any]]:
        """Run ``jobs`` one after the other under Airflow's supervisor; their results."""
        jobs_path = self.tmp / f"{name}.jobs.json"
        results_path = self.tmp / f"{name}.results.json"
        jobs_path.write_text(json.dumps(jobs, indent=1))
        with open(self.tmp / f"{name}.airflow-supervisor.log", "w") as log:
            peer = subprocess.Popen(
                [self.airflow.python, str(PEER / "run_airflow_sup.py"), str(jobs_path),
                 str(results_path)],
                cwd=self.tmp, env=self.env(), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            if watch is not None:
                watch(peer)
            peer.wait(timeout=timeout)
        finally:
            if peer.poll() is None:
                peer.kill()
                peer.wait(timeout=30)
        log_text = (self.tmp / f"{name}.airflow-supervisor.log").read_text()[-6000:]
        assert peer.returncode == 0, log_text
        return json.loads(results_path.read_text())

    def transcript_of(self, ti: dict[str, Any], folder: Path | None = None) -> Path | None:
        """The proxy transcript of ``ti``'s try (named by its run and try)."""
        found = [
            p
            for p in (folder or self.transcripts).glob(f"example_dag.{ti['task_id']}.*.jsonl")
            if f".try{ti['try_number']}." in p.name and _safe(ti["run_id"]) in p.name
        ]
        return found[0] if len(found) == 1 else None


def _full_tmpfs(folder: Path, left: int) -> str:
    """Mount a 64 KiB tmpfs on ``folder`` and fill it to ``left`` bytes free; "" or why not."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(folder)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        return f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}"
    try:
        fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        if left:
            os.ftruncate(fd, max(0, os.fstat(fd).st_size - left))
        os.close(fd)
    except BaseException:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)
        raise
    return ""


def _safe(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)


@pytest.fixture(scope="module")
def go_runtime() -> tuple[str | None, str]:
    return _go_binary()


@pytest.fixture(scope="module")
def deployment(
    airflow: RealAirflow, tmp_path_factory: pytest.TempPathFactory, go_runtime: Any
) -> Iterator[Deployment]:
    made = Deployment(airflow, tmp_path_factory.mktemp("real_proxy"), go_runtime[0])
    yield made
    made.close()


@pytest.fixture(scope="module")
def tries(deployment: Deployment) -> dict[tuple[str, str], Try]:
    """(case name, "direct" or "proxy") -> the try, for every case whose runtime is here."""
    airflow = deployment.airflow
    planned: list[tuple[tuple[str, str], Try, str, dict[str, str]]] = []
    for case in CASES:
        if f"{case.runtime}-direct" not in deployment.commands:
            continue
        for variant in ("direct", "proxy"):
            (ti,) = airflow.queue(case.task)
            planned.append(((case.name, variant), Try(ti), f"{case.runtime}-{variant}", case.env))
    (ti,) = airflow.queue("read_var_conn")
    planned.append((("python-read_var_conn", "unredacted"), Try(ti), "python-proxy-unredacted", {}))
    for variant in (
        "unwritable-proxy", "full-proxy", "native-proxy", "tmpfs-full-proxy",
        "tmpfs-nearly-full-proxy",
    ):  # fmt: skip
        if variant not in deployment.commands and variant != "native-proxy":
            continue
        (ti,) = airflow.queue("read_var_conn")
        planned.append((("reference-read_var_conn", variant), Try(ti), variant, {}))
    results = deployment.run(
        [_job(t.ti, queue, airflow, env) for _, t, queue, env in planned], "tries"
    )
    out = {}
    for (key, attempt, _, _), result in zip(planned, results, strict=True):
        attempt.rc, attempt.error = result["rc"], result["error"]
        attempt.state = airflow.ti_state(attempt.ti)[0]
        attempt.xcom = airflow.xcom(attempt.ti)
        folder = deployment.unredacted if key[1] == "unredacted" else None
        attempt.transcript = deployment.transcript_of(attempt.ti, folder)
        out[key] = attempt
    return out


def _case_params() -> list[Any]:
    return [pytest.param(c, id=c.name) for c in CASES]


def _skip_without_runtime(case: Case, go_runtime: tuple[str | None, str]) -> None:
    if case.runtime == "go" and go_runtime[0] is None:
        pytest.skip(f"the Go runtime cannot be built here: {go_runtime[1]}")


@pytest.mark.parametrize("case", _case_params())
def test_the_task_ends_exactly_as_without_the_proxy(
    tries: dict[tuple[str, str], Try], case: Case, go_runtime: Any
) -> None:
    """Behind the proxy the try ends with the same exit status, final state and XCom in
    Airflow's DB as the same runtime launched by Airflow directly."""
    _skip_without_runtime(case, go_runtime)
    direct, proxied = tries[(case.name, "direct")], tries[(case.name, "proxy")]
    assert direct.error is None and proxied.error is None, (direct.error, proxied.error)
    assert (proxied.rc, proxied.state, proxied.xcom) == (direct.rc, direct.state, direct.xcom)
    assert proxied.transcript is not None, "no transcript for the proxied try"
    t = read_transcript(proxied.transcript)
    assert t.footer is not None and t.footer["exit_code"] == proxied.rc
    assert t.header["task"]["ti"]["id"] == proxied.ti["ti_id"]


@pytest.mark.parametrize("case", _case_params())
def test_the_proxy_transcript_replays_to_match_without_airflow(
    tries: dict[tuple[str, str], Try],
    case: Case,
    go_runtime: Any,
    airflow: RealAirflow,
    tmp_path: Path,
) -> None:
    """The recorded try, replayed against its transcript alone, matches frame for frame and
    ends in the recorded state."""
    _skip_without_runtime(case, go_runtime)
    proxied = tries[(case.name, "proxy")]
    assert proxied.transcript is not None
    env = {**case.env, **(_runner_config(airflow) if case.runtime == "python" else {})}
    code, result, stderr = replay(proxied.transcript, tmp_path, env=env)
    assert code == 0, stderr
    assert result["matched"] is True, result
    assert result["final_state"] == result["recorded_final_state"]


def _first_request(path: Path, type_: str) -> int:
    """The index, among the runtime's recorded frames, of its first ``type_`` request."""
    frames = [r["type"] for r in read_transcript(path).frames("in")]
    return frames.index(type_)


CHANGED_BUNDLE = """
def read_var_conn(ctx):
    value = ctx.get_variable("peer_var")
    conn = ctx.get_connection("another_conn")
    return {"var": value, "host": conn.get("host")}

DAGS = {"example_dag": {"read_var_conn": read_var_conn}}
"""


def test_a_changed_runtime_replays_to_diverged_at_the_first_changed_frame(
    tries: dict[tuple[str, str], Try], tmp_path: Path
) -> None:
    """A runtime that now asks for another connection diverges at that request."""
    proxied = tries[("reference-read_var_conn", "proxy")]
    assert proxied.transcript is not None
    bundle = tmp_path / "changed.py"
    bundle.write_text(CHANGED_BUNDLE)
    runtime = shlex.join([sys.executable, str(REFERENCE), "--bundle", str(bundle)])
    code, result, stderr = replay(proxied.transcript, tmp_path, "--runtime", runtime)
    assert code == 1, stderr
    first = result["divergences"][0]
    expected = _first_request(proxied.transcript, "GetConnection")
    assert (first["index"], first["kind"]) == (expected, "frame"), result
    assert any("another_conn" in d for d in first["differences"]), first


def test_a_changed_python_task_replays_to_diverged_at_the_first_changed_frame(
    tries: dict[tuple[str, str], Try], airflow: RealAirflow, tmp_path: Path
) -> None:
    """Airflow's Python task runner, replayed against the recording of read_var_conn but now
    loading a DAG file whose task asks for another variable (or, on the unredacted recording,
    another connection), diverges at that request, every frame before it matched."""
    for recording, asked, request, changed in (
        ("proxy", 'Variable.get("peer_var")', "GetVariable", "another_var"),
        ("unredacted", 'get_connection("peer_conn")', "GetConnection", "another_conn"),
    ):
        proxied = tries[("python-read_var_conn", recording)]
        assert proxied.transcript is not None
        original = (PEER / "example_dag.py").read_text()
        assert asked in original
        dags = tmp_path / f"changed-{recording}"
        dags.mkdir()
        name = "peer_var" if request == "GetVariable" else "peer_conn"
        (dags / "example_dag.py").write_text(
            original.replace(asked, asked.replace(name, changed), 1)
        )
        code, result, stderr = replay(
            proxied.transcript, tmp_path, env=_runner_config(airflow, dags)
        )
        assert code == 1, stderr
        first = result["divergences"][0]
        expected = _first_request(proxied.transcript, request)
        assert (first["index"], first["kind"]) == (expected, "frame"), (recording, result)
        assert any(changed in d for d in first["differences"]), first


def test_an_unredacted_recording_of_airflows_python_runner_replays_to_match(
    tries: dict[tuple[str, str], Try], airflow: RealAirflow, tmp_path: Path
) -> None:
    """read_var_conn recorded with --no-redact (its MaskSecret value kept) ends as without the
    proxy and replays to MATCH with no network, variable, connection and XCom included."""
    direct = tries[("python-read_var_conn", "direct")]
    proxied = tries[("python-read_var_conn", "unredacted")]
    assert proxied.error is None, proxied.error
    assert (proxied.rc, proxied.state, proxied.xcom) == (direct.rc, direct.state, direct.xcom)
    assert proxied.transcript is not None
    types = [r["type"] for r in read_transcript(proxied.transcript).frames("in")]
    assert {"GetVariable", "MaskSecret", "GetConnection", "SetXCom"} <= set(types), types
    code, result, stderr = replay(proxied.transcript, tmp_path, env=_runner_config(airflow))
    assert code == 0, stderr
    assert result["matched"] is True, result
    assert result["final_state"] == result["recorded_final_state"] == "success"


def test_the_transcript_masks_the_secrets_airflow_handed_over(
    tries: dict[tuple[str, str], Try],
) -> None:
    """peer_conn's password, fetched from Airflow through the proxy, is masked in the file."""
    proxied = tries[("reference-read_var_conn", "proxy")]
    assert proxied.transcript is not None
    data = proxied.transcript.read_bytes()
    assert b"s3cret" not in data
    t = read_transcript(proxied.transcript)
    connection = next(r for r in t.frames("out") if r["type"] == "ConnectionResult")
    assert connection["body"]["password"] == "***"


@pytest.mark.parametrize("variant", ["unwritable-proxy", "full-proxy"])
def test_a_transcript_that_cannot_be_written_changes_nothing(
    tries: dict[tuple[str, str], Try], variant: str
) -> None:
    """With an uncreatable --dir or --transcript /dev/full the try ends as without the proxy."""
    direct = tries[("reference-read_var_conn", "direct")]
    broken = tries[("reference-read_var_conn", variant)]
    assert broken.error is None, broken.error
    assert (broken.rc, broken.state, broken.xcom) == (direct.rc, direct.state, direct.xcom)
    assert broken.transcript is None


@pytest.mark.parametrize("variant", ["tmpfs-full-proxy", "tmpfs-nearly-full-proxy"])
def test_a_full_disk_for_the_transcript_folder_changes_nothing(
    tries: dict[tuple[str, str], Try], deployment: Deployment, variant: str
) -> None:
    """With the transcript folder on a full tmpfs (nothing fits, or one page: the transcript
    starts, then the disk fills) the try ends as without the proxy, and what was written reads
    as cut short."""
    if variant not in deployment.commands:
        pytest.skip(deployment.tmpfs_problem)
    direct = tries[("reference-read_var_conn", "direct")]
    broken = tries[("reference-read_var_conn", variant)]
    assert broken.error is None, broken.error
    assert (broken.rc, broken.state, broken.xcom) == (direct.rc, direct.state, direct.xcom)
    assert direct.state == "success" and direct.xcom is not None
    written = deployment.transcript_of(broken.ti, deployment.tmp / variant / "transcripts")
    if variant == "tmpfs-full-proxy":
        assert written is None or written.stat().st_size == 0
    else:
        assert written is not None, "the transcript did not start on the page left"
        t = read_transcript(written)
        assert t.footer is None and t.truncated, t.truncated
    log = (deployment.tmp / "tries.airflow-supervisor.log").read_text()
    assert "supervisor-sim proxy: cannot record" in log


def test_the_executable_coordinator_runs_a_wrapper_bundle(
    tries: dict[tuple[str, str], Try], tmp_path: Path
) -> None:
    """Airflow's ExecutableCoordinator finds the bundle --write-wrapper wrote (same DAGs), runs
    the runtime through it, and the try is recorded and replays to MATCH."""
    direct = tries[("reference-read_var_conn", "direct")]
    native = tries[("reference-read_var_conn", "native-proxy")]
    assert native.error is None, native.error
    assert (native.rc, native.state, native.xcom) == (direct.rc, direct.state, direct.xcom)
    assert native.transcript is not None
    code, result, stderr = replay(native.transcript, tmp_path)
    assert code == 0 and result["matched"], stderr


def test_diff_with_a_run_task_transcript_of_the_same_task(
    tries: dict[tuple[str, str], Try], airflow: RealAirflow, tmp_path: Path
) -> None:
    """A proxy recording and run-task's recording of the same task against the same Airflow
    line up frame for frame: no request only one side made, no HTTP difference, the same
    final state."""
    proxied = tries[("reference-read_var_conn", "proxy")]
    (ti,) = airflow.queue("read_var_conn")
    code, _, stderr, local = run_task(
        airflow, ti, tmp_path, runtime=[airflow.python, str(REFERENCE)]
    )
    assert code == 0, stderr
    proc = subprocess.run(
        [sys.executable, "-m", "supervisor_sim", "diff", str(proxied.transcript), str(local),
         "--json"],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    result = json.loads(proc.stdout)
    kinds = {d["kind"] for d in result["details"]}
    assert not kinds & {"http", "only-in-a", "only-in-b", "type", "final-state"}, result


# --- Airflow kills the try ---------------------------------------------------------------------


def _mark_failed_once_running(airflow: RealAirflow, tis: list[dict[str, Any]], marked: dict):
    """A watcher: each TI is set ``failed`` in the DB as soon as it is ``running`` (what the UI's
    "mark failed" does), so its next heartbeat is answered 409."""

    def watch(peer: subprocess.Popen[bytes]) -> None:
        def loop() -> None:
            try:
                mark()
            except Exception as exc:  # seen by the test: nothing marked
                marked["error"] = f"{type(exc).__name__}: {exc}"

        def mark() -> None:
            waiting = {ti["ti_id"]: ti for ti in tis}
            deadline = time.monotonic() + 300
            while waiting and peer.poll() is None and time.monotonic() < deadline:
                for ti_id, ti in list(waiting.items()):
                    if airflow.ti_state(ti)[0] == "running":
                        time.sleep(0.5)  # the runtime is past its first requests
                        db = sqlite3.connect(airflow.db_path, timeout=30)
                        with db:
                            db.execute(
                                "UPDATE task_instance SET state = 'failed' WHERE dag_id = ?"
                                " AND run_id = ? AND task_id = ? AND map_index = ?",
                                (ti["dag_id"], ti["run_id"], ti["task_id"], ti["map_index"]),
                            )
                        db.close()
                        marked[ti_id] = time.monotonic()
                        del waiting[ti_id]
                time.sleep(0.1)

        threading.Thread(target=loop, daemon=True).start()

    return watch


def test_killing_the_try_from_airflow_kills_the_runtime_behind_the_proxy(
    deployment: Deployment,
) -> None:
    """A heartbeat answered 409 makes Airflow SIGTERM the proxy (then SIGKILL it 5 s later):
    the runtime dies within that escalation, a runtime ignoring SIGTERM included, the try ends
    as it does without the proxy, and the transcript ends with the signal. The reference runtime
    and Airflow's own Python task runner (its SIGTERM handler ends the task) alike."""
    airflow = deployment.airflow
    runs = [("sleep", "reference"), ("ignore_sigterm", "reference"), ("sleep", "python")]
    cases = [(task, f"{rt}-{how}") for task, rt in runs for how in ("direct", "proxy")]
    tis = [airflow.queue(task)[0] for task, _ in cases]
    env = {"REFERENCE_SLEEP_S": "120"}
    jobs = [_job(ti, queue, airflow, env) for ti, (_, queue) in zip(tis, cases, strict=True)]
    marked: dict[str, Any] = {}
    results = deployment.run(
        jobs, "kill", watch=_mark_failed_once_running(airflow, tis, marked), timeout=300
    )
    try:
        assert "error" not in marked, marked
        by_case = {}
        for ti, (task, queue), result in zip(tis, cases, results, strict=True):
            assert ti["ti_id"] in marked, f"{task} under {queue} was never seen running"
            by_case[(task, queue)] = (ti, result, airflow.ti_state(ti)[0])
        for task, runtime in runs:
            _, direct, direct_state = by_case[(task, f"{runtime}-direct")]
            ti, proxied, proxied_state = by_case[(task, f"{runtime}-proxy")]
            assert (proxied["rc"], proxied_state) == (direct["rc"], direct_state), (task, runtime)
            assert proxied["error"] is None, proxied["error"]
            # (No comparison of durations: Airflow itself may notice an exit up to a whole
            # escalation step late, with or without the proxy, when the last socket closes just
            # before the process can be reaped.)
            path = deployment.transcript_of(ti)
            assert path is not None
            t = read_transcript(path)
            processes = t.of("process")
            signals = [r for r in processes if r["event"] == "signal"]
            assert signals and signals[0]["signal"] == "SIGTERM", processes[-4:]
            (spawn,) = [r for r in processes if r["event"] == "spawn"]
            assert _gone(spawn["pid"]), f"{task}: the runtime outlived the try"
            if task == "sleep":
                # The runtime died of the forwarded SIGTERM: the proxy recorded it, and the end.
                assert processes[-1]["event"] in ("exit", "eof")
                (exit_record,) = [r for r in processes if r["event"] == "exit"]
                if runtime == "reference":  # (Airflow's runner catches it and exits itself)
                    assert exit_record["signal"] == "SIGTERM"
                assert exit_record["t"] - signals[0]["t"] < 5.0  # before Airflow would SIGKILL
                assert t.footer is not None and t.footer["signals_received"] == ["SIGTERM"]
            else:
                # SIGKILLed by Airflow 5 s later, with its runtime: the file ends with the signal.
                assert processes[-1]["event"] == "signal" and t.footer is None
            # Within Airflow's escalation. (Alone, the runtime ignoring SIGTERM takes a minute
            # more: its grandchild holds Airflow's stdout until socket_cleanup_timeout; behind the
            # proxy it holds the proxy's pipe, which Airflow does not wait for.)
            assert proxied["duration_s"] < KILL_BOUND_S, (task, runtime, proxied["duration_s"])
    finally:
        _kill_orphans(deployment.tmp / "kill.airflow-supervisor.log")


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


def _kill_orphans(log: Path) -> None:
    """The grandchildren ignore_sigterm started, as Airflow's supervisor logged them."""
    import re
    import signal

    for pid in set(re.findall(r"grandchild_pid=(\d+)", log.read_text())):
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass

"""The Go runtime (runtimes/go): built offline from Debian's packages, unit-tested with go test,
then driven by the real supervisor and compared frame by frame with the Python reference runtime.

The build (tools/build_go_runtime.sh) installs golang-go and the Go sources it needs with
apt-get when they are missing, so the first run on a fresh machine can take a minute; a failed
build fails every test here with the script's output. Every child process has a timeout.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgpack
import pytest

from supervisor_sim.protocol import dag_structure, validate_serialized_dag

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "supervisor-sim.toml"
BUILD_SCRIPT = ROOT / "tools" / "build_go_runtime.sh"
GO_DIR = ROOT / "runtimes" / "go"
REFERENCE_BUNDLE = ROOT / "runtimes" / "reference" / "example_dags.py"
BUILD_TIMEOUT = 600.0
RUN_TIMEOUT = 60.0
IO_TIMEOUT = 15.0


def go_env() -> dict[str, str]:
    """The offline module settings tools/build_go_runtime.sh uses."""
    env = dict(os.environ)
    env.update(GOPROXY="off", GOFLAGS="-mod=mod -buildvcs=false", GOTOOLCHAIN="local", GOWORK="off")
    env.setdefault("GOCACHE", str(ROOT / ".cache" / "go" / "build"))
    env.setdefault("GOPATH", str(ROOT / ".cache" / "go" / "path"))
    return env


@pytest.fixture(scope="module")
def binary() -> Path:
    """The built runtime; every test using it fails with the build output if the build fails."""
    try:
        proc = subprocess.run(
            ["bash", str(BUILD_SCRIPT)],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"tools/build_go_runtime.sh did not finish in {BUILD_TIMEOUT:.0f} s: {exc}")
    if proc.returncode != 0:
        pytest.fail(
            f"tools/build_go_runtime.sh failed with exit {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-2000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
        )
    lines = proc.stdout.strip().splitlines()
    assert lines, f"the build script printed no path; stderr:\n{proc.stderr[-3000:]}"
    path = Path(lines[-1])
    assert path.is_file() and os.access(path, os.X_OK), f"not an executable: {path}"
    return path


def run_task(
    task: str,
    tmp: Path,
    runtime: Path | None,
    *extra: str,
    transcript: str | None = None,
) -> tuple[int, dict[str, Any], Path]:
    """``supervisor-sim run-task example_dag TASK`` with ``--json``; the Python runtime when
    ``runtime`` is None. Returns (exit status, JSON outcome, transcript path)."""
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / (transcript or f"{task}.jsonl")
    cmd = [
        sys.executable,
        "-m",
        "supervisor_sim",
        "--config",
        str(CONFIG),
        "run-task",
        "example_dag",
        task,
    ]
    if runtime is not None:
        cmd += ["--runtime", shlex.quote(str(runtime))]
    cmd += ["--state", str(tmp / "state.sqlite"), "--transcript", str(path), "--json", "-q", *extra]
    proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON outcome (exit {proc.returncode}); stderr:\n{proc.stderr[-3000:]}"
    return proc.returncode, json.loads(lines[-1]), path


def runtime_requests(transcript: Path) -> list[dict[str, Any]]:
    """The runtime -> supervisor frames of a transcript."""
    records = [json.loads(line) for line in transcript.read_text().splitlines() if line.strip()]
    return [r for r in records if r.get("record") == "frame" and r.get("dir") == "in"]


def load_reference_bundle() -> Any:
    spec = importlib.util.spec_from_file_location("reference_example_dags", REFERENCE_BUNDLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------------
# Build and unit tests
# --------------------------------------------------------------------------------------------


def test_build_is_idempotent_and_prints_the_binary_path(binary: Path) -> None:
    """A second build run with unchanged sources rebuilds nothing and prints the same path."""
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=BUILD_TIMEOUT
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(binary)
    assert "building" not in proc.stderr
    assert binary == GO_DIR / "bin" / "airflow-go-runtime"


def test_go_unit_tests_pass(binary: Path) -> None:
    """`go test ./...` passes in runtimes/go, offline, for the codec, logs and server packages."""
    proc = subprocess.run(
        ["go", "test", "./..."],
        cwd=GO_DIR,
        env=go_env(),
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"go test failed:\n{output[-6000:]}"
    for package in ("protocol", "coord"):
        assert f"ok  \tsupervisor-sim/goruntime/{package}" in output, output


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def test_comm_without_logs_is_a_usage_error(binary: Path) -> None:
    """Only --comm exits 2 with a usage message on stderr that names the missing --logs."""
    proc = subprocess.run(
        [str(binary), "--comm=127.0.0.1:9"], capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    assert proc.returncode == 2
    assert "--logs" in proc.stderr
    assert "usage" in proc.stderr
    assert proc.stdout == ""


def test_bundle_metadata_lists_the_same_tasks_as_the_python_bundle(binary: Path) -> None:
    """--bundle-metadata prints JSON whose example_dag tasks are the Python bundle's, in order."""
    proc = subprocess.run(
        [str(binary), "--bundle-metadata"], capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    assert proc.returncode == 0, proc.stderr
    meta = json.loads(proc.stdout)
    reference = load_reference_bundle()
    assert meta["dags"]["example_dag"]["tasks"] == list(reference.DAGS["example_dag"])
    assert meta["sdk"]["language"] == "go"
    assert meta["sdk"]["supervisor_schema_version"] == "2026-06-16"


# --------------------------------------------------------------------------------------------
# Driven by the real supervisor
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "final_state", "status"),
    [
        ("hello", "success", 0),
        ("read_var_conn", "success", 0),
        ("fail", "failed", 1),
        ("skip", "skipped", 1),
        ("no_such_task", "removed", 1),
    ],
)
def test_tasks_reach_their_final_state(
    binary: Path, tmp_path: Path, task: str, final_state: str, status: int
) -> None:
    """Each example task ends in its final state, the runtime exits 0 and breaks no rule."""
    unknown = ("--allow-unknown",) if task == "no_such_task" else ()  # run-task refuses it else
    code, outcome, _ = run_task(task, tmp_path, binary, *unknown)
    assert outcome["final_state"] == final_state, outcome
    assert code == status, outcome
    assert outcome["exit_code"] == 0, outcome
    assert outcome["violations"] == [], outcome


def test_an_xcom_pushed_by_go_is_pulled_by_go_in_the_same_run(binary: Path, tmp_path: Path) -> None:
    """pull_xcom sums push_xcom's numbers from the same run and pushes 6 as an integer."""
    code, outcome, _ = run_task("push_xcom", tmp_path, binary, "--run-id", "manual__go")
    assert (code, outcome["final_state"]) == (0, "success"), outcome
    code, outcome, transcript = run_task("pull_xcom", tmp_path, binary, "--run-id", "manual__go")
    assert (code, outcome["final_state"]) == (0, "success"), outcome
    frames = runtime_requests(transcript)
    assert [f["type"] for f in frames] == ["GetXCom", "SetXCom", "SucceedTask"]
    assert frames[0]["body"]["task_id"] == "push_xcom"
    assert frames[1]["body"]["value"] == 6


@pytest.mark.parametrize("task", ["hello", "read_var_conn", "fail", "skip"])
def test_go_and_python_transcripts_are_equivalent(binary: Path, tmp_path: Path, task: str) -> None:
    """`supervisor-sim diff` finds a Go run and a Python run of the same task equivalent."""
    _, go_outcome, go_transcript = run_task(task, tmp_path / "go", binary)
    _, py_outcome, py_transcript = run_task(task, tmp_path / "py", None)
    assert go_outcome["final_state"] == py_outcome["final_state"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "supervisor_sim",
            "--config",
            str(CONFIG),
            "diff",
            str(py_transcript),
            str(go_transcript),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert proc.returncode == 0, f"transcripts differ:\n{proc.stdout}\n{proc.stderr[-2000:]}"
    assert "equivalent" in proc.stdout
    # Not only equivalent after normalising: the same requests with the same keys, in order.
    go_bodies = [(f["type"], list(f["body"])) for f in runtime_requests(go_transcript)]
    py_bodies = [(f["type"], list(f["body"])) for f in runtime_requests(py_transcript)]
    assert go_bodies == py_bodies


# --------------------------------------------------------------------------------------------
# The parse workload, against a minimal in-test supervisor
# --------------------------------------------------------------------------------------------


class FakeSupervisor:
    """Two loopback listeners and the supervisor's side of one comm conversation."""

    def __init__(self) -> None:
        self.comm_listener = self._listen()
        self.logs_listener = self._listen()
        self.comm: socket.socket | None = None
        self.logs: socket.socket | None = None

    @staticmethod
    def _listen() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        s.settimeout(IO_TIMEOUT)
        return s

    def argv(self, binary: Path) -> list[str]:
        comm_port = self.comm_listener.getsockname()[1]
        logs_port = self.logs_listener.getsockname()[1]
        return [str(binary), f"--comm=127.0.0.1:{comm_port}", f"--logs=127.0.0.1:{logs_port}"]

    def accept(self) -> None:
        self.comm, _ = self.comm_listener.accept()
        self.logs, _ = self.logs_listener.accept()
        for s in (self.comm, self.logs):
            s.settimeout(IO_TIMEOUT)

    def send(self, *elements: Any) -> None:
        assert self.comm is not None
        payload = msgpack.packb(list(elements), datetime=True, use_bin_type=True)
        self.comm.sendall(struct.pack(">I", len(payload)) + payload)

    def _recv_exact(self, n: int) -> bytes:
        assert self.comm is not None
        buf = b""
        while len(buf) < n:
            chunk = self.comm.recv(n - len(buf))
            assert chunk, f"comm closed after {len(buf)} of {n} bytes"
            buf += chunk
        return buf

    def receive(self) -> list[Any]:
        (length,) = struct.unpack(">I", self._recv_exact(4))
        return msgpack.unpackb(self._recv_exact(length), timestamp=3, raw=False)

    def read_logs(self) -> list[dict[str, Any]]:
        assert self.logs is not None
        data = b""
        while chunk := self.logs.recv(65536):
            data += chunk
        return [json.loads(line) for line in data.decode().splitlines() if line.strip()]

    def close(self) -> None:
        for s in (self.comm, self.logs, self.comm_listener, self.logs_listener):
            if s is not None:
                s.close()


@pytest.fixture
def fake_supervisor():
    sup = FakeSupervisor()
    yield sup
    sup.close()


def start(binary: Path, sup: FakeSupervisor) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(sup.argv(binary), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        sup.accept()
    except Exception:
        proc.kill()
        proc.communicate(timeout=IO_TIMEOUT)
        raise
    return proc


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, bytes, bytes]:
    try:
        out, err = proc.communicate(timeout=IO_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=IO_TIMEOUT)
        pytest.fail(f"the runtime did not exit; stderr:\n{err.decode()[-2000:]}")
    return proc.returncode, out, err


def test_a_parse_request_gets_serialized_dags_and_exit_zero(
    binary: Path, fake_supervisor: FakeSupervisor
) -> None:
    """DagFileParseRequest is answered by one DagFileParsingResult of version-3 serialized DAGs."""
    proc = start(binary, fake_supervisor)
    request = {
        "file": "/bundles/go/bin/airflow-go-runtime",
        "bundle_path": "/bundles/go",
        "bundle_name": "go",
        "callback_requests": [],
        "type": "DagFileParseRequest",
        "a_field_from_the_future": {"x": 1},
    }
    fake_supervisor.send(0, request, None)
    frame = fake_supervisor.receive()
    assert len(frame) == 3 and frame[2] is None
    body = frame[1]
    assert body["type"] == "DagFileParsingResult"
    assert body["fileloc"] == request["file"]
    [serialized] = body["serialized_dags"]
    data = serialized["data"]
    assert set(data) == {"__version", "dag"}
    assert data["__version"] == 3
    dag = data["dag"]
    assert dag["dag_id"] == "example_dag"
    assert dag["fileloc"] == request["file"]
    assert dag["relative_fileloc"] == "bin/airflow-go-runtime"
    assert dag["timetable"] == {"__type": "airflow.timetables.simple.NullTimetable", "__var": {}}
    reference = load_reference_bundle()
    tasks = {t["__var"]["task_id"]: t for t in dag["tasks"]}
    assert list(tasks) == list(reference.DAGS["example_dag"])
    for task_id, task in tasks.items():
        assert task["__type"] == "operator"
        op = task["__var"]
        for key in ("task_type", "_task_module", "task_id", "ui_color", "ui_fgcolor"):
            assert isinstance(op[key], str) and op[key], (task_id, key)
        assert op["template_fields"] == []
        downstream = sorted(
            t for t, ups in reference.DEPENDENCIES["example_dag"].items() if task_id in ups
        )
        assert op.get("downstream_task_ids", []) == downstream, task_id
    assert set(dag["task_group"]["children"]) == set(tasks)
    fake_supervisor.send(frame[0])  # the ack: [id]
    code, _, err = finish(proc)
    assert code == 0, err.decode()
    logs = fake_supervisor.read_logs()
    assert logs and all({"timestamp", "level", "event", "logger"} <= set(r) for r in logs)


def test_an_unexpected_first_frame_is_answered_with_an_error_frame_and_exits_one(
    binary: Path, fake_supervisor: FakeSupervisor
) -> None:
    """A first frame other than StartupDetails or DagFileParseRequest gets an ErrorResponse
    back (the Go SDK's ADR 0003), then the runtime logs the error and exits 1."""
    proc = start(binary, fake_supervisor)
    fake_supervisor.send(0, {"type": "VariableResult", "key": "k", "value": "v"}, None)
    frame = fake_supervisor.receive()
    code, _, err = finish(proc)
    assert code == 1, err.decode()
    assert len(frame) == 3 and frame[0] == 0 and frame[2] is None
    body = frame[1]
    assert body["type"] == "ErrorResponse" and body["error"] == "GENERIC_ERROR"
    assert body["detail"]["type"] == "VariableResult"
    logs = fake_supervisor.read_logs()
    errors = [r for r in logs if r["level"] == "error"]
    assert errors and errors[0]["event"] == "Unexpected first frame"
    assert errors[0]["type"] == "VariableResult"


def test_the_serialized_retry_task_retries_once_as_its_python_twin(
    binary: Path, fake_supervisor: FakeSupervisor
) -> None:
    """The Go bundle's ``retry`` task is serialized with retries=1 and a 1 s retry delay, and
    its DAG with the start date of compose/dags/example_dag.py, the Python twin; no other task
    carries retries (Airflow leaves the default 0 out)."""
    proc = start(binary, fake_supervisor)
    fake_supervisor.send(
        0,
        {"file": "/b/rt", "bundle_path": "/b", "bundle_name": "go", "callback_requests": [],
         "type": "DagFileParseRequest"},
        None,
    )  # fmt: skip
    frame = fake_supervisor.receive()
    fake_supervisor.send(frame[0])
    code, _, err = finish(proc)
    assert code == 0, err.decode()
    dag = frame[1]["serialized_dags"][0]["data"]["dag"]
    tasks = {t["__var"]["task_id"]: t["__var"] for t in dag["tasks"]}
    assert (tasks["retry"]["retries"], tasks["retry"]["retry_delay"]) == (1, 1.0)
    assert [tid for tid, op in tasks.items() if "retries" in op] == ["retry"]
    assert dag["start_date"] == 1704067200.0  # 2024-01-01T00:00:00Z
    data = frame[1]["serialized_dags"][0]["data"]
    assert validate_serialized_dag(data) == []
    assert dag_structure(data).tasks["retry"].retries == 1


def test_dump_bundle_spec_prints_the_spec_airflow_go_pack_reads(binary: Path) -> None:
    """--dump-bundle-spec prints the Go SDK's bundle spec JSON (format_version, sdk, dags with
    their task ids in order) and exits 0."""
    proc = subprocess.run(
        [str(binary), "--dump-bundle-spec"], capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    assert proc.returncode == 0, proc.stderr
    spec = json.loads(proc.stdout)
    reference = load_reference_bundle()
    assert spec == {
        "format_version": "1.0",
        "sdk": {"language": "go", "version": spec["sdk"]["version"]},
        "dags": {"example_dag": {"tasks": list(reference.DAGS["example_dag"])}},
    }

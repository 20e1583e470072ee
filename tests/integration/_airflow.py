"""The real Airflow the tier runs against: its venv, environment, server, TIs and DB."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools"
PEER = TOOLS / "airflow_peer"
#: ``[api_auth] jwt_secret`` of the test Airflow: HS512 wants at least 64 bytes.
JWT_SECRET = "supervisor-sim-real-airflow-tier-" + "0123456789abcdef" * 4
#: Seconds the Execution API server gets to answer /health after launch (6-7 s here).
API_READY_TIMEOUT = 120.0


def tail(path: Path, chars: int = 6000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"(cannot read {path}: {exc})"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_step(argv: list[str], *, env: dict[str, str], timeout: float, what: str, log: Path) -> str:
    """Run a setup step, time-bounded; fail the session with its output if it fails."""
    try:
        proc = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"{what}: no result within {timeout:g}s\n{exc.stdout}\n{exc.stderr}", pytrace=False
        )
    log.write_text(f"$ {' '.join(argv)}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    if proc.returncode != 0:
        pytest.fail(
            f"{what} failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}",
            pytrace=False,
        )
    return proc.stdout


class LineChannel:
    """A child process answering one JSON line per JSON line, read with a deadline."""

    def __init__(self, argv: list[str], *, env: dict[str, str], stderr: Path) -> None:
        self._stderr = open(stderr, "w")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._lock = threading.Lock()
        self._broken: str | None = None  # after a timeout, a late answer would be misread

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        with self._lock:
            if self._broken:
                raise RuntimeError(f"the helper is out of step: {self._broken}")
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                self._broken = f"no answer to {request} within {timeout:g}s"
                raise TimeoutError(self._broken) from None
        if line is None:
            raise RuntimeError(f"the helper exited (code {self.proc.poll()}) before answering")
        return json.loads(line)

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self._stderr.close()


@dataclass
class RealAirflow:
    """A running real Airflow: its venv python, environment, API URL and metadata DB."""

    python: str
    home: Path
    env: dict[str, str]
    port: int
    api_log: Path
    secret: str = JWT_SECRET
    _queue: LineChannel | None = field(default=None, repr=False)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/execution/"

    @property
    def db_path(self) -> Path:
        return self.home / "airflow.db"

    def queue(
        self, task_ids: list[str] | str, *, run_id: str | None = None, dag_id: str = "example_dag"
    ) -> list[dict[str, Any]]:
        """Queue the next try of each task in one DAG run (new unless ``run_id`` exists)."""
        tasks = [task_ids] if isinstance(task_ids, str) else list(task_ids)
        assert self._queue is not None
        answer = self._queue.ask({"dag_id": dag_id, "tasks": tasks, "run_id": run_id}, 60)
        if "error" in answer:
            raise AssertionError(f"airflow_queue_ti.py: {answer['error']}")
        return answer["tis"]

    # -- what Airflow's metadata DB says (read-only sqlite) --------------------------------

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def ti_state(self, ti: dict[str, Any]) -> tuple[str | None, int]:
        """(state, try_number) of the TI's task in its run, whatever its current id."""
        rows = self._query(
            "SELECT state, try_number FROM task_instance"
            " WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index = ?",
            (ti["dag_id"], ti["run_id"], ti["task_id"], ti["map_index"]),
        )
        assert rows, f"no task_instance row for {ti}"
        return rows[0][0], rows[0][1]

    def xcom(self, ti: dict[str, Any], key: str = "return_value") -> Any:
        """The XCom value stored for the TI's task (JSON-decoded), or None."""
        rows = self._query(
            "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ?"
            " AND key = ? AND map_index = ?",
            (ti["dag_id"], ti["run_id"], ti["task_id"], key, ti["map_index"]),
        )
        if not rows or rows[0][0] is None:
            return None
        value = rows[0][0]
        # A JSON column: sqlite's type affinity hands back a bare number as int or float.
        return json.loads(value) if isinstance(value, str | bytes) else value

    def variable(self, key: str) -> str | None:
        rows = self._query("SELECT val FROM variable WHERE key = ?", (key,))
        return rows[0][0] if rows else None


def airflow_env(home: Path, port: int) -> dict[str, str]:
    # Hermetic: nothing Airflow- or token-related leaks in from the caller's environment.
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "SUPERVISOR_SIM_", "_AIRFLOW"))
    }
    return {
        **base,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API_AUTH__JWT_SECRET": JWT_SECRET,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "NO_COLOR": "1",
    }


def build_venv(log_dir: Path) -> str:
    out = run_step(
        ["sh", str(TOOLS / "airflow_venv.sh")],
        env=dict(os.environ),
        timeout=900,
        what="tools/airflow_venv.sh (pip install apache-airflow-core==3.3.2 ...)",
        log=log_dir / "airflow_venv.log",
    )
    python = out.strip().splitlines()[-1]
    assert Path(python).exists(), f"airflow_venv.sh printed {python!r}, which does not exist"
    return python


def wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + API_READY_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"airflow api-server exited with {proc.returncode} before it was healthy:\n"
                + tail(log),
                pytrace=False,
            )
        try:
            if httpx.get(url + "health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.2)
    pytest.fail(
        f"airflow api-server not healthy within {API_READY_TIMEOUT:g}s ({last}):\n" + tail(log),
        pytrace=False,
    )


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (uvicorn and its worker), SIGKILL if it lingers."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
    try:  # a worker left behind in the group
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass

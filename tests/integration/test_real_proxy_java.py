"""supervisor-sim proxy behind Airflow 3.3.2's own ``JavaCoordinator``.

Airflow's supervisor (``supervise_task``, tools/airflow_peer/run_airflow_sup.py) runs each try
through ``airflow.sdk.coordinators.java.JavaCoordinator``, configured as docs/proxy.md says: its
``java_executable`` is the real ``java`` (``java-direct``) or a wrapper written by ``proxy
--write-wrapper -- /usr/bin/java`` (``java-proxy``); its ``jars_root`` holds the JAR of
tools/airflow_peer/java/JavaPeer.java, a dependency-free ``--comm/--logs`` runtime built here
offline with javac (Airflow's own Java SDK is not on this machine: not in the local Maven
repository, and no network to fetch it). The coordinator finds the JAR's Main-Class and
schema version in its manifest, as it would the Java SDK's. Behind the proxy the try must end
as without it (exit status, state and XCom in Airflow's DB), and its transcript replay to MATCH
with no network, a changed runtime to DIVERGED at the first changed frame.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from supervisor_sim.transcript import read_transcript

from ._airflow import PEER, RealAirflow
from .test_real_proxy import HEARTBEAT_INTERVAL, PROXY, Try, _job, replay

pytestmark = pytest.mark.real_airflow

JAVA = shutil.which("java")
BUILD = PEER / "java" / "build.sh"
TASKS = ["hello", "read_var_conn", "fail"]


def _build(out: Path) -> tuple[Path | None, str]:
    if JAVA is None or shutil.which("javac") is None or shutil.which("jar") is None:
        return None, "no JDK (java, javac, jar) on PATH"
    proc = subprocess.run(
        ["sh", str(BUILD), str(out)], capture_output=True, text=True, timeout=300, check=False
    )
    if proc.returncode != 0:
        return None, f"tools/airflow_peer/java/build.sh failed: {proc.stderr[-800:]}"
    return Path(proc.stdout.strip().splitlines()[-1]), ""


class JavaDeployment:
    """The two JavaCoordinator entries, and running jobs under them."""

    def __init__(self, airflow: RealAirflow, tmp: Path, jar: Path) -> None:
        self.airflow, self.tmp, self.jar = airflow, tmp, jar
        self.transcripts = tmp / "transcripts"
        self.wrapper = tmp / "bin" / "java-proxied"
        java = str(Path(JAVA or "java").resolve())
        wrote = subprocess.run(
            [*PROXY, "--dir", str(self.transcripts), "--write-wrapper", str(self.wrapper), "--",
             java],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert wrote.returncode == 0, wrote.stderr

        def coordinator(executable: str) -> dict[str, Any]:
            return {
                "classpath": "airflow.sdk.coordinators.java.JavaCoordinator",
                "kwargs": {
                    "jars_root": [str(jar.parent)],
                    "java_executable": executable,
                    "jvm_args": ["-Xmx128m"],
                },
            }

        self.coordinators = {
            "java-direct": coordinator(java),
            "java-proxy": coordinator(str(self.wrapper)),
        }

    def run(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        jobs_path, results_path = self.tmp / "jobs.json", self.tmp / "results.json"
        jobs_path.write_text(json.dumps(jobs, indent=1))
        env = {
            **self.airflow.env,
            "PYTHONPATH": str(PEER),
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": str(HEARTBEAT_INTERVAL),
            "AIRFLOW__SDK__COORDINATORS": json.dumps(self.coordinators),
            "AIRFLOW__SDK__QUEUE_TO_COORDINATOR": json.dumps({n: n for n in self.coordinators}),
        }
        log = self.tmp / "airflow-supervisor.log"
        with open(log, "w") as out:
            proc = subprocess.run(
                [self.airflow.python, str(PEER / "run_airflow_sup.py"), str(jobs_path),
                 str(results_path)],
                cwd=self.tmp, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, timeout=600, check=False,
            )  # fmt: skip
        assert proc.returncode == 0, log.read_text()[-6000:]
        return json.loads(results_path.read_text())


@pytest.fixture(scope="module")
def java_tries(
    airflow: RealAirflow, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], Try]:
    tmp = tmp_path_factory.mktemp("real_proxy_java")
    jar, problem = _build(tmp / "jars")
    if jar is None:
        pytest.skip(problem)
    deployment = JavaDeployment(airflow, tmp, jar)
    planned = []
    for task in TASKS:
        for variant in ("java-direct", "java-proxy"):
            (ti,) = airflow.queue(task)
            planned.append(((task, variant), Try(ti)))
    results = deployment.run([_job(t.ti, variant, airflow, {}) for (_, variant), t in planned])
    out = {}
    for (key, attempt), result in zip(planned, results, strict=True):
        attempt.rc, attempt.error = result["rc"], result["error"]
        attempt.state = airflow.ti_state(attempt.ti)[0]
        attempt.xcom = airflow.xcom(attempt.ti)
        found = [
            p
            for p in deployment.transcripts.glob(f"example_dag.{attempt.ti['task_id']}.*.jsonl")
            if _run_in(p, attempt.ti)
        ]
        attempt.transcript = found[0] if len(found) == 1 else None
        out[key] = attempt
    return out


def _run_in(path: Path, ti: dict[str, Any]) -> bool:
    return read_transcript(path).header["task"]["ti"]["id"] == ti["ti_id"]


@pytest.mark.parametrize("task", TASKS)
def test_the_java_coordinators_try_ends_exactly_as_without_the_proxy(
    java_tries: dict[tuple[str, str], Try], task: str
) -> None:
    """With the proxy as the JavaCoordinator's java_executable the try ends with the same exit
    status, state and XCom in Airflow's DB as with java itself, and is recorded."""
    direct, proxied = java_tries[(task, "java-direct")], java_tries[(task, "java-proxy")]
    assert direct.error is None and proxied.error is None, (direct.error, proxied.error)
    assert (proxied.rc, proxied.state, proxied.xcom) == (direct.rc, direct.state, direct.xcom)
    expected = {"hello": "success", "read_var_conn": "success", "fail": "failed"}[task]
    assert direct.state == expected
    if task == "read_var_conn":
        assert direct.xcom == {"var": "hello-from-var", "runtime": "java"}
    assert proxied.transcript is not None, "no transcript for the proxied try"
    t = read_transcript(proxied.transcript)
    assert t.footer is not None and t.footer["exit_code"] == proxied.rc
    assert t.header["runtime"][0].endswith("java")


@pytest.mark.parametrize("task", TASKS)
def test_the_java_runtimes_transcript_replays_to_match_without_airflow(
    java_tries: dict[tuple[str, str], Try], task: str, tmp_path: Path
) -> None:
    """The recorded JVM try, replayed with the recorded java command line, matches frame for
    frame with no network and ends in the recorded state."""
    proxied = java_tries[(task, "java-proxy")]
    assert proxied.transcript is not None
    code, result, stderr = replay(proxied.transcript, tmp_path)
    assert code == 0, stderr
    assert result["matched"] is True, result
    assert result["final_state"] == result["recorded_final_state"]


def test_a_changed_java_runtime_replays_to_diverged_at_the_first_changed_frame(
    java_tries: dict[tuple[str, str], Try], tmp_path: Path
) -> None:
    """The same JAR told to read another variable diverges at its first request."""
    proxied = java_tries[("read_var_conn", "java-proxy")]
    assert proxied.transcript is not None
    recorded = read_transcript(proxied.transcript).header["runtime"]
    changed = [recorded[0], "-Dpeer.variable=another_var", *recorded[1:]]
    code, result, stderr = replay(proxied.transcript, tmp_path, "--runtime", shlex.join(changed))
    assert code == 1, stderr
    first = result["divergences"][0]
    assert (first["index"], first["kind"]) == (0, "frame"), result
    assert any("another_var" in d for d in first["differences"]), first

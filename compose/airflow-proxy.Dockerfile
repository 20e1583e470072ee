# The Airflow image with supervisor-sim installed into it: what a worker needs to run a runtime
# behind `supervisor-sim proxy` (docs/proxy.md). compose/docker-compose.yaml builds it for the
# `proxy` profile (docs/compose.md); build it by hand from the repository's root with
#
#   docker build -f compose/airflow-proxy.Dockerfile -t supervisor-sim-airflow:local .
#
# Stage 1 builds supervisor-sim's wheel from this checkout (pure Python; the wheel carries the
# reference runtime, the example fixtures and the schemas that supervisor_sim/_data/ links to).
# Stage 2 is Airflow's own image, extended as Airflow's docs say: pip install as the airflow
# user, with apache-airflow pinned to the image's version so that pip cannot move it.
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2

FROM python:3.11-slim AS wheel
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md ./
COPY runtimes/reference/ runtimes/reference/
COPY examples/fixtures.toml examples/
COPY docs/schema/ docs/schema/
COPY supervisor_sim/ supervisor_sim/
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM ${AIRFLOW_IMAGE}
# Where the runtime's executable bundle and the proxy's wrapper bundle go, writable by any uid
# of group 0 (compose runs the worker as ${SUPERVISOR_SIM_UID:-1000}:0, as Airflow's own
# docker-compose runs Airflow as ${AIRFLOW_UID}:0). 50000 is the image's airflow user.
USER 0
RUN install -d -o 50000 -g 0 -m 2775 /opt/airflow/executable-bundles /opt/airflow/proxied-bundles
USER 50000
COPY --from=wheel /wheels/ /tmp/supervisor-sim-wheels/
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" /tmp/supervisor-sim-wheels/supervisor_sim-*.whl

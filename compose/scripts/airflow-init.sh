#!/usr/bin/env bash
# airflow-init: prepare the compose environment's Airflow the way a deployment and its scheduler
# would, then hand the queued task instances to the supervisor-sim service.
#
# Runs once per `docker compose up`, in the apache/airflow image, with the environment that
# compose/docker-compose.yaml gives the airflow-init service (tests/compose/test_compose.py runs this same
# file natively, with that same environment). Every step is idempotent, so `up` can be repeated:
#
#   airflow db migrate                          the metadata DB in Postgres
#   airflow variables import -a overwrite ...   $SIM_FIXTURES/variables.json (peer_var, api_token)
#   airflow connections import --overwrite ...  $SIM_FIXTURES/connections.json (peer_conn)
#   airflow dags reserialize                    registers dags/example_dag.py (a DagVersion)
#   airflow_queue_ti.py --batch -               a new DAG run of $SIM_DAG_ID, $SIM_TASKS queued
#
# The queued task instances are written as one JSON object {"tis": [...]} to $SIM_QUEUED_TIS
# (fields: ti_id, dag_id, task_id, run_id, try_number, dag_version_id, map_index, ...). The file
# holds no token: the supervisor-sim service mints its own from the shared JWT secret.
set -euo pipefail

: "${SIM_DAG_ID:?}" "${SIM_TASKS:?}" "${SIM_QUEUED_TIS:?}" "${SIM_QUEUE_TI:?}" "${SIM_FIXTURES:?}"

step() { printf 'airflow-init: %s\n' "$*" >&2; }

# Where the supervisor-sim service writes transcripts: a bind mount that Docker creates owned by
# root when it is missing. Give it to the (non-root) supervisor-sim user then.
if [ -n "${SIM_RUNS_DIR:-}" ]; then
  mkdir -p "$SIM_RUNS_DIR"
  if [ "$(id -u)" = 0 ] && [ "$(stat -c %u "$SIM_RUNS_DIR")" = 0 ]; then
    chown "${SUPERVISOR_SIM_UID:-1000}:0" "$SIM_RUNS_DIR"
  fi
fi

step "airflow db migrate"
airflow db migrate

step "variables and connections from $SIM_FIXTURES"
airflow variables import --action-on-existing-key overwrite "$SIM_FIXTURES/variables.json"
airflow connections import --overwrite "$SIM_FIXTURES/connections.json"

step "airflow dags reserialize"
airflow dags reserialize

step "queue $SIM_DAG_ID: $SIM_TASKS"
mkdir -p "$(dirname "$SIM_QUEUED_TIS")"
request=$(python -c 'import json, os
print(json.dumps({"dag_id": os.environ["SIM_DAG_ID"], "tasks": os.environ["SIM_TASKS"].split()}))')
# One request line in, one answer line out: {"tis": [...]} or {"error": "..."} (exit 1).
printf '%s\n' "$request" | python "$SIM_QUEUE_TI" --batch - > "$SIM_QUEUED_TIS.tmp"
chmod 0644 "$SIM_QUEUED_TIS.tmp"
mv "$SIM_QUEUED_TIS.tmp" "$SIM_QUEUED_TIS"
step "wrote $SIM_QUEUED_TIS"
cat "$SIM_QUEUED_TIS" >&2

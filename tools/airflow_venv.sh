#!/bin/sh
# Create (or reuse) a cached virtualenv holding real Apache Airflow 3.3.2, its Task SDK 1.3.2 and the
# Edge provider 5.1.0 (the edge worker API and `airflow edge worker`, issue 20),
# used as test peers: a real Execution API server, Airflow's own supervisor and its Python task
# runner (docs/real-airflow.md, tests/integration/). Prints the venv's python path on stdout.
#
#   tools/airflow_venv.sh            -> /path/to/.cache/airflow-venv/bin/python
#
# Location: $SUPERVISOR_SIM_AIRFLOW_VENV, default <repo>/.cache/airflow-venv (.cache/ is ignored).
# Idempotent: a stamp file records what was installed; a second run prints the path at once.
# First run takes about 40 s (PyPI). Progress goes to stderr; only the path goes to stdout.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
venv="${SUPERVISOR_SIM_AIRFLOW_VENV:-$here/.cache/airflow-venv}"
python="${PYTHON:-python3}"
pins="apache-airflow-core==3.3.2 apache-airflow-task-sdk==1.3.2 apache-airflow-providers-edge3==5.1.0 pyjwt msgpack httpx"
# The stamp names what was asked for, so a change of pins rebuilds the venv.
stamp="$venv/.supervisor-sim-$(printf '%s' "$pins" | cksum | cut -d' ' -f1)"
build() {
  [ -f "$stamp" ] && return 0  # another process built it while we waited for the lock
  echo "airflow_venv: installing $pins into $venv (first run only, ~40 s)..." >&2
  if [ -e "$venv" ]; then
    # Only a directory this script made (it holds our .supervisor-sim-* mark) is ever removed:
    # $SUPERVISOR_SIM_AIRFLOW_VENV may name someone's own venv or any other folder.
    if ls "$venv"/.supervisor-sim-* >/dev/null 2>&1 || [ -z "$(ls -A "$venv" 2>/dev/null)" ]; then
      rm -rf "$venv"
    else
      echo "airflow_venv: $venv exists and was not made by this script; not touching it." >&2
      echo "airflow_venv: point SUPERVISOR_SIM_AIRFLOW_VENV at a new or empty folder." >&2
      exit 2
    fi
  fi
  "$python" -m venv "$venv" >&2
  touch "$venv/.supervisor-sim-owned"  # the mark: this folder may be rebuilt
  # The stamp is only written on success, so an interrupted install is redone next time.
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pip install -q --disable-pip-version-check $pins >&2
  "$venv/bin/python" -c "import airflow.sdk, airflow.api_fastapi, airflow.providers.edge3, jwt, msgpack, httpx" >&2
  touch "$stamp"
}
if [ ! -f "$stamp" ]; then
  mkdir -p "$(dirname "$venv")"
  if command -v flock >/dev/null 2>&1; then
    # Two test runs starting at once must not build (and rm -rf) the same venv together.
    (flock 9 || exit 1; build) 9>"$venv.lock"
  else
    build
  fi
  [ -f "$stamp" ] || { echo "airflow_venv: installing into $venv failed" >&2; exit 1; }
fi
echo "$venv/bin/python"

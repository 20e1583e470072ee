# Sourced by ./supervisor-sim and ./test: makes .venv with supervisor-sim installed (editable,
# with test extras) the first time, and again whenever pyproject.toml changes.
# Needs only python3. Sets $venv.
here=$(cd "$(dirname "$0")" && pwd)
venv="${SUPERVISOR_SIM_VENV:-$here/.venv}"
stamp="$venv/.installed-$(cksum < "$here/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
  echo "supervisor-sim: setting up $venv (first run only)..." >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$here[test]" >&2
  rm -f "$venv"/.installed-*
  touch "$stamp"
fi

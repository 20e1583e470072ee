# Sourced by ./supervisor-sim and ./test: makes .venv with supervisor-sim installed (editable,
# with test extras) the first time, and again whenever pyproject.toml or this file changes.
# Needs only python3. Sets $venv.
here=$(cd "$(dirname "$0")" && pwd)
venv="${SUPERVISOR_SIM_VENV:-$here/.venv}"
stamp="$venv/.installed-$(cat "$here/pyproject.toml" "$here/tools/bootstrap.sh" | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
  echo "supervisor-sim: setting up $venv (first run only)..." >&2
  python3 -m venv "$venv" >&2
  # compat: a plain path entry in a .pth file. The default editable mode installs an import hook
  # that every interpreter start loads (~11 ms of the ~21 ms `python -c pass` costs here).
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    --config-settings editable_mode=compat -e "$here[test]" >&2
  rm -f "$venv"/.installed-*
  touch "$stamp"
fi

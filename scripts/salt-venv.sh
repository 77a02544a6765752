#!/usr/bin/env bash
# Creates (or reuses) the project's Python venv with stock Salt 3007.8 and its
# runtime dependencies, plus pepper 0.7.6 (salt-api's client, for the netapi
# compatibility test), for interop tests and side-by-side benchmarks.
#
# Salt 3007.8's wheel pins versions the package index no longer serves, so it
# is installed with --no-deps and its runtime dependencies are named here.
# Usage: scripts/salt-venv.sh [VENV_DIR]   (default: .venv in the repo root)
#        SALT_VERSION=3006.9 scripts/salt-venv.sh .venv3006
#          another Salt release with the same dependency list (3006.x comes
#          as an sdist and vendors its tornado; the 3006 interop test uses it)
# Prints the venv's python path on the last line.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-${BRINE_VENV:-$repo/.venv}}
salt_version=${SALT_VERSION:-3007.8}
stamp="$venv/.brine-salt-$salt_version"

if [ -f "$stamp" ] && "$venv/bin/python" -c 'import salt, zmq' 2>/dev/null; then
  # venvs made before the netapi tests lack pepper (salt-api's CLI client)
  if ! "$venv/bin/python" -c 'import pepper' 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps salt-pepper==0.7.6 >&2
  fi
  echo "$venv/bin/python"
  exit 0
fi

python=${PYTHON:-python3}
"$python" -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2 || true
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "salt==$salt_version" >&2
# pepper (salt-api's command-line client) has no dependencies of its own
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps salt-pepper==0.7.6 >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  pyyaml msgpack jinja2 pyzmq cryptography pycryptodomex looseversion packaging psutil \
  requests distro jmespath markupsafe aiohttp python-dateutil tornado >&2
"$venv/bin/python" -c 'import salt.version, zmq; print("salt", salt.version.__version__, "pyzmq", zmq.__version__, "libzmq", zmq.zmq_version())' >&2
touch "$stamp"
echo "$venv/bin/python"

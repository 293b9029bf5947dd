#!/usr/bin/env bash
# Creates (or reuses) .venv at the repository root and installs the project with the given extras.
# Usage: scripts/setup_env.sh cpu,test      (prints nothing else on success but pip's summary)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="${1:-cpu}"
python="${PYTHON:-python3}"
if [ ! -x "$root/.venv/bin/python" ]; then
    "$python" -m venv "$root/.venv"
fi
# Reinstall only when setup.py changed since the last install with these extras.
stamp="$root/.venv/.installed-${extras//,/-}"
if [ ! -f "$stamp" ] || [ "$root/setup.py" -nt "$stamp" ]; then
    "$root/.venv/bin/python" -m pip install --quiet --upgrade pip
    "$root/.venv/bin/python" -m pip install --quiet -e "$root[$extras]"
    touch "$stamp"
fi

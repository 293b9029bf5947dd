#!/usr/bin/env bash
# The README's second command: set up (venv, test extras, system tools the tests use) and run all tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# unshare/ip run the real PanDA pilot in its own PID and network namespace (tests/pilot).
if ! command -v unshare >/dev/null || ! command -v ip >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq util-linux iproute2 >/dev/null
    fi
fi
"$root/scripts/setup_env.sh" cpu,test
cd "$root"
exec "$root/.venv/bin/python" -m pytest -q -p no:cacheprovider "$@" tests

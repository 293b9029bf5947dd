#!/usr/bin/env bash
# The README's second command: set up (venv, test extras, system tools the tests use) and run all tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The real PanDA pilot (tests/pilot) runs in its own PID and network namespace (unshare, ip),
# downloads the trf with curl, watches processes with ps and tars its log.
missing=0
for tool in unshare ip curl ps tar; do command -v "$tool" >/dev/null || missing=1; done
if [ "$missing" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq util-linux iproute2 curl procps tar >/dev/null
fi
"$root/scripts/setup_env.sh" cpu,test
cd "$root"
exec "$root/.venv/bin/python" -m pytest -q -p no:cacheprovider "$@" tests

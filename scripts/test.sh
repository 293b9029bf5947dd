#!/usr/bin/env bash
# The README's second command: set up (venv, test extras, system tools the tests use) and run all tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The real PanDA pilot (tests/pilot) runs in its own PID and network namespace (unshare, ip),
# downloads the trf with curl, watches processes with ps and tars its log. The real PanDA server
# (tests/panda) needs PostgreSQL 15 with pg_cron and pg_partman, and openssl for its certificates.
packages=(util-linux iproute2 curl procps tar openssl postgresql-15 postgresql-15-cron postgresql-15-partman)
missing=0
for tool in unshare setpriv ip curl ps tar openssl /usr/lib/postgresql/15/bin/postgres; do
    command -v "$tool" >/dev/null || missing=1
done
for extension in pg_cron pg_partman; do
    [ -f "/usr/share/postgresql/15/extension/$extension.control" ] || missing=1
done
if [ "$missing" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    # The tests run clusters of their own on loopback; Debian's package would also create and start
    # a system-wide "main" cluster unless told not to (only when nothing configured it yet).
    if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
        mkdir -p /etc/postgresql-common
        echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
    fi
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Options::=--force-confold \
        "${packages[@]}" >/dev/null
fi
"$root/scripts/setup_env.sh" cpu,client,test
# panda-server and JEDI in a venv of their own (.panda-venv, built once and reused: about a minute)
cd "$root"
"$root/.venv/bin/python" -m scripts.panda_local venv >/dev/null
# the inference server (dune-payload-serve) in .serve-venv: PyTriton needs numpy<2 (about 30 s, once)
"$root/.venv/bin/python" -m scripts.tools.serve_venv >/dev/null
exec "$root/.venv/bin/python" -m pytest -q -p no:cacheprovider "$@" tests

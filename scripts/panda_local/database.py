"""PanDA's PostgreSQL database on loopback: a cluster of its own, the upstream schema, stopped by PID.

The schema is PanDAWMS/panda-database's, read from `shared/panda-database/` beside the clone (or
`$DUNE_PANDA_DATABASE`) and never edited there: the two fixes a fresh install on Debian needs
(shared/panda-database/NOTES.md) are applied to copies in the cluster's own directory:

1. `pg_PANDA_SCHEDULER_JOBS.sql` builds `mv_worker_node_gpu_summary` on `worker_node_queue`, whose
   DDL exists only in `patches/0.0.31.patch.sql`; that table is created first, from the patch.
2. Debian bookworm's pg_partman is 4.7, whose native partitioning type is `'native'`; the schema
   asks for 5.x's `'range'`.

PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user Debian's
package creates, in a directory of its own under the system's temporary directory (the caller's
directory may sit below one only root can enter, as pytest's do), removed when it stops. It
listens on 127.0.0.1 only, on a free port, with its socket in its own directory.
"""
from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from scripts.panda_local import ports
from scripts.panda_local.errors import StackError

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path(os.environ.get("DUNE_PG_BIN", "/usr/lib/postgresql/15/bin"))
DB_NAME = "panda_db"
DB_USER = "panda"
# What JEDI and the server log in with; the cluster is loopback-only and exists for one test session.
DB_PASSWORD = "dune-panda-db-test-password"
SCHEMA_ORDER = ("PANDA", "PANDAMETA", "PANDAARCH", "PANDABIGMON", "DEFT", "PARTITION")
OBJECT_ORDER = ("TABLE", "VIEW", "TYPE", "SEQUENCE", "FUNCTION", "TRIGGER", "SCHEDULER_JOBS", "PROCEDURE")
# Debian packages that hold the server and the two extensions the schema needs.
PACKAGES = ("postgresql-15", "postgresql-15-cron", "postgresql-15-partman")


@dataclass(frozen=True)
class Database:
    """A running cluster: where it listens and how to reach it."""

    port: int
    directory: Path
    pid: int
    owner: str
    scratch: bool = False     # `directory` was made for the cluster and goes with it

    @property
    def socket_dir(self) -> Path:
        return self.directory / "socket"

    @property
    def log(self) -> Path:
        return self.directory / "postgres.log"

    def psql(self, sql: str, *, database: str = DB_NAME, check: bool = True) -> str:
        """Run `sql` as the superuser over the cluster's socket; returns psql's unaligned output."""
        done = _run_as(self.owner, [str(PG_BIN / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                                    "-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres",
                                    "-d", database, "-c", sql])
        if check and done.returncode != 0:
            raise StackError(f"psql failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        return done.stdout

    def query(self, sql: str) -> list[dict]:
        """Rows of a SELECT as dicts (through PostgreSQL's own JSON, so types need no parsing here)."""
        import json

        text = self.psql(f"SELECT coalesce(json_agg(q), '[]'::json) FROM ({sql}) AS q").strip()
        return json.loads(text or "[]")


def schema_source() -> Path:
    """The unmodified upstream schema directory (shared/panda-database/schema/postgres)."""
    base = Path(os.environ.get("DUNE_PANDA_DATABASE", ROOT.parent / "shared" / "panda-database"))
    source = base / "schema" / "postgres"
    if not (source / "sqls" / "pg_PANDA_TABLE.sql").is_file():
        raise StackError(f"no PanDA schema at {source}: put PanDAWMS/panda-database there or set "
                         "DUNE_PANDA_DATABASE to its checkout")
    return source


def check_installed() -> None:
    """StackError naming the Debian packages to install when the server or an extension is missing."""
    share = Path("/usr/share/postgresql/15/extension")
    missing = [pkg for pkg, probe in zip(PACKAGES, (PG_BIN / "postgres", share / "pg_cron.control",
                                                    share / "pg_partman.control")) if not probe.exists()]
    if missing:
        raise StackError(f"PostgreSQL for PanDA is not installed: apt-get install {' '.join(missing)}")


def _owner() -> str:
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise StackError("running as root needs the `postgres` user (Debian's postgresql-15 makes it)") from None
    return "postgres"


def _run_as(owner: str, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    if os.geteuid() == 0 and owner != "root":
        argv = ["runuser", "-u", owner, "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, **kwargs)


def fixed_schema(source: Path, target: Path) -> Path:
    """Copy the schema's SQL to `target` with the two fixes of this module's docstring applied."""
    shutil.copytree(source / "sqls", target)
    patch = (source / "sqls" / "patches" / "0.0.31.patch.sql").read_text()
    ddl = re.search(r"CREATE TABLE IF NOT EXISTS doma_panda\.worker_node_queue \(.*?\);\s*"
                    r"ALTER TABLE doma_panda\.worker_node_queue OWNER TO panda;", patch, re.S)
    if ddl is None:
        raise StackError("patches/0.0.31.patch.sql no longer defines worker_node_queue: check the schema")
    jobs = target / "pg_PANDA_SCHEDULER_JOBS.sql"
    jobs.write_text(ddl.group(0) + "\n" + jobs.read_text())
    partition = target / "pg_PARTITION.sql"
    partition.write_text(partition.read_text().replace("p_type => 'range'", "p_type => 'native'"))
    return target


def _write_config(data: Path, port: int, socket_dir: Path) -> None:
    with open(data / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write(f"""
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{socket_dir}'
shared_preload_libraries = 'pg_cron, pg_partman_bgw'
cron.database_name = 'postgres'
pg_partman_bgw.dbname = '{DB_NAME}'
max_connections = 200
shared_buffers = 64MB
# a cluster for one session, thrown away after: durability would only cost time
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
""")
    (data / "pg_hba.conf").write_text(
        "local all all trust\n"
        "host all all 127.0.0.1/32 scram-sha-256\n")


def start(directory: Path, *, timeout_s: float = 60.0) -> Database:
    """initdb a cluster in `directory` (created; as root: a directory of the cluster's owner, see
    the module's docstring), start it on 127.0.0.1 and load the PanDA schema."""
    check_installed()
    owner = _owner()
    scratch = owner != pwd.getpwuid(os.geteuid()).pw_name
    directory = Path(tempfile.mkdtemp(prefix="dune-panda-db-")) if scratch else Path(directory).resolve()
    data, socket_dir = directory / "data", directory / "socket"
    for path in (directory, socket_dir):
        path.mkdir(parents=True, exist_ok=True)
        if scratch:
            shutil.chown(path, owner)
    init = _run_as(owner, [str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                           "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
    if init.returncode != 0:
        raise StackError(f"initdb failed: {init.stderr.strip()[-2000:]}")
    port = ports.free_port()
    _write_config(data, port, socket_dir)
    log = open(directory / "postgres.log", "ab")
    command = [str(PG_BIN / "postgres"), "-D", str(data)]
    if os.geteuid() == 0:
        command = ["runuser", "-u", owner, "--", *command]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    log.close()
    database = Database(port=port, directory=directory, pid=process.pid, owner=owner, scratch=scratch)
    try:
        _wait_ready(database, process, timeout_s)
        load_schema(database, fixed_schema(schema_source(), directory / "sqls"))
    except BaseException:
        stop(database)
        raise
    return database


def _wait_ready(database: Database, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"postgres exited with {process.returncode}; see {database.log}")
        if database.psql("SELECT 1", database="postgres", check=False).strip() == "1":
            return
        time.sleep(0.2)
    raise StackError(f"postgres did not answer within {timeout_s:.0f} s; see {database.log}")


def load_schema(database: Database, sqls: Path) -> None:
    """What the schema's own panda_db_init.sh does for a new database, stopping at the first error."""
    version = (schema_source() / "version").read_text().strip()
    init = (sqls / "init_step.sql").read_text().replace("${PANDA_DB_PASSWORD}", DB_PASSWORD)
    (sqls / "init_step.sql").write_text(init)
    if os.geteuid() == 0:
        shutil.chown(sqls, database.owner)
        for path in sqls.rglob("*"):
            shutil.chown(path, database.owner)
    _psql_file(database, sqls / "init_step.sql", "postgres")
    for component in SCHEMA_ORDER:
        for name in [f"pg_{component}.sql"] + [f"pg_{component}_{kind}.sql" for kind in OBJECT_ORDER]:
            if (sqls / name).is_file():
                _psql_file(database, sqls / name, DB_NAME)
    major, minor, patch = version.split(".")
    database.psql("INSERT INTO doma_panda.pandadb_version (component, major, minor, patch) "
                  f"VALUES ('PanDA', '{major}', '{minor}', '{patch}')")
    _psql_file(database, sqls / "post_step_panda.sql", DB_NAME)
    _psql_file(database, sqls / "post_step_cron.sql", "postgres")
    # pg_cron connects to run each job; the schema sets an empty host (the default socket
    # directory, not ours). libpq reads a host that starts with '/' as a socket directory.
    database.psql(f"UPDATE cron.job SET nodename = '{database.socket_dir}'", database="postgres")


def _psql_file(database: Database, path: Path, dbname: str) -> None:
    done = _run_as(database.owner, [str(PG_BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                                    "-h", str(database.socket_dir), "-p", str(database.port),
                                    "-U", "postgres", "-d", dbname, "-f", str(path)])
    if done.returncode != 0:
        raise StackError(f"loading {path.name} failed: {done.stderr.strip()[-2000:]}")


def stop(database: Database, timeout_s: float = 30.0) -> None:
    """Fast shutdown (SIGINT) of the cluster's postmaster, by its PID; SIGKILL if it lingers."""
    ports.stop_pid(database.pid, signal.SIGINT, timeout_s)
    if database.scratch:
        shutil.rmtree(database.directory, ignore_errors=True)


def refresh_for_jedi(database: Database) -> None:
    """What pg_cron does every minute and JEDI's ContentsFeeder waits for: the aux table of the
    smallest task id per status. Called after a task is inserted so a test need not wait a minute."""
    database.psql("CALL doma_panda.jedi_refr_mintaskids_bystatus()")


def refresh_gpu_summary(database: Database) -> None:
    """pg_cron's hourly refresh of the GPU summary brokerage reads (the first one must not be
    CONCURRENTLY: the view is created WITH NO DATA)."""
    database.psql("REFRESH MATERIALIZED VIEW doma_panda.mv_worker_node_gpu_summary")


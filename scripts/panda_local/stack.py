"""The whole local PanDA: database, server (HTTP and HTTPS), its daemons and JEDI, on 127.0.0.1.

    stack = start(Path("/tmp/panda"))     # about a minute on 2 cores once the venv exists
    ...                                    # stack.user_env(): what panda-client needs
    stop(stack)

Every process is ours, started in a session of its own and stopped by its PID (its process group).
The grid identities: `jdoe`, a DUNE user who submits tasks, and `service`, the production identity
JEDI calls the server back with and Harvester updates jobs with (its DN is the server's
`production_dns`, its proxy carries the /dune/Role=production FQAN).
"""
from __future__ import annotations

import atexit
import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from scripts.panda_local import certs, config, database, ports, queues, venv
from scripts.panda_local.client import ApiClient
from scripts.panda_local.errors import StackError

HERE = Path(__file__).resolve().parent
VOS = ("dune",)
IDENTITIES = {
    "jdoe": ("/DC=org/DC=dune-test/OU=Users/CN=Jane Doe", ["/dune/Role=NULL/Capability=NULL"]),
    "service": ("/DC=org/DC=dune-test/OU=Services/CN=panda-service", ["/dune/Role=production/Capability=NULL"]),
}
# JEDI's work queues for the DUNE VO: the schema seeds them for VO `wlcg` only (post_step_panda.sql),
# and a task of a VO without one is refused at refinement ("workqueue is undefined").
WORK_QUEUES = (("managed", 101), ("user", 102), ("test", 103))
# Stacks started by this process and not yet stopped: stopped at exit whatever else happens (the
# parts are session leaders, so nothing else would end them).
_RUNNING: dict = {}
_RUNNING_LOCK = threading.Lock()


@dataclass(frozen=True)
class Stack:
    """A running stack: where it lives, its parts, and how to reach it."""

    directory: Path
    db: database.Database
    authority: certs.Authority
    http_port: int
    https_port: int
    pids: dict            # part -> PID of its process group leader
    python: Path          # the PanDA venv's interpreter

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}/api/v1"

    def client(self, identity: str = "service") -> ApiClient:
        """An API client authenticated as `identity`."""
        return ApiClient(self.api_url, self.authority.ca_cert, self.authority.identities[identity].proxy)

    def user_env(self, identity: str = "jdoe") -> dict:
        """What panda-client reads to reach this server as `identity` (never the network)."""
        server = f"https://127.0.0.1:{self.https_port}/server/panda"
        return {"PANDA_URL": f"http://127.0.0.1:{self.http_port}/server/panda", "PANDA_URL_SSL": server,
                "PANDACACHE_URL": server, "PANDA_BEHIND_REAL_LB": "1", "PANDA_VERIFY_HOST": "on",
                "X509_CERT_DIR": str(self.authority.ca_dir),
                "X509_USER_PROXY": str(self.authority.identities[identity].proxy)}

    def log(self, name: str) -> Path:
        """One of the server's or JEDI's log files (panda-<name>.log)."""
        return self.directory / "logs" / f"panda-{name}.log"


def _panda_env(home: Path, http_port: int, https_port: int, authority: certs.Authority, python: Path) -> dict:
    site = venv.site_packages(python)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PANDA", "X509", "PYTHON"))}
    env.update(
        PANDA_HOME=str(home), PANDA_BEHIND_REAL_LB="1", PANDA_NO_ROOT="1",
        PANDA_URL=f"http://127.0.0.1:{http_port}/server/panda",
        PANDA_URL_SSL=f"https://127.0.0.1:{https_port}/server/panda",
        PANDACACHE_URL=f"https://127.0.0.1:{https_port}/server/panda",
        PANDA_API_URL=f"http://127.0.0.1:{http_port}/api/v1",
        PANDA_API_URL_SSL=f"https://127.0.0.1:{https_port}/api/v1",
        X509_CERT_DIR=str(authority.ca_dir), X509_USER_PROXY=str(authority.identities["service"].proxy),
        # JEDI imports pandacommon's and pandaserver's modules by their short names
        PYTHONPATH=os.pathsep.join([str(site / "pandacommon"), str(site / "pandaserver")]),
        HOME=str(home), PYTHONUNBUFFERED="1")
    return env


def _spawn(name: str, argv: list, env: dict, directory: Path) -> int:
    with open(directory / f"{name}.out", "ab") as out:
        process = subprocess.Popen(argv, env=env, cwd=directory, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    return process.pid


def start(directory: Path, *, records: Optional[dict] = None, timeout_s: float = 180.0, log=print) -> Stack:
    """Bring the stack up in `directory` (created): queues `records` (default: queues.standard())."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    python = venv.ensure(log=log)
    began = time.monotonic()
    db = database.start(directory / "postgres")
    pids: dict = {}
    try:
        db.psql(queues.insert_sql(records or queues.standard()))
        db.psql("INSERT INTO doma_panda.jedi_work_queue (queue_id, queue_name, queue_type, vo, queue_function) "
                "VALUES " + ", ".join(f"({qid}, '{name}', '{name}', '{vo}', 'Resource')"
                                      for vo in VOS for name, qid in WORK_QUEUES))
        authority = certs.make(directory / "grid", IDENTITIES)
        http_port, https_port = ports.free_port(), ports.free_port()
        for sub in ("logs", "cache/jedilog", "etc"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        config.write(directory, db, config.Endpoints(http_port, https_port, (authority.identities["service"].dn,)),
                     VOS, directory / "logs", directory / "cache")
        front = directory / "front.json"
        front.write_text(json.dumps({
            "http_port": http_port, "https_port": https_port, "host_cert": str(authority.host_cert),
            "host_key": str(authority.host_key), "ca_cert": str(authority.ca_cert),
            "fqans": {i.dn: list(i.fqans) for i in authority.identities.values()}}, indent=1))
        env = _panda_env(directory, http_port, https_port, authority, python)
        pids["server"] = _spawn("server", [str(python), str(HERE / "front.py"), str(front)], env, directory)
        stack = Stack(directory, db, authority, http_port, https_port, pids, python)
        _wait_alive(stack, began + timeout_s)
        pids["daemons"] = _spawn("daemons", [str(python), str(HERE / "daemons_main.py")], env, directory)
        pids["jedi"] = _spawn("jedi", [str(python), str(HERE / "jedi_main.py")], env, directory)
        _wait_jedi(stack, began + timeout_s)
    except BaseException:
        for pid in pids.values():
            ports.stop_pid(pid)
        database.stop(db)
        raise
    with _RUNNING_LOCK:
        _RUNNING[id(stack)] = stack
    log(f"panda_local: stack up in {time.monotonic() - began:.0f} s: {stack.api_url}")
    return stack


def _wait_alive(stack: Stack, deadline: float) -> None:
    import requests

    url = f"http://127.0.0.1:{stack.http_port}/api/v1/system/is_alive"
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        if not _alive(stack.pids["server"]):
            raise StackError(f"panda-server exited; see {stack.directory / 'server.out'}")
        time.sleep(0.5)
    raise StackError(f"panda-server did not answer in time; see {stack.directory / 'server.out'}")


def _wait_jedi(stack: Stack, deadline: float) -> None:
    # JediMaster starts its agents ("start launcher") and gives them 5 s before it checks they live.
    out = stack.directory / "jedi.out"
    while time.monotonic() < deadline:
        text = out.read_text(errors="replace") if out.exists() else ""
        if "died in initialization" in text or not _alive(stack.pids["jedi"]):
            raise StackError(f"JEDI did not start; see {out}")
        if text.count("start launcher") >= config.JEDI_AGENTS:
            return
        time.sleep(0.5)
    raise StackError(f"JEDI did not start in time; see {out}")


def _alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == 0


def stop(stack: Stack) -> None:
    """JEDI, the daemons, the server, then the database; each by its PID. Stopping twice is harmless."""
    with _RUNNING_LOCK:
        if _RUNNING.pop(id(stack), None) is None:
            return
    for part in ("jedi", "daemons", "server"):
        if part in stack.pids:
            ports.stop_pid(stack.pids[part])
    database.stop(stack.db)


@atexit.register
def _stop_all() -> None:
    for running in list(_RUNNING.values()):
        stop(running)

"""Run one PanDA job through a real pilot on this machine, isolated, and return its verdict.

The host side: lay out the run directory the way Harvester does (the pilot home is Harvester's
work and data directory: the job, the input replicas, queue data), the trf to serve, a
loopback-only pilot configuration; start the sandbox inside
`unshare --pid --fork --mount-proc --net --kill-child`, wait, collect the verdict.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Mapping, Optional, Sequence

from scripts.pilot_harness import jobdef, layout, pilots, site, verdict
from scripts.pilot_harness.errors import HarnessError

QUEUE = "LOCAL_TEST"

# On a Harvester PUSH queue with job_maxwalltime the pilot ends the payload when the job's own
# maxWalltime is up (pilot error 1213 REACHEDMAXTIME); without it, at the pilot lifetime (-l).
# panda-pilot 3.7.0.36 races there: its job monitor, waiting in should_abort(), often stops before
# it records the error, and no final state is written (the verdict then says "running").
QUEUE_PARAMS = {"job_maxwalltime": True}

# The pilot's own checks, less those that read grid services (proxy, machine and job features from
# $MACHINEFEATURES/$JOBFEATURES) or do CPU accounting for a grid site.
PILOT_SETTINGS = {"Pilot": {"checks": "space,last_heartbeat,threads"}}

# How long a pilot takes to give up on a job after its payload: up to 115 s waiting for a log
# stage-out it has already done (job.wait_for_aborted_job_stageout) when the trf fails, about 200 s
# more (log transfer it can no longer do, then its threads) when it was killed; 3.11 adds up to
# 120 s of retries when the trf cannot be downloaded.
WIND_DOWN_S = 420

# What the harness and the pilot run, and the Debian package of each: the namespace (unshare, ip),
# the trf download (curl), the pilot's process handling (ps) and its log tarball (tar).
REQUIRED_TOOLS = {"unshare": "util-linux", "ip": "iproute2", "curl": "curl", "ps": "procps",
                  "tar": "tar"}


@dataclass(frozen=True)
class PilotJob:
    """One job to run: its definition, the input replicas to stage in, and the trf to serve.

    Inputs are copied into the pilot home, where the `mv` copytool finds them; inputs the job
    lists but `inputs` lacks stay missing. The trf is served under the last part of the job's
    `transformation`. `lifetime_s` is the pilot's own limit when the job has no maxWalltime.
    With `sigterm_after`, the pilot gets SIGTERM (as from a batch system ending the slot) once that
    text appears in the trf's payload.stdout. `pilot` is the pilot to run (default: PyPI's).
    `trf_from` says where the pilot finds the trf: "http" (the loopback server), "harvester-workdir"
    (copied there, $HARVESTER_WORKDIR set, nothing served) or "nowhere" (the URL gives 404).
    `environment` is added to the pilot's (and so the trf's) environment, e.g. a PATH with a
    stand-in nvidia-smi. `queue` is the PanDA queue the pilot serves, `(name, CRIC record)`
    (default: a local test queue, `site.queue_data`). `storage` is a directory the sandbox serves
    over HTTP at `http://127.0.0.1:<storage_port>/storage/`, the site's storage door as the trf sees
    it from inside the namespace (job parameters can name files there by URL).
    """

    job: Mapping[str, str]
    inputs: Sequence[Path]
    trf: Path
    lifetime_s: int = 900
    sigterm_after: Optional[str] = None
    pilot: Optional[pilots.Pilot] = None
    trf_from: Literal["http", "harvester-workdir", "nowhere"] = "http"
    environment: Mapping[str, str] = field(default_factory=dict)
    queue: Optional[tuple] = None
    storage: Optional[Path] = None
    storage_port: int = 0

    def timeout_s(self) -> float:
        """How long the harness waits for the pilot before ending its namespace."""
        limit = int(self.job.get("maxWalltime") or 0) or self.lifetime_s
        return limit + WIND_DOWN_S


def check_tools() -> None:
    """HarnessError naming the package to install for each missing tool."""
    missing = [f"{tool} (apt-get install {pkg})" for tool, pkg in REQUIRED_TOOLS.items()
               if shutil.which(tool) is None]
    if missing:
        raise HarnessError("cannot run the pilot here; missing " + ", ".join(missing))


def pilot_options(paths: layout.RunPaths, lifetime_s: int, pilot: pilots.Pilot,
                  queue: str = QUEUE) -> list[str]:
    """The pilot's command line (shared/pilot-local/README.md): PUSH mode, no server updates,
    everything local. The trf base URL (-g) is added inside the sandbox, once its port is known."""
    # switches only pilot.py has, for what our launcher never does: CVMFS, token renewal, worker updates
    pilot_py_only = ["-b", "-y", "-k"] if pilot.has_pilot_py else []
    return [
        "-q", queue, "--pilot-user", pilot.pilot_user, "-w", "generic", "-d", "-z", "-t", "-u",
        *pilot_py_only,
        "-l", str(lifetime_s), "--url", "http://127.0.0.1", "-p", site.UNUSED_SERVER.split(":")[1],
        "--queuedata-url", str(paths.home / "queuedata.json"),
        "--storagedata-url", str(paths.storage_data),
        "--harvester-datadir", str(paths.harvester), "--harvester-workdir", str(paths.harvester),
        "--harvester-submit-mode", "PUSH", "--output-dir", str(paths.home),
        "--use-https", "False", "--use-rucio-traces", "False", "--cleanup", "False",
    ]


def prepare(request: PilotJob, run_dir: Path) -> layout.RunPaths:
    """Lay out `run_dir` (which must not exist yet) for `request` (its pilot given); returns its
    paths."""
    pilot = request.pilot
    paths = layout.RunPaths(Path(run_dir).resolve())
    paths.root.mkdir(parents=True)
    for directory in {paths.home, paths.harvester, paths.trf_dir, paths.site}:
        directory.mkdir(parents=True)
    job = jobdef.with_inputs(request.job, request.inputs)
    for replica in request.inputs:
        # the mv copytool links inputs from the parent of the job directory: the pilot home
        shutil.copyfile(replica, paths.home / Path(replica).name)
    name = jobdef.trf_name(job)
    environment = dict(request.environment)
    if request.trf_from == "http":
        shutil.copy2(request.trf, paths.trf_dir / name)
    elif request.trf_from == "harvester-workdir":
        shutil.copy2(request.trf, paths.harvester / name)
        environment["HARVESTER_WORKDIR"] = str(paths.harvester)
    queue_name, queue_record = request.queue or (QUEUE, site.queue_data(QUEUE, params=QUEUE_PARAMS))
    site.write_queue_files(paths.home, queue_name, queue_record)
    if request.storage is not None:
        (paths.www / "storage").symlink_to(Path(request.storage).resolve())
    paths.storage_data.write_text(json.dumps(site.storage_data(), indent=1))
    paths.pilot_config.write_text(site.loopback_config(pilot.default_config, PILOT_SETTINGS))
    paths.job_template.write_text(json.dumps(job, indent=1))
    paths.settings.write_text(json.dumps({
        "trf_name": name, "timeout_s": request.timeout_s(), "pilot_version": pilot.version,
        "pilot_command": list(pilot.command), "pilot_environment": environment,
        # our launcher needs PYTHONPATH to be found (and drops it); pilot.py finds its own package
        "keep_pythonpath": not pilot.has_pilot_py,
        "storage_port": request.storage_port,
        "pilot_options": pilot_options(paths, request.lifetime_s, pilot, queue_name)}, indent=1))
    return paths


def _environment() -> dict:
    """Ours, with the repository root importable (this package is `scripts.pilot_harness`) and this Python first on PATH: the trf's
    `#!/usr/bin/env python3` must find the interpreter that has numpy, h5py and the framework."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _sandbox_pid(unshare: subprocess.Popen) -> Optional[int]:
    """The sandbox's PID as seen from here (the only child of unshare, which forwards no signal),
    or None once it has ended."""
    try:
        children = Path(f"/proc/{unshare.pid}/task/{unshare.pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def _sigterm_when_seen(paths: layout.RunPaths, panda_id: str, text: str,
                       unshare: subprocess.Popen) -> None:
    """Wait until `text` is in the trf's payload.stdout, then SIGTERM the sandbox (which passes it
    on to the pilot); returns early if the pilot ends first."""
    stdout = paths.job_dir(panda_id) / "payload.stdout"
    while unshare.poll() is None:
        if stdout.is_file() and text in stdout.read_text(errors="replace"):
            pid = _sandbox_pid(unshare)
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
            return
        time.sleep(0.5)


def launch(paths: layout.RunPaths, panda_id: str, timeout_s: float,
           sigterm_after: Optional[str] = None) -> int:
    """Run the sandbox in its own PID and network namespace; returns the pilot's exit code.

    `--kill-child` ties the namespace to unshare: killing unshare (timeout, Ctrl-C) ends every
    process in it, and nothing else.
    """
    command = ["unshare", "--pid", "--fork", "--mount-proc", "--net", "--kill-child",
               sys.executable, "-m", "scripts.pilot_harness.sandbox", str(paths.root)]
    with open(paths.sandbox_log, "wb") as log:
        process = subprocess.Popen(command, cwd=paths.root, env=_environment(),
                                   stdout=log, stderr=subprocess.STDOUT)
        try:
            if sigterm_after:
                _sigterm_when_seen(paths, panda_id, sigterm_after, process)
            return process.wait(timeout=timeout_s + 30)
        except subprocess.TimeoutExpired:
            raise HarnessError(f"the pilot did not end within {timeout_s + 30:.0f} s; "
                               f"see {paths.pilot_stdout}") from None
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def run_job(request: PilotJob, run_dir: Path) -> dict:
    """Run `request` through the real pilot in `run_dir`; returns the verdict (also summary.json)."""
    check_tools()
    request = dataclasses.replace(request, pilot=request.pilot or pilots.pypi())
    paths = prepare(request, run_dir)
    panda_id = str(request.job["PandaID"])
    exit_code = launch(paths, panda_id, request.timeout_s(), request.sigterm_after)
    summary = verdict.collect(paths, panda_id, pilot_exit_code=exit_code,
                              pilot=request.pilot)
    paths.summary.write_text(json.dumps(summary, indent=1, sort_keys=True))
    return summary


def replay(job_file: Path, inputs: Sequence[Path], trf: Path, run_dir: Path, *,
           lifetime_s: Optional[int] = None, sigterm_after: Optional[str] = None,
           pilot: Optional[pilots.Pilot] = None) -> dict:
    """Replay the job in `job_file` (a job or pandaJobData.out) with these input replicas and trf."""
    job = jobdef.load(job_file)
    request = PilotJob(job=job, inputs=tuple(inputs), trf=trf, sigterm_after=sigterm_after,
                       pilot=pilot, **({"lifetime_s": lifetime_s} if lifetime_s else {}))
    return run_job(request, run_dir)

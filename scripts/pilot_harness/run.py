"""Run one PanDA job through the real pilot on this machine, isolated, and return its verdict.

The host side: lay out the run directory (pilot home with the input replicas and queue data,
Harvester directory with the job, the trf to serve, a loopback-only pilot configuration), start the
sandbox inside `unshare --pid --fork --mount-proc --net`, optionally ask the pilot to kill the
payload, and collect the verdict.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

from pilot_harness import jobdef, layout, site, verdict

# Options of the pilot for a local Harvester PUSH run (shared/pilot-local/README.md), checked
# against panda-pilot 3.7.0.36. The trf base URL (-g) is added inside the sandbox.
QUEUE = "LOCAL_TEST"

# Pilot settings that shorten waits meant for a grid site: how often the pilot looks for the kill
# instruction file and re-checks disk space, memory and output sizes (seconds).
FAST_CHECKS = {
    "Pilot": {"kill_instruction_time": "5", "disk_space_verification_time": "60",
              "memory_usage_verification_time": "60", "output_verification_time": "60",
              "checks": "space,last_heartbeat,threads"},
}

REQUIRED_TOOLS = {"unshare": "util-linux", "ip": "iproute2"}


class HarnessError(RuntimeError):
    """The harness could not run the pilot (missing tool, bad job definition)."""


@dataclass(frozen=True)
class KillRequest:
    """Ask the pilot to kill the payload once `after_line` appears in payload.stdout.

    `how` is "instruction" (the pilot's kill-instruction file, `pilot_kill_payload` in its home) or
    "sigterm" (SIGTERM to the pilot, as a batch system ending the slot).
    """

    after_line: str
    how: str = "instruction"


@dataclass(frozen=True)
class PilotJob:
    """One job to run: its definition, the input replicas to stage in, and the trf to serve."""

    job: Mapping[str, str]
    inputs: Sequence[Path]
    trf: Path
    lifetime_s: int = 900
    queue_params: Mapping[str, object] = field(default_factory=dict)
    kill: Optional[KillRequest] = None
    timeout_s: float = 900.0


def check_tools() -> None:
    """HarnessError naming the package to install when unshare or ip is missing."""
    missing = [f"{tool} (apt-get install {pkg})" for tool, pkg in REQUIRED_TOOLS.items()
               if shutil.which(tool) is None]
    if missing:
        raise HarnessError("the pilot runs only inside a namespace; missing: " + ", ".join(missing))


def pilot_options(paths: layout.RunPaths, queue: str, lifetime_s: int) -> list[str]:
    """The launcher's command line: PUSH mode, no server updates, everything local."""
    return [
        "-q", queue, "--pilot-user", "generic", "-w", "generic", "-d", "-z", "-t", "-u",
        "-l", str(lifetime_s), "--url", "http://127.0.0.1", "-p", site.UNUSED_SERVER.split(":")[1],
        "--queuedata-url", str(paths.home / "queuedata.json"),
        "--storagedata-url", str(paths.storage_data),
        "--harvester-datadir", str(paths.harvester), "--harvester-workdir", str(paths.harvester),
        "--harvester-submit-mode", "PUSH", "--output-dir", str(paths.output),
        "--use-https", "False", "--use-rucio-traces", "False", "--cleanup", "False",
    ]


def prepare(request: PilotJob, run_dir: Path) -> layout.RunPaths:
    """Lay out `run_dir` (which must not exist) for `request`; returns its paths."""
    import pilot.util.config as pilot_config

    paths = layout.RunPaths(Path(run_dir).resolve())
    for directory in (paths.home, paths.harvester, paths.trf_dir, paths.output, paths.site):
        directory.mkdir(parents=True)
    job = jobdef.with_inputs(request.job, request.inputs)
    for replica in request.inputs:
        # the mv copytool moves inputs from the parent of the job directory, i.e. the pilot home
        shutil.copy2(replica, paths.home / Path(replica).name)
    name = jobdef.trf_name(job)
    shutil.copy2(request.trf, paths.trf_dir / name)
    (paths.trf_dir / name).chmod(0o755)
    site.write_queue_files(paths.home, QUEUE, params=request.queue_params)
    paths.storage_data.write_text(json.dumps(site.storage_data(), indent=1))
    library_cfg = Path(pilot_config.__file__).with_name("default.cfg")
    paths.pilot_config.write_text(site.loopback_config(library_cfg, FAST_CHECKS))
    paths.job_template.write_text(json.dumps(job, indent=1))
    paths.settings.write_text(json.dumps({
        "trf_name": name, "timeout_s": request.timeout_s,
        "pilot_options": pilot_options(paths, QUEUE, request.lifetime_s)}, indent=1))
    return paths


def _environment() -> dict:
    """The pilot's environment: ours, with this package importable and this Python first on PATH
    (the trf's `#!/usr/bin/env python3` must find the interpreter that has numpy, h5py, …)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _watch_for_kill(paths: layout.RunPaths, panda_id: str, request: KillRequest,
                    process: subprocess.Popen) -> None:
    stdout = paths.job_dir(panda_id) / "payload.stdout"
    while process.poll() is None:
        if stdout.exists() and request.after_line in stdout.read_text(errors="replace"):
            if request.how == "sigterm":
                process.send_signal(signal.SIGTERM)  # unshare forwards nothing; see sandbox
            else:
                (paths.home / "pilot_kill_payload").touch()
            return
        time.sleep(0.5)


def launch(paths: layout.RunPaths, panda_id: str, kill: Optional[KillRequest],
           timeout_s: float) -> int:
    """Run the sandbox in its namespace and wait; returns the pilot's exit code."""
    command = ["unshare", "--pid", "--fork", "--mount-proc", "--net", "--kill-child",
               sys.executable, "-m", "pilot_harness.sandbox", str(paths.root)]
    process = subprocess.Popen(command, cwd=paths.root, env=_environment(),
                               stdout=subprocess.DEVNULL, stderr=open(paths.root / "sandbox.stderr", "wb"))
    try:
        if kill is not None:
            _watch_for_kill(paths, panda_id, kill, process)
        return process.wait(timeout=timeout_s + 60)
    except BaseException:
        process.kill()  # --kill-child takes the whole namespace down with it
        process.wait()
        raise


def run_job(request: PilotJob, run_dir: Path) -> dict:
    """Run `request` through the real pilot in `run_dir`; returns the verdict (also summary.json)."""
    check_tools()
    paths = prepare(request, run_dir)
    panda_id = str(request.job["PandaID"])
    exit_code = launch(paths, panda_id, request.kill, request.timeout_s)
    summary = verdict.collect(paths, panda_id, pilot_exit_code=exit_code)
    paths.summary.write_text(json.dumps(summary, indent=1, sort_keys=True))
    return summary

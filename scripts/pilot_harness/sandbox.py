"""What runs inside the pilot's namespace: loopback up, the trf server, the pilot, nothing else.

The pilot is the command in the run's settings: pilot3's own pilot.py, or our launcher for PyPI's
panda-pilot (scripts.pilot_harness.pilots).

`run.launch` starts this module as `unshare --pid --fork --mount-proc --net --kill-child python -m
scripts.pilot_harness.sandbox RUNDIR`. This process is then PID 1 of a namespace whose only network is its
own loopback: the pilot's end-of-job cleanup (it kills the orphans of its user, and we are root)
sees nothing outside, and when this process ends the kernel ends whatever is left inside.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from scripts.pilot_harness import layout


def check_isolated() -> None:
    """Refuse to go on unless this is PID 1 of a namespace whose only network interface is lo."""
    interfaces = sorted(name for _, name in socket.if_nameindex())
    if os.getpid() != 1 or interfaces != ["lo"]:
        raise SystemExit(f"refusing to run the pilot: not isolated (pid {os.getpid()}, network "
                         f"interfaces {interfaces}); use unshare --pid --fork --mount-proc --net")


def bring_up_loopback() -> None:
    """`ip link set lo up`: a new network namespace starts with loopback down."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


class _LoggingHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        print("trf-server: " + format % args, file=sys.stderr, flush=True)


def serve_directory(directory: Path, port: int = 0) -> http.server.ThreadingHTTPServer:
    """An HTTP server on 127.0.0.1 serving `directory`, running in a thread; port 0: a free one
    (inside the namespace every port is free: its loopback is its own)."""
    handler = functools.partial(_LoggingHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, name="trf-server", daemon=True).start()
    return server


def write_job_definition(paths: layout.RunPaths, trf_url: str) -> None:
    """pandaJobData.out for Harvester PUSH mode, with `transformation` pointing at our server."""
    job = json.loads(paths.job_template.read_text())
    job["transformation"] = trf_url
    paths.job_data.write_text(json.dumps({str(job["PandaID"]): job}, indent=1))


def run_pilot(paths: layout.RunPaths, settings: dict, options: list[str]) -> int:
    """The pilot in its home, PILOT_NOKILL set; its exit code, or 124 on timeout.

    A SIGTERM to this process goes on to the pilot, as a batch system's would.
    """
    env = dict(os.environ, PILOT_NOKILL="1", NO_CVMFS_OK="1",
               HARVESTER_PILOT_CONFIG=str(paths.pilot_config), **settings["pilot_environment"])
    if not settings["keep_pythonpath"]:
        env.pop("PYTHONPATH", None)
    timeout_s = settings["timeout_s"]
    with open(paths.pilot_stdout, "wb") as out:
        child = subprocess.Popen([*settings["pilot_command"], *options],
                                 cwd=paths.home, env=env, stdout=out, stderr=subprocess.STDOUT)
        signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
        try:
            return child.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            return 124


def main(argv: list[str]) -> int:
    """Entry point inside the namespace: `python -m scripts.pilot_harness.sandbox RUNDIR`."""
    check_isolated()
    paths = layout.RunPaths(Path(argv[0]))
    settings = json.loads(paths.settings.read_text())
    bring_up_loopback()
    server = serve_directory(paths.www, settings.get("storage_port", 0))
    base_url = f"http://127.0.0.1:{server.server_address[1]}/trf"
    write_job_definition(paths, f"{base_url}/{settings['trf_name']}")
    code = run_pilot(paths, settings, [*settings["pilot_options"], "-g", base_url])
    server.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

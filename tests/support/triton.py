"""Real inference servers for tests: `dune-payload-serve` and PyTriton test models, in the serve venv.
A conftest imports these fixtures by name to use them.

    def test_x(triton_server, tiny_model):
        server = triton_server("--maxBatchSize", "4")          # tiny_model.model served as dune-tiny
        client = tritonclient.grpc.InferenceServerClient(server.url.removeprefix("grpc://"))
        server.kill()                                          # the server dies mid-job

Both factories are module-scoped: a server started in a module is shared by its tests and stopped
(SIGTERM, then SIGKILL, by PID) when the module ends. Every server binds 127.0.0.1 on free ports.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from tests.support.samples import ROOT
from tests.support.seaweed import free_ports

READY = re.compile(r"^(dune-payload-serve|triton_models): serving (\S+) version (\d+) .* on (grpc://\S+)$")
START_BOUND_S = 240.0      # start-up includes a TensorFlow import and model load on 2 shared cores
STOP_GRACE_S = 40.0        # tritonserver waits up to 30 s for in-flight requests


@dataclass
class RunningServer:
    """A server process started by a fixture: where it listens, what it serves, its log."""

    url: str                 # grpc://127.0.0.1:PORT
    port: int                # gRPC
    http_port: int
    pid: int
    model: str               # the served model's name
    ready_line: str
    log: Path                # its stderr (tritonserver's log, the framework's)
    process: subprocess.Popen

    def stop(self) -> Optional[int]:
        """SIGTERM, then SIGKILL after the grace; the exit code (negative: the signal)."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.wait()

    def kill(self) -> None:
        """SIGKILL: the server dies at once, as a crashed node's would (its tritonserver follows:
        PyTriton starts it with a parent-death signal)."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait()


def start_server(argv: list, logs: Path, name: str) -> RunningServer:
    """Start `argv` (ports appended), wait for its ready line; fails naming its log on a bound."""
    grpc_port, http_port = free_ports(2)
    logs.mkdir(parents=True, exist_ok=True)
    out, log = logs / f"{name}-{grpc_port}.out", logs / f"{name}-{grpc_port}.log"
    with open(out, "wb") as stdout, open(log, "wb") as stderr:
        process = subprocess.Popen([*argv, "--grpcPort", str(grpc_port), "--httpPort", str(http_port)],
                                   cwd=ROOT, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
    deadline = time.monotonic() + START_BOUND_S
    while time.monotonic() < deadline and process.poll() is None:
        match = READY.match(out.read_text().strip())
        if match:
            return RunningServer(match.group(4), grpc_port, http_port, process.pid, match.group(2),
                                 match.group(0), log, process)
        time.sleep(0.2)
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()
    pytest.fail(f"{name} did not become ready (exit {process.returncode}); stdout: {out.read_text()[-500:]!r}; "
                f"log {log}:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def serve_python() -> Path:
    """The serve venv's python (built once: scripts.tools.serve_venv)."""
    from scripts.tools import serve_venv

    return serve_venv.ensure(log=lambda _line: None)


@pytest.fixture(scope="module")
def triton_server(serve_python, tmp_path_factory, request):
    """Factory: `triton_server(*options, model_file=None)` starts `python -m wrapper.serve` on
    `model_file` (default: the `tiny_model` fixture's, built only then) with free ports and returns
    its RunningServer once ready."""
    started: list[RunningServer] = []
    logs = tmp_path_factory.mktemp("serve-logs")

    def start(*options: str, model_file: Optional[Path] = None) -> RunningServer:
        argv = [str(serve_python), "-m", "wrapper.serve", "--modelFile", str(model_file or request.getfixturevalue("tiny_model").model),
                *options]
        started.append(start_server(argv, logs, "serve"))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def triton_test_model(serve_python, tmp_path_factory):
    """Factory: `triton_test_model(kind, delay=S, maxQueueSize=N, ...)` starts
    tests/support/triton_models.py (options by their flag names) and returns its RunningServer."""
    started: list[RunningServer] = []
    logs = tmp_path_factory.mktemp("test-model-logs")

    def start(kind: str, **options) -> RunningServer:
        flags = [word for name, value in options.items() for word in (f"--{name}", str(value))]
        argv = [str(serve_python), "-m", "tests.support.triton_models", "--kind", kind, *flags]
        started.append(start_server(argv, logs, f"model-{kind}"))
        return started[-1]

    yield start
    for server in started:
        server.stop()

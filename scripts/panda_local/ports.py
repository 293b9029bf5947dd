"""Free loopback ports and stopping our own processes by PID (never by name)."""
from __future__ import annotations

import os
import signal
import socket
import time

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def stop_pid(pid: int, first: signal.Signals = signal.SIGTERM, timeout_s: float = 30.0) -> None:
    """Send `first` to the process group led by `pid` (started with start_new_session), wait,
    then SIGKILL the group if anything of it is left."""
    try:
        os.killpg(pid, first)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid if not _alive(pid) else 0
        if done == pid:
            break
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True

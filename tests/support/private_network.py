"""A network namespace of a test's own, with only a loopback interface, for processes that listen.

TensorFlow's collective server (MultiWorkerMirroredStrategy) listens on every interface of the
node (`[::]:port`), whatever address the cluster names: on a node that is what lets workers on
other nodes connect. A test's workers instead run in a namespace this module makes, where every
interface is the namespace's own loopback, so nothing they open is reachable from outside it.
Needs root (`unshare --net`), as the pilot tests do.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def private_network() -> Iterator[list[str]]:
    """Yields a command prefix that runs what follows it (exec'd, the same PID) in a fresh network
    namespace whose `lo` is up; the namespace lives until the context ends. All commands started
    with the prefix share that one namespace."""
    holder = subprocess.Popen(["unshare", "--net", "sh", "-c", "ip link set lo up && exec sleep 86400"],
                              stdin=subprocess.DEVNULL)
    try:
        ours = os.readlink("/proc/self/ns/net")
        namespace = Path(f"/proc/{holder.pid}/ns/net")
        deadline = time.monotonic() + 30
        while True:
            if holder.poll() is not None:
                raise RuntimeError(f"unshare --net failed (exit {holder.returncode})")
            up = subprocess.run(["nsenter", f"--net={namespace}", "ip", "-o", "link", "show", "lo"],
                                capture_output=True, text=True)
            if os.readlink(namespace) != ours and "UP" in up.stdout.split("state")[0]:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the namespace's lo did not come up: {up.stdout}{up.stderr}")
            time.sleep(0.05)
        yield ["nsenter", f"--net={namespace}", "--"]
    finally:
        holder.kill()
        holder.wait()

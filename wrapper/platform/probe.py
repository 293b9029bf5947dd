"""Detect the platform, framework included, in a separate interpreter.

The framework probe imports TensorFlow and initialises CUDA. Done inside the trf it would hold a
GPU context (on an exclusive-process GPU the payload's own process could then not have one) and
the framework's memory for the whole job; the trf stays free of the framework so that it survives
whatever the payload's process does.
"""
from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys

from wrapper.platform.framework import cpu_only_framework
from wrapper.platform.detect import Platform, detect_platform, with_usability

_PROBE = ("import pickle, sys; sys.path[:0] = {path!r}; "
          "from wrapper.platform.detect import detect_platform; "
          "sys.stdout.buffer.write(pickle.dumps(detect_platform(probe_framework=True)))")
PROBE_TIMEOUT_S = 300.0


def detect_platform_apart() -> Platform:
    """`detect_platform(probe_framework=True)` run in a child interpreter. If that process fails,
    the platform without the framework, the failure recorded in `problems`.

    A node where neither NVML nor nvidia-smi sees a GPU, with a framework build that cannot use
    one, needs no probe: its package metadata says all the probe would (saving a framework import,
    seconds, on every CPU job)."""
    seen = detect_platform(probe_framework=False)
    if seen.source == "none":
        cpu_only = cpu_only_framework(seen.keras_backend)
        if cpu_only is not None:
            return with_usability(dataclasses.replace(seen, framework=cpu_only))
    code = _PROBE.format(path=[p for p in sys.path if p])
    try:
        # The framework's start-up chatter on stderr is kept out of the job's log; its last line
        # names the problem if the probe fails.
        done = subprocess.run([sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=PROBE_TIMEOUT_S)
        if done.returncode == 0:
            return pickle.loads(done.stdout)
        last = (done.stderr.decode("utf-8", "replace").strip().splitlines() or [""])[-1]
        failure = f"framework: the probe process ended with status {done.returncode}: {last[:200]}"
    except subprocess.TimeoutExpired:
        failure = f"framework: the probe process did not answer within {PROBE_TIMEOUT_S:g} s"
    return dataclasses.replace(seen, problems=(*seen.problems, failure))

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

from wrapper.platform import Platform, detect_platform

_PROBE = ("import pickle, sys; sys.path[:0] = {path!r}; "
          "from wrapper.platform import detect_platform; "
          "sys.stdout.buffer.write(pickle.dumps(detect_platform(probe_framework=True)))")
PROBE_TIMEOUT_S = 300.0


def detect_platform_apart() -> Platform:
    """`detect_platform(probe_framework=True)` run in a child interpreter. If that process fails,
    the platform without the framework, the failure recorded in `problems`."""
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
    platform = detect_platform(probe_framework=False)
    return dataclasses.replace(platform, problems=(*platform.problems, failure))

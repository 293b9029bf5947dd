"""The trf's side of the payload step: run it in a supervised child process and survive its death.

A framework abort, a segfault in a CUDA library or the kernel's OOM killer ends only the child; the
trf then names the cause (`payload-crashed` with the signal, `gpu-oom`, `host-oom`), removes the
partial outputs and writes both reports. Progress ticks and checkpoints to upload come over a pipe;
stop requests (signals, --timeLimit) go the other way, and a child that does not stop in time is
killed. The child's stderr passes through to ours, its tail kept to tell an OOM from a crash.

Why a fresh interpreter (subprocess), not multiprocessing: the child must run from exactly the
trf's code, which may be a zipapp (.pyz); passing our sys.path to `python -c` does that for the pyz,
an installed package and a source tree alike, where multiprocessing's spawn would re-run the pyz's
__main__. Never fork: forking after a framework or a boto3 thread pool has started is unsafe.
"""
from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing import Pipe
from pathlib import Path
from typing import Callable, Optional

from wrapper import exitcodes as ec
from wrapper.causes import Cause
from wrapper.console import log
from wrapper.errors import ExecutionError, PayloadCrashed, PayloadOutOfMemory, TrfError
from wrapper.platform.memory_limits import describe_limits, oom_kills
from wrapper.step.child import oom_cause
from wrapper.step.messages import (CheckpointSaved, Failed, Final, OutOfMemory, ProgressTick, Result,
                                   Started, Stopped, StopRequest, Unexpected)
from wrapper.step.request import StepRequest

STOP_WAIT_S = 10.0        # a child asked to stop (time limit) gets this long, then SIGKILL
SIGNAL_WAIT_S = 0.5       # after a stop signal the trf has seconds left: the child gets this long
STDERR_TAIL = 64          # lines of the child's stderr kept for the diagnosis
POLL_S = 0.2
# abseil's INFO/WARNING lines ("I0000 00:00:...", "W1202 ...") and its notice before logging is set
# up: the framework's chatter, never its last words.
_FRAMEWORK_CHATTER = re.compile(r"^([IW]\d{4} \d\d:\d\d|WARNING: All log messages before absl)")

_BOOT = ("import sys; sys.path[:0] = {path!r}; "
         "from wrapper.step.child import main; main({fd})")


@dataclass
class ChildOutcome:
    """What the supervision learnt besides the result: direct-access read figures by input name."""

    direct_stats: dict = field(default_factory=dict)


class Child:
    """One running payload child: its process, its pipe and the tail of its stderr."""

    def __init__(self, request: StepRequest):
        parent_end, child_end = Pipe(duplex=True)
        self.conn = parent_end
        self.device = request.device
        self.oom_kills_before = oom_kills()
        boot = _BOOT.format(path=[p for p in sys.path if p], fd=child_end.fileno())
        self.proc = subprocess.Popen([sys.executable, "-c", boot], pass_fds=(child_end.fileno(),),
                                     stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        child_end.close()
        self.killed_by_us = False
        self.stop_asked_at: Optional[float] = None      # time.monotonic() of the stop request
        self.tail: collections.deque = collections.deque(maxlen=STDERR_TAIL)
        self._tee = threading.Thread(target=self._copy_stderr, name="payload-stderr", daemon=True)
        self._tee.start()
        self.conn.send(request)

    def _copy_stderr(self) -> None:
        # Where this process's own descriptor 2 goes: the entry point points it at stdout
        # (wrapper.report.stdout_logging), so the framework's notices stay out of payload.stderr, which
        # pilot 3.11 scans for container-runtime failures.
        for line in iter(self.proc.stderr.readline, b""):
            self.tail.append(line.decode("utf-8", "replace").rstrip("\n"))
            try:
                os.write(2, line)
            except OSError:
                continue

    def ask_to_stop(self) -> None:
        self.stop_asked_at = time.monotonic()
        try:
            self.conn.send(StopRequest())
        except (OSError, ValueError):
            pass

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signum)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL the child (if it still runs) and reap it."""
        if self.proc.poll() is None:
            self.killed_by_us = True
            self.signal(signal.SIGKILL)
        self.proc.wait()

    def end(self, wait_s: float) -> None:
        """Let the child end within `wait_s`, else kill it; then collect its stderr."""
        try:
            self.proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            self.kill()
        self._tee.join(timeout=2)
        self.conn.close()

    def death(self) -> TrfError:
        """The error that names how the child ended without a final message."""
        return death_error(self.proc.returncode, list(self.tail), self.device,
                           self.oom_kills_before, oom_kills())


def last_words(tail: list[str]) -> str:
    """The child's last stderr line that is not the framework's routine logging ("" if none)."""
    for line in reversed(tail):
        if line.strip() and not _FRAMEWORK_CHATTER.match(line):
            return line.strip()
    return ""


def host_oom_advice() -> str:
    """What to change after a host out-of-memory, with the limit the job met where one is known."""
    limits = describe_limits()
    return ((f" ({limits})" if limits else "") + "; ask the queue for more memory per job (the task's "
            "ramCount), or use a smaller --batchSize or fewer events per job")


def death_error(code: Optional[int], tail: list[str], device: str, oom_kills_before: Optional[int],
                oom_kills_after: Optional[int]) -> TrfError:
    """The error for a child that ended with status `code` (negative: the signal) without a final
    message: out of memory where its stderr `tail` or the memory cgroup's OOM-kill counter says so,
    otherwise a crash naming the signal or the status."""
    words = last_words(tail)
    detail = f"; its last error line: {words[:200]}" if words else ""
    cause = oom_cause("\n".join(tail), device)
    if code == -signal.SIGKILL and oom_kills_after is not None and oom_kills_before is not None \
            and oom_kills_after > oom_kills_before:
        return PayloadOutOfMemory("the payload step ran out of host memory and the kernel's OOM killer "
                                  "ended it" + host_oom_advice(), cause=Cause.HOST_OOM, extra=detail)
    if cause is Cause.HOST_OOM:
        return PayloadOutOfMemory("the payload step ran out of host memory" + host_oom_advice(),
                                  cause=Cause.HOST_OOM, extra=detail)
    if cause is Cause.GPU_OOM:
        return PayloadOutOfMemory("the payload step ran out of GPU memory; use a smaller --batchSize "
                                  "or a build for a larger GPU", cause=Cause.GPU_OOM, extra=detail)
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        hint = (" (the kernel's OOM killer also sends SIGKILL: check the job's memory)"
                if -code == signal.SIGKILL else "")
        return PayloadCrashed(f"the payload step crashed: killed by {name}{hint}; partial outputs "
                              "removed, see the log for the framework's last words", extra=detail)
    return PayloadCrashed(f"the payload step exited with status {code} without a result; partial "
                          "outputs removed, see the log", extra=detail)


def run_supervised(request: StepRequest, *, on_progress: Callable,
                   stop_requested: Callable[[], bool], stop_reason: Callable[[], Optional[TrfError]],
                   on_checkpoint: Optional[Callable[[Path], None]] = None,
                   outcome: Optional[ChildOutcome] = None):
    """Run `request` in a child process and return its StepResult; raise the TrfError that names
    why it did not finish. `stop_requested()` is polled: when it turns true the child is asked to
    stop, and killed if it has not within STOP_WAIT_S."""
    outcome = outcome if outcome is not None else ChildOutcome()
    child = Child(request)
    try:
        final = _final_message(child, on_progress, stop_requested, stop_reason, on_checkpoint)
    except BaseException as err:
        # A stop signal (or a bug) in the trf: pass the signal on, give the child a moment, kill it.
        signum = getattr(err, "signum", None)
        if signum is not None:
            child.signal(signum)
        child.end(SIGNAL_WAIT_S if signum is not None else 0)
        raise
    child.end(STOP_WAIT_S)
    if final is None:
        if child.stop_asked_at is not None and child.killed_by_us:
            raise stop_reason() or child.death()
        raise child.death()
    outcome.direct_stats = dict(final.direct_stats)
    return _step_result(final, stop_reason)


def _final_message(child: Child, on_progress: Callable, stop_requested: Callable[[], bool],
                   stop_reason: Callable[[], Optional[TrfError]],
                   on_checkpoint: Optional[Callable[[Path], None]]) -> Optional[Final]:
    """Pass the child's progress and checkpoints on until its final message; None when it ended
    (or its pipe broke) without one."""
    while True:
        if child.conn.poll(POLL_S):
            try:
                message = child.conn.recv()
            except (EOFError, OSError):
                return None
            if isinstance(message, ProgressTick):
                on_progress(message.tick)
            elif isinstance(message, Started):
                log(f"payload step: process {message.pid}, code from {message.code_root}")
            elif isinstance(message, CheckpointSaved):
                if on_checkpoint is not None:
                    on_checkpoint(message.path)
            else:
                return message
        elif child.proc.poll() is not None and not child.conn.poll(0):
            return None
        _stop_if_requested(child, stop_requested, stop_reason)


def _stop_if_requested(child: Child, stop_requested: Callable[[], bool],
                       stop_reason: Callable[[], Optional[TrfError]]) -> None:
    """Ask the child to stop once a stop is requested; kill it (and raise why) when it has not
    stopped within STOP_WAIT_S."""
    if child.stop_asked_at is None and stop_requested():
        child.ask_to_stop()
    elif child.stop_asked_at is not None and time.monotonic() - child.stop_asked_at > STOP_WAIT_S:
        child.kill()
        raise stop_reason() or ExecutionError("the payload step did not stop when asked")


def _step_result(final: Final, stop_reason: Callable[[], Optional[TrfError]]):
    """The StepResult the final message carries, or the TrfError it names."""
    match final:
        case Result():
            return final.result
        case Stopped():
            raise stop_reason() or ExecutionError("the payload stopped without a reason")
        case Failed():
            raise final.error()
        case OutOfMemory(cause=Cause.GPU_OOM):
            raise PayloadOutOfMemory(f"the payload step ran out of GPU memory: {final.text}; use a "
                                     "smaller --batchSize or a build for a larger GPU", cause=final.cause)
        case OutOfMemory():
            raise PayloadOutOfMemory(f"the payload step ran out of host memory: {final.text}"
                                     + host_oom_advice(), cause=final.cause)
        case Unexpected():
            raise TrfError(f"unexpected {final.type_name} in the payload step: {final.text[:200]}; this "
                           "is a bug, please report it with the log", exit_code=ec.UNEXPECTED_OTHER)
    raise TypeError(f"not a final message of the payload step: {final!r}")

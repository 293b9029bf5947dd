"""The supervised child process that runs the payload step (the parent side is wrapper/step/supervisor.py).

It reads one StepRequest from its pipe, runs it, and sends back progress ticks, checkpoints to
upload, and one final message: the result, a failure, out of memory, stopped, or an unexpected
error (the types are in wrapper/step/messages.py). A stop request comes as a message on the pipe
or as SIGTERM/SIGINT/SIGUSR1 (the pilot signals the whole process group); the payload then stops at
its next check. When the pipe closes (the trf is gone) the child exits at once, so it never writes
on behind a trf that has already reported.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable, Optional, Sequence

import wrapper
from wrapper.causes import Cause
from wrapper.console import log
from wrapper.errors import JobStopped, TrfError
from wrapper.staging import open_direct_source
from wrapper.step.messages import (CheckpointSaved, DirectStats, Failed, Final, OutOfMemory,
                                   ProgressTick, Result, Started, Stopped, StopRequest, Unexpected)
from wrapper.step.request import StepRequest, run_step

OOM_TYPES = ("ResourceExhaustedError", "OutOfMemoryError")
# What TensorFlow, XLA and the CUDA runtime say when a device allocation fails.
OOM_TEXTS = ("OOM when allocating", "RESOURCE_EXHAUSTED", "CUDA_ERROR_OUT_OF_MEMORY",
             "out of memory", "Out of memory")
# C++'s operator new failing (TensorFlow's CPU kernels under a data or address-space limit end in
# "terminate called after throwing an instance of 'std::bad_alloc'" and SIGABRT): host memory,
# whatever the device.
HOST_OOM_TEXTS = ("std::bad_alloc",)


def oom_cause(text: str, device: str) -> Optional[Cause]:
    """Cause.GPU_OOM or Cause.HOST_OOM when `text` (an error or a stderr tail) reports an
    allocation failure on `device`, else None."""
    if not any(t in text for t in OOM_TEXTS):
        return Cause.HOST_OOM if any(t in text for t in HOST_OOM_TEXTS) else None
    on_gpu = device == "gpu" or "GPU" in text or "CUDA" in text or "cuda" in text
    return Cause.GPU_OOM if on_gpu else Cause.HOST_OOM


def prepare_framework_environment() -> None:
    """Process-wide framework settings, made before TensorFlow is imported in this process.

    The place for anything that must precede the framework's start (thread pools, allocators).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


class Channel:
    """The child's end of the pipe: sends from any thread, and a reader thread for stop requests."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.stop = threading.Event()
        self._lock = threading.Lock()

    def send(self, message) -> None:
        """Send one message (wrapper.step.messages) to the trf."""
        with self._lock:
            self.conn.send(message)

    def listen(self) -> None:
        threading.Thread(target=self._read, name="stop-requests", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                # The trf is gone: nothing this process writes could still be reported or committed.
                os._exit(1)
            if isinstance(message, StopRequest):
                self.stop.set()


def _direct_stats(opened: Sequence) -> DirectStats:
    return {f.name: f.stats() for f in opened if callable(getattr(f, "stats", None))}


def _open_inputs(request: StepRequest, opened: list) -> list:
    """The payload's inputs: a local path as it is, a DirectSource opened again in this process
    (each file object opened is appended to `opened`, for the caller to close)."""
    inputs = []
    for item in request.inputs:
        if isinstance(item, Path):
            inputs.append(item)
        else:
            opened.append(open_direct_source(item))
            inputs.append(opened[-1])
    return inputs


def _unexpected(err: Exception, device: str, stats: DirectStats) -> Final:
    """An exception the payload step does not translate: out of memory where its type or text says
    so, else a bug (its traceback goes to stderr, the log)."""
    text = f"{type(err).__name__}: {err}"
    cause = oom_cause(text, device)
    if cause is None and type(err).__name__ in OOM_TYPES:
        cause = Cause.GPU_OOM if device == "gpu" else Cause.HOST_OOM
    if cause:
        return OutOfMemory(cause, text.splitlines()[0][:300], stats)
    traceback.print_exc()
    return Unexpected(type(err).__name__, str(err)[:500], stats)


def _step(channel: Channel, request: StepRequest, inputs: list, stats: Callable[[], DirectStats]) -> Final:
    """Run the payload step; its end as the final message."""
    on_checkpoint = ((lambda path: channel.send(CheckpointSaved(Path(path))))
                     if request.report_checkpoints else None)
    try:
        result = run_step(request, inputs, on_progress=lambda tick: channel.send(ProgressTick(tick)),
                          should_stop=channel.stop.is_set, on_checkpoint=on_checkpoint)
    except JobStopped:
        return Stopped(stats())
    except TrfError as err:
        return Failed.of(err, stats())
    except MemoryError:
        return OutOfMemory(Cause.HOST_OOM, "host memory exhausted (MemoryError)", stats())
    except Exception as err:  # noqa: BLE001 - sent to the trf, which reports it
        return _unexpected(err, request.device, stats())
    return Result(result, stats())


def _run(channel: Channel, request: StepRequest) -> None:
    opened: list = []
    try:
        inputs = _open_inputs(request, opened)
        if request.threads and getattr(request.config, "server", None) is not None:
            # The framework loads only if the job falls back to running the network here; TensorFlow
            # reads its pool sizes from these when it starts.
            os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(request.threads))
            os.environ.setdefault("TF_NUM_INTEROP_THREADS", str(min(2, request.threads)))
        elif request.threads:
            from wrapper.platform.framework_threads import set_framework_threads  # loads the framework

            log(f"framework threads: {set_framework_threads(request.threads)}")
        channel.send(_step(channel, request, inputs, lambda: _direct_stats(opened)))
    finally:
        for f in opened:
            f.close()


def main(fd: int) -> None:
    """Entry point of the child: `fd` is its end of the pipe to the trf."""
    prepare_framework_environment()
    channel = Channel(Connection(fd))
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(signum, lambda *_: channel.stop.set())
    request = channel.conn.recv()
    channel.listen()
    channel.send(Started(os.getpid(), str(Path(wrapper.__file__).parent.parent)))
    code = 0
    try:
        _run(channel, request)
    except BaseException:  # noqa: BLE001 - the pipe broke while sending: the trf reports the rest
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # Skips the interpreter's teardown: the framework's can take seconds or crash, and the trf
    # already has everything it needs from this process.
    os._exit(code)

"""The supervised child process that runs the payload step (the parent side is wrapper/step/supervisor.py).

It reads one StepRequest from its pipe, runs it, and sends back progress ticks, checkpoints to
upload, and one final message: the result, an error, "stopped" or a crash. A stop request comes as
a message on the pipe or as SIGTERM/SIGINT/SIGUSR1 (the pilot signals the whole process group); the
payload then stops at its next check. When the pipe closes (the trf is gone) the child exits at
once, so it never writes on behind a trf that has already reported.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Optional

OOM_TYPES = ("ResourceExhaustedError", "OutOfMemoryError")
# What TensorFlow, XLA and the CUDA runtime say when a device allocation fails.
OOM_TEXTS = ("OOM when allocating", "RESOURCE_EXHAUSTED", "CUDA_ERROR_OUT_OF_MEMORY",
             "out of memory", "Out of memory")
# C++'s operator new failing (TensorFlow's CPU kernels under a data or address-space limit end in
# "terminate called after throwing an instance of 'std::bad_alloc'" and SIGABRT): host memory,
# whatever the device.
HOST_OOM_TEXTS = ("std::bad_alloc",)


def oom_cause(text: str, device: str) -> Optional[str]:
    """`gpu-oom` or `host-oom` when `text` (an error or a stderr tail) reports an allocation failure
    on `device`, else None."""
    if not any(t in text for t in OOM_TEXTS):
        return "host-oom" if any(t in text for t in HOST_OOM_TEXTS) else None
    on_gpu = device == "gpu" or "GPU" in text or "CUDA" in text or "cuda" in text
    return "gpu-oom" if on_gpu else "host-oom"


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

    def send(self, *message) -> None:
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
            if message and message[0] == "stop":
                self.stop.set()


def _direct_stats(handles) -> dict:
    return {h.name: h.stats() for h in handles if callable(getattr(h, "stats", None))}


def _run(channel: Channel, request) -> None:
    from wrapper.errors import TrfError
    from wrapper.step.request import StepStopped, error_fields, run_step
    from wrapper.staging import open_direct_source

    handles = []
    try:
        inputs = []
        for item in request.inputs:
            if isinstance(item, Path):
                inputs.append(item)
            else:
                handles.append(open_direct_source(item))
                inputs.append(handles[-1])
        if request.threads:
            from wrapper.platform.framework_threads import set_framework_threads
            from wrapper.console import log

            log(f"framework threads: {set_framework_threads(request.threads)}")
        on_checkpoint = ((lambda path: channel.send("checkpoint", str(path)))
                         if request.report_checkpoints else None)
        try:
            result = run_step(request, inputs, progress=lambda tick: channel.send("progress", tick),
                              should_stop=channel.stop.is_set, on_checkpoint=on_checkpoint)
        except StepStopped:
            channel.send("stopped", _direct_stats(handles))
        except TrfError as err:
            channel.send("error", error_fields(err), _direct_stats(handles))
        except MemoryError:
            channel.send("oom", "host-oom", "host memory exhausted (MemoryError)", _direct_stats(handles))
        except Exception as err:  # noqa: BLE001 - sent to the trf, which reports it
            text = f"{type(err).__name__}: {err}"
            cause = oom_cause(text, request.device)
            if cause is None and type(err).__name__ in OOM_TYPES:
                cause = "gpu-oom" if request.device == "gpu" else "host-oom"
            if cause:
                channel.send("oom", cause, text.splitlines()[0][:300], _direct_stats(handles))
            else:
                traceback.print_exc()
                channel.send("crash", type(err).__name__, str(err)[:500], _direct_stats(handles))
        else:
            channel.send("result", result, _direct_stats(handles))
    finally:
        for handle in handles:
            handle.close()


def main(fd: int) -> None:
    """Entry point of the child: `fd` is its end of the pipe to the trf."""
    prepare_framework_environment()
    channel = Channel(Connection(fd))
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(signum, lambda *_: channel.stop.set())
    request = channel.conn.recv()
    channel.listen()
    import wrapper

    channel.send("started", os.getpid(), str(Path(wrapper.__file__).parent.parent))
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

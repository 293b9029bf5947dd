"""Stopping on SIGTERM, SIGINT and SIGUSR1 within the pilot's 10 s grace.

The pilot sends SIGTERM to the process group and SIGKILL 10 s later. A Python signal handler only
runs when the main thread returns to Python, which a long framework call can delay for seconds, so
the C-level handler also wakes a watcher thread (through `signal.set_wakeup_fd`). The main thread
gets `StopSignal` raised and normally unwinds and reports; if it has not within `grace` seconds, the
watcher has the caller's `on_abandon` write the report, remove partial outputs and end the process
with 128+N (wrapper.main does that: it is the one place that ends the trf).
"""
from __future__ import annotations

import contextlib
import signal
import socket
import threading
from typing import Callable, Iterator, Optional

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class StopSignal(BaseException):
    """Raised in the main thread when a stop signal arrives. A BaseException, so that no library's
    `except Exception` swallows it on the way up; which is also why it is not the TrfError
    `wrapper.errors.JobStopped` that wrapper.main reports for it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class StopState:
    """What the running job polls: has a stop been requested, and why."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self.event = threading.Event()
        self.shielded = False
        self.raised = False  # set by the handler alone: the watcher may record the signal first

    def shield(self) -> None:
        """From now on only record signals: the work is done and the reports are being written."""
        self.shielded = True

    def requested(self) -> bool:
        return self.event.is_set()


@contextlib.contextmanager
def stop_guard(on_abandon: Callable[[int], None], grace: float = 1.0) -> Iterator[StopState]:
    """Install the handlers for the body of the `with`. `on_abandon(signum)` is called from the
    watcher thread when the main thread has not unwound within `grace` seconds; it must write the
    reports and end the process (with os._exit: the main thread is stuck and cannot unwind)."""
    state = StopState()
    finished = threading.Event()
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    previous = {s: signal.getsignal(s) for s in HANDLED}

    def handler(signum, _frame):
        state.signum = state.signum or signum
        state.event.set()
        if not state.raised and not state.shielded:
            state.raised = True
            raise StopSignal(state.signum)

    def watch() -> None:
        while True:
            data = reader.recv(16)
            if not data or finished.is_set():
                return
            signums = [s for s in data if s in HANDLED]
            if not signums:
                continue
            state.signum = state.signum or signums[0]
            state.event.set()
            if not finished.wait(grace):
                on_abandon(state.signum)
            return

    old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    for signum in HANDLED:
        signal.signal(signum, handler)
    watcher = threading.Thread(target=watch, name="stop-watcher", daemon=True)
    watcher.start()
    try:
        yield state
    finally:
        finished.set()
        for signum, old in previous.items():
            signal.signal(signum, old)
        signal.set_wakeup_fd(old_fd)
        writer.close()
        watcher.join(timeout=grace + 1)
        reader.close()

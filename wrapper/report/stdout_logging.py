"""One logger for the trf and the libraries it drives: stdout, one timestamped line per record.

Why stdout: the pilot reads the payload's stderr for verdicts. Pilot 3.11 fails a job that exited 0
when payload.stderr holds one of its container-runtime messages (pilot/common/errorcodes.py,
`resolve_transform_error`), so stderr carries only our one-line error for the user. Library records
(staging's transfers, the framework's Python warnings) join our progress lines on stdout, where
they also keep payload.stdout fresh for the pilot's looping-job detector.
"""
from __future__ import annotations

import logging
import os
import sys
import time

FORMAT = "%(asctime)s dune-payload %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class _Formatter(logging.Formatter):
    """UTC timestamps; no trailing newline (a captured warning ends with one)."""

    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).rstrip()


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is at the time of the record (tests replace it)."""

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value):
        pass


def configure(level: int = logging.INFO) -> None:
    """Send every `logging` record and Python warning to stdout, timestamped in UTC; idempotent.

    Call it before the framework is imported: TensorFlow adds its own stderr handler when the root
    logger has none.
    """
    root = logging.getLogger()
    if not any(isinstance(handler, _StdoutHandler) for handler in root.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(_Formatter(FORMAT, DATE_FORMAT))
        root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)


def native_stderr_to_stdout() -> None:
    """Point file descriptor 2 at stdout, and keep `sys.stderr` (our one-line errors, tracebacks)
    on the real stderr. For the process's entry point only, before the framework loads.

    The framework's C++ core writes its notices to descriptor 2 itself, past any Python logger
    ("All log messages before absl::InitializeLog() is called are written to STDERR", oneDNN).
    """
    try:
        sys.stderr.flush()
        real_stderr = os.dup(2)
        os.dup2(sys.stdout.fileno(), 2)
    except (OSError, ValueError):   # no usable descriptors (an embedding host): leave them
        return
    sys.stderr = os.fdopen(real_stderr, "w", buffering=1, errors="backslashreplace")

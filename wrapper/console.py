"""The trf's own lines on stdout, which the pilot keeps as payload.stdout: one timestamped line per
message, flushed at once, from every room of the job."""
from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from typing import Optional, TextIO


def log(message: str, stream: Optional[TextIO] = None) -> None:
    """One timestamped line on stdout (or `stream`), flushed at once."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"{stamp} dune-payload {message}", file=stream or sys.stdout, flush=True)


def stdout_to_devnull() -> None:
    """Point stdout at /dev/null after its reader went away (`--dryRun | head`): Python flushes
    stdout again at exit, and with the reader gone that would fail too."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)

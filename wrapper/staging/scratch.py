"""The job directory as scratch: free-space checks, and `.part` files that become final only when verified."""
from __future__ import annotations

import errno
import glob
import os
import shutil
from pathlib import Path

from wrapper.causes import Cause
from wrapper.staging.failures import input_error

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# `.part` files of the transfers under way in this process: a job abandoned on a signal while
# transfer threads still run removes them (discard_unfinished) before it exits.
_UNDER_WAY: set = set()


def ensure_free_space(directory: Path, needed: int, what: str) -> None:
    """InputFileError(disk-full) unless `directory` has `needed` bytes free for `what`."""
    free = shutil.disk_usage(directory).free
    if needed > free:
        raise input_error(what, "scratch", Cause.DISK_FULL, f"needs {needed} bytes in the job directory, "
                          f"{free} free; ask for more scratch or use --accessMode=direct")


def is_disk_full(err: BaseException) -> bool:
    """Whether an exception (or one it wraps) is ENOSPC/EDQUOT."""
    while err is not None:
        if isinstance(err, OSError) and err.errno in DISK_FULL:
            return True
        err = err.__cause__ or err.__context__
    return False


def discard(path: Path) -> None:
    """Remove a partial file if it is there (never follows a symlink: the link itself goes)."""
    _UNDER_WAY.discard(Path(path))
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def under_way(part: Path) -> Path:
    """Note `part` as the file of a transfer under way until it is finalized or discarded."""
    _UNDER_WAY.add(Path(part))
    return part


def discard_unfinished() -> list:
    """Remove the `.part` files (and s3transfer's temporaries of them) of transfers still under way.

    For a job abandoned on a signal: its transfer threads cannot be joined within the pilot's
    grace, and a half-fetched input must not stay in the job directory. Returns the names removed.
    """
    removed = []
    for part in list(_UNDER_WAY):
        for leftover in (part, *part.parent.glob(glob.escape(part.name) + ".*")):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                continue
            removed.append(leftover.name)
        _UNDER_WAY.discard(part)
    return removed


def open_part(path: Path, *, append: bool):
    """Open a `.part` for writing without following a symlink someone planted under its name."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if append else os.O_TRUNC)
    if not append:
        discard(path)
        flags |= os.O_EXCL
    under_way(path)
    return os.fdopen(os.open(path, flags, 0o644), "ab" if append else "wb")


def finalize(part: Path, final: Path) -> None:
    """Give a verified `.part` its final name in one step (replacing a stale file or symlink there)."""
    os.replace(part, final)
    _UNDER_WAY.discard(Path(part))

"""The job directory as scratch: free-space checks, and `.part` files that become final only when verified."""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from wrapper.staging.failures import input_error

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def ensure_free_space(directory: Path, needed: int, what: str) -> None:
    """InputFileError(disk-full) unless `directory` has `needed` bytes free for `what`."""
    free = shutil.disk_usage(directory).free
    if needed > free:
        raise input_error(what, "scratch", "disk-full", f"needs {needed} bytes in the job directory, "
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
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def open_part(path: Path, *, append: bool):
    """Open a `.part` for writing without following a symlink someone planted under its name."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if append else os.O_TRUNC)
    if not append:
        discard(path)
        flags |= os.O_EXCL
    return os.fdopen(os.open(path, flags, 0o644), "ab" if append else "wb")


def finalize(part: Path, final: Path) -> None:
    """Give a verified `.part` its final name in one step (replacing a stale file or symlink there)."""
    os.replace(part, final)

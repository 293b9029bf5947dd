"""Outputs land in the job directory as `<cwd>/<LFN>` atomically and are never overwritten.

The payload writes each output under a temporary name in the same directory (keeping the LFN's
suffix, which Keras needs to pick its format); `commit` renames it to the LFN without clobbering,
and anything not committed is removed, so no half-written file ever sits under a final name.
"""
from __future__ import annotations

import os
import shutil
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from wrapper.causes import Cause
from wrapper.errors import OutputFileError
from wrapper.staging.verify import adler32_of
NAME_MAX = 255


@dataclass(frozen=True)
class CommittedOutput:
    arg_name: str
    path: Path
    file_guid: str
    file_size: int
    adler32: str
    nentries: int

    def to_report(self) -> dict:
        return {"name": self.path.name, "file_guid": self.file_guid, "file_size": self.file_size,
                "checksum": f"ad:{self.adler32}", "adler32": self.adler32, "nentries": self.nentries}


class OutputPlan:
    """The outputs of one job: checked before any work, written under temporary names, then committed."""

    def __init__(self, workdir: Path, lfns: Mapping[str, str]):
        self.workdir = Path(workdir)
        self.lfns = dict(lfns)
        self._pending: dict[str, Path] = {}

    def check(self) -> None:
        """Fail early (exit 11) if the job directory is unwritable or an output already exists."""
        if not self.lfns:
            return
        if not os.access(self.workdir, os.W_OK | os.X_OK):
            raise OutputFileError(f"job directory {self.workdir} is not writable; check its "
                                  "permissions and that the disk is mounted read-write",
                                  cause=Cause.PERMISSION)
        for name, lfn in self.lfns.items():
            final = self.workdir / lfn
            if final.exists() or final.is_symlink():
                raise OutputFileError(f"output {lfn} (--{name}) already exists in {self.workdir}; "
                                      "outputs are never overwritten: remove it or choose another name",
                                      cause=Cause.EXISTS)

    def temp_path(self, arg_name: str) -> Path:
        """Where the payload writes output `arg_name` before it is committed."""
        if arg_name not in self._pending:
            lfn = self.lfns[arg_name]
            name = f".tmp.{os.getpid()}.{lfn}"
            if len(name) > NAME_MAX:  # a valid LFN may be 251 characters: keep its tail (the suffix)
                prefix = f".tmp.{os.getpid()}.{zlib.crc32(lfn.encode()):08x}."
                name = prefix + lfn[-(NAME_MAX - len(prefix)):]
            self._pending[arg_name] = self.workdir / name
        return self._pending[arg_name]

    def pending(self) -> dict[str, Path]:
        return dict(self._pending)

    def commit(self, arg_name: str, nentries: int) -> CommittedOutput:
        """Give the finished temporary file its final name (never replacing an existing file)."""
        tmp = self._pending.get(arg_name)
        lfn = self.lfns[arg_name]
        if tmp is None or not tmp.exists():
            raise OutputFileError(f"the payload did not produce output {lfn} (--{arg_name})",
                                  cause=Cause.MISSING)
        size = tmp.stat().st_size
        if size == 0:
            raise OutputFileError(f"output {lfn} (--{arg_name}) is empty; the pilot rejects empty "
                                  "outputs", cause=Cause.EMPTY)
        final = self.workdir / lfn
        try:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.link(tmp, final)  # fails if `final` appeared meanwhile: never clobber
            tmp.unlink()
        except FileExistsError:
            raise OutputFileError(f"output {lfn} appeared in the job directory while the job ran; "
                                  "it was left untouched and this job's version discarded",
                                  cause=Cause.EXISTS) from None
        except OSError as err:
            raise OutputFileError(f"cannot give output {lfn} its final name: {err.strerror}; "
                                  "check disk space and permissions", cause=Cause.UNWRITABLE) from None
        del self._pending[arg_name]
        return CommittedOutput(arg_name, final, str(uuid.uuid4()).upper(), size,
                               adler32_of(final), nentries)

    def discard(self) -> list[str]:
        """Remove every output not committed; returns the LFNs removed."""
        removed = []
        for arg_name, tmp in list(self._pending.items()):
            # the payload's own temporaries: `<tmp>…` (h5py, plots) and `.<tmp>.….keras` (model files)
            for leftover in (tmp, *tmp.parent.glob(tmp.name + "*"), *tmp.parent.glob(f".{tmp.name}.*")):
                try:
                    leftover.unlink()
                except FileNotFoundError:
                    continue
                except IsADirectoryError:
                    shutil.rmtree(leftover, ignore_errors=True)
            removed.append(self.lfns[arg_name])
            # the signal watcher and the main thread may both discard: never fail on the other's work
            self._pending.pop(arg_name, None)
        return removed

"""Local file names for remote objects: the pilot's LFN rule, so nothing lands outside the job directory.

A key or URL is hostile when it could steer a write elsewhere: `..` segments, a leading `/`, NUL,
backslashes, or any non-ASCII character (which covers look-alikes of '/', such as U+2215 and U+FF0F).
The local name is only ever the last segment, and it must match the rule the pilot applies to LFNs.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from wrapper.causes import Cause
from wrapper.errors import OutputFileError
from wrapper.jobfiles import LFN_RULE
from wrapper.staging.failures import input_error

_MAX_NAME = 255


def is_lfn(name: str) -> bool:
    """Whether `name` matches the pilot's LFN rule `^[A-Za-z0-9][A-Za-z0-9.\\-_]{1,250}$`."""
    return LFN_RULE.fullmatch(name) is not None


def hostile_reason(key: str) -> str:
    """Why an object key or URL path could escape the job directory, or "" when it cannot."""
    if "\x00" in key:
        return "contains NUL"
    if "\\" in key:
        return "contains a backslash"
    if not key.isascii():
        return "contains non-ASCII characters (look-alikes of '/' among them)"
    if key.startswith("/"):
        return "is an absolute path"
    if any(segment in ("..", ".") for segment in key.split("/")):
        return "contains a '..' or '.' segment"
    return ""


def local_name(key: str, uri: str, source: str) -> str:
    """The job-directory name for object `key` (the last segment), or InputFileError(hostile-name).

    `uri` is the redacted form used in the message, `source` the kind of storage (s3, https).
    """
    reason = hostile_reason(key)
    name = key.rsplit("/", 1)[-1]
    if not reason and not is_lfn(name):
        reason = f"its file name {name[:60]!r} does not match the LFN rule"
    if reason:
        raise input_error(uri, source, Cause.HOSTILE_NAME,
                          f"the key {reason}; refusing to write it into the job directory")
    return name


def inside(workdir: Path, name: str) -> Path:
    """`workdir/name`, for a `name` that follows the LFN rule: one segment, no '/', not '.' or
    '..', so the file lands directly in `workdir`. A string check, no resolve(): this runs once per
    staged file, on the thread that feeds the transfers."""
    if not is_lfn(name):
        raise input_error(repr(name[:60]), "job directory", Cause.HOSTILE_NAME,
                          "would be written outside the job directory")
    return workdir / name


def output_name(path: Path, workdir: Path) -> str:
    """The LFN of an output at `<workdir>/<LFN>`, or OutputFileError(hostile-name)."""
    name = path.name
    if not is_lfn(name) or path.parent.resolve() != workdir.resolve():
        raise OutputFileError(f"output {str(path)[:200]!r}: hostile-name: outputs must be "
                              "<job directory>/<LFN> with an LFN matching the pilot's rule",
                              cause=Cause.HOSTILE_NAME)
    return name


def part_path(final: Path) -> Path:
    """Where `final` is written until it is verified: `<name>.part` (shortened for long names)."""
    name = final.name + ".part"
    if len(name) + 9 > _MAX_NAME:   # s3transfer appends ".<8 hex>" to its own temporary
        digest = hashlib.sha1(final.name.encode()).hexdigest()[:16]
        name = f"{final.name[:200]}.{digest}.part"
    return final.with_name(name)

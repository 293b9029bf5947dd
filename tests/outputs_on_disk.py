"""Shared test check: every output a job report lists is the file on disk (name, size, adler32).

A report that lists an output the job directory no longer holds as written (overwritten by another
file, truncated, renamed) would make the pilot ship the wrong bytes; call this after every
successful job a test runs.
"""
from __future__ import annotations

import zlib
from pathlib import Path


def adler32_hex(path: Path) -> str:
    """The file's adler32 as the pilot writes it: 8 lower-case hex digits. Computed here rather than
    with wrapper.staging.verify, so that the check does not trust the code it checks."""
    value = 1
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            value = zlib.adler32(block, value)
    return f"{value & 0xFFFFFFFF:08x}"


def assert_outputs_on_disk(jobdir: Path, report: dict) -> list[str]:
    """Assert each output in `report` matches its file in `jobdir`; returns the names checked."""
    checked = []
    for output in report["files"]["output"]:
        for sub in output["subFiles"]:
            path = Path(jobdir) / sub["name"]
            assert path.is_file() and not path.is_symlink(), f"report lists {sub['name']}, not on disk"
            size = path.stat().st_size
            assert size == sub["file_size"], f"{sub['name']}: {size} bytes on disk, report {sub['file_size']}"
            adler = adler32_hex(path)
            assert sub["checksum"] == f"ad:{adler}" and sub["adler32"] == adler, (
                f"{sub['name']}: adler32 {adler} on disk, report {sub['checksum']}")
            checked.append(sub["name"])
    return checked

"""Shared test check: every output a job report lists is the file on disk (name, size, adler32).

A report that lists an output the job directory no longer holds as written (overwritten by another
file, truncated, renamed) would make the pilot ship the wrong bytes; call this after every
successful job a test runs. The fault suite's harness runs `output_problems` on every successful
run of every scenario (tests/faults/harness.py, `Scenario.record`).
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


def output_problems(jobdir: Path, report: dict) -> tuple[list[str], list[str]]:
    """(problems, names checked): each output in `report` against its file in `jobdir`: a regular
    file right in the job directory, listed once, with the report's size and adler32."""
    problems, checked = [], []
    for output in report["files"]["output"]:
        for sub in output["subFiles"]:
            name = sub["name"]
            checked.append(name)
            path = Path(jobdir) / name
            if Path(name).name != name or name in ("", ".", ".."):
                problems.append(f"report lists {name!r}, not a name in the job directory")
            elif path.is_symlink() or not path.is_file():
                problems.append(f"report lists {name}, not on disk as a file")
            elif path.stat().st_size != sub["file_size"]:
                problems.append(f"{name}: {path.stat().st_size} bytes on disk, report {sub['file_size']}")
            elif (sub["checksum"], sub["adler32"]) != (f"ad:{adler32_hex(path)}", adler32_hex(path)):
                problems.append(f"{name}: adler32 {adler32_hex(path)} on disk, report {sub['checksum']}"
                                f" / {sub['adler32']}")
    problems += [f"report lists {name} {checked.count(name)} times" for name in sorted(set(checked))
                 if checked.count(name) > 1]
    return problems, checked


def assert_outputs_on_disk(jobdir: Path, report: dict) -> list[str]:
    """Assert each output in `report` matches its file in `jobdir`; returns the names checked."""
    problems, checked = output_problems(jobdir, report)
    assert not problems, "; ".join(problems)
    return checked

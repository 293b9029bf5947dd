"""PanDA job definitions as the pilot reads them: load, check, complete (see docs/design.md,
'The pilot contract').

A job definition is a flat mapping of strings; file lists are comma-separated and parallel
(inFiles / GUID / fsize / checksum, outFiles / realDatasets / ddmEndPointOut / destinationDblock).
"""
from __future__ import annotations

import json
import uuid
import zlib
from pathlib import Path
from typing import Mapping, Sequence

REQUIRED = ("PandaID", "transformation", "jobPars")


def load(path: Path) -> dict:
    """One job from a JSON file holding either the job or `{"<PandaID>": job}` (pandaJobData.out)."""
    data = json.loads(Path(path).read_text())
    if len(data) == 1 and isinstance(next(iter(data.values())), dict):
        data = next(iter(data.values()))
    missing = [name for name in REQUIRED if not data.get(name)]
    if missing:
        raise ValueError(f"{path}: job definition lacks {', '.join(missing)}")
    return {key: str(value) for key, value in data.items()}


def split(value: str) -> list[str]:
    """A comma-separated job field as a list ('' and 'NULL' are empty)."""
    return [] if value in ("", "NULL") else value.split(",")


def adler32(path: Path) -> str:
    """The checksum the pilot verifies: adler32 as 8 hex digits."""
    value = 1
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            value = zlib.adler32(block, value)
    return f"{value & 0xFFFFFFFF:08x}"


def with_inputs(job: Mapping[str, str], inputs: Sequence[Path]) -> dict:
    """`job` with GUID, fsize and checksum filled for the inputs given, by LFN.

    Inputs not given keep what the job says (a replayed job brings its own values), or get a fresh
    GUID and placeholders so the pilot looks for them and reports them missing.
    """
    job = dict(job)
    lfns = split(job.get("inFiles", ""))
    by_name = {Path(p).name: Path(p) for p in inputs}
    unknown = sorted(set(by_name) - set(lfns))
    if unknown:
        raise ValueError(f"inputs {unknown} are not in the job's inFiles {lfns}")
    guids = _padded(split(job.get("GUID", "")), len(lfns), lambda: str(uuid.uuid4()).upper())
    sizes = _padded(split(job.get("fsize", "")), len(lfns), lambda: "0")
    sums = _padded(split(job.get("checksum", "")), len(lfns), lambda: "ad:00000001")
    for i, lfn in enumerate(lfns):
        if lfn in by_name:
            sizes[i] = str(by_name[lfn].stat().st_size)
            sums[i] = "ad:" + adler32(by_name[lfn])
    if lfns:
        job.update(GUID=",".join(guids), fsize=",".join(sizes), checksum=",".join(sums))
    return job


def _padded(values: list[str], length: int, fill) -> list[str]:
    return (values + [fill() for _ in range(length - len(values))])[:length]


def output_lfns(job: Mapping[str, str]) -> list[str]:
    """The outputs the trf must produce: outFiles without the log tarball."""
    log = job.get("logFile", "")
    return [name for name in split(job.get("outFiles", "")) if name != log]


def trf_name(job: Mapping[str, str]) -> str:
    """The file name the pilot gives the downloaded trf: the last part of `transformation`."""
    return job["transformation"].rstrip("/").rsplit("/", 1)[-1]

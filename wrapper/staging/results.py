"""What staging did, per file, as data: the job report's staging section is built from these."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

MiB = 1 << 20


@dataclass(frozen=True)
class StagedInput:
    """One input ready for the payload.

    `uri` is redacted; `source` is staged | pfc | s3 | https | local; `local_path` is the file to
    open (None in direct mode), `handle` the read-only file object for h5py in direct mode (the
    caller closes it). `seconds` runs from submission to a verified file; `attempts` counts every
    try including retries (0 when nothing was transferred).
    """

    uri: str
    source: str
    local_path: Optional[Path]
    handle: Optional[object]
    size: int
    adler32: Optional[str]
    seconds: float
    bytes_transferred: int
    attempts: int
    direct_source: Optional[object] = None   # direct access: the picklable DirectSource that opens it again


@dataclass(frozen=True)
class PublishedOutput:
    """One output at its final place: `url` (redacted; a file:// URL when nothing was uploaded)."""

    path: Path
    url: str
    size: int
    adler32: str
    seconds: float


def report_entry(item: Union[StagedInput, PublishedOutput]) -> dict:
    """The job-report entry of a staged input or published output: time, bytes and rate per file."""
    if isinstance(item, PublishedOutput):
        return {"name": item.path.name, "url": item.url, "size": item.size, "adler32": item.adler32,
                "seconds": round(item.seconds, 3), "rate_mib_s": _rate(item.size, item.seconds)}
    entry = {
        "name": item.local_path.name if item.local_path else item.uri.rsplit("/", 1)[-1],
        "uri": item.uri, "source": item.source, "access": "direct" if item.handle else "copy",
        "size": item.size, "adler32": item.adler32, "seconds": round(item.seconds, 3),
        "bytes_transferred": item.bytes_transferred,
        "rate_mib_s": _rate(item.bytes_transferred, item.seconds), "attempts": item.attempts,
    }
    stats = getattr(item.handle, "stats", None)
    if callable(stats):                      # direct access: what the ranged reads moved so far
        entry["direct"] = stats()
        entry["bytes_transferred"] = entry["direct"]["bytes_fetched"]
        entry["rate_mib_s"] = _rate(entry["direct"]["bytes_fetched"], entry["direct"]["fetch_seconds"])
    return entry


def _rate(size: int, seconds: float) -> float:
    return round(size / MiB / seconds, 2) if seconds > 0 else 0.0

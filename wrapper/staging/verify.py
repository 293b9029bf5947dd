"""Integrity of staged files: size and adler32 (the checksum the pilot and Rucio use).

An expected checksum rides on the URI as `file.h5#ad:1a2b3c4d` or comes from PoolFileCatalog.xml.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from wrapper.causes import Cause
from wrapper.staging.failures import input_error

CHUNK = 4 << 20
_SUFFIX = re.compile(r"#(?:ad|adler32):([0-9A-Fa-f]{1,8})$")


@dataclass(frozen=True)
class Expected:
    """What a file should be; None where nobody told us."""

    size: Optional[int] = None
    adler32: Optional[str] = None

    def merged(self, other: "Expected") -> "Expected":
        """These values, with `other`'s filling the gaps."""
        return Expected(size=self.size if self.size is not None else other.size,
                        adler32=self.adler32 or other.adler32)


def normal_adler32(text: str) -> str:
    """An adler32 as the pilot writes it: 8 lowercase hex digits (`ad:` prefix dropped)."""
    text = text.strip().lower()
    for prefix in ("ad:", "adler32:"):
        text = text.removeprefix(prefix)
    if not re.fullmatch(r"[0-9a-f]{1,8}", text):
        raise ValueError(f"not an adler32 checksum: {text[:20]!r}")
    return text.zfill(8)


def split_checksum(uri: str) -> tuple[str, Expected]:
    """`uri` without a trailing `#ad:xxxxxxxx`, and the checksum it carried."""
    match = _SUFFIX.search(uri)
    if not match:
        return uri, Expected()
    return uri[:match.start()], Expected(adler32=normal_adler32(match.group(1)))


def adler32_of(path: Path) -> str:
    """The adler32 of a file, streamed, as 8 hex digits."""
    value = 1
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            value = zlib.adler32(chunk, value)
    return f"{value & 0xFFFFFFFF:08x}"


def verify(path: Path, expected: Expected, *, uri: str, source: str, actual_size: Optional[int] = None,
           attempts: int = 1) -> Optional[str]:
    """Check `path` against `expected` (and the size the server announced); return its adler32 if computed.

    Raises InputFileError with cause size-mismatch or checksum-mismatch; the caller removes the file.
    """
    size = path.stat().st_size
    for what, want in (("announced by the server", actual_size), ("expected", expected.size)):
        if want is not None and size != want:
            raise input_error(uri, source, Cause.SIZE_MISMATCH, f"got {size} bytes, {want} {what}", attempts)
    if expected.adler32 is None:
        return None
    actual = adler32_of(path)
    if actual != expected.adler32:
        raise input_error(uri, source, Cause.CHECKSUM_MISMATCH,
                          f"adler32 {actual}, expected {expected.adler32}", attempts)
    return actual

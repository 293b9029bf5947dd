"""PoolFileCatalog.xml, the pilot's map from LFN to TURL for direct-access jobs (see
docs/design.md, 'The pilot contract').

The pilot writes `<!DOCTYPE POOLFILECATALOG SYSTEM "InMemory">`; any other DOCTYPE and every
entity declaration are refused before parsing, so no entity expansion or external fetch can happen.
Size and adler32 are read from POOL `<metadata att_name=… att_value=…/>` elements where present.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional
from urllib.parse import urlsplit

from wrapper.causes import Cause
from wrapper.jobfiles import FILE_CATALOG
from wrapper.staging.failures import input_error
from wrapper.staging.verify import Expected, normal_adler32

_DOCTYPE = re.compile(rb"<!DOCTYPE[^>]*>", re.IGNORECASE)
_IN_MEMORY = re.compile(rb'<!DOCTYPE\s+POOLFILECATALOG\s+SYSTEM\s+"InMemory"\s*>')
_SIZE_NAMES = ("fsize", "filesize", "size")
_CHECKSUM_NAMES = ("adler32", "checksum")


@dataclass(frozen=True)
class CatalogEntry:
    """One `<File>`: its GUID, LFN, TURLs in catalogue order, and what the file should be."""

    guid: str
    lfn: str
    pfns: tuple
    expected: Expected


def load_catalog(workdir: Path) -> Mapping[str, CatalogEntry]:
    """The entries of `<workdir>/PoolFileCatalog.xml` by LFN; empty when there is no catalogue."""
    path = workdir / FILE_CATALOG
    if not path.is_file():
        return {}
    return parse_catalog(path.read_bytes())


def parse_catalog(data: bytes) -> Mapping[str, CatalogEntry]:
    """Parse catalogue bytes; InputFileError(corrupt) for another DOCTYPE, an entity or bad XML."""
    doctypes = _DOCTYPE.findall(data)
    if b"<!ENTITY" in data.upper() or any(not _IN_MEMORY.fullmatch(d) for d in doctypes):
        raise input_error(FILE_CATALOG, "pfc", Cause.CORRUPT, "refusing a DOCTYPE other than the pilot's "
                          "InMemory one, or an entity declaration")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as err:
        raise input_error(FILE_CATALOG, "pfc", Cause.CORRUPT, f"not well-formed XML ({err})") from None
    entries = {}
    for node in root.iter("File"):
        pfns = tuple(p.get("name", "") for p in node.iter("pfn") if p.get("name"))
        lfns = [n.get("name", "") for n in node.iter("lfn") if n.get("name")]
        lfn = lfns[0] if lfns else (_basename(pfns[0]) if pfns else "")
        if lfn and pfns:
            entries[lfn] = CatalogEntry(guid=node.get("ID", ""), lfn=lfn, pfns=pfns,
                                        expected=_expected(node, lfn))
    return entries


def _expected(node: ET.Element, lfn: str) -> Expected:
    meta = {m.get("att_name", "").lower(): m.get("att_value", "") for m in node.iter("metadata")}
    size: Optional[int] = None
    adler32: Optional[str] = None
    try:
        size = next((int(meta[k]) for k in _SIZE_NAMES if meta.get(k)), None)
        adler32 = next((normal_adler32(meta[k]) for k in _CHECKSUM_NAMES if meta.get(k)), None)
    except ValueError as err:
        raise input_error(lfn, "pfc", Cause.CORRUPT, f"bad size or checksum in the catalogue ({err})") from None
    return Expected(size=size, adler32=adler32)


def _basename(turl: str) -> str:
    return urlsplit(turl).path.rsplit("/", 1)[-1] if "://" in turl else turl.rsplit("/", 1)[-1]

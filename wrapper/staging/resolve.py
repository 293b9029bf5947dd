"""From what a task names to concrete files to fetch, in the order docs/design.md gives in 'The flow'.

1. an LFN the pilot already staged in the job directory;
2. an entry of PoolFileCatalog.xml (its TURL then goes through 3-5);
3. `s3://bucket/key` (a glob such as `s3://bucket/prefix/*.h5` expands to the matching keys);
4. `https://…` / `http://…` (`davs://` / `dav://` are the same over WebDAV);
5. a local path (globs expand).
`reference:<name>` (e.g. `reference:small`) is a reference model installed with the package.
A trailing `#ad:1a2b3c4d` on any of them is the expected adler32.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, List, Mapping, Optional
from urllib.parse import unquote, urlsplit

from wrapper.causes import Cause
from wrapper.redact import redact, secret_values
from wrapper.staging.catalog import CatalogEntry, load_catalog
from wrapper.staging.failures import input_error
from wrapper.staging.names import is_lfn, local_name
from wrapper.staging.options import StagingOptions
from wrapper.staging.verify import Expected, split_checksum

GLOB_CHARS = "*?["
WEBDAV = {"davs": "https", "dav": "http"}
URL_SCHEMES = ("s3", "https", "http", "davs", "dav", "file")      # the URLs _by_scheme reads


@dataclass(frozen=True)
class Plan:
    """One concrete file: how to fetch it and what it should be.

    `uri` is redacted (for messages and reports); `location` is the real s3:// URI, URL or path,
    which may carry a signature and is never logged; `name` is the job-directory file name.
    """

    uri: str
    source: str          # staged | pfc | s3 | https | local (what the report says)
    scheme: str          # staged | s3 | https | local (how it is fetched)
    location: str
    name: str
    expected: Expected

    @property
    def label(self) -> str:
        """The source as messages name it: the report's `source`, but for a URL its own scheme,
        so an http:// input is not called https."""
        return urlsplit(self.location).scheme if self.source == "https" else self.source


class Planner:
    """Turns URIs into Plans for one staging call; reads the catalogue once, lists S3 only for globs."""

    def __init__(self, options: StagingOptions, expand_s3: Callable[[str, str], List[str]]):
        self.options = options
        self.expand_s3 = expand_s3
        self._catalog: Optional[Mapping[str, CatalogEntry]] = None

    @property
    def catalog(self) -> Mapping[str, CatalogEntry]:
        if self._catalog is None:
            self._catalog = load_catalog(self.options.workdir)
        return self._catalog

    def plan(self, raw: str) -> List[Plan]:
        """The files `raw` stands for (several for a glob); InputFileError when there is none."""
        text, expected = split_checksum(raw.strip())
        shown = redact(text)
        if not text:
            raise input_error("''", "uri", Cause.BAD_URI, "empty input name")
        workdir = self.options.workdir
        # Imported here, not at the top: main imports this room for every job, and loading
        # payload.api (its configs) there would make a bad argument ~15 % slower to report. Not
        # at all for a URL staging reads, which no reference name is: staging alone (python -m
        # wrapper.staging) then spares its ~30 ms of imports.
        if _scheme(text) not in URL_SCHEMES:
            from payload.api import is_reference

            if is_reference(text):
                return [self._reference(text, shown, expected)]
        if "://" not in text and "/" not in text and is_lfn(text):
            if (workdir / text).exists():
                return [Plan(shown, "staged", "staged", str(workdir / text), text, expected)]
            entry = self.catalog.get(text)
            if entry is not None:
                return [self._from_catalog(entry, expected)]
        return self._by_scheme(text, shown, expected, "")

    def _reference(self, text: str, shown: str, expected: Expected) -> Plan:
        from payload.api import reference_model

        try:
            path = reference_model(text)
        except ValueError as err:
            raise input_error(shown, "reference", Cause.NOT_FOUND, str(err)) from None
        return Plan(shown, "reference", "local", str(path), "", expected)

    def _from_catalog(self, entry: CatalogEntry, expected: Expected) -> Plan:
        expected = expected.merged(entry.expected)
        unsupported = []
        for turl in entry.pfns:
            if turl == entry.lfn:
                continue
            scheme = _scheme(turl)
            if scheme in (*URL_SCHEMES, ""):
                plans = self._by_scheme(turl, redact(turl), expected, entry.lfn)
                return replace(plans[0], source="pfc")
            unsupported.append(scheme)
        raise input_error(entry.lfn, "pfc", Cause.UNSUPPORTED,
                          f"PoolFileCatalog.xml gives only TURLs this job cannot read "
                          f"({', '.join(sorted(set(unsupported))) or 'none besides the LFN'}), and the "
                          "pilot did not stage the file")

    def _by_scheme(self, text: str, shown: str, expected: Expected, lfn: str) -> List[Plan]:
        scheme = _scheme(text)
        if scheme == "s3":
            locations = [text]
            if any(c in text[5:] for c in GLOB_CHARS):
                locations = self.expand_s3(shown, text)
            # the secret values once for the whole listing, not twice a key: looking them up reads
            # the token files (with the import above, planning 256 keys: 0.055 -> 0.03 s,
            # scripts/bench/staging_profile.py)
            values = secret_values()
            plans = []
            for loc in locations:
                uri = redact(loc, values)
                plans.append(Plan(uri, "s3", "s3", loc, lfn or local_name(_key(loc), uri, "s3"), expected))
            return plans
        if scheme in ("https", "http", "davs", "dav"):
            url = WEBDAV.get(scheme, scheme) + text[len(scheme):]
            name = lfn or local_name(unquote(urlsplit(url).path)[1:], shown, urlsplit(url).scheme)
            return [Plan(shown, "https", "https", url, name, expected)]
        if scheme == "file":
            return self._local(unquote(urlsplit(text).path), shown, expected)
        if scheme:
            raise input_error(shown, "uri", Cause.UNSUPPORTED, f"no reader for {scheme}:// here; use s3://, "
                              "https:// or a local path, or let the pilot stage the file")
        return self._local(text, shown, expected)

    def _local(self, text: str, shown: str, expected: Expected) -> List[Plan]:
        path = Path(text).expanduser()
        path = path if path.is_absolute() else self.options.workdir / path
        matches = sorted(glob.glob(str(path))) if any(c in text for c in GLOB_CHARS) else [str(path)]
        found = [m for m in matches if Path(m).exists()]
        if not found:
            where = "not in the job directory, not in PoolFileCatalog.xml, and no such local file"
            raise input_error(shown, "local", Cause.NOT_FOUND, where if "/" not in text else "no such file")
        return [Plan(redact(m), "local", "local", m, "", expected) for m in found]


def _scheme(text: str) -> str:
    return text.split("://", 1)[0].lower() if "://" in text else ""


def _key(location: str) -> str:
    return location[5:].partition("/")[2]

"""Publishing outputs and checkpoints to object storage, verified after upload.

Outputs exist as `<job directory>/<LFN>` before they are published (the pilot needs them there
whatever happens to the upload); they go to `<outputPrefix><LFN>` on S3 (with the adler32 in the
object's metadata) or by HTTPS PUT, and each is checked by HEAD afterwards. Checkpoints are
uploaded by wrapper.checkpoints.resume as training writes them, so nothing long is left for the 10 s after SIGTERM.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Sequence, Tuple, Union

from wrapper.causes import Cause
from wrapper.errors import OutputFileError
from wrapper.redact import redact
from wrapper.staging.failures import output_error
from wrapper.staging.names import output_name
from wrapper.staging.options import StagingOptions
from wrapper.staging.results import PublishedOutput
from wrapper.staging.verify import adler32_of

log = logging.getLogger(__name__)


def publish_outputs(paths: Sequence[Path], options: StagingOptions) -> Tuple[PublishedOutput, ...]:
    """Upload each `<workdir>/<LFN>` under `options.output_prefix` and verify it; OutputFileError (exit 11).

    Without an output prefix nothing moves: each output is checked and reported with a file:// URL.
    """
    pairs = []
    for path in map(Path, paths):
        name = output_name(path, options.workdir)
        if not path.is_file() or path.stat().st_size == 0:
            raise output_error(name, "job directory", Cause.MISSING, "the output is absent or empty")
        pairs.append((path, _join(options.output_prefix, name) if options.output_prefix else ""))
    published = _send(pairs, options)
    for item in published:
        log.info("published %s -> %s: %d bytes in %.2f s", item.path.name, item.url, item.size, item.seconds)
    return published


def _join(prefix: str, relative: str) -> str:
    return prefix.rstrip("/") + "/" + relative


def _send(pairs: Sequence[Tuple[Path, str]], options: StagingOptions) -> Tuple[PublishedOutput, ...]:
    """Checksum every file, upload those with a URL, verify; the first failure is raised after all."""
    sums, seconds = [], []
    for path, _ in pairs:
        started = time.monotonic()
        sums.append(adler32_of(path))
        seconds.append(time.monotonic() - started)
    schemes = {url.split("://", 1)[0].lower() for _, url in pairs if url}
    unknown = schemes - {"s3", "https", "http"}
    if unknown:
        raise output_error(pairs[0][0].name, redact(options.output_prefix or ""), Cause.BAD_URI,
                           f"cannot upload to {', '.join(sorted(unknown))}://; use s3:// or https://")
    outcomes: List[Union[Exception, float]] = [0.0] * len(pairs)
    s3_jobs = [i for i, (_, url) in enumerate(pairs) if url.startswith("s3://")]
    if s3_jobs:
        from wrapper.staging.s3 import S3

        results = S3(options).upload_all([(pairs[i][0], pairs[i][1], sums[i]) for i in s3_jobs])
        outcomes = _merge(outcomes, s3_jobs, results)
    http_jobs = [i for i, (_, url) in enumerate(pairs) if url.startswith(("https://", "http://"))]
    if http_jobs:
        results = _put_all([(pairs[i][0], pairs[i][1], sums[i]) for i in http_jobs], options)
        outcomes = _merge(outcomes, http_jobs, results)
    failures = [o for o in outcomes if isinstance(o, OutputFileError)]
    if failures:
        first = failures[0]
        if len(failures) > 1:
            raise OutputFileError(f"{first.message} (and {len(failures) - 1} more output(s) failed)",
                                  cause=first.cause)
        raise first
    return tuple(PublishedOutput(path=path, url=redact(url) if url else path.resolve().as_uri(),
                                 size=path.stat().st_size, adler32=adler32, seconds=checksum + moved)
                 for (path, url), adler32, checksum, moved in zip(pairs, sums, seconds, outcomes))


def _merge(outcomes: List, indices: List[int], results) -> List:
    merged = list(outcomes)
    for index, result in zip(indices, results):
        merged[index] = result
    return merged


def _put_all(jobs, options: StagingOptions) -> List[Union[OutputFileError, float]]:
    from wrapper.staging.https import make_session, upload

    session = make_session(options)

    def put(job) -> Union[OutputFileError, float]:
        path, url, adler32 = job
        started = time.monotonic()
        try:
            upload(session, path, url, adler32, options, path.name)
        except OutputFileError as err:
            return err
        return time.monotonic() - started

    with ThreadPoolExecutor(max_workers=max(1, min(options.threads, len(jobs)))) as pool:
        return list(pool.map(put, jobs))

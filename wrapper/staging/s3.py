"""S3 transfers with boto3: heads, globs, parallel multipart downloads, ranged reads and uploads,
every failure named by cause (the client and the causes: wrapper.staging.s3_client).
"""
from __future__ import annotations

import fnmatch
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, List, Optional, Sequence, Tuple, TypeVar, Union

from wrapper.causes import Cause
from wrapper.errors import InputFileError, OutputFileError
from wrapper.staging.failures import input_error, output_error
from wrapper.staging.names import inside, part_path
from wrapper.staging.options import MiB, check_deadline
from wrapper.staging.results import StagedInput
from wrapper.staging.s3_client import Remote, S3Client, split_uri
from wrapper.staging.scratch import discard, finalize, under_way
from wrapper.staging.verify import verify

if TYPE_CHECKING:
    from wrapper.staging.resolve import Plan

GLOB_CHARS = "*?["
T = TypeVar("T")


def read_again(attempt: Callable[[], T], tries: int, on_break: Callable[[], None] = lambda: None) -> T:
    """`attempt()`, called again while the body it reads breaks off, `tries` calls in all; then
    s3transfer's RetriesExceededError with the last break. The breaks are s3transfer's own list,
    so a whole-object GET, a block read in place and s3transfer's parts all retry the same errors."""
    from s3transfer.exceptions import RetriesExceededError
    from s3transfer.utils import S3_RETRYABLE_DOWNLOAD_ERRORS

    failure: BaseException = RuntimeError("no attempt")
    for _ in range(tries):
        try:
            return attempt()
        except S3_RETRYABLE_DOWNLOAD_ERRORS as exc:
            failure = exc
            on_break()
    raise RetriesExceededError(failure)


class S3(S3Client):
    """The transfers of one staging call: heads, globs, downloads, ranged reads, uploads."""

    # -- reading -------------------------------------------------------------------------------

    def head(self, uri: str, source: str, location: str) -> Remote:
        """Size and ETag of `location` (an s3:// URI); InputFileError when it cannot be had."""
        bucket, key = split_uri(location)
        if (bucket, key) in self._listed:
            return self._listed[(bucket, key)]
        try:
            response = self.client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:  # noqa: BLE001 - classified into a named cause
            raise self.input_failure(uri, source, exc, bucket, key) from None
        return Remote(size=int(response["ContentLength"]), etag=response.get("ETag"))

    def expand(self, uri: str, location: str) -> List[str]:
        """The s3:// URIs a glob `s3://bucket/prefix/*.h5` matches, sorted; `*` stays within a '/'."""
        bucket, pattern = split_uri(location)
        prefix = pattern[:min(pattern.find(c) if c in pattern else len(pattern) for c in GLOB_CHARS)]
        depth = pattern.count("/")
        keys = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for listed in page.get("Contents", ()):
                    if listed["Key"].count("/") == depth and fnmatch.fnmatchcase(listed["Key"], pattern):
                        keys.append(listed["Key"])
                        self._listed[(bucket, listed["Key"])] = Remote(size=int(listed["Size"]),
                                                                       etag=listed.get("ETag"))
        except Exception as exc:  # noqa: BLE001 - classified into a named cause
            raise self.input_failure(uri, "s3", exc, bucket, prefix) from None
        if not keys:
            raise input_error(uri, "s3", Cause.NOT_FOUND, "the pattern matches no object")
        return [f"s3://{bucket}/{k}" for k in sorted(keys)]

    def download_all(self, jobs: Sequence[Tuple["Plan", Remote]]) -> List[Union[StagedInput, InputFileError]]:
        """Download every (plan, head); per-file outcome as data.

        Objects of at least one part go through s3transfer's TransferManager (parallel ranged
        GETs, re-reads of a broken part). Smaller ones are one GetObject each on a thread pool of
        our own (`_get_whole`): s3transfer's per-object machinery (submission task, IO queue,
        temporary file and rename, futures) costs more CPU than the request itself, and 256
        objects of 1 MiB took twice as long through it (scripts/bench/staging.py).
        Each object goes to `<name>.part`, is verified (size, and adler32 when one is expected),
        and only then renamed to its final name; a failed file leaves nothing behind.
        """
        from concurrent.futures import ThreadPoolExecutor

        from s3transfer.manager import TransferConfig, TransferManager

        options = self.options
        config = TransferConfig(multipart_threshold=options.part_size, multipart_chunksize=options.part_size,
                                max_request_concurrency=options.threads,
                                num_download_attempts=options.retries + 1, io_chunksize=MiB)
        started = []
        outcomes: List[Union[StagedInput, InputFileError]] = []
        cancelled = threading.Event()
        try:
            with TransferManager(self.client, config) as manager, \
                    ThreadPoolExecutor(options.threads, thread_name_prefix="s3-get") as pool, \
                    _Deadline(options.deadline, started, cancelled):
                try:
                    for plan, remote in jobs:
                        final = inside(options.workdir, plan.name)
                        part = part_path(final)
                        discard(part)
                        under_way(part)
                        watch = _Watch(plan.uri, remote, options.progress)
                        bucket, key = split_uri(plan.location)
                        if remote.size < options.part_size:
                            future = pool.submit(self._whole_settled, plan, remote, final, part, watch, cancelled)
                        else:
                            future = manager.download(bucket, key, str(part), subscribers=[watch])
                        started.append((plan, remote, final, part, watch, future))
                    for job in started:
                        outcomes.append(self._finish(*job))
                    check_deadline(options)
                finally:
                    cancelled.set()
        finally:
            # after both pools have stopped: no transfer thread can create a .part behind this
            for _, _, _, part, _, _ in started:
                discard(part)
        return outcomes

    def _get_whole(self, bucket: str, key: str, remote: Remote, part: Path, watch: "_Watch",
                   cancelled: threading.Event) -> None:
        """One object in one GetObject, pinned to the listed ETag, into `part`; a body that breaks
        off is read again from the start (`read_again`; the ledger counts each repeated call)."""
        extra = {"IfMatch": remote.etag} if remote.etag else {}

        def attempt() -> None:
            if cancelled.is_set():
                raise _Cancelled()
            body = self.client.get_object(Bucket=bucket, Key=key, **extra)["Body"]
            with open(part, "wb") as out:
                for chunk in iter(lambda: body.read(MiB), b""):
                    if cancelled.is_set():
                        raise _Cancelled()
                    out.write(chunk)
                    watch.on_progress(None, len(chunk))

        read_again(attempt, self.options.retries + 1, on_break=watch.restart)

    def _whole_settled(self, plan, remote, final: Path, part: Path, watch: "_Watch",
                       cancelled: threading.Event):
        """`_get_whole`, then the file verified and renamed on the same thread: in the main thread,
        each stat and rename waited for the GIL behind the transfer threads (256 x 1 MiB: up to 0.6 s,
        scripts/bench/staging_profile.py). Its outcome, as `_finish` would give it."""
        bucket, key = split_uri(plan.location)
        try:
            self._get_whole(bucket, key, remote, part, watch, cancelled)
        except Exception as exc:  # noqa: BLE001 - classified into a named cause
            return self.input_failure(plan.uri, plan.label, exc, bucket, key)
        try:
            return self._settled(plan, remote, final, part, watch)
        except Exception as exc:  # noqa: BLE001 - handed to the main thread unchanged
            raise _Unsettled() from exc

    def _finish(self, plan, remote, final: Path, part: Path, watch, future):
        bucket, key = split_uri(plan.location)
        try:
            outcome = future.result()
        except _Unsettled as unsettled:
            raise unsettled.__cause__        # as if verify or the rename had raised here
        except Exception as exc:  # noqa: BLE001 - classified into a named cause
            return self.input_failure(plan.uri, plan.label, exc, bucket, key)
        if remote.size < self.options.part_size:
            return outcome                   # a whole GET, settled on its own thread
        return self._settled(plan, remote, final, part, watch)

    def _settled(self, plan, remote, final: Path, part: Path, watch):
        """A fetched `part` verified and given its final name: the StagedInput, or the InputFileError."""
        bucket, key = split_uri(plan.location)
        attempts = self.ledger.attempts(bucket, key)
        try:
            adler32 = verify(part, plan.expected, uri=plan.uri, source=plan.label,
                             actual_size=remote.size, attempts=attempts)
        except InputFileError as err:
            return err
        finalize(part, final)
        return StagedInput(uri=plan.uri, source=plan.source, local_path=final, handle=None,
                           size=remote.size, adler32=adler32, seconds=time.monotonic() - watch.queued,
                           bytes_transferred=watch.received, attempts=attempts)

    def range_reader(self, uri: str, source: str, location: str,
                     etag: Optional[str]) -> Callable[[int, int], bytes]:
        """`read(start, stop)` of bytes [start, stop) of one object, for direct access.

        IfMatch pins the object that was headed; a body that breaks off or comes back short is
        read again (`read_again`) before the failure is named.
        """
        from botocore.exceptions import IncompleteReadError
        from s3transfer.exceptions import RetriesExceededError

        bucket, key = split_uri(location)
        extra = {"IfMatch": etag} if etag else {}
        self.ledger.ignore(bucket, key)      # re-reads of an evicted block are not retries

        def attempt(start: int, stop: int) -> bytes:
            response = self.client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{stop - 1}", **extra)
            data = response["Body"].read()
            if len(data) != stop - start:
                raise IncompleteReadError(actual_bytes=len(data), expected_bytes=stop - start)
            return data

        def read(start: int, stop: int) -> bytes:
            try:
                return read_again(lambda: attempt(start, stop), self.options.retries + 1)
            except RetriesExceededError as exc:
                failure = exc.last_exception     # named itself: a block has no transfer to resume
            except Exception as exc:  # noqa: BLE001 - classified into a named cause
                failure = exc
            raise self.input_failure(uri, source, failure, bucket, key) from None

        return read

    # -- writing -------------------------------------------------------------------------------

    def upload_all(self, jobs: Sequence[Tuple[Path, str, str]]) -> List[Union[OutputFileError, float]]:
        """Upload (path, s3 URI, adler32) triples in parallel, verify each by HEAD; error or seconds each."""
        from s3transfer.manager import TransferConfig, TransferManager

        options = self.options
        config = TransferConfig(multipart_threshold=options.part_size, multipart_chunksize=options.part_size,
                                max_request_concurrency=options.threads)
        started = time.monotonic()
        with TransferManager(self.client, config) as manager:
            futures = []
            for path, uri, adler32 in jobs:
                bucket, key = split_uri(uri)
                futures.append(manager.upload(str(path), bucket, key,
                                              extra_args={"Metadata": {"adler32": adler32}}))
            return [self._check_upload(future, job, started) for future, job in zip(futures, jobs)]

    def _check_upload(self, future, job, started: float) -> Union[OutputFileError, float]:
        path, uri, adler32 = job
        bucket, key = split_uri(uri)
        try:
            future.result()
            head = self.client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:  # noqa: BLE001 - classified into a named cause
            cause, detail = self.classify(exc, bucket)
            return output_error(path.name, uri, cause, self.scrub(detail), self.ledger.attempts(bucket, key))
        size = path.stat().st_size
        if int(head["ContentLength"]) != size:
            return output_error(path.name, uri, Cause.SIZE_MISMATCH,
                                f"stored {head['ContentLength']} bytes, wrote {size}")
        stored = head.get("Metadata", {}).get("adler32")
        if stored is not None and stored != adler32:
            return output_error(path.name, uri, Cause.CHECKSUM_MISMATCH,
                                f"stored adler32 {stored}, wrote {adler32}")
        return time.monotonic() - started


class _Cancelled(Exception):
    """A whole-object GET stopped because the job's deadline passed."""


class _Unsettled(Exception):
    """A whole GET's verification or rename raised on its thread (not an InputFileError): the main
    thread raises the original, as it did when it verified and renamed every file itself."""


class _Deadline:
    """Cancels the transfers started so far when the job's deadline passes (a timer thread).

    A cancelled s3transfer future stops between chunks and removes its temporary file; a
    whole-object GET sees `cancelled` between chunks. The caller then sees the deadline passed
    and raises TimeLimitError."""

    def __init__(self, deadline: Optional[float], started: list, cancelled: threading.Event):
        self._timer = None
        if deadline is not None:
            self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._cancel,
                                          (started, cancelled))
            self._timer.daemon = True

    @staticmethod
    def _cancel(started: list, cancelled: threading.Event) -> None:
        cancelled.set()
        for *_, future in list(started):
            future.cancel()

    def __enter__(self):
        if self._timer is not None:
            self._timer.start()
        return self

    def __exit__(self, *_):
        if self._timer is not None:
            self._timer.cancel()


class _Watch:
    """s3transfer subscriber: hands over the known size and ETag, and records time and bytes."""

    def __init__(self, uri: str, remote: Remote, progress: Optional[Callable[[str, int], None]]):
        self.uri = uri
        self.remote = remote
        self.progress = progress
        self.queued = time.monotonic()
        self.received = 0
        self._lock = threading.Lock()

    def on_queued(self, future, **_):
        future.meta.provide_transfer_size(self.remote.size)
        if self.remote.etag:
            future.meta.provide_object_etag(self.remote.etag)

    def on_progress(self, future, bytes_transferred, **_):
        with self._lock:
            self.received += bytes_transferred
            received = self.received
        if self.progress is not None:
            self.progress(self.uri, received)

    def restart(self) -> None:
        """The object is being read again from its first byte."""
        with self._lock:
            self.received = 0

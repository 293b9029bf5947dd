"""S3 with boto3: heads, globs, parallel multipart downloads and uploads, every failure named by cause.

One client per staging call (boto3 clients are thread-safe). botocore retries each request
(`standard` or `adaptive` mode, `retries + 1` attempts in all) and s3transfer re-reads a part
whose body broke off; a ledger hooked on the client's events counts both per object, so each file
reports how many attempts it took. Credentials come from boto3's chain (environment, profile,
config file, instance role); with none at all, requests go unsigned, for public buckets.
"""
from __future__ import annotations

import fnmatch
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, List, Optional, Sequence, Tuple, Union

from wrapper.errors import InputFileError, OutputFileError
from wrapper.redact import redact
from wrapper.staging.failures import input_error, output_error
from wrapper.staging.logs import guard_library_logs
from wrapper.staging.names import inside, part_path
from wrapper.staging.options import MiB, StagingOptions, check_deadline, s3_endpoint
from wrapper.staging.results import StagedInput
from wrapper.staging.scratch import discard, finalize, is_disk_full, under_way
from wrapper.staging.verify import verify

if TYPE_CHECKING:
    from wrapper.staging.resolve import Plan

GLOB_CHARS = "*?["
NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "NotFound", "404"}
DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden", "403",
          "InvalidToken", "ExpiredToken", "AllAccessDisabled"}


def split_uri(uri: str) -> Tuple[str, str]:
    """(bucket, key) of `s3://bucket/key`."""
    rest = uri[len("s3://"):]
    bucket, _, key = rest.partition("/")
    return bucket, key


@dataclass(frozen=True)
class Remote:
    """What a HEAD said about an object."""

    size: int
    etag: Optional[str]


class RetryLedger:
    """Counts the tries made for each object: botocore's retries plus s3transfer's re-reads of a part.

    botocore keeps a call's attempt number in the request context, and s3transfer repeats a
    GetObject with the same Range when a body breaks off, so both are visible from one event hook.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._contexts = defaultdict(list)
        self._seen = set()
        self._repeats = Counter()
        self._ignored = set()

    def attach(self, client) -> None:
        client.meta.events.register("before-parameter-build.s3", self._on_call)

    def ignore(self, bucket: str, key: str) -> None:
        """Stop counting calls for an object (direct access reads blocks again by design)."""
        with self._lock:
            self._ignored.add((bucket, key))

    def _on_call(self, params, model, context, **_):
        obj = (params.get("Bucket"), params.get("Key"))
        call = (model.name, *obj, params.get("Range"))
        with self._lock:
            if obj in self._ignored:
                return
            self._contexts[obj].append(context)
            if call in self._seen:
                self._repeats[obj] += 1
            self._seen.add(call)

    def attempts(self, bucket: str, key: str) -> int:
        """1 + every retry made so far for this object."""
        with self._lock:
            contexts = list(self._contexts[(bucket, key)])
            repeats = self._repeats[(bucket, key)]
        retries = sum(max(0, c.get("retries", {}).get("attempt", 1) - 1) for c in contexts)
        return 1 + retries + repeats


class S3:
    """A boto3 S3 client for one staging call, its retry ledger, and the credential values to scrub."""

    def __init__(self, options: StagingOptions):
        import boto3
        import botocore
        from botocore.config import Config

        self.options = options
        session = boto3.session.Session()
        credentials = session.get_credentials()
        frozen = credentials.get_frozen_credentials() if credentials else None
        self._secrets = tuple(v for v in (frozen or ()) if v and len(v) >= 4)
        self.anonymous = frozen is None
        self.endpoint = s3_endpoint(options)
        config = Config(
            retries={"mode": options.s3_retry_mode, "total_max_attempts": options.retries + 1},
            connect_timeout=options.timeout_s, read_timeout=options.timeout_s,
            max_pool_connections=max(10, 2 * options.threads), tcp_keepalive=True,
            # "auto" would mean path style at any --s3Endpoint, leaving --s3PathStyle without
            # effect; "virtual" still falls back to the path against an IP address
            s3={"addressing_style": "path" if options.s3_path_style else "virtual"},
            signature_version=botocore.UNSIGNED if self.anonymous else None,
            # uploads carry a CRC the store checks; downloads are checked against the HEAD's size,
            # pinned to its ETag, and against adler32 when one is expected, which spares a HEAD per file
            response_checksum_validation="when_required")
        self.client = session.client("s3", endpoint_url=self.endpoint, config=config,
                                     region_name=session.region_name or "us-east-1")
        self.ledger = RetryLedger()
        self.ledger.attach(self.client)
        # size and ETag of the objects a glob listed: their HEAD would say the same, one request later
        self._listed: dict = {}
        import s3transfer.manager  # noqa: F401 - its loggers exist before they are guarded

        guard_library_logs(self._secrets)

    # -- failures ------------------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        """`text` redacted, also of the credential values boto3 found (a profile's, not only env's)."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return redact(text)

    def classify(self, exc: BaseException, bucket: str = "") -> Tuple[str, str]:
        """(cause, detail) of a boto3/s3transfer failure."""
        from botocore import exceptions as bx
        from s3transfer.exceptions import RetriesExceededError, S3DownloadFailedError

        if isinstance(exc, RetriesExceededError) and exc.last_exception is not None:
            cause, detail = self.classify(exc.last_exception, bucket)
            return cause, f"transfer broke off and could not be resumed ({detail})"
        if is_disk_full(exc):
            return "disk-full", "no space left in the job directory"
        if isinstance(exc, bx.ClientError):
            return self._classify_status(exc, bucket)
        if isinstance(exc, S3DownloadFailedError):
            return "changed", "the object changed while it was being read"
        if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
            return "permission", "no usable S3 credentials (environment, profile or config file)"
        if isinstance(exc, (bx.ConnectTimeoutError, bx.ReadTimeoutError)):
            return "timeout", f"no answer from {self.endpoint or 'AWS'} within {self.options.timeout_s:g} s"
        if isinstance(exc, bx.EndpointConnectionError):
            return "connection", f"could not connect to the endpoint {self.endpoint or 'AWS'}"
        if isinstance(exc, (bx.ConnectionError, bx.HTTPClientError, bx.IncompleteReadError,
                            bx.ResponseStreamingError, ConnectionError)):
            return "connection", f"connection to {self.endpoint or 'AWS'} broke off"
        if isinstance(exc, bx.ParamValidationError):
            return "bad-uri", "not a valid bucket or key"
        if isinstance(exc, OSError):
            return "unwritable", f"{exc.strerror or type(exc).__name__}"
        return "failed", type(exc).__name__

    def _classify_status(self, exc, bucket: str) -> Tuple[str, str]:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if status == 404 or code in NOT_FOUND:
            return "not-found", self._which_missing(code, bucket)
        if status in (401, 403) or code in DENIED:
            hint = ("no credentials were found, so the request was unsigned" if self.anonymous
                    else "check the access key, the secret and the bucket policy")
            name = code if code and not code.isdigit() else "access denied"
            return "permission", f"{name} (HTTP {status}): {hint}"
        if status == 412 or code == "PreconditionFailed":
            return "changed", "the object changed while it was being read"
        if status == 416 or code == "InvalidRange":
            return "size-mismatch", "the object is shorter than announced"
        if status >= 500 or status == 429 or "SlowDown" in code or "Throttl" in code:
            name = code if code and not code.isdigit() else "server error"
            return "server-error", f"{name} (HTTP {status})"
        return "refused", f"{code if code and not code.isdigit() else 'refused'} (HTTP {status})"

    def _which_missing(self, code: str, bucket: str) -> str:
        if code == "NoSuchBucket":
            return f"bucket {bucket!r} does not exist"
        if code == "NoSuchKey" or not bucket:
            return "no such key"
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return f"bucket {bucket!r} does not exist"
            return "no such key"
        except Exception:  # noqa: BLE001 - the first answer stands whatever this one says
            return "no such key"
        return f"no such key in bucket {bucket!r}"

    def input_failure(self, uri: str, source: str, exc: BaseException, bucket: str, key: str):
        """InputFileError for a failed S3 read, with cause and attempt count."""
        cause, detail = self.classify(exc, bucket)
        return input_error(uri, source, cause, self.scrub(detail), self.ledger.attempts(bucket, key))

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
            raise input_error(uri, "s3", "not-found", "the pattern matches no object")
        return [f"s3://{bucket}/{k}" for k in sorted(keys)]

    def download_all(self, jobs: Sequence[Tuple["Plan", Remote]]) -> List[Union[StagedInput, InputFileError]]:
        """Download every (plan, head); per-file outcome as data.

        Objects of at least one part go through s3transfer's TransferManager (parallel ranged
        GETs, re-reads of a broken part). Smaller ones are one GetObject each on a thread pool of
        our own (`_get_whole`): s3transfer's per-object machinery (submission task, IO queue,
        temporary file and rename, futures) costs more CPU than the request itself, and 256
        objects of 1 MiB took twice as long through it (scripts/bench_staging.py).
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
                            future = pool.submit(self._get_whole, bucket, key, remote, part, watch, cancelled)
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
        """One object in one GetObject, pinned to the listed ETag, into `part`. A body that breaks
        off is read again, as s3transfer does, up to `retries + 1` tries in all; then
        RetriesExceededError (the ledger counts each repeated call)."""
        from s3transfer.exceptions import RetriesExceededError
        from s3transfer.utils import S3_RETRYABLE_DOWNLOAD_ERRORS

        extra = {"IfMatch": remote.etag} if remote.etag else {}
        failure: BaseException = RuntimeError("no attempt")
        for _ in range(self.options.retries + 1):
            if cancelled.is_set():
                raise _Cancelled()
            try:
                body = self.client.get_object(Bucket=bucket, Key=key, **extra)["Body"]
                with open(part, "wb") as out:
                    for chunk in iter(lambda: body.read(MiB), b""):
                        if cancelled.is_set():
                            raise _Cancelled()
                        out.write(chunk)
                        watch.on_progress(None, len(chunk))
                return
            except S3_RETRYABLE_DOWNLOAD_ERRORS as exc:
                failure = exc
                watch.restart()
        raise RetriesExceededError(failure)

    def _finish(self, plan, remote, final: Path, part: Path, watch, future):
        bucket, key = split_uri(plan.location)
        try:
            future.result()
        except Exception as exc:  # noqa: BLE001 - classified into a named cause
            return self.input_failure(plan.uri, plan.source, exc, bucket, key)
        attempts = self.ledger.attempts(bucket, key)
        try:
            adler32 = verify(part, plan.expected, uri=plan.uri, source=plan.source,
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

        IfMatch pins the object that was headed; a body that breaks off is read again, within
        the retry budget, before the failure is named.
        """
        from botocore import exceptions as bx

        bucket, key = split_uri(location)
        extra = {"IfMatch": etag} if etag else {}
        transient = (bx.IncompleteReadError, bx.ResponseStreamingError, bx.ReadTimeoutError,
                     bx.ConnectionError, ConnectionError)

        self.ledger.ignore(bucket, key)      # re-reads of an evicted block are not retries

        def read(start: int, stop: int) -> bytes:
            failure: BaseException = RuntimeError("no attempt")
            for _ in range(self.options.retries + 1):
                try:
                    response = self.client.get_object(Bucket=bucket, Key=key,
                                                      Range=f"bytes={start}-{stop - 1}", **extra)
                    data = response["Body"].read()
                except transient as exc:
                    failure = exc
                    continue
                except Exception as exc:  # noqa: BLE001 - classified into a named cause
                    raise self.input_failure(uri, source, exc, bucket, key) from None
                if len(data) == stop - start:
                    return data
                failure = bx.IncompleteReadError(actual_bytes=len(data), expected_bytes=stop - start)
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
            return output_error(path.name, uri, "size-mismatch",
                                f"stored {head['ContentLength']} bytes, wrote {size}")
        stored = head.get("Metadata", {}).get("adler32")
        if stored is not None and stored != adler32:
            return output_error(path.name, uri, "checksum-mismatch",
                                f"stored adler32 {stored}, wrote {adler32}")
        return time.monotonic() - started


class _Cancelled(Exception):
    """A whole-object GET stopped because the job's deadline passed."""


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

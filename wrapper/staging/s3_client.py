"""The S3 client of one staging call: its set-up, its retry ledger, and what its failures mean.

One client per staging call (boto3 clients are thread-safe). botocore retries each request
(`standard` or `adaptive` mode, `retries + 1` attempts in all) and s3transfer re-reads a part
whose body broke off; a ledger hooked on the client's events counts both per object, so each file
reports how many attempts it took. Credentials come from boto3's chain (environment, profile,
config file, instance role); with none at all, requests go unsigned, for public buckets. The
transfers themselves are in wrapper.staging.s3.
"""
from __future__ import annotations

import gc
import threading
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional, Tuple

from wrapper.causes import Cause
from wrapper.redact import redact
from wrapper.staging.failures import input_error
from wrapper.staging.logs import guard_library_logs
from wrapper.staging.options import StagingOptions, s3_endpoint
from wrapper.staging.scratch import is_disk_full

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


@contextmanager
def _collector_paused():
    """The cyclic garbage collector off for the block, then as it was."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class S3Client:
    """A boto3 S3 client for one staging call, its retry ledger, and the credential values to scrub."""

    def __init__(self, options: StagingOptions):
        # the imports and model loading below allocate ~70k lasting objects in bursts, and each
        # burst set off collections that walked all of them again: paused meanwhile
        with _collector_paused():
            self._set_up(options)

    def _set_up(self, options: StagingOptions) -> None:
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

    def classify(self, exc: BaseException, bucket: str = "") -> Tuple[Cause, str]:
        """(cause, detail) of a boto3/s3transfer failure."""
        from botocore import exceptions as bx
        from s3transfer.exceptions import RetriesExceededError, S3DownloadFailedError

        if isinstance(exc, RetriesExceededError) and exc.last_exception is not None:
            cause, detail = self.classify(exc.last_exception, bucket)
            return cause, f"transfer broke off and could not be resumed ({detail})"
        if is_disk_full(exc):
            return Cause.DISK_FULL, "no space left in the job directory"
        if isinstance(exc, bx.ClientError):
            return self._classify_status(exc, bucket)
        if isinstance(exc, S3DownloadFailedError):
            return Cause.CHANGED, "the object changed while it was being read"
        if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
            return Cause.PERMISSION, "no usable S3 credentials (environment, profile or config file)"
        if isinstance(exc, (bx.ConnectTimeoutError, bx.ReadTimeoutError)):
            return Cause.TIMEOUT, f"no answer from {self.endpoint or 'AWS'} within {self.options.timeout_s:g} s"
        if isinstance(exc, bx.EndpointConnectionError):
            return Cause.CONNECTION, f"could not connect to the endpoint {self.endpoint or 'AWS'}"
        if isinstance(exc, (bx.ConnectionError, bx.HTTPClientError, bx.IncompleteReadError,
                            bx.ResponseStreamingError, ConnectionError)):
            return Cause.CONNECTION, f"connection to {self.endpoint or 'AWS'} broke off"
        if isinstance(exc, bx.ParamValidationError):
            return Cause.BAD_URI, "not a valid bucket or key"
        if isinstance(exc, OSError):
            return Cause.UNWRITABLE, f"{exc.strerror or type(exc).__name__}"
        return Cause.FAILED, type(exc).__name__

    def _classify_status(self, exc, bucket: str) -> Tuple[Cause, str]:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if status == 404 or code in NOT_FOUND:
            return Cause.NOT_FOUND, self._which_missing(code, bucket)
        if status in (401, 403) or code in DENIED:
            hint = ("no credentials were found, so the request was unsigned" if self.anonymous
                    else "check the access key, the secret and the bucket policy")
            name = code if code and not code.isdigit() else "access denied"
            return Cause.PERMISSION, f"{name} (HTTP {status}): {hint}"
        if status == 412 or code == "PreconditionFailed":
            return Cause.CHANGED, "the object changed while it was being read"
        if status == 416 or code == "InvalidRange":
            return Cause.SIZE_MISMATCH, "the object is shorter than announced"
        if status >= 500 or status == 429 or "SlowDown" in code or "Throttl" in code:
            name = code if code and not code.isdigit() else "server error"
            return Cause.SERVER_ERROR, f"{name} (HTTP {status})"
        return Cause.REFUSED, f"{code if code and not code.isdigit() else 'refused'} (HTTP {status})"

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

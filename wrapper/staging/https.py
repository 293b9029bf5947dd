"""HTTP(S) inputs and outputs with requests: pooled connections, urllib3 retries, Range resume.

urllib3's Retry re-sends a request on connection errors and on 429/5xx, backing off exponentially,
and records each retry in the response's history, which is how attempts are counted. A body that
breaks off is resumed from where it stopped with `Range` (and `If-Range`, so a changed file is read
from the start again), within the same retry budget. Retry-After is not obeyed: a server asking
for hours would outlive the job, and our own backoff is bounded.

Credentials: the CA bundle comes from REQUESTS_CA_BUNDLE or X509_CERT_DIR; a WLCG bearer token
(BEARER_TOKEN, the file named by BEARER_TOKEN_FILE, $XDG_RUNTIME_DIR/bt_u<uid>, /tmp/bt_u<uid>:
wrapper/tokens.py, which the redaction reads too) is sent only over https and never written
anywhere; it is read again for every request, so a token agent may renew the file while a long
job runs.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Tuple

from wrapper.causes import Cause
from wrapper.errors import InputFileError
from wrapper.staging.failures import input_error, output_error
from wrapper.staging.logs import guard_library_logs
from wrapper.staging.names import inside, part_path
from wrapper.staging.options import MiB, StagingOptions, check_deadline
from wrapper.staging.results import StagedInput
from wrapper.staging.scratch import discard, finalize, is_disk_full, open_part
from wrapper.staging.verify import verify
from wrapper.tokens import bearer_token

if TYPE_CHECKING:
    import requests

    from wrapper.staging.resolve import Plan

RETRY_STATUS = (429, 500, 502, 503, 504)
CHUNK = MiB


@dataclass(frozen=True)
class Remote:
    """What a HEAD said: the size (None when the server did not say) and a validator for If-Range."""

    size: Optional[int]
    validator: Optional[str]
    attempts: int


def ca_bundle():
    """What requests should verify servers against: a bundle file, a CA directory, or the default."""
    if os.environ.get("REQUESTS_CA_BUNDLE"):
        return os.environ["REQUESTS_CA_BUNDLE"]
    if os.environ.get("X509_CERT_DIR") and os.path.isdir(os.environ["X509_CERT_DIR"]):
        return os.environ["X509_CERT_DIR"]
    return True


def make_session(options: StagingOptions) -> "requests.Session":
    """A pooled Session whose every request retries per `options` with exponential backoff."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(total=options.retries, connect=options.retries, read=options.retries,
                  status=options.retries, other=0, backoff_factor=options.backoff_s, backoff_max=30,
                  status_forcelist=RETRY_STATUS, allowed_methods=frozenset({"GET", "HEAD", "PUT"}),
                  raise_on_status=False, respect_retry_after_header=False)
    adapter = HTTPAdapter(max_retries=retry, pool_connections=options.threads, pool_maxsize=options.threads)
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.verify = ca_bundle()   # passed on every request too: requests lets CURL_CA_BUNDLE override it
    session.headers["Accept-Encoding"] = "identity"   # sizes and Range offsets are of the stored bytes
    guard_library_logs()
    return session


def auth_headers(url: str) -> dict:
    """Authorization for `url`: the bearer token, over https only."""
    token = bearer_token() if url.startswith("https://") else None
    return {"Authorization": f"Bearer {token}"} if token else {}


def _retries(response) -> int:
    history = getattr(getattr(response.raw, "retries", None), "history", ())
    return len(history or ())


def classify_status(status: int) -> Cause:
    """Cause of an HTTP status."""
    if status == 404 or status == 410:
        return Cause.NOT_FOUND
    if status in (401, 403):
        return Cause.PERMISSION
    if status == 416:
        return Cause.SIZE_MISMATCH
    if status >= 500 or status == 429:
        return Cause.SERVER_ERROR
    return Cause.REFUSED


def classify(exc: BaseException, options: StagingOptions) -> Tuple[Cause, str]:
    """(cause, detail) of a requests/urllib3 failure."""
    import requests

    if is_disk_full(exc):
        return Cause.DISK_FULL, "no space left in the job directory"
    if isinstance(exc, requests.exceptions.SSLError):
        return Cause.PERMISSION, "TLS verification failed (check REQUESTS_CA_BUNDLE / X509_CERT_DIR)"
    if isinstance(exc, requests.exceptions.Timeout):
        return Cause.TIMEOUT, f"no answer within {options.timeout_s:g} s"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return Cause.SIZE_MISMATCH, "the body ended before the announced length"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return Cause.CONNECTION, "could not connect, or the connection broke off"
    if isinstance(exc, OSError):
        return Cause.UNWRITABLE, exc.strerror or type(exc).__name__
    return Cause.FAILED, type(exc).__name__


def head(session, uri: str, source: str, url: str, options: StagingOptions) -> Remote:
    """Size and validator of `url`: by HEAD, or by a one-byte Range GET where HEAD is refused.

    Presigned URLs are signed for GET only and some servers do not implement HEAD (403, 405,
    501); the ranged GET then tells the size from Content-Range. Where neither tells, the size
    stays unknown and the download alone decides.
    """
    import requests

    try:
        response = session.head(url, headers=auth_headers(url), allow_redirects=True,
                                timeout=options.timeout_s, verify=session.verify)
        attempts = 1 + _retries(response)
        if response.status_code in (403, 405, 501):
            headers = dict(auth_headers(url), Range="bytes=0-0")
            with session.get(url, headers=headers, stream=True, timeout=options.timeout_s,
                             verify=session.verify) as response:
                attempts += 1 + _retries(response)
    except requests.exceptions.RequestException as exc:
        cause, detail = classify(exc, options)
        raise input_error(uri, source, cause, detail, options.retries + 1) from None
    if response.status_code >= 400:
        raise input_error(uri, source, classify_status(response.status_code),
                          f"HTTP {response.status_code}", attempts)
    validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
    return Remote(size=_size_of(response), validator=validator, attempts=attempts)


def _size_of(response) -> Optional[int]:
    if response.status_code == 206:
        total = response.headers.get("Content-Range", "").rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def download(session, plan: "Plan", remote: Remote, options: StagingOptions) -> StagedInput:
    """Fetch one URL into `<name>.part`, resuming a broken body with Range, verify, rename."""
    final = inside(options.workdir, plan.name)
    part = part_path(final)
    started = time.monotonic()
    state = _Transfer(plan, remote, part, options)
    try:
        state.run(session)
        adler32 = verify(part, plan.expected, uri=plan.uri, source=plan.label,
                         actual_size=state.total, attempts=state.attempts)
        finalize(part, final)
    except OSError as exc:             # writing the job directory failed: disk full, permissions
        discard(part)
        cause, detail = classify(exc, options)
        raise input_error(plan.uri, plan.label, cause, detail, state.attempts) from None
    except BaseException:
        discard(part)
        raise
    return StagedInput(uri=plan.uri, source=plan.source, local_path=final, handle=None,
                       size=final.stat().st_size, adler32=adler32, seconds=time.monotonic() - started,
                       bytes_transferred=state.received, attempts=state.attempts)


class _Transfer:
    """The state of one download: bytes on disk, total size, validator, tries so far (1 + retries)."""

    def __init__(self, plan: "Plan", remote: Remote, part: Path, options: StagingOptions):
        self.plan = plan
        self.part = part
        self.options = options
        self.total = remote.size
        self.validator = remote.validator
        self.have = 0
        self.received = 0
        self.attempts = remote.attempts - 1 if remote.attempts else 0   # the HEAD's retries count too
        self.resumes = 0

    def run(self, session) -> None:
        import requests

        discard(self.part)
        while True:
            try:
                self._once(session)
                return
            except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError,
                    requests.exceptions.Timeout) as exc:
                if isinstance(exc, requests.exceptions.ConnectionError) and self._retries_spent(exc):
                    raise self._failure(exc, self.attempts) from None
                if self.resumes >= self.options.retries:
                    raise self._failure(exc, self.attempts) from None
                self.resumes += 1
                time.sleep(min(30.0, self.options.backoff_s * 2 ** (self.resumes - 1)))

    def _retries_spent(self, exc) -> bool:
        """A ConnectionError raised by urllib3 itself (MaxRetryError) means its retries are spent."""
        from urllib3.exceptions import MaxRetryError

        spent = isinstance(exc.args[0] if exc.args else None, MaxRetryError)
        if spent:
            self.attempts += self.options.retries + 1
        return spent

    def _failure(self, exc: BaseException, attempts: int) -> InputFileError:
        cause, detail = classify(exc, self.options)
        return input_error(self.plan.uri, self.plan.label, cause, detail, attempts)

    def _once(self, session) -> None:
        headers = auth_headers(self.plan.location)
        if self.have:
            headers["Range"] = f"bytes={self.have}-"
            if self.validator:
                headers["If-Range"] = self.validator
        with session.get(self.plan.location, headers=headers, stream=True, timeout=self.options.timeout_s,
                         verify=session.verify) as response:
            self.attempts += 1 + _retries(response)
            self._check(response)
            with open_part(self.part, append=self.have > 0) as out:
                for chunk in response.iter_content(CHUNK):
                    check_deadline(self.options)
                    out.write(chunk)
                    self.have += len(chunk)
                    self.received += len(chunk)
                    if self.options.progress is not None:
                        self.options.progress(self.plan.uri, self.have)

    def _check(self, response) -> None:
        status = response.status_code
        if status == 206 and self.have:
            start = response.headers.get("Content-Range", "").removeprefix("bytes ").split("-")[0]
            if start == str(self.have):
                return
            raise input_error(self.plan.uri, self.plan.label, Cause.REFUSED,
                              "the server answered a resume with the wrong range", self.attempts)
        if status == 200:
            if self.have:                      # the file changed or Range is not supported
                self.have = 0
            length = response.headers.get("Content-Length")
            if length and length.isdigit():
                self.total = int(length)
            self.validator = (response.headers.get("ETag") or response.headers.get("Last-Modified")
                              or self.validator)
            return
        raise input_error(self.plan.uri, self.plan.label, classify_status(status),
                          f"HTTP {status}", self.attempts)


def upload(session, path: Path, url: str, adler32: str, options: StagingOptions, label: str) -> None:
    """PUT `path` to `url`, then HEAD it and compare the size; OutputFileError when anything fails."""
    import requests

    size = path.stat().st_size
    headers = dict(auth_headers(url), **{"Content-Length": str(size), "Digest": f"adler32={adler32}"})
    try:
        with open(path, "rb") as body:
            response = session.put(url, data=body, headers=headers, timeout=options.timeout_s,
                                   verify=session.verify)
        attempts = 1 + _retries(response)
        if response.status_code >= 300:
            raise output_error(label, url, classify_status(response.status_code),
                               f"HTTP {response.status_code}", attempts)
        check = session.head(url, headers=auth_headers(url), timeout=options.timeout_s, verify=session.verify)
    except requests.exceptions.RequestException as exc:
        cause, detail = classify(exc, options)
        raise output_error(label, url, cause, detail) from None
    stored = check.headers.get("Content-Length")
    if check.status_code >= 400 or stored != str(size):
        raise output_error(label, url, Cause.SIZE_MISMATCH,
                           f"HEAD after upload says {stored or 'nothing'} bytes "
                           f"(HTTP {check.status_code}), wrote {size}")


def range_reader(session, uri: str, source: str, url: str,
                 options: StagingOptions) -> Callable[[int, int], bytes]:
    """`read(start, stop)` of bytes [start, stop) of `url` by Range GETs, for direct access."""
    import requests

    def read(start: int, stop: int) -> bytes:
        headers = dict(auth_headers(url), Range=f"bytes={start}-{stop - 1}")
        for _ in range(options.retries + 1):
            try:
                response = session.get(url, headers=headers, timeout=options.timeout_s, verify=session.verify)
            except requests.exceptions.ChunkedEncodingError:
                continue                                  # the body broke off: ask for the range again
            except requests.exceptions.RequestException as exc:
                cause, detail = classify(exc, options)
                raise input_error(uri, source, cause, detail) from None
            if response.status_code != 206:
                raise input_error(uri, source, classify_status(response.status_code),
                                  f"HTTP {response.status_code} to a Range request")
            if len(response.content) == stop - start:
                return response.content
        raise input_error(uri, source, Cause.SIZE_MISMATCH, "the range kept coming back short",
                          options.retries + 1)

    return read

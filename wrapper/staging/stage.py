"""Staging inputs: plan every URI, look at the remote files, check scratch space, fetch in parallel.

Every file's outcome is kept as data until all transfers are over; then the first failure (in
input order) is raised with the count of the others, so no transfer is left running behind an
exception. A file that cannot even be looked at (not found, denied, endpoint down) fails the
call before any byte is downloaded.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from wrapper.causes import Cause
from wrapper.errors import InputFileError
from wrapper.staging.failures import input_error
from wrapper.staging.options import StagingOptions, check_deadline
from wrapper.staging.resolve import Plan, Planner
from wrapper.staging.results import StagedInput
from wrapper.staging.scratch import ensure_free_space
from wrapper.staging.verify import verify

log = logging.getLogger(__name__)
Outcome = Union[StagedInput, InputFileError]


class Clients:
    """The S3 client and HTTP session of one staging call, made only when a URI needs them."""

    def __init__(self, options: StagingOptions):
        self.options = options
        self._s3 = None
        self._http = None

    @property
    def s3(self):
        if self._s3 is None:
            from wrapper.staging.s3 import S3

            self._s3 = S3(self.options)
        return self._s3

    @property
    def http(self):
        if self._http is None:
            from wrapper.staging.https import make_session

            self._http = make_session(self.options)
        return self._http


def stage_inputs(uris: Sequence[str], options: StagingOptions) -> Tuple[StagedInput, ...]:
    """Resolve and fetch every input (globs expanded), in order; InputFileError (exit 9) with a cause.

    In copy mode remote files land verified in the job directory under their names; in direct
    mode S3/HTTPS inputs come back as read-only file objects (`handle`) for h5py.
    """
    clients = Clients(options)
    planner = Planner(options, lambda shown, location: clients.s3.expand(shown, location))
    plans = [plan for uri in uris for plan in planner.plan(uri)]
    _check_names(plans)
    staged = _stage(plans, options, clients, direct=options.access_mode == "direct")
    for item in staged:
        log.info("staged %s (%s): %d bytes in %.2f s, %d attempt(s)", item.uri, item.source, item.size,
                 item.seconds, item.attempts)
    return staged


def resolve_one(uri: str, options: StagingOptions) -> StagedInput:
    """One file (a model, a build manifest, a checkpoint), always copied, whatever the access mode."""
    clients = Clients(options)
    planner = Planner(options, lambda shown, location: clients.s3.expand(shown, location))
    plans = planner.plan(uri)
    if len(plans) != 1:
        raise input_error(plans[0].uri, "uri", Cause.AMBIGUOUS, f"names {len(plans)} files where one is needed")
    return _stage(plans, options, clients, direct=False)[0]


def _check_names(plans: Sequence[Plan]) -> None:
    seen: Dict[str, Plan] = {}
    for plan in plans:
        if plan.scheme == "local":
            continue
        if plan.name in seen:
            raise input_error(plan.uri, plan.label, Cause.DUPLICATE_NAME, f"{plan.name} is also the name of "
                              f"{seen[plan.name].uri}; both cannot sit in the job directory")
        seen[plan.name] = plan


def _stage(plans: Sequence[Plan], options: StagingOptions, clients: Clients, *,
           direct: bool) -> Tuple[StagedInput, ...]:
    outcomes: Dict[int, Outcome] = {}
    remote: List[Tuple[int, Plan]] = []
    for index, plan in enumerate(plans):
        if plan.scheme in ("staged", "local"):
            outcomes[index] = _as_data(lambda p=plan: _local(p))
        else:
            remote.append((index, plan))
    if remote:
        heads = _parallel([lambda p=plan: _head(p, clients) for _, plan in remote], options.threads)
        looked_at = {**outcomes, **{i: h for (i, _), h in zip(remote, heads)}}
        _first_failure_raised([looked_at[i] for i in sorted(looked_at)])
        ready = [(i, p, h) for (i, p), h in zip(remote, heads)]
        if direct:
            outcomes.update({i: _as_data(lambda p=p, h=h: _open_direct(p, h, clients)) for i, p, h in ready})
        elif ready:
            outcomes.update(_download(ready, options, clients))
    return _first_failure_raised([outcomes[i] for i in range(len(plans))])


def _download(ready, options: StagingOptions, clients: Clients) -> Dict[int, Outcome]:
    check_deadline(options)
    ensure_free_space(options.workdir, sum(h.size or 0 for _, _, h in ready), f"{len(ready)} input file(s)")
    outcomes: Dict[int, Outcome] = {}
    s3_jobs = [(i, p, h) for i, p, h in ready if p.scheme == "s3"]
    if s3_jobs:
        results = clients.s3.download_all([(p, h) for _, p, h in s3_jobs])
        outcomes.update({i: r for (i, _, _), r in zip(s3_jobs, results)})
    http_jobs = [(i, p, h) for i, p, h in ready if p.scheme == "https"]
    if http_jobs:
        from wrapper.staging.https import download

        results = _parallel([lambda p=p, h=h: download(clients.http, p, h, options) for _, p, h in http_jobs],
                            options.threads)
        outcomes.update({i: r for (i, _, _), r in zip(http_jobs, results)})
    return outcomes


def _head(plan: Plan, clients: Clients):
    if plan.scheme == "s3":
        remote = clients.s3.head(plan.uri, plan.label, plan.location)
    else:
        from wrapper.staging.https import head

        remote = head(clients.http, plan.uri, plan.label, plan.location, clients.options)
    if plan.expected.size is not None and remote.size is not None and remote.size != plan.expected.size:
        raise input_error(plan.uri, plan.label, Cause.SIZE_MISMATCH,
                          f"the object holds {remote.size} bytes, {plan.expected.size} expected")
    return remote


def _local(plan: Plan) -> StagedInput:
    path = Path(plan.location)
    started = time.monotonic()
    if not path.is_file():
        raise input_error(plan.uri, plan.label, Cause.UNREADABLE, "not a regular file")
    try:
        adler32 = verify(path, plan.expected, uri=plan.uri, source=plan.label, attempts=0)
    except PermissionError:
        raise input_error(plan.uri, plan.label, Cause.PERMISSION, "not readable by this job") from None
    return StagedInput(uri=plan.uri, source=plan.source, local_path=path, handle=None,
                       size=path.stat().st_size, adler32=adler32, seconds=time.monotonic() - started,
                       bytes_transferred=0, attempts=0)


def _open_direct(plan: Plan, remote, clients: Clients) -> StagedInput:
    from wrapper.staging.direct import DirectSource

    if remote.size is None:
        raise input_error(plan.uri, plan.label, Cause.UNSUPPORTED, "the server gives no size, so the file "
                          "cannot be read in place; use --accessMode=copy")
    if plan.expected.adler32:
        log.warning("%s: direct access reads in place, so adler32 %s is not verified", plan.uri,
                    plan.expected.adler32)
    source = DirectSource(plan, remote.size, remote.etag if plan.scheme == "s3" else None,
                          dataclasses.replace(clients.options, progress=None))
    handle = open_direct_source(source, clients)
    if plan.scheme == "s3":
        from wrapper.staging.s3_client import split_uri

        attempts = clients.s3.ledger.attempts(*split_uri(plan.location))
    else:
        attempts = remote.attempts
    return StagedInput(uri=plan.uri, source=plan.source, local_path=None, handle=handle, size=remote.size,
                       adler32=None, seconds=0.0, bytes_transferred=0, attempts=attempts, direct_source=source)


def open_direct_source(source, clients: Optional[Clients] = None):
    """A read-only file object (BlockCachedFile) on a DirectSource: the staged one, or the same
    file opened again in another process (the supervised payload step)."""
    from wrapper.staging.direct import BlockCachedFile

    plan, options = source.plan, source.options
    clients = clients or Clients(options)
    if plan.scheme == "s3":
        fetch = clients.s3.range_reader(plan.uri, plan.label, plan.location, source.etag)
    else:
        from wrapper.staging.https import range_reader

        fetch = range_reader(clients.http, plan.uri, plan.label, plan.location, options)
    return BlockCachedFile(plan.name, source.size, fetch, block_size=options.block_size,
                           cache_bytes=options.cache_bytes, readahead=options.readahead_blocks)


def _as_data(step: Callable[[], StagedInput]) -> Outcome:
    try:
        return step()
    except InputFileError as err:
        return err


def _parallel(steps: Sequence[Callable], threads: int) -> List:
    if len(steps) == 1:
        return [_as_data(steps[0])]
    with ThreadPoolExecutor(max_workers=min(threads, len(steps)), thread_name_prefix="stage") as pool:
        return list(pool.map(_as_data, steps))


def _first_failure_raised(outcomes: List[Outcome]) -> Tuple[StagedInput, ...]:
    failures = [o for o in outcomes if isinstance(o, InputFileError)]
    if not failures:
        return tuple(outcomes)
    for item in outcomes:
        handle = getattr(item, "handle", None)
        if handle is not None:
            handle.close()
    first = failures[0]
    if len(failures) > 1:
        others = ", ".join(sorted({f.cause for f in failures[1:]}))
        raise InputFileError(f"{first.message} (and {len(failures) - 1} more input(s) failed: {others})",
                             cause=first.cause, source=first.source)
    raise first


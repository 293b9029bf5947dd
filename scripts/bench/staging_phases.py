"""`python -m wrapper.staging` with wall-time marks at its phase boundaries, from outside the product.

    python -m scripts.bench.staging_phases MARKS.json -- [wrapper.staging arguments...]

Runs wrapper/staging/__main__.py in this fresh interpreter (runpy, the same argv) after wrapping a
few of its functions with timers, so the product carries no timing code: the S3 client's set-up
(the boto3/botocore/s3transfer imports it starts with timed apart from the rest), the glob's
listing, the heads, `download_all`, and in it each whole GET, verification and rename. The marks
are `time.monotonic()` values (CLOCK_MONOTONIC, the same clock in every process of the machine),
so the parent that spawned this process can put interpreter start and exit around them
(scripts/bench/staging_profile.py). Written as JSON just before the interpreter exits.
"""
from __future__ import annotations

import time

STARTED = time.monotonic()     # first: what came before is the interpreter's own start

import functools  # noqa: E402 - after the first mark on purpose
import json  # noqa: E402
import os  # noqa: E402
import runpy  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

marks = {"started": STARTED}
spans: dict = {}               # name -> [seconds, ...], summed by the profile
_lock = threading.Lock()


def _span(name: str, function):
    """`function` timed into spans[name] on the main thread, spans[name + "@threads"] on others."""
    @functools.wraps(function)
    def timed(*args, **kwargs):
        began = time.monotonic()
        try:
            return function(*args, **kwargs)
        finally:
            where = "" if threading.current_thread() is threading.main_thread() else "@threads"
            with _lock:
                spans.setdefault(name + where, []).append(time.monotonic() - began)
                marks.setdefault(f"{name}{where}_first", began)
                marks[f"{name}{where}_last"] = time.monotonic()
    return timed


def _client_set_up(original):
    """S3Client._set_up with its library imports timed apart from the client's making."""
    @functools.wraps(original)
    def set_up(self, options):
        marks["client_start"] = time.monotonic()
        # the first lines of the original: import what it imports, so that the rest is set-up alone
        import boto3  # noqa: F401
        import botocore.config  # noqa: F401
        import s3transfer.manager  # noqa: F401

        marks["libraries_imported"] = time.monotonic()
        original(self, options)
        marks["client_ready"] = time.monotonic()
    return set_up


def install() -> None:
    """Import the product's staging modules (timed as imports) and wrap the phase functions."""
    # what __main__ imports, and the S3 modules the product imports once it meets an s3:// URI;
    # not __main__ itself, which runpy executes afresh below
    import argparse  # noqa: F401

    import wrapper.exitcodes  # noqa: F401
    from wrapper.staging import s3, s3_client, stage

    marks["product_imported"] = time.monotonic()
    s3_client.S3Client._set_up = _client_set_up(s3_client.S3Client._set_up)
    s3.S3.expand = _span("listing", s3.S3.expand)
    s3.S3.head = _span("heads", s3.S3.head)
    s3.S3.download_all = _span("download_all", s3.S3.download_all)
    s3.S3._get_whole = _span("get_whole", s3.S3._get_whole)
    s3.verify = _span("verify", s3.verify)
    s3.finalize = _span("rename", s3.finalize)
    stage.ensure_free_space = _span("free_space", stage.ensure_free_space)


def _write(out: str) -> None:
    marks["main_done"] = time.monotonic()
    with open(out, "w") as handle:
        json.dump({"marks": marks, "spans": spans}, handle)


def main(argv: list) -> int:
    """Run wrapper.staging with the arguments after `--`, write the marks to `argv[0]`; its exit code.

    The product ends its process with os._exit (no teardown): the marks are written just before,
    by a stand-in that then calls the real one."""
    out, rest = argv[0], argv[argv.index("--") + 1:]
    install()
    real_exit = os._exit

    def marked_exit(code: int) -> None:
        _write(out)
        real_exit(code)

    os._exit = marked_exit
    sys.argv = ["python -m wrapper.staging", *rest]
    code = 0
    try:
        runpy.run_module("wrapper.staging", run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    _write(out)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

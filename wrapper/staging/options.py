"""How staging behaves: one frozen value built from the job's arguments."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

MiB = 1 << 20
ENDPOINT_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "S3_ENDPOINT_URL")


@dataclass(frozen=True)
class StagingOptions:
    """Where files go and how they are fetched and published.

    `threads` bounds the transfers in flight (files in parallel, and the parts of one S3 object);
    `retries` bounds the retries of every request (botocore, urllib3) and of an interrupted body;
    `progress`, when given, is called as `progress(uri, bytes_so_far)` while bytes arrive;
    `deadline` (time.monotonic() seconds), when given, stops transfers still running then
    (TimeLimitError, exit 67; their `.part` files removed).
    """

    workdir: Path
    s3_endpoint: Optional[str] = None
    s3_path_style: bool = False
    access_mode: str = "copy"            # copy | direct
    threads: int = 16                    # measured best of 10, 16, 24 on 2 cores (scripts/bench/staging.py)
    retries: int = 3
    timeout_s: float = 60.0
    output_prefix: Optional[str] = None
    s3_retry_mode: str = "standard"      # botocore retry mode: standard | adaptive
    backoff_s: float = 0.5               # HTTP: the second retry waits this long, doubling after
    part_size: int = 16 * MiB            # S3 multipart threshold and part size
    block_size: int = 4 * MiB            # direct access: bytes per ranged GET and cache block
    cache_bytes: int = 64 * MiB          # direct access: memory bound of the block cache per file
    readahead_blocks: int = 2            # direct access: blocks fetched ahead of a sequential reader
    progress: Optional[Callable[[str, int], None]] = field(default=None, compare=False, repr=False)
    deadline: Optional[float] = None

    def __post_init__(self):
        if self.access_mode not in ("copy", "direct"):
            raise ValueError(f"access_mode must be copy or direct, not {self.access_mode!r}")
        if self.s3_retry_mode not in ("standard", "adaptive"):
            raise ValueError(f"s3_retry_mode must be standard or adaptive, not {self.s3_retry_mode!r}")
        if self.threads < 1 or self.retries < 0 or self.timeout_s <= 0:
            raise ValueError("threads >= 1, retries >= 0 and timeout_s > 0 are required")
        if self.block_size < 64 << 10 or self.cache_bytes < 2 * self.block_size:
            raise ValueError("block_size >= 64 KiB and cache_bytes >= 2 blocks are required")
        object.__setattr__(self, "workdir", Path(self.workdir))


def check_deadline(options: StagingOptions) -> None:
    """TimeLimitError (exit 67) once `options.deadline` has passed."""
    if options.deadline is not None and time.monotonic() >= options.deadline:
        from wrapper.errors import TimeLimitError

        raise TimeLimitError("--timeLimit reached while staging inputs; partial files removed. "
                             "Give more time or fewer or smaller inputs per job")


def s3_endpoint(options: StagingOptions) -> Optional[str]:
    """The S3 endpoint: `--s3Endpoint`, else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL / S3_ENDPOINT_URL."""
    if options.s3_endpoint:
        return options.s3_endpoint
    for name in ENDPOINT_ENV:
        if os.environ.get(name):
            return os.environ[name]
    return None

"""Why an input or output failed: the one list of failure causes.

A cause goes into the job report as `errorCause` and into the message, so operators and tests can
tell failures apart without parsing prose (the way Rucio's clients name transfer failures).
docs/faults.md says what each means and what to check; a test keeps that list, the README's and
this enum the same. The values are the report's strings: a str-valued enum keeps them unchanged.
"""
from __future__ import annotations

from enum import Enum


class Cause(str, Enum):
    """A failure cause; compares equal to, prints as and serialises as its string value."""

    NOT_FOUND = "not-found"
    PERMISSION = "permission"
    CONNECTION = "connection"
    TIMEOUT = "timeout"
    SERVER_ERROR = "server-error"
    REFUSED = "refused"
    SIZE_MISMATCH = "size-mismatch"
    CHECKSUM_MISMATCH = "checksum-mismatch"
    CHANGED = "changed"
    CORRUPT = "corrupt"
    REMOVED = "removed"                  # an input was deleted while the job ran
    MODEL_MISMATCH = "model-mismatch"
    HOSTILE_NAME = "hostile-name"
    DUPLICATE_NAME = "duplicate-name"
    AMBIGUOUS = "ambiguous"
    BAD_URI = "bad-uri"
    UNSUPPORTED = "unsupported"
    UNREADABLE = "unreadable"
    DISK_FULL = "disk-full"
    UNWRITABLE = "unwritable"
    EXISTS = "exists"
    MISSING = "missing"
    EMPTY = "empty"
    FAILED = "failed"
    PAYLOAD_CRASHED = "payload-crashed"  # the payload step's process died (exit 80)
    HOST_OOM = "host-oom"                # it ran out of host memory (exit 81)
    GPU_OOM = "gpu-oom"                  # it ran out of GPU memory (exit 81)
    WORKER_LOST = "worker-lost"          # a peer of a multi-worker training died or went silent (exit 65)
    SERVER_LOST = "server-lost"          # the inference server answered, then stopped answering (exit 64)
    NOT_READY = "not-ready"              # the inference server is up, its model not ready (exit 64)
    OVERLOADED = "overloaded"            # the inference server's queue stayed full (exit 64)
    TOO_LARGE = "too-large"              # a request is larger than the inference server takes (exit 64)

    # Python 3.12 formats a str-mixin enum member as "Cause.NOT_FOUND"; messages need the value.
    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

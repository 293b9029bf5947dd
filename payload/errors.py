"""Errors the payload raises for bad data or failed steps. A job wrapper maps them to exit codes."""
from __future__ import annotations


class PayloadError(Exception):
    """Base of the payload's expected failures; the message names the file/event and what to do."""


class EventFileError(PayloadError):
    """An event file is missing, corrupt, truncated or does not follow the schema (see
    docs/design.md, 'File formats')."""

    def __init__(self, message: str, *, path: str = "", event: int | None = None, removed: bool = False):
        super().__init__(message)
        self.path = path
        self.event = event
        self.removed = removed  # the file was read earlier in this run and is gone now


class EmptySelection(PayloadError):
    """The selection (files, skipEvents, maxEvents) holds no event."""


class ModelFileError(PayloadError):
    """A model/weights file is unreadable or does not match the requested config.

    `mismatch` is true when the file reads fine but holds another network than the one requested
    (a wrong config, not a damaged file).
    """

    def __init__(self, message: str, *, path: str = "", mismatch: bool = False):
        super().__init__(message)
        self.path = path
        self.mismatch = mismatch


class TrainingDivergedError(PayloadError):
    """The loss became NaN or infinite."""


class StopRequested(PayloadError):
    """The caller asked the running step to stop (through `should_stop`)."""


class UnsupportedOptionError(PayloadError):
    """A training option the network or the device layout cannot use (crops on `paper`, say)."""


class CollectiveError(PayloadError):
    """Workers of a multi-worker training lost each other: one did not start, died or hangs."""


class InferenceServerError(PayloadError):
    """The inference server could not run the network: `kind` names why (payload.remote.KINDS),
    `server` and `model` name where. `gone` is true when the server itself is lost (unreachable,
    overloaded, silent, not ready): the kinds a caller may answer by running the network in process.
    """

    GONE = frozenset({"unreachable", "lost", "overloaded", "timeout", "not-ready"})

    def __init__(self, message: str, *, kind: str, server: str = "", model: str = ""):
        super().__init__(message)
        self.kind = kind
        self.server = server
        self.model = model

    @property
    def gone(self) -> bool:
        return self.kind in self.GONE

"""The messages between the trf and the payload step's child process, one frozen dataclass each.

Each crosses the pipe as one pickled object and is told apart by its type. They hold plain data
only (paths, numbers, strings, a Cause, the payload's own plain dataclasses), never a framework
object: the trf unpickles them without importing the framework.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Union

from payload.api import Progress, StepResult
from wrapper.causes import Cause
from wrapper.errors import TrfError

# Direct-access read figures of the child's own opens, by input name (BlockCachedFile.stats()).
DirectStats = Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class StopRequest:
    """Trf → child: stop at the payload's next check (the time limit, or a stop signal)."""


@dataclass(frozen=True)
class Started:
    """The child runs: its process id and the directory its code comes from."""

    pid: int
    code_root: str


@dataclass(frozen=True)
class ProgressTick:
    """One progress tick of the payload."""

    tick: Progress


@dataclass(frozen=True)
class CheckpointSaved:
    """The payload wrote a complete checkpoint: the trf uploads it."""

    path: Path


@dataclass(frozen=True)
class Result:
    """Final: the payload step finished."""

    result: StepResult
    direct_stats: DirectStats = field(default_factory=dict)


@dataclass(frozen=True)
class Stopped:
    """Final: the payload stopped because a stop was requested; the trf knows why."""

    direct_stats: DirectStats = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    """Final: an expected failure, as the TrfError's fields (its class does not pickle: it takes
    keyword-only arguments)."""

    message: str
    exit_code: int
    extra: str = ""
    cause: Optional[Cause] = None
    source: str = ""
    direct_stats: DirectStats = field(default_factory=dict)

    @classmethod
    def of(cls, err: TrfError, direct_stats: DirectStats) -> "Failed":
        """The message that carries `err`."""
        return cls(err.message, err.exit_code, err.extra, err.cause, getattr(err, "source", ""),
                   direct_stats)

    def error(self) -> TrfError:
        """The TrfError this message carries, cause and source included (the report reads `cause`)."""
        err = TrfError(self.message, exit_code=self.exit_code, extra=self.extra, cause=self.cause)
        err.source = self.source
        return err


@dataclass(frozen=True)
class OutOfMemory:
    """Final: the payload ran out of host or GPU memory and could still say so."""

    cause: Cause                         # Cause.HOST_OOM or Cause.GPU_OOM
    text: str
    direct_stats: DirectStats = field(default_factory=dict)


@dataclass(frozen=True)
class Unexpected:
    """Final: an exception the payload step does not expect (a bug), by type name and text."""

    type_name: str
    text: str
    direct_stats: DirectStats = field(default_factory=dict)


Final = Union[Result, Stopped, Failed, OutOfMemory, Unexpected]

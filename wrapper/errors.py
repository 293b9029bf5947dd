"""Error types of the transformation. Each expected failure carries its exit code.

`wrapper.main` is the one place that turns them into an exit code and reports. Messages say what is
wrong and what to do, in one line, and never hold a credential.
"""
from __future__ import annotations

import signal
from typing import Optional

from wrapper import exitcodes as ec
from wrapper.causes import Cause


class TrfError(Exception):
    """An expected failure: `exit_code` from the exit-code table, `message` one line for the user,
    `cause` the Cause the report gives as `errorCause` (None: the report names none).

    Only a member is taken: a cause given as a string would reach the report unchecked, so it is a
    bug and raises TypeError at the raise, not later in the report.
    """

    exit_code = ec.EXEC
    cause: Optional[Cause] = None

    def __init__(self, message: str, *, exit_code: Optional[int] = None, extra: str = "",
                 cause: Optional[Cause] = None):
        super().__init__(message)
        self.message = message
        self.extra = extra
        if exit_code is not None:
            self.exit_code = exit_code
        if cause is not None:
            if not isinstance(cause, Cause):
                raise TypeError(f"cause {cause!r} is not a Cause member")
            self.cause = cause

    @property
    def acronym(self) -> str:
        return ec.acronym(self.exit_code)


class ArgumentError(TrfError):
    """Unknown or malformed argument, bad JSON, unexpanded JEDI placeholder."""

    exit_code = ec.ARG_ERROR


class ArgumentTypeError(ArgumentError):
    exit_code = ec.ARG_CONV_FAIL


class ArgumentRangeError(ArgumentError):
    exit_code = ec.ARG_OUT_OF_RANGE


class ArgumentChoiceError(ArgumentError):
    exit_code = ec.ARG_CHOICES_FAIL


class ArgumentMissingError(ArgumentError):
    exit_code = ec.ARG_MISSING


class InputFileError(TrfError):
    """An input could not be had or is not what it should be; `source` names it (its URI or path)."""

    exit_code = ec.INPUT_FILE_ERROR

    def __init__(self, message: str, *, cause: Cause = Cause.UNREADABLE, source: str = "", **kw):
        super().__init__(message, cause=cause, **kw)
        self.source = source


class OutputFileError(TrfError):
    """An output cannot be written, renamed or uploaded."""

    exit_code = ec.OUTPUT_FILE_ERROR

    def __init__(self, message: str, *, cause: Cause = Cause.UNWRITABLE, **kw):
        super().__init__(message, cause=cause, **kw)


class NoEventsError(TrfError):
    """The selection holds no event to process (the payload's EmptySelection)."""

    exit_code = ec.NOEVENTS


class ExecutionError(TrfError):
    """The payload step ran and failed (NaN loss, a model that does not fit its weights, …)."""

    exit_code = ec.EXEC_FAIL


class WorkerLostError(ExecutionError):
    """A peer of a multi-worker training died, never started or stopped answering: the
    collectives cannot go on, so this worker fails (exit 65) instead of waiting for the walltime."""

    cause = Cause.WORKER_LOST


class InferenceServerError(TrfError):
    """The inference server could not run the job's network. A model it lacks, refuses us or
    serves with other tensors is a wrong input (exit 9); a server gone, overloaded or silent is a
    step that could not run (exit 64), which a retry of the job may cure."""

    INPUT_CAUSES = (Cause.NOT_FOUND, Cause.MODEL_MISMATCH, Cause.PERMISSION)

    def __init__(self, message: str, *, cause: Cause, server: str = ""):
        super().__init__(message, cause=cause,
                         exit_code=ec.INPUT_FILE_ERROR if cause in self.INPUT_CAUSES else ec.EXEC)
        self.source = server


class TimeLimitError(TrfError):
    exit_code = ec.EXEC_TIMEOUT


class SetupError(TrfError):
    """No usable device, build or framework on this node."""

    exit_code = ec.EXEC_SETUP_FAIL


class ClusterError(SetupError):
    """The batch system's environment does not describe a consistent set of workers (exit 69)."""


class PayloadCrashed(TrfError):
    """The payload step's process died by a signal or exited without a result."""

    exit_code = ec.EXEC_CRASH
    cause = Cause.PAYLOAD_CRASHED


class PayloadOutOfMemory(TrfError):
    """The payload step ran out of host or GPU memory (`cause` Cause.HOST_OOM or Cause.GPU_OOM)."""

    exit_code = ec.EXEC_OOM

    def __init__(self, message: str, *, cause: Cause, extra: str = ""):
        super().__init__(message, extra=extra, cause=cause)


class JobStopped(TrfError):
    """The job was asked to stop: by a signal (SIGTERM from the pilot, SIGINT, SIGUSR1), exit 128+N.

    In the payload step's process `signum` is None: the payload stopped because the trf asked, and
    the trf, which knows why (a signal or --timeLimit), reports its own reason.
    """

    def __init__(self, signum: Optional[int] = None):
        if signum is None:
            super().__init__("the payload step stopped when asked")
        else:
            name = signal.Signals(signum).name
            super().__init__(f"job stopped by {name}: work interrupted, partial outputs removed",
                             exit_code=ec.for_signal(signum))
        self.signum = signum

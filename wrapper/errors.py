"""Error types of the transformation. Each expected failure carries its exit code.

`wrapper.main` is the one place that turns them into an exit code and reports. Messages say what is
wrong and what to do, in one line, and never hold a credential.
"""
from __future__ import annotations

from wrapper import exitcodes as ec
from wrapper.causes import Cause


class TrfError(Exception):
    """An expected failure: `exit_code` from the exit-code table, `message` one line for the user."""

    exit_code = ec.EXEC

    def __init__(self, message: str, *, exit_code: int | None = None, extra: str = ""):
        super().__init__(message)
        self.message = message
        self.extra = extra
        if exit_code is not None:
            self.exit_code = exit_code

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
    """An input could not be had or is not what it should be.

    `cause` is a Cause (or its string value; anything else is a bug and raises ValueError).
    """

    exit_code = ec.INPUT_FILE_ERROR

    def __init__(self, message: str, *, cause: Cause | str = Cause.UNREADABLE, source: str = "", **kw):
        super().__init__(message, **kw)
        self.cause = Cause(cause)
        self.source = source


class OutputFileError(TrfError):
    """An output cannot be written, renamed or uploaded."""

    exit_code = ec.OUTPUT_FILE_ERROR

    def __init__(self, message: str, *, cause: Cause | str = Cause.UNWRITABLE, **kw):
        super().__init__(message, **kw)
        self.cause = Cause(cause)


class NoEventsError(TrfError):
    exit_code = ec.NOEVENTS


class ExecutionError(TrfError):
    """The payload step ran and failed (NaN loss, a model that does not fit its weights, …)."""

    exit_code = ec.EXEC_FAIL


class WorkerLostError(ExecutionError):
    """A peer of a multi-worker training died, never started or stopped answering: the
    collectives cannot go on, so this worker fails (exit 65) instead of waiting for the walltime."""

    cause = Cause.WORKER_LOST


class TimeLimitError(TrfError):
    exit_code = ec.EXEC_TIMEOUT


class SetupError(TrfError):
    """No usable device, build or framework on this node."""

    exit_code = ec.EXEC_SETUP_FAIL


class JobInterrupted(TrfError):
    """The job was asked to stop by a signal (SIGTERM from the pilot, SIGINT, SIGUSR1)."""

    def __init__(self, signum: int):
        import signal

        name = signal.Signals(signum).name
        super().__init__(f"job stopped by {name}: work interrupted, partial outputs removed",
                         exit_code=ec.for_signal(signum))
        self.signum = signum

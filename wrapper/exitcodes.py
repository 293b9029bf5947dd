"""The one table of exit codes (numbers from ATLAS PyJobTransforms; see docs/design.md,
'Arguments and exit codes').

The PanDA pilot reads `exit % 255`, maps 2 and 3 to setup/remote-open timeouts and 251 to an
unknown trf failure, so 2, 3, 255 and anything above 255 never leave this process.
"""
from __future__ import annotations

import signal
from dataclasses import dataclass


@dataclass(frozen=True)
class ExitCode:
    code: int
    acronym: str
    meaning: str
    check: str


_TABLE = (
    ExitCode(0, "OK", "success", "nothing"),
    ExitCode(4, "TRF_ARG_CONV_FAIL", "an argument value has the wrong type", "the value named in the message"),
    ExitCode(5, "TRF_ARG_OUT_OF_RANGE", "an argument value is out of range", "the allowed range in --help"),
    ExitCode(7, "TRF_ARG_ERROR", "unknown or malformed argument, bad --argJSON, unexpanded placeholder",
             "the task's job parameter template"),
    ExitCode(9, "TRF_INPUT_FILE_ERROR", "an input is missing, unreadable, corrupt or failed verification",
             "the file and cause named in the message; the storage endpoint and credentials"),
    ExitCode(11, "TRF_OUTPUT_FILE_ERROR", "an output cannot be written or uploaded",
             "disk space and permissions of the job directory; the output prefix"),
    ExitCode(15, "TRF_NOEVENTS", "no events to process", "--maxEvents/--skipEvents against the input size"),
    ExitCode(16, "TRF_ARG_CHOICES_FAIL", "an argument value is not among its choices", "the choices in --help"),
    ExitCode(17, "TRF_ARG_MISSING", "a mandatory argument is missing", "the task's job parameter template"),
    ExitCode(64, "TRF_EXEC", "the payload step could not run", "the log around the failing step"),
    ExitCode(65, "TRF_EXEC_FAIL", "the payload step failed (for example NaN loss)", "the log; learning rate, inputs"),
    ExitCode(67, "TRF_EXEC_TIMEOUT", "a time limit was hit", "--timeLimit against the queue's walltime"),
    ExitCode(69, "TRF_EXEC_SETUP_FAIL", "setup failed: no usable device or build, framework missing",
             "the platform section of the job report; the build manifest; the container"),
    ExitCode(80, "TRF_EXEC_CRASH", "the payload step crashed: killed by a signal (segfault, abort) or "
             "exited without a result", "the signal and the framework's last lines in the log"),
    ExitCode(81, "TRF_EXEC_OOM", "the payload step ran out of memory (errorCause host-oom or gpu-oom)",
             "the memory per job, --batchSize, the GPU the build needs"),
    ExitCode(250, "TRF_UNEXPECTED_TRF_EXCEPTION", "a bug in the wrapper", "the traceback in the log; report it"),
    ExitCode(251, "TRF_UNEXPECTED_OTHER_EXCEPTION", "a bug in the payload or framework",
             "the traceback in the log; report it"),
)

BY_CODE = {e.code: e for e in _TABLE}
BY_ACRONYM = {e.acronym: e for e in _TABLE}

OK = 0
ARG_CONV_FAIL = 4
ARG_OUT_OF_RANGE = 5
ARG_ERROR = 7
INPUT_FILE_ERROR = 9
OUTPUT_FILE_ERROR = 11
NOEVENTS = 15
ARG_CHOICES_FAIL = 16
ARG_MISSING = 17
EXEC = 64
EXEC_FAIL = 65
EXEC_TIMEOUT = 67
EXEC_SETUP_FAIL = 69
EXEC_CRASH = 80
EXEC_OOM = 81
UNEXPECTED_TRF = 250
UNEXPECTED_OTHER = 251

FORBIDDEN = frozenset({2, 3, 255})


def for_signal(signum: int) -> int:
    """Exit code for a job ended by signal `signum` (128 + N, e.g. 143 for SIGTERM)."""
    return 128 + int(signum)


def acronym(code: int) -> str:
    """The PyJobTransforms acronym of `code`, including TRF_SIG_<NAME> for 128+N."""
    if code in BY_CODE:
        return BY_CODE[code].acronym
    if 128 < code < 128 + 64:
        try:
            return "TRF_SIG_" + signal.Signals(code - 128).name.removeprefix("SIG")
        except ValueError:
            return f"TRF_SIG_{code - 128}"
    return "TRF_UNKNOWN"


def safe(code: int) -> int:
    """Map any code onto one the pilot reads as we mean it (never 2, 3, 255 or > 255)."""
    if code in FORBIDDEN or not 0 <= code <= 254:
        return UNEXPECTED_TRF
    return code

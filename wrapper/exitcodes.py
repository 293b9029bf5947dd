"""The one table of exit codes (numbers from ATLAS PyJobTransforms; see docs/design.md,
'Arguments and exit codes').

The PanDA pilot reads `exit % 255`, maps 2 and 3 to setup/remote-open timeouts and 251 to an
unknown trf failure, so 2, 3, 255 and anything above 255 never leave this process.
"""
from __future__ import annotations

import signal


class ExitCode(int):
    """An exit code that carries its row of the table: it is the number wherever an int goes
    (sys.exit, comparisons, JSON), and names its acronym, meaning and what to check."""

    acronym: str
    meaning: str
    check: str

    def __new__(cls, code: int, acronym: str, meaning: str, check: str) -> "ExitCode":
        entry = super().__new__(cls, code)
        vars(entry).update(acronym=acronym, meaning=meaning, check=check)
        return entry

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"exit code {int(self)} is read-only")

    def __reduce__(self):
        return ExitCode, (int(self), self.acronym, self.meaning, self.check)


BY_CODE: dict[int, ExitCode] = {}


def _row(code: int, acronym: str, meaning: str, check: str) -> ExitCode:
    if code in BY_CODE:
        raise ValueError(f"exit code {code} is in the table twice")
    BY_CODE[code] = ExitCode(code, acronym, meaning, check)
    return BY_CODE[code]


# Each code is written once, as the module constant callers use (`ec.INPUT_FILE_ERROR`), and that
# constant is its row of the table. Not an IntEnum: its members live on the class, so keeping
# `ec.INPUT_FILE_ERROR` would need a second line per code, or a globals() update that readers
# and type checkers cannot follow.
OK = _row(0, "OK", "success", "nothing")
ARG_CONV_FAIL = _row(4, "TRF_ARG_CONV_FAIL", "an argument value has the wrong type",
                     "the value named in the message")
ARG_OUT_OF_RANGE = _row(5, "TRF_ARG_OUT_OF_RANGE", "an argument value is out of range",
                        "the allowed range in --help")
ARG_ERROR = _row(7, "TRF_ARG_ERROR", "unknown or malformed argument, bad --argJSON, unexpanded placeholder",
                 "the task's job parameter template")
INPUT_FILE_ERROR = _row(9, "TRF_INPUT_FILE_ERROR",
                        "an input is missing, unreadable, corrupt or failed verification",
                        "the file and cause named in the message; the storage endpoint and credentials")
OUTPUT_FILE_ERROR = _row(11, "TRF_OUTPUT_FILE_ERROR", "an output cannot be written or uploaded",
                         "disk space and permissions of the job directory; the output prefix")
NOEVENTS = _row(15, "TRF_NOEVENTS", "no events to process", "--maxEvents/--skipEvents against the input size")
ARG_CHOICES_FAIL = _row(16, "TRF_ARG_CHOICES_FAIL", "an argument value is not among its choices",
                        "the choices in --help")
ARG_MISSING = _row(17, "TRF_ARG_MISSING", "a mandatory argument is missing", "the task's job parameter template")
EXEC = _row(64, "TRF_EXEC", "the payload step could not run", "the log around the failing step")
EXEC_FAIL = _row(65, "TRF_EXEC_FAIL", "the payload step failed (for example NaN loss)",
                 "the log; learning rate, inputs")
EXEC_TIMEOUT = _row(67, "TRF_EXEC_TIMEOUT", "a time limit was hit", "--timeLimit against the queue's walltime")
EXEC_SETUP_FAIL = _row(69, "TRF_EXEC_SETUP_FAIL", "setup failed: no usable device or build, framework missing",
                       "the platform section of the job report; the build manifest; the container")
EXEC_CRASH = _row(80, "TRF_EXEC_CRASH", "the payload step crashed: killed by a signal (segfault, abort) or "
                  "exited without a result", "the signal and the framework's last lines in the log")
EXEC_OOM = _row(81, "TRF_EXEC_OOM", "the payload step ran out of memory (errorCause host-oom or gpu-oom)",
                "the memory per job, --batchSize, the GPU the build needs")
UNEXPECTED_TRF = _row(250, "TRF_UNEXPECTED_TRF_EXCEPTION", "a bug in the wrapper",
                      "the traceback in the log; report it")
UNEXPECTED_OTHER = _row(251, "TRF_UNEXPECTED_OTHER_EXCEPTION", "a bug in the payload or framework",
                        "the traceback in the log; report it")

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

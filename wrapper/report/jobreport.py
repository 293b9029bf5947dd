"""The job's reports: jobReport.json always, payload_error_report.json on failure (see
docs/design.md, 'The pilot contract').

Both are written atomically (temporary name, fsync, rename) so the pilot never reads half a report,
and exactly once: whichever of the main flow or the signal watchdog finishes first writes them.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform as _platform
import resource
import shlex
import socket
import threading
import time
import unicodedata
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from wrapper import exitcodes as ec
from wrapper.errors import TrfError
from wrapper.jobfiles import ERROR_REPORT, JOB_REPORT
from wrapper.redact import redact, secret_values

REPORT_VERSION = "1.0.0"
EXIT_MSG_LIMIT = 256
# The report goes to the PanDA server as metadata: a huge job parameter string is cut, not copied.
CMDLINE_LIMIT = 1 << 16
LIST_LIMIT = 100       # items of one argument's list kept in the report's spec section


@dataclass
class Step:
    """One executor step (stage-in, platform, payload, stage-out) with its timing."""

    name: str
    started: float = field(default_factory=time.time)
    cpu_started: float = field(default_factory=time.process_time)
    ended: Optional[float] = None
    cpu_time: float = 0.0
    status_ok: Optional[bool] = None
    error: str = ""

    def finish(self, ok: bool, error: str = "") -> None:
        self.ended = time.time()
        self.cpu_time = time.process_time() - self.cpu_started
        self.status_ok, self.error = ok, error

    def to_report(self) -> dict:
        end = self.ended if self.ended is not None else time.time()
        return {"name": self.name, "statusOK": bool(self.status_ok), "errMsg": self.error,
                "wallTime": round(end - self.started, 3), "cpuTime": round(self.cpu_time, 3),
                "started": _iso(self.started), "ended": _iso(end)}


def one_line(text: str) -> str:
    """`text` with control and line-separator characters escaped: an error message is one line,
    whatever bytes a hostile argument brought into it."""
    return "".join(_escape(c) if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _iso(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).isoformat(timespec="seconds")


def peak_rss_kib() -> dict[str, int]:
    """Peak resident memory of this process and of its waited-for children, in KiB."""
    return {"maxRSS": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "maxRSSChildren": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}


def _plain(value: Any) -> Any:
    if is_dataclass(value):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _redacted(value: Any, values: Optional[list] = None) -> Any:
    """Plain data with every string redacted: sections carry arguments, which may hold signed URLs.
    The secret values are found once for the whole structure (finding them reads the token files)."""
    values = secret_values() if values is None else values
    if isinstance(value, dict):
        return {k: _redacted(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, values) for v in value]
    return redact(value, values) if isinstance(value, str) else value


def abridged(arguments: dict) -> dict:
    """Arguments for the report: a list longer than LIST_LIMIT keeps its first items and the count,
    as the command line is cut at CMDLINE_LIMIT."""
    return {name: [*value[:LIST_LIMIT], f"... ({len(value)} in all)"]
            if isinstance(value, (list, tuple)) and len(value) > LIST_LIMIT else value
            for name, value in arguments.items()}


class JobReport:
    """Accumulates what the job did; `write()` produces the reports and returns the exit code."""

    def __init__(self, argv: Sequence[str], workdir: Path):
        self.workdir = Path(workdir)
        line = " ".join(shlex.quote(a) for a in argv)
        # redact a little past the cut, so that no credential is cut in half before redaction
        self.cmdline = redact(line[:CMDLINE_LIMIT + 512])[:CMDLINE_LIMIT]
        if len(line) > CMDLINE_LIMIT:
            self.cmdline += f" ... ({len(line)} characters in all)"
        self.created = time.time()
        self.exit_code = ec.OK
        self.exit_msg = "OK"
        self.exit_extra = ""
        self.error_cause = ""
        self.inputs: list[dict] = []
        self.outputs: list[dict] = []
        self.steps: list[Step] = []
        self.sections: dict[str, Any] = {}
        self.processed_events = 0
        self._lock = threading.RLock()
        self._written = False

    @classmethod
    def begin(cls, argv: Sequence[str], workdir: Path | None = None) -> "JobReport":
        return cls(argv, Path.cwd() if workdir is None else workdir)

    @property
    def written(self) -> bool:
        return self._written

    def step(self, name: str) -> Step:
        """Start a named executor step; finish it with Step.finish."""
        with self._lock:
            step = Step(name)
            self.steps.append(step)
            return step

    def section(self, name: str, content: Any) -> Any:
        """Attach a named section (platform, build, staging, spec, …) to the report; returns it as
        stored (plain data, credentials redacted)."""
        with self._lock:
            self.sections[name] = _redacted(_plain(content))
            return self.sections[name]

    def set_inputs(self, entries: list) -> None:
        """The input files with their staging figures (replaced as the job learns more)."""
        with self._lock:
            self.inputs = [_plain(e) for e in entries]

    def add_output(self, arg_name: str, entry: dict) -> None:
        with self._lock:
            self.outputs.append({"argName": arg_name, "type": arg_name.removeprefix("output")
                                 .removesuffix("File").upper(), "subFiles": [_plain(entry)]})

    def fail(self, err: TrfError) -> None:
        """Record the failure `err` (the first failure recorded wins)."""
        with self._lock:
            if self.exit_code != ec.OK:
                return
            self.exit_code = ec.safe(err.exit_code)
            message = one_line(redact(err.message))
            self.exit_msg = message[:EXIT_MSG_LIMIT]
            self.exit_extra = " ".join(p for p in (message[EXIT_MSG_LIMIT:], one_line(redact(err.extra)))
                                       if p)
            self.error_cause = err.cause.value if err.cause else ""
            for step in self.steps:
                if step.status_ok is None:
                    step.finish(False, self.exit_msg)

    def to_dict(self) -> dict:
        with self._lock:
            now = time.time()
            cpu = resource.getrusage(resource.RUSAGE_SELF)
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu_total = cpu.ru_utime + cpu.ru_stime + children.ru_utime + children.ru_stime
            report = {
                "reportVersion": REPORT_VERSION,
                "cmdLine": self.cmdline,
                "created": _iso(self.created),
                "exitCode": self.exit_code,
                "exitAcronym": ec.acronym(self.exit_code),
                "exitMsg": self.exit_msg,
                "exitMsgExtra": self.exit_extra,
                "files": {"input": [{"type": "EVENTS", "subFiles": self.inputs}] if self.inputs else [],
                          "output": self.outputs},
                "executor": [s.to_report() for s in self.steps],
                "resource": {
                    "transform": {"processedEvents": self.processed_events,
                                  "cpuTimeTotal": round(cpu_total, 3),
                                  "wallTime": round(now - self.created, 3)},
                    "machine": {"node": socket.gethostname(), "platform": _platform.platform(),
                                "architecture": _platform.machine(), "cores": os.cpu_count(),
                                "python": _platform.python_version()},
                    "executor": {s.name: {"wallTime": s.to_report()["wallTime"],
                                          "cpuTime": round(s.cpu_time, 3),
                                          # The pilot sums memory over executors: the process
                                          # peak goes on the payload step alone.
                                          **({"memory": {"Max": peak_rss_kib()}}
                                             if s.name == "payload" else {})}
                                 for s in self.steps},
                    "memory": {"Max": peak_rss_kib()},
                },
            }
            if self.error_cause:
                report["errorCause"] = self.error_cause
            report.update(self.sections)
            return report

    def write(self) -> int:
        """Write payload_error_report.json (on failure) and jobReport.json once; return the exit code.

        The error report goes first: a few hundred bytes that carry the reason, it still fits on a
        disk too full for the job report. Both are tried; then an OSError naming the report that
        could not be written (the job report when neither could) is raised.
        """
        with self._lock:
            if self._written:
                return self.exit_code
            reports = [(self.workdir / JOB_REPORT, self.to_dict())]
            if self.exit_code != ec.OK:
                reports.insert(0, (self.workdir / ERROR_REPORT,
                                   {"error_code": self.exit_code, "error_diag": self.exit_msg}))
            failure: Optional[OSError] = None
            for path, content in reports:
                try:
                    _atomic_json(path, content)
                except OSError as err:
                    failure = OSError(err.errno, err.strerror, str(path))
            if failure is not None:
                raise failure
            self._written = True
            return self.exit_code


def _atomic_json(path: Path, content: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(content, handle, indent=1, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise

"""The transformation's top level: argv → the job's flow (wrapper/flow.py) → exit code and reports.

This is the one place that turns an exception into an exit code and the reports.
"""
from __future__ import annotations

import os
import sys
import traceback
from typing import Optional, Sequence

from wrapper import exitcodes as ec
from wrapper.errors import JobStopped, TrfError
from wrapper.report.outputs import OutputPlan
from wrapper.console import log, stdout_to_devnull
from wrapper.redact import redact
from wrapper.report.jobreport import JobReport
from wrapper.signals import StopSignal, stop_guard
from wrapper.args.spec import JobSpec, parse_job_args
from wrapper.staging.scratch import discard_unfinished
from wrapper.report.stdout_logging import configure as log_to_stdout
from wrapper.report.stdout_logging import native_stderr_to_stdout

# Quiet the framework's C++ logging before anything can import it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one job; returns the exit code (never 2, 3, 255 or above 255)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    log_to_stdout()
    report = JobReport.begin(argv)
    outputs = OutputPlan(report.workdir, {})

    def abandon(signum: int) -> None:
        # The stop watcher's thread, while the main thread is stuck: report, clean up, end here.
        report.fail(JobStopped(signum))
        outputs.discard()
        _say_failure(report)
        _write(report)
        # last, right before the exit: transfer threads still running may create them until then
        discard_unfinished()
        sys.stdout.flush()
        os._exit(ec.for_signal(signum))

    with stop_guard(abandon) as stop:
        spec: Optional[JobSpec] = None
        try:
            # Help wins over any other argument, even a bad one.
            spec = None if {"--help", "-h"} & set(argv) else parse_job_args(argv)
            if spec is None or spec.help:
                from wrapper.args.helptext import help_text

                _print_stdout(help_text())
                return ec.OK
            from wrapper.flow import run_job

            run_job(spec, report, outputs, stop)
        except StopSignal as err:
            report.fail(JobStopped(err.signum))
        except TrfError as err:
            report.fail(err)
            if spec is not None and spec.debug or "--debug" in argv:
                # into the log: stderr keeps the one-line error the pilot shows (and scans)
                traceback.print_exc(file=sys.stdout)
        except Exception as err:  # a bug: say so, keep the traceback in the log, still report
            traceback.print_exc()
            report.fail(TrfError(f"unexpected {type(err).__name__}: {redact(str(err))[:200]}; "
                                 "this is a bug, please report it with the log",
                                 exit_code=ec.UNEXPECTED_TRF))
        finally:
            stop.shield()
            removed = outputs.discard()
            if removed:
                log(f"removed partial outputs: {', '.join(removed)}")
        _say_failure(report)
        return _write(report)


def _write(report: JobReport) -> int:
    try:
        return report.write()
    except OSError as err:
        print(f"dune-payload: error: cannot write {err.filename}: {err.strerror}",
              file=sys.stderr, flush=True)
        return report.exit_code if report.exit_code != ec.OK else ec.OUTPUT_FILE_ERROR


def _say_failure(report: JobReport) -> None:
    if report.exit_code != ec.OK:
        print(f"dune-payload: error: {report.exit_msg}{report.exit_extra and ' ' + report.exit_extra}"
              f" (exit {report.exit_code} {ec.acronym(report.exit_code)})", file=sys.stderr, flush=True)


def _print_stdout(text: str) -> None:
    """Print `text`; a reader that stops early (`--help | head`) is not an error."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        stdout_to_devnull()


def cli() -> None:
    """Console-script entry point."""
    native_stderr_to_stdout()
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        stdout_to_devnull()
    sys.exit(ec.safe(code))


if __name__ == "__main__":
    cli()

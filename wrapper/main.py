"""The transformation's top level: arguments → spec → staging → platform → build → payload → report.

This is the one place that turns an exception into an exit code and the reports.
"""
from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Optional, Sequence

from wrapper import exitcodes as ec
from wrapper.errors import JobInterrupted, TrfError
from wrapper.outputs import OutputPlan
from wrapper.progress import ProgressPrinter, log
from wrapper.redact import redact
from wrapper.report import JobReport, abridged
from wrapper.signals import Interrupted, stop_guard
from wrapper.spec import JobSpec, parse_job_args
from wrapper.staging.scratch import discard_unfinished

# Quiet the framework's C++ logging before anything can import it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one job; returns the exit code (never 2, 3, 255 or above 255)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    report = JobReport.begin(argv)
    outputs = OutputPlan(report.workdir, {})

    def abandon(signum: int) -> None:
        report.fail(JobInterrupted(signum))
        outputs.discard()
        _say_failure(report)
        _write(report)
        # last, right before the exit: transfer threads still running may create them until then
        discard_unfinished()

    with stop_guard(abandon) as stop:
        spec: Optional[JobSpec] = None
        try:
            # Help wins over any other argument, even a bad one.
            spec = None if {"--help", "-h"} & set(argv) else parse_job_args(argv)
            if spec is None or spec.help:
                from wrapper.helptext import help_text

                _print_stdout(help_text())
                return ec.OK
            outputs.lfns = spec.outputs()
            _execute(spec, report, outputs, stop)
        except Interrupted as err:
            report.fail(JobInterrupted(err.signum))
        except TrfError as err:
            report.fail(err)
            if spec is not None and spec.debug or "--debug" in argv:
                traceback.print_exc()
        except Exception as err:  # a bug: say so, keep the traceback in the log, still report
            traceback.print_exc()
            in_payload = any(step.name == "payload" and step.status_ok is None for step in report.steps)
            code = ec.UNEXPECTED_OTHER if in_payload else ec.UNEXPECTED_TRF
            report.fail(TrfError(f"unexpected {type(err).__name__}: {redact(str(err))[:200]}; "
                                 "this is a bug, please report it with the log", exit_code=code))
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


def _execute(spec: JobSpec, report: JobReport, outputs: OutputPlan, stop) -> None:
    from wrapper import cluster as clusters
    from wrapper import flow

    report.section("spec", abridged(spec.explicit()))
    if spec.container_image:
        log(f"--containerImage {spec.container_image} ignored: the pilot, not the trf, runs the container")
    if spec.show_platform:
        flow.show_platform(spec, report)
        return
    job_cluster = clusters.job_cluster(spec)
    if not job_cluster.is_chief:
        # Only the chief's outputs and reports reach the pilot; the others keep theirs aside.
        report.workdir = outputs.workdir = clusters.worker_workdir(job_cluster, report.workdir)
    if clusters.idle_worker(spec, job_cluster):
        log(f"worker {job_cluster.rank} of {job_cluster.size}: {spec.mode} runs on the chief alone")
        return
    outputs.check()
    if spec.dry_run:
        try:
            flow.dry_run(spec, report, outputs)
        except BrokenPipeError:  # `--dryRun | head`: the reader has what it wanted
            _stdout_to_devnull()
        return
    deadline = time.monotonic() + spec.time_limit if spec.time_limit else None
    with ProgressPrinter() as printer:
        flow.run_job(spec, report, outputs, stop, printer, deadline, job_cluster)


def _print_stdout(text: str) -> None:
    """Print `text`; a reader that stops early (`--help | head`) is not an error."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        _stdout_to_devnull()


def _stdout_to_devnull() -> None:
    # Python flushes stdout again at exit: with the reader gone that would fail too
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def cli() -> None:
    """Console-script entry point."""
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_to_devnull()
    sys.exit(ec.safe(code))


if __name__ == "__main__":
    cli()

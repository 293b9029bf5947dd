# -*- coding: utf-8 -*-
"""The entry point of dune-payload.pyz (its `__main__.py`).

This one file must run on any interpreter the pilot may find: it is written in the grammar of
Python 3.0 (no f-strings, annotations or walrus) and imports nothing of the trf until the version
check passed. On a Python older than the trf needs it writes the two reports the pilot reads
(jobReport.json and payload_error_report.json, as wrapper/report/jobreport.py does) and exits 69
(TRF_EXEC_SETUP_FAIL in wrapper/exitcodes.py) naming the version it needs; a SyntaxError from the
first module with newer grammar would be exit 1 and no report.
"""
import json
import os
import platform
import sys
import time

REQUIRED = (3, 9)             # setup.py's python_requires (a test keeps the two equal)
EXIT_SETUP_FAIL = 69
ACRONYM = "TRF_EXEC_SETUP_FAIL"


def too_old(version):
    """True when `version` (a sys.version_info-like tuple) cannot run the trf."""
    return tuple(version[:2]) < REQUIRED


def refusal(version, executable):
    """The message for an interpreter that is too old."""
    return ("dune-payload needs Python %d.%d or newer; the interpreter the pilot ran (%s) is Python %s: "
            "run the job in the task's container or on a queue with a newer python3"
            % (REQUIRED[0], REQUIRED[1], executable or "python3", ".".join(str(v) for v in version[:3])))


def _write_json(path, content):
    tmp = os.path.join(os.path.dirname(path), ".%s.%d.tmp" % (os.path.basename(path), os.getpid()))
    with open(tmp, "w") as handle:
        json.dump(content, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.rename(tmp, path)


def refuse(version, workdir, executable):
    """Write both reports into `workdir`, say why on stderr; returns the exit code (69).

    The command line stays out of the report: its values may hold credentials (a presigned URL)
    and the trf's redaction cannot be imported on this interpreter."""
    message = refusal(version, executable)
    now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    job_report = {
        "reportVersion": "1.0.0", "created": now,
        "exitCode": EXIT_SETUP_FAIL, "exitAcronym": ACRONYM, "exitMsg": message, "exitMsgExtra": "",
        "files": {"input": [], "output": []}, "executor": [],
        "resource": {"machine": {"node": platform.node(), "platform": platform.platform(),
                                 "architecture": platform.machine(),
                                 "python": ".".join(str(v) for v in version[:3])}},
    }
    error_report = {"error_code": EXIT_SETUP_FAIL, "error_diag": message}
    for name, content in (("payload_error_report.json", error_report), ("jobReport.json", job_report)):
        try:
            _write_json(os.path.join(workdir, name), content)
        except (IOError, OSError) as err:
            sys.stderr.write("dune-payload: error: cannot write %s: %s\n" % (name, err))
    sys.stderr.write("dune-payload: error: %s (exit %d %s)\n" % (message, EXIT_SETUP_FAIL, ACRONYM))
    sys.stderr.flush()
    return EXIT_SETUP_FAIL


def main():
    if too_old(sys.version_info):
        sys.exit(refuse(sys.version_info, os.getcwd(), sys.executable))
    from wrapper.main import cli
    cli()


if __name__ == "__main__":
    main()

"""jobReport.json and payload_error_report.json: shape (docs/design.md, 'The pilot contract'),
atomicity, written once."""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from wrapper import exitcodes as ec
from wrapper.errors import ArgumentError, InputFileError, JobStopped, OutputFileError, TrfError
from wrapper.report.outputs import OutputPlan
from wrapper.causes import Cause
from wrapper.jobfiles import ERROR_REPORT, JOB_REPORT
from wrapper.report.jobreport import CMDLINE_LIMIT, EXIT_MSG_LIMIT, JobReport


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def burn_cpu(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def vm_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/self/status")


@pytest.fixture
def finished_job(tmp_path):
    """A successful job: one input, one real committed output, three timed steps."""
    report = JobReport.begin(["--mode=infer", "--inputEventsFile=ev.001.h5", "--outputPredFile=p.h5"],
                             tmp_path)
    step = report.step("stage-in")
    time.sleep(0.06)
    step.finish(True)
    report.set_inputs([{"name": "ev.001.h5", "file_guid": "6F1C4B0E-0000-4000-8000-000000000001",
                        "file_size": 1234, "checksum": "ad:0a1b2c3d", "adler32": "0a1b2c3d", "nentries": 7}])
    step = report.step("payload")
    burn_cpu(0.1)
    step.finish(True)
    plan = OutputPlan(tmp_path, {"outputPredFile": "p.h5"})
    plan.temp_path("outputPredFile").write_bytes(b"predictions" * 100)
    step = report.step("stage-out")
    committed = plan.commit("outputPredFile", nentries=7)
    report.add_output("outputPredFile", committed.to_report())
    step.finish(True)
    report.processed_events = 7
    report.section("build", {"name": "fp32-cpu", "precision": "float32"})
    peak_before = vm_kib("VmHWM")
    code = report.write()
    return tmp_path, code, (peak_before, vm_kib("VmHWM"))


def test_success_report_shape(finished_job):
    jobdir, code, _ = finished_job
    assert code == 0
    report = load(jobdir / JOB_REPORT)
    assert report["reportVersion"] and report["cmdLine"] == \
        "--mode=infer --inputEventsFile=ev.001.h5 --outputPredFile=p.h5"
    created = dt.datetime.fromisoformat(report["created"])
    assert created.utcoffset() == dt.timedelta(0)
    assert abs((dt.datetime.now(dt.timezone.utc) - created).total_seconds()) < 600
    assert (report["exitCode"], report["exitAcronym"], report["exitMsg"], report["exitMsgExtra"]) == \
        (0, "OK", "OK", "")
    assert not (jobdir / ERROR_REPORT).exists()
    assert report["build"] == {"name": "fp32-cpu", "precision": "float32"}


def test_files_carry_what_the_server_reads(finished_job):
    jobdir, _, _ = finished_job
    files = load(jobdir / JOB_REPORT)["files"]
    (sub_in,) = files["input"][0]["subFiles"]
    assert sub_in == {"name": "ev.001.h5", "file_guid": "6F1C4B0E-0000-4000-8000-000000000001",
                      "file_size": 1234, "checksum": "ad:0a1b2c3d", "adler32": "0a1b2c3d", "nentries": 7}
    (out,) = files["output"]
    assert out["argName"] == "outputPredFile" and out["type"] == "PRED"
    (sub,) = out["subFiles"]
    data = (jobdir / "p.h5").read_bytes()
    assert sub["name"] == "p.h5" and sub["file_size"] == len(data) == 1100
    assert sub["adler32"] == f"{zlib.adler32(data):08x}" and sub["checksum"] == "ad:" + sub["adler32"]
    assert sub["nentries"] == 7
    assert len(sub["file_guid"]) == 36 and sub["file_guid"] == sub["file_guid"].upper()


def test_executor_steps_carry_timings(finished_job):
    jobdir, _, _ = finished_job
    report = load(jobdir / JOB_REPORT)
    steps = {s["name"]: s for s in report["executor"]}
    assert list(steps) == ["stage-in", "payload", "stage-out"]
    assert all(s["statusOK"] is True and s["errMsg"] == "" for s in steps.values())
    assert steps["stage-in"]["wallTime"] >= 0.05
    assert steps["payload"]["cpuTime"] >= 0.1
    for s in steps.values():
        assert dt.datetime.fromisoformat(s["started"]) <= dt.datetime.fromisoformat(s["ended"])
    assert report["resource"]["executor"]["payload"]["cpuTime"] >= 0.1
    assert report["resource"]["executor"]["stage-in"]["wallTime"] >= 0.05


def test_resource_section(finished_job):
    jobdir, _, (peak_before, peak_after) = finished_job
    resource = load(jobdir / JOB_REPORT)["resource"]
    transform = resource["transform"]
    assert transform["processedEvents"] == 7
    assert transform["cpuTimeTotal"] >= 0.1
    assert transform["wallTime"] >= 0.05
    machine = resource["machine"]
    assert machine["node"] == socket.gethostname() and machine["cores"] == os.cpu_count()
    assert machine["architecture"] == platform.machine()
    assert machine["python"] == platform.python_version()
    # the kernel's high-water mark of this process around the write, in KiB like the report; the
    # kernel updates getrusage's copy lazily (per-thread RSS counters), hence the 4 MiB slack
    assert peak_before - 4096 <= resource["memory"]["Max"]["maxRSS"] <= peak_after + 4096


def test_failure_report_and_error_report(tmp_path):
    report = JobReport.begin(["--epochs=x"], tmp_path)
    report.fail(ArgumentError("--epochs='x' is not an integer"))
    assert report.write() == ec.ARG_ERROR
    job = load(tmp_path / JOB_REPORT)
    assert (job["exitCode"], job["exitAcronym"], job["exitMsg"]) == \
        (7, "TRF_ARG_ERROR", "--epochs='x' is not an integer")
    assert load(tmp_path / ERROR_REPORT) == {"error_code": 7, "error_diag": "--epochs='x' is not an integer"}


def test_long_message_is_split_at_the_limit(tmp_path):
    message = "input " + "x" * 300 + " is corrupt; " + "y" * 200
    report = JobReport.begin([], tmp_path)
    report.fail(InputFileError(message, cause=Cause.CORRUPT, extra="event 17 has NaN pixels"))
    report.write()
    job = load(tmp_path / JOB_REPORT)
    assert len(job["exitMsg"]) == EXIT_MSG_LIMIT == 256
    assert job["exitMsg"] == message[:256]
    assert job["exitMsgExtra"] == message[256:] + " event 17 has NaN pixels"
    assert job["errorCause"] == "corrupt"
    assert load(tmp_path / ERROR_REPORT)["error_diag"] == message[:256]


def test_first_failure_wins(tmp_path):
    report = JobReport.begin([], tmp_path)
    report.fail(InputFileError("ev.h5 is not HDF5", cause=Cause.CORRUPT))
    report.fail(OutputFileError("cannot write p.h5"))
    report.fail(JobStopped(signal.SIGTERM))
    report.write()
    assert load(tmp_path / JOB_REPORT)["exitCode"] == ec.INPUT_FILE_ERROR
    assert load(tmp_path / ERROR_REPORT) == {"error_code": 9, "error_diag": "ev.h5 is not HDF5"}


def test_written_once(tmp_path):
    report = JobReport.begin([], tmp_path)
    report.fail(ArgumentError("first"))
    assert not report.written
    assert report.write() == 7 and report.written
    before = (tmp_path / JOB_REPORT).stat()
    content = (tmp_path / JOB_REPORT).read_bytes()
    report.processed_events = 99
    report.section("late", {"x": 1})
    assert report.write() == 7
    after = (tmp_path / JOB_REPORT).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert (tmp_path / JOB_REPORT).read_bytes() == content


def test_unfinished_steps_are_closed_as_failed(tmp_path):
    report = JobReport.begin([], tmp_path)
    done = report.step("stage-in")
    done.finish(True)
    report.step("payload")
    report.fail(JobStopped(signal.SIGTERM))
    report.write()
    steps = {s["name"]: s for s in load(tmp_path / JOB_REPORT)["executor"]}
    assert steps["stage-in"]["statusOK"] is True
    assert steps["payload"]["statusOK"] is False and "SIGTERM" in steps["payload"]["errMsg"]


@pytest.mark.parametrize("signum,code,acronym", [(signal.SIGTERM, 143, "TRF_SIG_TERM"),
                                                 (signal.SIGINT, 130, "TRF_SIG_INT"),
                                                 (signal.SIGUSR1, 138, "TRF_SIG_USR1")])
def test_signal_failure(tmp_path, signum, code, acronym):
    report = JobReport.begin([], tmp_path)
    report.fail(JobStopped(signum))
    assert report.write() == code
    job = load(tmp_path / JOB_REPORT)
    assert (job["exitCode"], job["exitAcronym"]) == (code, acronym)
    assert load(tmp_path / ERROR_REPORT)["error_code"] == code


@pytest.mark.parametrize("bad", [2, 3, 255, 256, 300, -1])
def test_codes_the_pilot_misreads_never_reach_the_report(tmp_path, bad):
    report = JobReport.begin([], tmp_path)
    report.fail(TrfError("odd", exit_code=bad))
    assert report.write() == ec.UNEXPECTED_TRF
    assert load(tmp_path / JOB_REPORT)["exitCode"] == ec.UNEXPECTED_TRF


def test_cmdline_is_quoted_redacted_and_bounded(tmp_path):
    report = JobReport.begin(["--modelFile=my model.keras",
                              "--inputEventsFile=https://alice:s3cr3t@127.0.0.1:8443/ev.h5"], tmp_path)
    assert report.cmdline == "'--modelFile=my model.keras' --inputEventsFile=https://***@127.0.0.1:8443/ev.h5"
    huge = ["--inputEventsFile=" + ",".join(f"ev.{i:07d}.h5" for i in range(100_000))]
    report = JobReport.begin(huge, tmp_path)
    assert len(report.cmdline) < CMDLINE_LIMIT + 100
    assert report.cmdline.startswith(huge[0][:1000]) and str(len(huge[0])) in report.cmdline


def test_no_temporary_file_is_left(tmp_path):
    report = JobReport.begin([], tmp_path)
    report.fail(ArgumentError("x"))
    report.write()
    assert sorted(p.name for p in tmp_path.iterdir()) == [JOB_REPORT, ERROR_REPORT]


def test_unwritable_directory_raises_and_leaves_nothing(readonly_jobdir):
    report = JobReport.begin([], readonly_jobdir)
    with pytest.raises(OSError):
        report.write()
    assert not report.written and list(readonly_jobdir.iterdir()) == []


_READER = """
import json, os, sys, time
path, stop = sys.argv[1], sys.argv[2]
reads = bad = 0
while not os.path.exists(stop):
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        continue
    reads += 1
    try:
        json.loads(data)
    except ValueError:
        bad += 1
print(reads, bad)
"""


def test_a_concurrent_reader_never_sees_partial_json(tmp_path):
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", _READER, str(tmp_path / JOB_REPORT), str(stop)],
                              stdout=subprocess.PIPE, text=True)
    try:
        big = {f"file{i}": {"events": i, "checksum": f"{i:08x}"} for i in range(10_000)}
        for n in range(8):
            report = JobReport.begin([f"--round={n}"], tmp_path)
            report.section("staging", big)
            report.write()
            (tmp_path / ERROR_REPORT).unlink(missing_ok=True)
    finally:
        stop.touch()
        out, _ = reader.communicate(timeout=60)
    reads, bad = map(int, out.split())
    assert reads > 0, "the reader never saw a report"
    assert bad == 0, f"{bad} of {reads} reads saw partial JSON"
    assert load(tmp_path / JOB_REPORT)["cmdLine"] == "--round=7"

"""Fault scenarios: outputs that cannot be written: a full disk, a read-only job directory, a name taken.

The job directories here are small tmpfs mounts (we are root), so the disk really fills up.
"""
from __future__ import annotations

import json

from tests.faults.harness import expect_failure


def test_disk_full_while_writing_predictions(trf, inputs, tmpfs):
    # 4 events of float16 scores are 2.4 MB: the write fails part way through the file
    jobdir = tmpfs("1m")

    run = trf("--mode=infer", "--modelConfig=tiny", f"--inputEventsFile={inputs.events}",
              f"--modelFile={inputs.model}", "--outputPredFile=pred.h5", jobdir=jobdir)

    expect_failure(run, 11, cause="disk-full", acronym="TRF_OUTPUT_FILE_ERROR",
                   mentions=("no space left", "pred.h5 (--outputPredFile)"))
    assert sorted(p.name for p in jobdir.iterdir()) == ["jobReport.json", "payload_error_report.json"]


def test_disk_full_while_training_keeps_the_reason(trf, inputs, tmpfs, scenario):
    # Two checkpoints of the tiny network fill 300 KiB; what is left is too little for the job
    # report, but payload_error_report.json (written first, a few hundred bytes) still carries
    # the reason to the pilot.
    jobdir = tmpfs("300k")
    scenario.without_report("the job directory is full: only payload_error_report.json may fit")

    run = trf("--mode=train", "--modelConfig=tiny", f"--inputEventsFile={inputs.events}", "--epochs=3",
              "--batchSize=2", "--outputModelFile=trained.keras", jobdir=jobdir)

    assert run.rc == 11, run.stderr[-3000:]
    error = json.loads((jobdir / "payload_error_report.json").read_text())
    assert error["error_code"] == 11 and "no space left in the job directory" in error["error_diag"]
    assert "no space left in the job directory" in run.stderr
    if run.report is None:
        assert "cannot write" in run.stderr and "jobReport.json" in run.stderr
    else:
        assert run.report["errorCause"] == "disk-full"


def test_read_only_job_directory_fails_before_any_work(trf, inputs, tmpfs, scenario):
    jobdir = tmpfs("1m", readonly=True)
    scenario.without_report("the job directory is read-only")

    run = trf("--mode=infer", "--modelConfig=tiny", f"--inputEventsFile={inputs.events}",
              f"--modelFile={inputs.model}", "--outputPredFile=pred.h5", jobdir=jobdir)

    assert run.rc == 11
    assert f"job directory {jobdir} is not writable" in run.stderr
    assert f"cannot write {jobdir}/" in run.stderr          # no report can be written there either
    assert "payload" not in run.stdout and list(jobdir.iterdir()) == []


def test_an_output_already_in_the_job_directory_is_never_overwritten(trf, inputs, jobdir, scenario):
    existing = jobdir / "pred.h5"
    existing.write_bytes(b"an earlier attempt's predictions")
    scenario.input(existing)
    scenario.keep(existing)

    run = trf("--mode=infer", "--modelConfig=tiny", f"--inputEventsFile={inputs.events}",
              f"--modelFile={inputs.model}", "--outputPredFile=pred.h5")

    expect_failure(run, 11, cause="exists", mentions=("pred.h5", "already exists"))
    assert run.report["executor"] == []

"""Reserved names: an output LFN may not be a name the job directory uses for anything else."""
from __future__ import annotations

import pytest

from wrapper import exitcodes as ec
from wrapper.errors import ArgumentError
from wrapper.args.reserved import PILOT_FILES, TRF_FILES, check_output_names

INFER = ["--mode=infer", "--inputEventsFile=ev.001.h5", "--modelFile=model.keras"]


def refused(lfns, inputs=(), own=None) -> str:
    with pytest.raises(ArgumentError) as caught:
        check_output_names(lfns, inputs, own)
    assert caught.value.exit_code == ec.ARG_ERROR == 7
    return caught.value.message


@pytest.mark.parametrize("name", sorted({**PILOT_FILES, **TRF_FILES}))
def test_every_reserved_name_is_refused_and_named(name):
    message = refused({"outputPredFile": name})
    assert f"--outputPredFile={name}" in message and "choose another output name" in message


def test_the_pilot_files_read_from_the_real_pilot_are_in_the_list():
    # the ones the issue names, from pilot3 3.11.5.1's default.cfg and control/job.py
    for name in ("payload.stdout", "payload.stderr", "PoolFileCatalog.xml", "pandaJobData.out",
                 "jobReport.json", "payload_error_report.json", "metadata.xml",
                 "memory_monitor_summary.json", "memory_monitor_output.txt", "container_script.sh"):
        refused({"outputMetricsFile": name})


def test_pilot_prefixes_and_the_log_tarball_are_refused():
    assert "server-update" in refused({"outputPredFile": "curl_updateJob_42.config"})
    assert "log tarball" in refused({"outputModelFile": "task.123.job.log.tgz"})


def test_inputs_and_the_trf_file_are_refused():
    message = refused({"outputPredFile": "ev.001.h5"}, ["s3://bucket/run/ev.001.h5"])
    assert "the input s3://bucket/run/ev.001.h5" in message
    assert "own file" in refused({"outputPredFile": "dune-payload.pyz"}, [], "dune-payload.pyz")


def test_ordinary_names_pass():
    check_output_names({"outputPredFile": "pred.000042.h5", "outputMetricsFile": "metrics.json",
                        "outputModelFile": "payload.stdout.keras"}, ["ev.001.h5", "model.keras"],
                       "dune-payload.pyz")


@pytest.mark.parametrize("lfn", ["jobReport.json", "payload_error_report.json", "payload.stdout",
                                 "ev.001.h5", "model.keras"])
def test_the_cli_refuses_a_reserved_output_before_any_work(jobdir, run_cli, assert_failed_with, lfn):
    result = run_cli([*INFER, f"--outputPredFile={lfn}"], jobdir)
    assert result.rc == 7, result.stderr
    report = assert_failed_with(jobdir, 7)
    assert f"--outputPredFile={lfn}" in report["exitMsg"]
    assert report["executor"] == [] and not result.frameworks
    assert sorted(p.name for p in jobdir.iterdir()) == ["jobReport.json", "payload_error_report.json"]

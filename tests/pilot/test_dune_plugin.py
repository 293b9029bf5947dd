"""The DUNE pilot user plugin (deploy/pilot-plugin/dune) inside the real pilot 3.11.5.1, run with
`--pilot-user dune` (ids pilot-3.11.5.1-dune_plugin).

What reaches PanDA is read from what the pilot itself wrote: its final job update for Harvester
(worker_attributes.json: nEvents, jobMetrics, exeErrorCode, pilot errors, metaData) and the outputs
it declared for stage-out with their GUIDs (event_status.dump.json). The "GPU node" job runs with
an nvidia-smi that answers as the captured H200 machine (tests/platform/fixtures/h200_driver580);
the framework here has no CUDA, so the trf detects the GPU and runs a CPU build.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.pilot.conftest import DUNE_PLUGIN

pytestmark = pytest.mark.parametrize("pilot_version", [DUNE_PLUGIN], ids=["pilot-3.11.5.1-dune_plugin"])

PUTADMISMATCH = 1172
PAYLOADEXECUTIONFAILURE = 1305


def job_metrics(verdict) -> dict:
    """The final update's jobMetrics, `name=value` words as the server splits them."""
    text = verdict["worker_attributes"].get("jobMetrics") or ""
    assert len(text) <= 500, "the server keeps 500 characters"
    return dict(word.split("=", 1) for word in text.split())


@pytest.mark.pilot_job("gpu_node")
def test_nevents_and_the_outputs_guid_size_and_checksum_are_the_trfs(verdicts):
    verdict = verdicts["gpu_node"]
    assert verdict["job_status"] == "finished", verdict["pilot_error_diag"]
    report = verdict["job_report"]
    (ours,) = report["files"]["output"][0]["subFiles"]
    assert verdict["worker_attributes"]["nEvents"] == report["resource"]["transform"]["processedEvents"] == 4
    declared = verdict["declared_outputs"]["pred.h5"]
    assert declared["guid"] == ours["file_guid"]
    assert declared["fsize"] == ours["file_size"] == verdict["staged_out"]["pred.h5"]["size"]
    assert declared["chksum"] == ours["adler32"] == verdict["staged_out"]["pred.h5"]["adler32"]


@pytest.mark.pilot_job("gpu_node")
def test_job_metrics_carry_the_gpu_the_build_and_the_step_times(verdicts):
    verdict = verdicts["gpu_node"]
    report, metrics = verdict["job_report"], job_metrics(verdict)
    assert (metrics["nEvents"], metrics["nEventsW"]) == ("4", "4")
    assert metrics["GPU_name"] == "NVIDIA_H200"
    assert metrics["nGPU"] == str(report["distribution"]["gpus"]) == "0"
    assert (metrics["build"], metrics["precision"], metrics["device"]) == (
        report["build"]["name"], report["build"]["precision"], "cpu")
    steps = {step["name"]: step["wallTime"] for step in report["executor"]}
    assert float(metrics["computeTime"]) == pytest.approx(steps["payload"], abs=0.06)
    assert float(metrics["stageInTime"]) == pytest.approx(steps["stage-in"], abs=0.06)
    assert "stageOutTime" in metrics
    assert float(metrics["eventsPerSec"]) == pytest.approx(4 / steps["payload"], rel=0.01)
    assert int(metrics["maxRSS"]) > 100_000          # KiB: the framework alone holds more


@pytest.mark.pilot_job("gpu_node")
def test_the_report_harvester_gets_records_the_node_and_its_gpus_for_brokerage(verdicts):
    """In Harvester mode the job's metaData is the jobReport.json copy the pilot leaves for
    Harvester: the records must be in it, under the queue's site and one host name."""
    verdict = verdicts["gpu_node"]
    copy = json.loads((Path(verdict["run_dir"]) / "pilot-home" / "jobReport.json").read_text())
    node, gpus = copy["worker_node"], copy["worker_node_gpus"]
    assert (node["site"], node["panda_queue"]) == ("LOCAL", "LOCAL_TEST")   # atlas_site, queue name
    assert node["cpu_model"] and node["n_logical_cpus"] >= 1
    assert {k: gpus[k] for k in ("site", "host_name", "vendor", "model", "count", "vram", "architecture",
                                 "driver_version")} == {
        "site": "LOCAL", "host_name": node["host_name"], "vendor": "NVIDIA", "model": "NVIDIA H200",
        "count": 1, "vram": 143771, "architecture": "Hopper", "driver_version": "580.159.04"}
    # direct mode sends the text the plugin returned: the same records
    assert verdict["metadata"]["worker_node_gpus"] == gpus and verdict["metadata"]["worker_node"] == node
    # and the trf's own part of the report is untouched
    assert copy["files"] == verdict["job_report"]["files"]


@pytest.mark.pilot_job("success")
def test_a_cpu_node_gets_a_node_record_and_no_gpu_record(verdicts):
    verdict = verdicts["success"]
    copy = json.loads((Path(verdict["run_dir"]) / "pilot-home" / "jobReport.json").read_text())
    assert copy["worker_node"]["site"] == "LOCAL" and "worker_node_gpus" not in copy


@pytest.mark.pilot_job("tampered_output")
def test_an_output_that_differs_from_the_report_fails_the_job_naming_it(verdicts):
    verdict = verdicts["tampered_output"]
    assert verdict["trans_exit_code"] == 0 and verdict["job_status"] == "failed"
    assert verdict["pilot_error_code"] == PUTADMISMATCH, verdict["pilot_error_diag"]
    (ours,) = verdict["job_report"]["files"]["output"][0]["subFiles"]
    assert f"pred.h5 is {ours['file_size'] + 1} bytes on disk" in verdict["pilot_error_diag"]
    assert "pred.h5" not in verdict["staged_out"]


@pytest.mark.pilot_job("bad_argument")
def test_a_failing_job_sends_our_exit_code_and_diagnosis(verdicts):
    verdict = verdicts["bad_argument"]
    assert verdict["job_status"] == "failed"
    assert (verdict["pilot_error_code"], verdict["trans_exit_code"]) == (PAYLOADEXECUTIONFAILURE, 7)
    assert verdict["exe_error_code"] == 7
    assert verdict["exe_error_diag"] == verdict["payload_error_report"]["error_diag"] != ""
    assert "nEvents" not in job_metrics(verdict)


@pytest.mark.pilot_job("reportless_failure")
def test_without_an_error_report_the_exe_error_comes_from_the_job_report(verdicts):
    verdict = verdicts["reportless_failure"]
    assert verdict["payload_error_report"] is None
    report = verdict["job_report"]
    assert (verdict["job_status"], verdict["trans_exit_code"]) == ("failed", 7)
    assert verdict["exe_error_code"] == report["exitCode"] == 7
    assert verdict["exe_error_diag"] == report["exitMsg"] and "bogusOption" in report["exitMsg"]

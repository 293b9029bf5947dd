"""The real PanDA pilots (pilot3 3.11.5.1 and PyPI panda-pilot 3.7.0.36, generic workflow,
Harvester PUSH) run our trf; every test runs on both (ids pilot-3.11.5.1, pilot-3.7.0.36).

Each test reads the pilot's verdict on one job: what it would send to the PanDA server
(worker_attributes.json), what it declared for stage-out (event_status.dump.json), what its `mv`
copytool staged out, and the trf's own reports. Pilot error codes: 1305 PAYLOADEXECUTIONFAILURE,
1165 MISSINGOUTPUTFILE, 1201 SIGTERM, 1149 TRFDOWNLOADFAILURE, 1378 what exit 2 would read as
(LSETUPTIMEDOUT).
"""
from __future__ import annotations

from pathlib import Path

import h5py
import pytest

PILOT3 = "3.11.5.1"

# Report fields that differ between two runs of the same job: times, durations, memory, GUIDs, and
# the outputs' checksums (a prediction file records when it was written).
VOLATILE = frozenset({"created", "started", "ended", "wallTime", "cpuTime", "cpuTimeTotal",
                      "seconds", "rate_mib_s", "file_guid", "memory", "maxRSS", "maxRSSChildren",
                      "checksum", "adler32"})


def comparable(report):
    """A job report without what differs between two runs of the same job."""
    if isinstance(report, dict):
        return {k: comparable(v) for k, v in report.items() if k not in VOLATILE}
    if isinstance(report, list):
        return [comparable(v) for v in report]
    return report


def _attributes(h5file) -> dict:
    return {k: str(v) for k, v in h5file.attrs.items() if k not in VOLATILE}


def _log_tarball_staged(verdict) -> bool:
    return any(name.endswith(".log.tgz") for name in verdict["staged_out"])


def _exe_error(verdict, code: int) -> None:
    """exeErrorCode/Diag as each pilot sends them: pilot3 reads payload_error_report.json (since
    3.7.6.8); panda-pilot 3.7.0.36 does not, and the reason travels in transExitCode and metaData."""
    if verdict["pilot_version"] == PILOT3:
        assert verdict["exe_error_code"] == code
        assert verdict["exe_error_diag"] == verdict["payload_error_report"]["error_diag"]
        assert verdict["exe_error_diag"] == verdict["job_report"]["exitMsg"] != ""
    else:
        assert (verdict["exe_error_code"], verdict["exe_error_diag"]) == (0, "")


@pytest.mark.pilot_job("success")
def test_pilot_finishes_inference_and_stages_out_the_prediction(verdicts):
    verdict = verdicts["success"]
    assert verdict["job_status"] == "finished", verdict["pilot_error_diag"]
    assert (verdict["pilot_error_code"], verdict["trans_exit_code"]) == (0, 0)
    assert "pred.h5" in verdict["staged_out"] and _log_tarball_staged(verdict)
    staged = Path(verdict["run_dir"]) / "pilot-home" / "pred.h5"
    assert verdict["staged_out"]["pred.h5"]["size"] == staged.stat().st_size > 0
    with h5py.File(staged, "r") as pred:
        assert pred["scores"].shape == (4, 320, 320, 3)
        assert sorted(pred["event_id"][:]) == [0, 0, 1, 1]
    assert (verdict["exe_error_code"], verdict["exe_error_diag"]) == (0, "")


@pytest.mark.pilot_job("success")
def test_the_pilot_declares_the_output_under_the_guid_panda_gets(verdicts):
    verdict = verdicts["success"]
    declared = verdict["declared_outputs"]
    (ours,) = verdict["job_report"]["files"]["output"][0]["subFiles"]
    if verdict["pilot_version"] == PILOT3:
        # 3.11's generic plugin gives every output without a GUID a new one after the payload
        # (user/generic/common.py, validate_output_data) and never reads the job report's: PanDA
        # registers pred.h5 under the pilot's GUID, not under our file_guid.
        assert declared["pred.h5"]["guid"] and ours["file_guid"]
        assert declared["pred.h5"]["guid"] != ours["file_guid"]
        assert declared["pred.h5"]["fsize"] == verdict["staged_out"]["pred.h5"]["size"]
        assert declared["pred.h5"]["chksum"] == verdict["staged_out"]["pred.h5"]["adler32"]
        # the log tarball keeps the logGUID of the job definition
        assert declared[f"{verdict['panda_id']}.log.tgz"]["guid"] == "7D3A1C52-0000-4000-8000-000000004242"
    else:
        # 3.7.0.36 writes no event_status.dump.json in Harvester PUSH mode: it declares nothing
        assert declared == {} and "pred.h5" in verdict["staged_out"]


@pytest.mark.pilot_job("success")
def test_our_job_report_reaches_the_metadata(verdicts):
    verdict = verdicts["success"]
    assert verdict["metadata"] == verdict["job_report"]
    (output,) = verdict["metadata"]["files"]["output"]
    assert output["subFiles"][0]["name"] == "pred.h5"
    assert output["subFiles"][0]["nentries"] == 4
    assert output["subFiles"][0]["adler32"] == verdict["staged_out"]["pred.h5"]["adler32"]
    assert verdict["metadata"]["resource"]["transform"]["processedEvents"] == 4


@pytest.mark.pilot_job("success")
def test_pilot_downloaded_the_trf_from_the_loopback_server(verdicts):
    log = (Path(verdicts["success"]["run_dir"]) / "sandbox.log").read_text()
    assert '"GET /trf/dune-payload.pyz HTTP/1.1" 200' in log


@pytest.mark.pilot_job("bad_argument")
def test_argument_error_is_our_exit_7_not_a_setup_timeout(verdicts):
    verdict = verdicts["bad_argument"]
    assert verdict["job_status"] == "failed"
    assert verdict["trans_exit_code"] == 7
    assert verdict["pilot_error_code"] == 1305 != 1378
    assert verdict["payload_error_report"]["error_code"] == 7
    assert "--bogusOption" in verdict["payload_error_report"]["error_diag"]
    assert verdict["metadata"] == verdict["job_report"]
    assert verdict["metadata"]["exitAcronym"] == "TRF_ARG_ERROR"
    assert "--bogusOption" in verdict["metadata"]["exitMsg"]
    _exe_error(verdict, 7)


@pytest.mark.pilot_job("missing_input")
def test_missing_input_replica_fails_the_job_with_exit_9_naming_the_file(verdicts):
    verdict = verdicts["missing_input"]
    # the mv copytool stages inputs as symlinks and does not look behind them: the trf finds the gap
    assert verdict["job_status"] == "failed"
    assert (verdict["trans_exit_code"], verdict["pilot_error_code"]) == (9, 1305)
    report = verdict["payload_error_report"]
    assert report["error_code"] == 9 and "b.h5" in report["error_diag"]
    assert verdict["metadata"]["exitAcronym"] == "TRF_INPUT_FILE_ERROR"
    assert verdict["metadata"]["files"]["output"] == []
    assert "pred.h5" not in verdict["staged_out"] and _log_tarball_staged(verdict)
    _exe_error(verdict, 9)


@pytest.mark.pilot_job("missing_output")
def test_output_missing_from_outfiles_is_the_pilots_missingoutputfile(verdicts):
    verdict = verdicts["missing_output"]
    assert verdict["job_status"] == "failed"
    assert verdict["pilot_error_code"] == 1165 and verdict["pilot_error_name"] == "MISSINGOUTPUTFILE"
    assert "pred.h5" in verdict["pilot_error_diag"]
    assert verdict["trans_exit_code"] == 0
    # our report says what the trf did write, under which name
    (output,) = verdict["metadata"]["files"]["output"]
    assert output["subFiles"][0]["name"] == "predictions.h5"
    assert verdict["metadata"]["exitCode"] == 0
    assert "pred.h5" not in verdict["staged_out"]


def _final_update_after_error_analysis(pilot_log: str) -> bool:
    """Whether pilot3 sent its final 'failed' update after its payload thread had read
    payload_error_report.json: the pilot sends exeErrorCode as it stands then (control/payload.py,
    perform_initial_payload_error_analysis, is the only place that sets it)."""
    analysed = pilot_log.find("payload_error_report.json contained error code: 143")
    final = pilot_log.rfind("work report published: {'jobId': '4242', 'state': 'failed'")
    assert final >= 0, "the pilot sent no final update"
    return 0 <= analysed < final


def _final_update_after_exit_code(pilot_log: str) -> bool:
    """Whether pilot 3.7.0.36 sent its final 'failed' update after its payload thread had taken the
    killed payload's missing exit code (-1, sent as transExitCode -1 % 255 = 254). Its job monitor
    sends that update at once when it sees the signal in its loop, before the payload thread has
    waited out its 3 s to SIGKILL; the update then carries transExitCode 0. The order is in its log."""
    known = pilot_log.find("main payload execution returned non-zero exit code: -1")
    final = pilot_log.rfind("| data={'jobId': '4242', 'state': 'failed'")
    assert final >= 0, "the pilot sent no final update"
    return 0 <= known < final


@pytest.mark.pilot_job("sigterm")
def test_pilot_passes_sigterm_to_the_trf_and_our_report_says_so(verdicts):
    verdict = verdicts["sigterm"]
    job_dir = Path(verdict["job_dir"])
    stdout = (job_dir / "payload.stdout").read_text()
    stderr = (job_dir / "payload.stderr").read_text()
    pilot_log = Path(verdict["pilot_log"]).read_text(errors="replace")
    assert verdict["job_status"] == "failed"
    assert verdict["pilot_error_code"] == 1201 and verdict["pilot_error_name"] == "SIGTERM"
    assert "train epoch 2/" in stdout and "job stopped by SIGTERM" in stderr
    assert "exit 143 TRF_SIG_TERM" in stderr
    assert not (job_dir / "trained.keras").exists() and "trained.keras" not in verdict["staged_out"]
    # The pilot tars the log from a renamed job directory (control/data.py, create_log) when one of
    # its threads orders the log in the second after the signal, a race between its threads that
    # no job can steer: a report the trf writes meanwhile finds no directory, and it says so.
    reports = {"payload_error_report.json": (verdict["payload_error_report"], {"error_code": 143}),
               "jobReport.json": (verdict["job_report"], {"exitCode": 143, "exitAcronym": "TRF_SIG_TERM"})}
    for name, (report, expected) in reports.items():
        if report is None:
            assert f"cannot write {job_dir / name}: No such file or directory" in stderr, name
            assert "will create archive" in pilot_log, f"{name} is missing, yet the job directory never moved"
        else:
            assert {k: report[k] for k in expected} == expected
    if verdict["payload_error_report"] is not None:
        assert "job stopped by SIGTERM" in verdict["payload_error_report"]["error_diag"]
    if verdict["pilot_version"] == PILOT3:
        # pilot3 waits 10 s after passing SIGTERM on, then SIGKILLs and gets no exit code
        # (control/payloads/generic.py, wait_graceful), so it never sets transExitCode; exeErrorCode
        # is ours if its final update came after it read payload_error_report.json, else 0: its job
        # monitor sends that update at once when it sees the signal in its loop, the queue monitor
        # minutes later otherwise (control/job.py). The order is in its log.
        assert verdict["trans_exit_code"] == 0
        if _final_update_after_error_analysis(pilot_log):
            report = verdict["payload_error_report"]
            assert (verdict["exe_error_code"], verdict["exe_error_diag"]) == (143, report["error_diag"])
        else:
            assert "job monitor detected an abort_job request" in pilot_log
            assert (verdict["exe_error_code"], verdict["exe_error_diag"]) == (0, "")
    else:
        # 3.7.0.36 SIGKILLs 3 s after SIGTERM and takes the missing exit code as -1: -1 % 255, if
        # its final update comes after that; it never reads payload_error_report.json
        if _final_update_after_exit_code(pilot_log):
            assert verdict["trans_exit_code"] == 254
        else:
            assert verdict["trans_exit_code"] == 0
            assert "main payload execution returned non-zero exit code: -1" in pilot_log
        assert (verdict["exe_error_code"], verdict["exe_error_diag"]) == (0, "")


@pytest.mark.pilot_job("success", "installed")
def test_pyz_and_installed_entry_point_report_the_same_job_identically(verdicts):
    pyz, installed = verdicts["success"], verdicts["installed"]
    assert installed["job_status"] == "finished"
    assert comparable(pyz["job_report"]) == comparable(installed["job_report"])
    files = [h5py.File(Path(v["run_dir"]) / "pilot-home" / "pred.h5", "r") for v in (pyz, installed)]
    with files[0] as by_pyz, files[1] as by_installed:
        assert _attributes(by_pyz) == _attributes(by_installed)
        assert (by_pyz["scores"][...] == by_installed["scores"][...]).all()
        assert (by_pyz["event_id"][...] == by_installed["event_id"][...]).all()


@pytest.mark.pilot_job("trf_in_harvester_workdir")
def test_pilot_copies_the_trf_from_the_harvester_workdir_instead_of_downloading_it(verdicts):
    verdict = verdicts["trf_in_harvester_workdir"]
    assert verdict["job_status"] == "finished", verdict["pilot_error_diag"]
    assert "pred.h5" in verdict["staged_out"]
    log = (Path(verdict["run_dir"]) / "sandbox.log").read_text()
    assert "GET /trf/" not in log, "the pilot downloaded the trf although $HARVESTER_WORKDIR has it"


@pytest.mark.pilot_job("trf_not_found")
def test_a_trf_url_that_gives_404(verdicts):
    verdict = verdicts["trf_not_found"]
    log = (Path(verdict["run_dir"]) / "sandbox.log").read_text()
    assert '"GET /trf/dune-payload.pyz HTTP/1.1" 404' in log
    assert verdict["job_status"] == "failed"
    assert verdict["job_report"] is None, "the trf ran"
    if verdict["pilot_version"] == PILOT3:
        # pilot3 downloads with urllib: a 404 is a failed download, tried 3 times
        assert verdict["pilot_error_code"] == 1149 and verdict["pilot_error_name"] == "TRFDOWNLOADFAILURE"
        assert log.count('"GET /trf/dune-payload.pyz HTTP/1.1" 404') == 3
    else:
        # 3.7.0.36 downloads with `curl -sS URL > trf`, which saves the 404 page and succeeds: the
        # pilot then runs the HTML page as the trf, and bash fails it
        job_dir = Path(verdict["job_dir"])
        assert (job_dir / "dune-payload.pyz").read_text().lstrip().lower().startswith("<!doctype html")
        assert verdict["trans_exit_code"] == 2    # bash: a syntax error on the page's first line

"""Fault scenarios through the real PanDA pilots (the harness of tests/pilot, inside unshare,
PILOT_NOKILL=1), each on pilot3 3.11.5.1 and on PyPI's panda-pilot 3.7.0.36.

The pilot runs the single-file trf as `./dune-payload.pyz <jobPars>` through /bin/bash -c, with the
suite's credentials in its environment. Each scenario reads the pilot's verdict (what it would send
to the PanDA server) and the trf's own reports, and goes through the same checks as the CLI
scenarios (exit code, reports, no output under a final name, inputs untouched, no secret in any
file of the job directory or in what reaches the server). A failing pilot job takes about three
minutes, mostly asleep, so every job starts at once when the first of these tests runs.
"""
from __future__ import annotations

import json
import shlex
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from scripts.pilot_harness.run import PilotJob, run_job
from scripts.tools import build_pyz
from tests.faults.harness import TrfRun, scan_pilot_run
from tests.pilot.conftest import VERSIONS, job_definition, session_pilot

ON_EACH_PILOT = pytest.mark.parametrize("pilot_version", VERSIONS, ids=[f"pilot-{v}" for v in VERSIONS])

STAGED = "--inputEventsFile=a.h5 --modelFile=model.keras --modelConfig=tiny"
METACHARACTERS = "pred.h5;touch PWNED1 && $(touch PWNED2) | `touch PWNED3` > x <y &"


def _jobs(data) -> dict:
    """{scenario: (job definition, replicas to stage)}; a.h5 is whatever each scenario needs."""
    return {
        # quoted for bash, so the trf gets the characters as data and must refuse the name
        "metacharacters": (job_definition(f"--mode=infer {STAGED} --outputPredFile='{METACHARACTERS}'",
                                          in_files=("a.h5", "model.keras")),
                           {"a.h5": data.events, "model.keras": data.model}),
        # the pilot stages a file that is not whole: its checksum is the truncated file's own
        "corrupt_input": (job_definition(f"--mode=infer {STAGED} --outputPredFile=pred.h5",
                                         in_files=("a.h5", "model.keras")),
                          {"a.h5": "truncated", "model.keras": data.model}),
        "nan_loss": (job_definition("--mode=train --inputEventsFile=a.h5 --modelConfig=tiny --epochs=2 "
                                    "--batchSize=2 --validationSplit=0 --outputModelFile=trained.keras",
                                    in_files=("a.h5",), out_files=("trained.keras",)),
                     {"a.h5": data.huge}),
    }


@pytest.fixture(scope="module")
def pilot_env(secrets):
    """The suite's credentials in this process's environment while the pilots start: the harness
    hands its environment to the sandbox, the pilot to the trf."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in secrets.env().items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="module")
def pilot_jobs(request, tmp_path_factory, data, pilot_env):
    """{(scenario, pilot version): (Future of its verdict, {LFN: replica})}, every job the selected
    tests read started now."""
    versions = sorted({item.callspec.params["pilot_version"] for item in request.session.items
                       if item.module is request.module and hasattr(item, "callspec")})
    pyz = build_pyz.build(tmp_path_factory.mktemp("faults-pyz") / "dune-payload.pyz")
    base = tmp_path_factory.mktemp("faults-pilot")
    jobs = _jobs(data)
    with ThreadPoolExecutor(max_workers=len(jobs) * len(versions), thread_name_prefix="faults-pilot") as pool:
        started = {}
        for name, (job, replicas) in jobs.items():
            folder = base / f"{name}-replicas"
            folder.mkdir()
            for lfn, source in replicas.items():
                whole = data.events.read_bytes() if source == "truncated" else Path(source).read_bytes()
                (folder / lfn).write_bytes(whole[:70_000] if source == "truncated" else whole)
            inputs = tuple(folder / lfn for lfn in replicas)
            for version in versions:
                job_request = PilotJob(job, inputs, pyz, pilot=session_pilot(version))
                started[name, version] = (pool.submit(run_job, job_request, base / f"{name}-{version}"), inputs)
        yield started


def _verdict(pilot_jobs, scenario, name: str, version: str) -> tuple:
    """The pilot's verdict on job `name`, recorded with the scenario's checks; (verdict, run)."""
    future, replicas = pilot_jobs[name, version]
    scenario.via_pilot = True
    scenario.input(*replicas)
    verdict = future.result()
    job_dir = Path(verdict["job_dir"])
    job = job_dir.parent.parent / "site" / "job.json"
    run = TrfRun(tuple(shlex.split(_job_pars(job))), job_dir, verdict["trans_exit_code"],
                 _text(job_dir / "payload.stdout"), _text(job_dir / "payload.stderr"),
                 verdict["job_report"], verdict["payload_error_report"])
    scenario.record(run)
    scan_pilot_run(scenario, job_dir.parent.parent)   # pilot.stdout, its logs, the log tarball, Harvester's files
    for replica in replicas:   # what the pilot staged for the trf is what it was given
        staged = job_dir.parent / replica.name
        assert staged.read_bytes() == replica.read_bytes(), f"{replica.name} changed in the pilot home"
    return verdict, run


def _job_pars(job_file: Path) -> str:
    return json.loads(job_file.read_text())["jobPars"]


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _failed_job(verdict, run, code: int) -> dict:
    assert verdict["job_status"] == "failed", verdict["pilot_error_diag"]
    assert (verdict["trans_exit_code"], verdict["pilot_error_code"]) == (code, 1305)
    assert verdict["pilot_error_name"] == "PAYLOADEXECUTIONFAILURE"
    assert verdict["payload_error_report"] == {"error_code": code, "error_diag": run.report["exitMsg"]}
    if verdict["pilot_version"] == VERSIONS[0]:   # pilot3 reads payload_error_report.json
        assert (verdict["exe_error_code"], verdict["exe_error_diag"]) == (code, run.report["exitMsg"])
    else:
        assert (verdict["exe_error_code"], verdict["exe_error_diag"]) == (0, "")
    assert verdict["metadata"] == verdict["job_report"] and verdict["metadata"]["exitCode"] == code
    assert verdict["metadata"]["files"]["output"] == []
    outputs = set(verdict["expected_outputs"])
    assert not outputs & set(verdict["staged_out"]), verdict["staged_out"]
    assert any(name.endswith(".log.tgz") for name in verdict["staged_out"])
    return verdict["job_report"]


@ON_EACH_PILOT
def test_pilot_jobpars_with_shell_metacharacters_reach_the_trf_as_data(pilot_jobs, scenario, pilot_version):
    verdict, run = _verdict(pilot_jobs, scenario, "metacharacters", pilot_version)

    report = _failed_job(verdict, run, 7)
    assert report["exitAcronym"] == "TRF_ARG_ERROR"
    assert "--outputPredFile=" in report["exitMsg"] and METACHARACTERS in report["exitMsg"]
    home = Path(verdict["job_dir"]).parent
    assert not [p for p in home.rglob("PWNED*")], "a metacharacter was executed"
    assert report["executor"] == []


@ON_EACH_PILOT
def test_pilot_stages_a_truncated_input_and_the_trf_names_it(pilot_jobs, scenario, pilot_version):
    verdict, run = _verdict(pilot_jobs, scenario, "corrupt_input", pilot_version)

    report = _failed_job(verdict, run, 9)
    assert report["errorCause"] == "corrupt" and report["exitAcronym"] == "TRF_INPUT_FILE_ERROR"
    assert "a.h5" in report["exitMsg"] and "truncated" in report["exitMsg"]
    assert "70000" in verdict["payload_error_report"]["error_diag"]


@ON_EACH_PILOT
def test_pilot_runs_a_training_whose_loss_turns_nan(pilot_jobs, scenario, pilot_version):
    verdict, run = _verdict(pilot_jobs, scenario, "nan_loss", pilot_version)

    report = _failed_job(verdict, run, 65)
    assert report["exitAcronym"] == "TRF_EXEC_FAIL" and "nan" in report["exitMsg"]
    assert "train: 1 file(s)" in run.stdout
    assert not (Path(verdict["job_dir"]) / "trained.keras").exists()

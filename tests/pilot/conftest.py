"""Fixtures for the pilot tests: real event and model files, the trf built from the tree, and the
real PanDA pilot (PyPI panda-pilot) running each selected job in its own namespace.

A pilot job takes about a minute when it succeeds and about three when it fails (the pilot waits
before its final update), mostly asleep: every job the selected tests need starts at once, each in
its own PID/network namespace and run directory, and each test waits only for its own verdict.
Tests say which jobs they read with `@pytest.mark.pilot_job("name", ...)`.
"""
from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import build_pyz  # noqa: E402 - scripts/ is not a package
from pilot_harness.run import PilotJob, run_job  # noqa: E402

PANDA_ID = "4242"
INFER = ("--mode=infer --inputEventsFile=a.h5,b.h5 --modelFile=model.keras --modelConfig=tiny "
         "--outputPredFile=pred.h5")


def job_definition(job_pars: str, *, in_files=("a.h5", "b.h5", "model.keras"),
                   out_files=("pred.h5",), trf_name="dune-payload.pyz") -> dict:
    """A managed-production job as PanDA dispatches it (fields in docs/design.md, 'The pilot
    contract'), inputs and outputs on the local storage endpoint. fsize/checksum are filled by the harness from the replicas."""
    n_in, log = len(in_files), f"{PANDA_ID}.log.tgz"
    return {
        "PandaID": PANDA_ID, "taskID": "42", "jobsetID": "1", "jobDefinitionID": "1",
        "attemptNr": "0", "prodSourceLabel": "managed",
        "transformation": f"http://127.0.0.1/trf/{trf_name}",
        "jobPars": job_pars, "homepackage": "NULL", "swRelease": "NULL", "cmtConfig": "NULL",
        "coreCount": "1", "maxWalltime": "600", "maxCpuCount": "0",
        "inFiles": ",".join(in_files), "scopeIn": ",".join(["dune"] * n_in),
        "realDatasetsIn": ",".join(["dune:dune.test.input"] * n_in),
        "ddmEndPointIn": ",".join(["LOCAL_DISK"] * n_in), "prodDBlockToken": ",".join(["local"] * n_in),
        "outFiles": ",".join([*out_files, log]), "scopeOut": "dune", "scopeLog": "dune",
        "logFile": log, "logGUID": "7D3A1C52-0000-4000-8000-000000004242",
        "realDatasets": ",".join(["dune.test.out"] * len(out_files) + ["dune.test.log"]),
        "ddmEndPointOut": ",".join(["LOCAL_DISK"] * (len(out_files) + 1)),
        "destinationDblock": ",".join(["dune.test.out"] * len(out_files) + ["dune.test.log"]),
        "transferType": "NULL",
    }


@dataclass(frozen=True)
class Material:
    """What the jobs are made of: replicas of the inputs and the two forms of the trf."""

    data: Path
    pyz: Path
    installed: Path

    def inputs(self, *names: str) -> tuple:
        return tuple(self.data / name for name in names)


JOBS: dict[str, Callable[[Material], PilotJob]] = {
    # inference on two staged event files and a staged model; the single-file trf
    "success": lambda m: PilotJob(job_definition(INFER), m.inputs("a.h5", "b.h5", "model.keras"), m.pyz),
    # the same job through the installed console script
    "installed": lambda m: PilotJob(job_definition(INFER, trf_name="dune-payload-installed"),
                                    m.inputs("a.h5", "b.h5", "model.keras"), m.installed),
    "bad_argument": lambda m: PilotJob(job_definition(INFER + " --bogusOption=1"),
                                       m.inputs("a.h5", "b.h5", "model.keras"), m.pyz),
    # b.h5 is in inFiles but no replica exists
    "missing_input": lambda m: PilotJob(job_definition(INFER), m.inputs("a.h5", "model.keras"), m.pyz),
    # the task template names an output the dispatcher does not expect
    "missing_output": lambda m: PilotJob(job_definition(INFER.replace("=pred.h5", "=predictions.h5")),
                                         m.inputs("a.h5", "b.h5", "model.keras"), m.pyz),
    # training that the batch system ends: SIGTERM to the pilot, which passes it on to the trf
    "sigterm": lambda m: PilotJob(
        job_definition("--mode=train --inputEventsFile=a.h5,b.h5 --modelConfig=tiny --epochs=100000 "
                       "--validationSplit=0 --outputModelFile=trained.keras",
                       in_files=("a.h5", "b.h5"), out_files=("trained.keras",)),
        m.inputs("a.h5", "b.h5"), m.pyz, sigterm_after="train epoch 2/"),
}


def pytest_configure(config):
    config.addinivalue_line("markers", "pilot_job(*names): the test reads the verdicts of these "
                                       "pilot jobs (tests/pilot/conftest.py JOBS)")


@pytest.fixture(scope="session")
def pilot_data(tmp_path_factory) -> Path:
    """Two small event files and a model of config `tiny` trained on them (real HDF5, real Keras)."""
    from payload import api
    from payload.simulate import simulate_events

    data = tmp_path_factory.mktemp("pilot-data")
    simulate_events(2, 101, path=data / "a.h5")
    simulate_events(2, 102, path=data / "b.h5")
    api.train([data / "a.h5"], data / "model.keras",
              api.TrainConfig(model_config="tiny", epochs=1, batch_size=2, validation_split=0.0))
    return data


@pytest.fixture(scope="session")
def pyz(tmp_path_factory) -> Path:
    """dune-payload.pyz built from this tree."""
    return build_pyz.build(tmp_path_factory.mktemp("pyz") / "dune-payload.pyz")


@pytest.fixture(scope="session")
def installed_trf(tmp_path_factory) -> Path:
    """A one-line trf that runs the installed `dune-payload` console script (found on PATH)."""
    path = tmp_path_factory.mktemp("installed") / "dune-payload-installed"
    path.write_text('#!/bin/sh\nexec dune-payload "$@"\n')
    return path


@pytest.fixture(scope="session")
def pilot_runs(request, tmp_path_factory, pilot_data, pyz, installed_trf):
    """{job name: Future of its verdict} for every job a selected test reads, all started now."""
    names = sorted({name for item in request.session.items
                    for marker in item.iter_markers("pilot_job") for name in marker.args})
    material = Material(pilot_data, pyz, installed_trf)
    base = tmp_path_factory.mktemp("pilot-runs")
    with ThreadPoolExecutor(max_workers=max(len(names), 1), thread_name_prefix="pilot") as pool:
        yield {name: pool.submit(run_job, JOBS[name](material), base / name) for name in names}


@pytest.fixture
def verdicts(request, pilot_runs) -> dict:
    """{job name: the pilot's verdict} for the jobs named in this test's pilot_job marker."""
    marker = request.node.get_closest_marker("pilot_job")
    return {name: pilot_runs[name].result() for name in marker.args}


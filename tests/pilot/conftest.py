"""Fixtures for the pilot tests: real event and model files, the trf built from the tree, and the
real PanDA pilots running each selected job in its own namespace.

Every pilot test runs on each supported pilot (test ids `pilot-3.11.5.1`, `pilot-3.7.0.36`):
pilot3 3.11.5.1, what sites run, from its source tarball (unpacked once per session), and PyPI's
panda-pilot 3.7.0.36, the oldest still supported.

A pilot job takes about a minute when it succeeds and about three when it fails (the pilot waits
before its final update), mostly asleep: every job the selected tests need starts in the background
as soon as collection ends, each in its own PID/network namespace and run directory, so the jobs
overlap with the other test areas; each test waits only for its own verdict.
Tests say which jobs they read with `@pytest.mark.pilot_job("name", ...)`.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from scripts.pilot_harness import pilots
from scripts.pilot_harness.run import PilotJob, run_job
from scripts.tools import build_pyz
from tests.support.fake_gpu import fake_smi_environment, write_fake_smi
from tests.support.samples import events_and_tiny_model

ROOT = Path(__file__).resolve().parents[2]

PANDA_ID = "4242"
INFER = ("--mode=infer --inputEventsFile=a.h5,b.h5 --modelFile=model.keras --modelConfig=tiny "
         "--outputPredFile=pred.h5")
VERSIONS = (pilots.PILOT3_VERSION, pilots.PYPI_VERSION)
# pilot3 with the DUNE user plugin (deploy/pilot-plugin/dune) copied in, run with --pilot-user dune
DUNE_PLUGIN = f"{pilots.PILOT3_VERSION}+dune"
PLUGIN_DIR = ROOT / "deploy" / "pilot-plugin" / "dune"
# Where a job's namespace serves Material.data (every port is free there: its loopback is its own).
STORAGE_PORT = 18080
STORAGE_URL = f"http://127.0.0.1:{STORAGE_PORT}/storage"
# Pilot jobs at once: each is mostly asleep, but a trf that loads the framework holds ~1 GiB.
PARALLEL = int(os.environ.get("DUNE_PILOT_JOBS", "16"))


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
    """What the jobs are made of: replicas of the inputs, the two forms of the trf, two trfs that
    spoil what the trf leaves (for the DUNE plugin's checks), and the environment of a GPU node
    (nvidia-smi answering as the captured H200 machine)."""

    data: Path
    pyz: Path
    installed: Path
    tampering: Path
    reportless: Path
    gpu_node: dict

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
    # training that the batch system ends: SIGTERM to the pilot, which passes it on to the trf.
    # The inputs come from the site's storage door, not staged by the pilot: on SIGTERM both pilots
    # may run their log step before the trf has the signal, and it deletes the inputs the pilot
    # staged (docs/pilot.md); the trf would then end on the missing input (exit 9, tested in
    # tests/payload/test_training.py) instead of on the signal.
    "sigterm": lambda m: PilotJob(
        job_definition(f"--mode=train --inputEventsFile={STORAGE_URL}/a.h5,{STORAGE_URL}/b.h5 "
                       "--modelConfig=tiny --epochs=100000 --validationSplit=0 "
                       "--outputModelFile=trained.keras", in_files=(), out_files=("trained.keras",)),
        (), m.pyz, sigterm_after="train epoch 2/", storage=m.data, storage_port=STORAGE_PORT),
    # the trf in $HARVESTER_WORKDIR, as Harvester may place it: the pilot copies it, nothing is served
    "trf_in_harvester_workdir": lambda m: PilotJob(
        job_definition(INFER), m.inputs("a.h5", "b.h5", "model.keras"), m.pyz,
        trf_from="harvester-workdir"),
    # the trf URL answers 404
    "trf_not_found": lambda m: PilotJob(job_definition(INFER), m.inputs("a.h5", "b.h5", "model.keras"),
                                        m.pyz, trf_from="nowhere"),
    # inference on a node whose nvidia-smi is the captured H200's (the framework here has no CUDA)
    "gpu_node": lambda m: PilotJob(job_definition(INFER), m.inputs("a.h5", "b.h5", "model.keras"),
                                   m.pyz, environment=m.gpu_node),
    # the prediction changes after the trf reported it
    "tampered_output": lambda m: PilotJob(job_definition(INFER, trf_name="dune-payload-tampering"),
                                          m.inputs("a.h5", "b.h5", "model.keras"), m.tampering),
    # an argument error from a trf that leaves no payload_error_report.json
    "reportless_failure": lambda m: PilotJob(
        job_definition(INFER + " --bogusOption=1", trf_name="dune-payload-reportless"),
        m.inputs("a.h5", "b.h5", "model.keras"), m.reportless),
}

# Shell trfs around the installed console script, each spoiling one thing the trf left.
TAMPERING_TRF = """#!/bin/sh
dune-payload "$@"; rc=$?
[ -f pred.h5 ] && printf x >> pred.h5
exit $rc
"""
REPORTLESS_TRF = """#!/bin/sh
dune-payload "$@"; rc=$?
rm -f payload_error_report.json
exit $rc
"""

_PILOTS: dict = {}
_PILOTS_LOCK = threading.Lock()


def session_pilot(version: str) -> pilots.Pilot:
    """The pilot of this version for this session; pilot3 is unpacked on first use, once."""
    with _PILOTS_LOCK:
        if version not in _PILOTS:
            if version == pilots.PYPI_VERSION:
                _PILOTS[version] = pilots.pypi()
            elif version == DUNE_PLUGIN:
                top = pilots.unpack(Path(tempfile.mkdtemp(prefix="dune-pilot3-")) / "src",
                                    plugins={"dune": PLUGIN_DIR})
                _PILOTS[version] = pilots.pilot3(top, "dune")
            else:
                top = pilots.unpack(Path(tempfile.mkdtemp(prefix="dune-pilot3-")) / "src")
                _PILOTS[version] = pilots.pilot3(top)
        return _PILOTS[version]


def make_material(base: Path) -> Material:
    """Two small event files and a model of config `tiny` trained on them (real HDF5, real Keras,
    made in a child process so the framework never loads in the test process's background), the
    trf built from this tree, and a one-line trf that runs the installed `dune-payload`."""
    data = base / "data"
    data.mkdir(parents=True)
    events_and_tiny_model({data / "a.h5": 101, data / "b.h5": 102}, data / "model.keras", data / "a.h5")
    (base / "pyz").mkdir()
    pyz = build_pyz.build(base / "pyz" / "dune-payload.pyz")
    trfs = {}
    for name, text in (("installed", '#!/bin/sh\nexec dune-payload "$@"\n'),
                       ("tampering", TAMPERING_TRF), ("reportless", REPORTLESS_TRF)):
        trfs[name] = base / f"dune-payload-{name}"
        trfs[name].write_text(text)
        trfs[name].chmod(0o755)
    fake_bin = write_fake_smi(base / "gpu-node-bin")
    gpu_node = {**fake_smi_environment("h200_driver580", base / "nvidia-smi-calls.log"),
                "PATH": os.pathsep.join([str(fake_bin), str(Path(sys.executable).parent),
                                         os.environ.get("PATH", "")])}
    return Material(data, pyz, trfs["installed"], trfs["tampering"], trfs["reportless"], gpu_node)


class _Runs:
    """The session's pilot jobs: {(job name, pilot version): Future of the verdict}."""

    def __init__(self):
        self.futures: dict = {}
        self.pools: list = []

    def start(self, wanted, base: Path) -> None:
        """Make the material, then run each (job name, version) in `wanted`, under `base`."""
        pool = ThreadPoolExecutor(max_workers=max(1, min(PARALLEL, len(wanted))),
                                  thread_name_prefix="pilot")
        maker = ThreadPoolExecutor(1, "pilot-material")
        self.pools += [pool, maker]
        material: Future = maker.submit(make_material, base)
        for name, version in wanted:
            self.futures[name, version] = pool.submit(self._run, name, version, material, base)

    @staticmethod
    def _run(name: str, version: str, material: Future, base: Path) -> dict:
        job = JOBS[name](material.result())
        job = dataclasses.replace(job, pilot=session_pilot(version))
        return run_job(job, base / f"{name}-{version}")


RUNS = _Runs()


def wanted_jobs(items) -> list:
    """(job name, pilot version) for every pilot_job marker of these (parametrized) tests."""
    wanted = set()
    for item in items:
        version = getattr(item, "callspec", None) and item.callspec.params.get("pilot_version")
        for marker in item.iter_markers("pilot_job"):
            wanted.update((name, version) for name in marker.args if version)
    return sorted(wanted)


def pytest_configure(config):
    config.addinivalue_line("markers", "pilot_job(*names): the test reads the verdicts of these "
                                       "pilot jobs (tests/pilot/conftest.py JOBS)")


def pytest_collection_finish(session):
    """Start every pilot job the selected tests read, now, in the background."""
    wanted = wanted_jobs(session.items)
    if wanted and not RUNS.futures and not session.config.option.collectonly:
        RUNS.start(wanted, session.config._tmp_path_factory.mktemp("pilot-runs"))


@pytest.fixture(scope="session")
def pyz(tmp_path_factory) -> Path:
    """dune-payload.pyz built from this tree."""
    return build_pyz.build(tmp_path_factory.mktemp("pyz") / "dune-payload.pyz")


@pytest.fixture(params=VERSIONS, ids=[f"pilot-{v}" for v in VERSIONS])
def pilot_version(request) -> str:
    """Each pilot test runs on each supported pilot version."""
    return request.param


@pytest.fixture
def pilot(pilot_version) -> pilots.Pilot:
    """The session's pilot of this test's version."""
    return session_pilot(pilot_version)


@pytest.fixture
def verdicts(request, pilot_version) -> dict:
    """{job name: the pilot's verdict} for the jobs named in this test's pilot_job marker."""
    marker = request.node.get_closest_marker("pilot_job")
    return {name: RUNS.futures[name, pilot_version].result() for name in marker.args}

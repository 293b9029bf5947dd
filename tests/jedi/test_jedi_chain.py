"""The production chain without a server: a task of scripts/jedi/task.py, expanded into job parameters
the way JEDI does it, cleaned by the real pilot (`JobData.clean__jobparams` of 3.11.5.1 and 3.7.0.36),
and run by the real trf (`dune-payload`) in a job directory the way the pilot runs it:
`./<trf> <jobparams>` through the shell, the task's input files staged under their LFNs (what JEDI
attaches to the job) and nothing else: the model is the task's URL, which the trf fetches from a
loopback HTTP server. The chain through a real PanDA server and JEDI is tests/panda."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from scripts.jedi import task as jedi_task

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "docker://registry.example.org/dune/payload:cuda"
COMMON = ["--trf-url", "https://dune.example.org/trf/dune-payload.pyz", "--image", IMAGE,
          "--gpu", "none", "--model-config", "tiny", "--trf-arg=--batchSize=2"]
MODEL_PATH = "/models/dune.model.v3.keras"
INFER = ["infer", "--dataset", "dune:mc.pdsp.events.v1", "--output-dataset", "user.jdoe.dune.pred.v1/",
         "--files-per-job", "2", *COMMON]
TRAIN = ["train", "--dataset", "dune:mc.pdsp.train.v1", "--output-dataset", "user.jdoe.dune.train.v1/",
         "--epochs", "1", "--trf-arg=--validationSplit=0", "--cores", "2", *COMMON]
TASK_ID = 31337


def task(argv) -> dict:
    return jedi_task.build_task_params(jedi_task.request_from(jedi_task.parser().parse_args(argv)))


def panda_job(params: dict, files, serial: int) -> dict:
    """The job PanDA dispatches for job `serial` of the task: JEDI's jobPars and the files."""
    jobpars = jedi_task.expand_job(params, files, serial, TASK_ID)
    return {"PandaID": str(9000 + serial), "taskID": str(TASK_ID), "jobsetID": "1", "jobDefinitionID": "1",
            "attemptNr": "0", "prodSourceLabel": params["prodSourceLabel"],
            "transformation": params["transPath"], "jobPars": jobpars, "container_name": params["container_name"],
            "homepackage": "NULL", "swRelease": "NULL", "cmtConfig": "NULL", "coreCount": "1",
            "inFiles": ",".join(files), "outFiles": "", "logFile": f"log.{serial}.tgz"}


def run_trf(jobdir: Path, jobparams: str, cpus=None) -> subprocess.CompletedProcess:
    """What the generic pilot runs: `./<trf> <jobparams>` through the shell, in the job directory;
    `cpus`: the CPU affinity a batch system would give the job."""
    trf = Path(sys.executable).with_name("dune-payload")
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PanDA_TaskID=str(TASK_ID))
    return subprocess.run(["/bin/sh", "-c", f"{shlex.quote(str(trf))} {jobparams}"], cwd=jobdir, env=env,
                          capture_output=True, text=True, timeout=900,
                          preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)


def stage(jobdir: Path, sources: dict) -> None:
    """The pilot's stage-in: each input in the job directory under its LFN (as a symlink)."""
    jobdir.mkdir()
    for lfn, source in sources.items():
        (jobdir / lfn).symlink_to(source)


@pytest.fixture(scope="module")
def model_server(chain_data):
    """The task's model on a loopback HTTP server, as a site's https door would serve it."""
    from tests.support.httpd import LoopbackHTTP

    server = LoopbackHTTP().start()
    server.add(MODEL_PATH, (chain_data / "model.keras").read_bytes())
    yield server
    server.stop()


def infer_task(model_server) -> list:
    return INFER + ["--model-file", model_server.url(MODEL_PATH)]


def test_jedi_joins_items_with_a_trailing_space_and_fills_the_streams(model_server):
    params = task(infer_task(model_server))
    template = jedi_task.job_template(params)
    assert template.startswith("--mode=infer --containerImage " + IMAGE + " --inputEventsFile=${IN/L} ")
    assert "--outputPredFile=${OUTPUT0}" in template and not template.endswith(" ")
    files = ["mc.pdsp.events.v1._000002.h5", "mc.pdsp.events.v1._000001.h5"]
    jobpars = jedi_task.expand_job(params, files, 7, TASK_ID)
    # ${IN/L}: the job's LFNs, sorted, as a comma list; outputs from $JEDITASKID and ${SN/P}
    assert "--inputEventsFile=mc.pdsp.events.v1._000001.h5,mc.pdsp.events.v1._000002.h5 " in jobpars
    assert f"--outputPredFile=user.jdoe.dune.pred.v1.{TASK_ID}._000007.pred.h5" in jobpars
    assert "$" not in jobpars


def test_jedi_compact_form_without_the_long_decorator():
    assert jedi_task.compact_lfns(["ev._000001.h5", "ev._000002.h5", "ev._000010.h5"]) == \
        "ev._[000001,000002,000010].h5"
    assert jedi_task.compact_lfns(["a.h5", "b.h5"]) == "a.h5,b.h5"
    assert jedi_task.compact_lfns(["ev._000001.h5"]) == "ev._000001.h5"


def test_a_leading_container_image_survives_the_pilot_and_the_trf_ignores_it(pilot, tmp_path):
    """The bug of issue 11: JEDI gives the first item no leading space, so the pilot keeps the word."""
    job = {"PandaID": "1", "jobPars": f"--containerImage {IMAGE} --mode=infer --inputEventsFile=a.h5 "
                                      "--modelFile=m.keras --outputPredFile=p.h5 --dryRun"}
    cleaned = pilot.clean(job)
    assert cleaned["jobparams"].startswith("--containerImage ") and cleaned["imagename"] == ""
    tmp_path.joinpath("job").mkdir()
    done = run_trf(tmp_path / "job", cleaned["jobparams"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"--containerImage {IMAGE} ignored" in done.stdout + done.stderr


def test_inference_task_end_to_end(pilot, chain_data, model_server, tmp_path):
    params = task(infer_task(model_server))
    files = [f"mc.pdsp.events.v1._{n:06d}.h5" for n in (1, 2, 3)]
    job = panda_job(params, files[:2], serial=1)
    cleaned = pilot.clean(job)
    # the image went to the pilot (which runs the container), not to the trf
    assert cleaned["imagename"] == IMAGE and "--containerImage" not in cleaned["jobparams"]
    jobdir = tmp_path / "job"
    stage(jobdir, {files[0]: chain_data / "events.1.h5", files[1]: chain_data / "events.2.h5"})
    one_cpu = {min(os.sched_getaffinity(0))}
    seen_before = len(model_server.records)   # the server is the module's: one job per pilot version
    done = run_trf(jobdir, cleaned["jobparams"], cpus=one_cpu)
    assert done.returncode == 0, done.stderr[-3000:]
    lfn = f"user.jdoe.dune.pred.v1.{TASK_ID}._000001.pred.h5"
    with h5py.File(jobdir / lfn) as pred:
        assert pred["scores"].shape[0] == 4            # 2 events in each of the 2 files
    report = json.loads((jobdir / "jobReport.json").read_text())
    assert report["exitCode"] == 0
    assert [f["name"] for f in report["files"]["input"][0]["subFiles"]] == files[:2]
    assert [f["name"] for o in report["files"]["output"] for f in o["subFiles"]] == [lfn]
    # the model came from the task's URL, not from the job directory
    # one whole GET after its HEAD (a ranged GET would be a resumed transfer or a refused HEAD)
    assert [(r.method, r.status, r.range) for r in model_server.records[seen_before:] if r.path == MODEL_PATH] == [
        ("HEAD", 200, None), ("GET", 200, None)]
    # the slot's one CPU, not the machine's: the framework got one thread
    assert report["cpu"]["threads"] == 1 and report["cpu"]["affinityCPUs"] == 1
    assert "'intraOp': 1" in done.stdout and "'applied': True" in done.stdout


def test_training_task_end_to_end(pilot, chain_data, tmp_path):
    params = task(TRAIN)
    files = [f"mc.pdsp.train.v1._{n:06d}.h5" for n in (1, 2, 3)]
    (job_files,) = [j["files"] for j in jedi_task.expand_sample(params, files)]
    cleaned = pilot.clean(panda_job(params, job_files, serial=1))
    assert cleaned["imagename"] == IMAGE and "--containerImage" not in cleaned["jobparams"]
    jobdir = tmp_path / "job"
    stage(jobdir, {lfn: chain_data / f"events.{n}.h5" for n, lfn in enumerate(files, start=1)})
    done = run_trf(jobdir, cleaned["jobparams"])
    assert done.returncode == 0, done.stderr[-3000:]
    model = jobdir / f"user.jdoe.dune.train.v1.{TASK_ID}._000001.model.keras"
    metrics = json.loads((jobdir / f"user.jdoe.dune.train.v1.{TASK_ID}._000001.metrics.json").read_text())
    assert model.stat().st_size > 0 and metrics
    report = json.loads((jobdir / "jobReport.json").read_text())
    assert report["exitCode"] == 0
    assert [f["name"] for f in report["files"]["input"][0]["subFiles"]] == files
    assert sorted(f["name"] for o in report["files"]["output"] for f in o["subFiles"]) == \
        sorted([model.name, f"user.jdoe.dune.train.v1.{TASK_ID}._000001.metrics.json"])
    # --cores 2: the task's coreCount and the trf's --nThreads
    assert params["coreCount"] == 2 and "--nThreads=2" in cleaned["jobparams"]
    assert report["cpu"]["threads"] == 2 and report["cpu"]["source"] == "nThreads"
    assert "'intraOp': 2" in done.stdout

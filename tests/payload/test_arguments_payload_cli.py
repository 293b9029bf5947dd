"""Each training and inference argument reaches what it configures, seen in what the job writes.

Every job runs the real trf (`python -m wrapper`) in a job directory of its own, on the `tiny`
network and a handful of synthetic events, in float32 (the default build's precision depends on the
CPU). A test compares the outputs of jobs that differ in one argument, so it fails if that value is
dropped anywhere between the command line and the payload. The registry that names these tests
per argument is tests/spine/test_arguments_reach.py.

Most training jobs run with --learningRate=1e-9: the saved weights are then the initial ones, and
an epoch's loss is that of the initial network on the batches it was shown.
"""
from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from payload.events import write_events
from payload.simulate import simulate_events

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"

# The reference job of the comparisons: 4 of 8 events, 2 steps of 2, initial weights kept.
BASE = {"mode": "train", "modelConfig": "tiny", "epochs": "1", "batchSize": "2", "validationSplit": "0",
        "maxEvents": "4", "learningRate": "1e-9", "precision": "float32", "randomSeed": "1",
        "outputModelFile": "model.keras", "outputMetricsFile": "metrics.json"}


def trf_command(args: dict) -> list:
    return [sys.executable, "-m", "wrapper", *(f"--{name}={value}" for name, value in args.items())]


def trf_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def trf(jobdir: Path, args: dict) -> tuple[dict, str]:
    """Run the trf with `args` ({name: value}) in `jobdir`; (jobReport.json, stdout) of a job that
    must succeed."""
    jobdir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(trf_command(args), cwd=jobdir, env=trf_env(), capture_output=True, text=True,
                          timeout=600)
    report = json.loads((jobdir / "jobReport.json").read_text())
    assert done.returncode == report["exitCode"] == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return report, done.stdout


def weights(model: Path) -> dict:
    """Every variable saved in a `.keras` file, read with h5py (no framework in the test process)."""
    arrays = {}
    with zipfile.ZipFile(model) as archive, archive.open("model.weights.h5") as raw:
        with h5py.File(raw, "r") as f:
            f.visititems(lambda name, item: arrays.__setitem__(name, item[()])
                         if isinstance(item, h5py.Dataset) else None)
    return arrays


def largest_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys() and a
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in a if a[k].size)


def relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b))


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> Path:
    return simulate_events(8, 3, path=tmp_path_factory.mktemp("events") / "ev.h5")


@pytest.fixture(scope="module")
def train(tmp_path_factory, events):
    """`train(name, **changes)` → (metrics JSON, job directory) of BASE with `changes`, run once per
    name for the module."""
    done: dict = {}

    def run(name: str, **changes: str):
        if name not in done:
            jobdir = tmp_path_factory.mktemp(name)
            trf(jobdir, {**BASE, "inputEventsFile": str(events), **changes})
            done[name] = json.loads((jobdir / "metrics.json").read_text()), jobdir
        return done[name]

    return run


def loss_of(run) -> float:
    return run[0]["history"]["loss"][0]


def test_random_seed_sets_the_initial_weights_and_the_same_seed_reproduces_them(train):
    first, again, other = train("seed1"), train("seed1-again", randomSeed="1"), train("seed2", randomSeed="2")

    same = largest_difference(weights(first[1] / "model.keras"), weights(again[1] / "model.keras"))
    changed = largest_difference(weights(first[1] / "model.keras"), weights(other[1] / "model.keras"))
    assert same < 1e-5 and changed > 1e-2, (same, changed)
    assert relative(loss_of(first), loss_of(again)) < 1e-4


def test_max_events_and_learning_rate_reach_the_training(train):
    metrics, _ = train("seed1")
    assert metrics["events"] == {"train": 4, "validation": 0, "inputs": metrics["events"]["inputs"]}
    assert metrics["events"]["inputs"][0]["events"] == 8
    assert metrics["history"]["learning_rate"] == [pytest.approx(1e-9, rel=1e-3)]   # the optimizer's
    assert metrics["config"]["precision"] == "float32"


def test_class_weights_are_the_weights_of_the_loss(train):
    base, equal = train("seed1"), train("equal-weights", classWeights="1,1,1")

    assert equal[0]["class_weights"] == [1.0, 1.0, 1.0]
    assert base[0]["class_weights"] != [1.0, 1.0, 1.0]            # median-frequency weights
    assert relative(loss_of(base), loss_of(equal)) > 1e-2


def test_loss_chooses_the_loss_function(train):
    base, dice = train("seed1"), train("dice", loss="dice")

    assert dice[0]["class_weights"] is None
    assert relative(loss_of(base), loss_of(dice)) > 1e-2


def test_crop_size_trains_on_crops_and_beam_fraction_chooses_them(train):
    """Crops centred on the beam (--beamFraction=1) hold other pixels than random crops (0), and
    either holds other pixels than whole events: the initial network's loss tells them apart."""
    whole = train("seed1")
    random_crops = train("crops-random", cropSize="64", beamFraction="0")
    beam_crops = train("crops-beam", cropSize="64", beamFraction="1")

    assert relative(loss_of(whole), loss_of(random_crops)) > 1e-3
    assert relative(loss_of(random_crops), loss_of(beam_crops)) > 1e-3


def cosine_with_warmup(step: int, total: int, warmup: int, peak: float) -> float:
    """Keras' CosineDecay(peak / 20, total - warmup, alpha=0.02, warmup_target=peak) at `step`,
    the schedule payload.training builds for --lrSchedule=cosine."""
    start = peak / 20
    if step < warmup:
        return start + (peak - start) * step / warmup
    fraction = min(step - warmup, total - warmup) / (total - warmup)
    return peak * ((1 - 0.02) * 0.5 * (1 + math.cos(math.pi * fraction)) + 0.02)


def test_epochs_batch_size_validation_schedule_and_plot_shape_the_run(train):
    """8 events, half held out, batches of 1: 4 steps an epoch, 2 epochs, the learning rate in
    warm-up after the first (6 warm-up steps of 8) and at the cosine's floor after the second."""
    metrics, jobdir = train("cosine", epochs="2", batchSize="1", maxEvents="-1", validationSplit="0.5",
                            learningRate="1e-3", lrSchedule="cosine", warmupSteps="6",
                            outputPlotFile="curve.png")

    assert (metrics["events"]["train"], metrics["events"]["validation"]) == (4, 4)
    assert metrics["epochs_run"] == 2 and len(metrics["history"]["loss"]) == 2
    assert len(metrics["history"]["val_loss"]) == 2
    expected = [cosine_with_warmup(step, 8, 6, 1e-3) for step in (4, 8)]
    assert metrics["history"]["learning_rate"] == pytest.approx(expected, rel=1e-3)
    assert (jobdir / "curve.png").read_bytes()[:8] == PNG


def test_early_stopping_ends_the_training_when_validation_stops_improving(tmp_path):
    """Training on events labelled all background makes the network ever surer of background;
    validation on the same images labelled all cosmic then only gets worse, so patience 1 stops
    after the second epoch of ten."""
    images, _, event_id = simulate_events(8, 5)
    write_events(tmp_path / "background.h5", images[:4], np.zeros((4, 320, 320), np.uint8), event_id[:4])
    write_events(tmp_path / "cosmic.h5", images[4:], np.full((4, 320, 320), 2, np.uint8), event_id[4:])
    args = {**BASE, "inputEventsFile": f"{tmp_path / 'background.h5'},{tmp_path / 'cosmic.h5'}",
            "maxEvents": "-1", "validationSplit": "0.5", "learningRate": "1e-3", "loss": "cce",
            "epochs": "10", "earlyStopping": "1"}
    trf(tmp_path / "job", args)

    metrics = json.loads((tmp_path / "job" / "metrics.json").read_text())
    assert metrics["stopped_early"] is True and metrics["epochs_run"] == 2
    assert metrics["history"]["val_loss"][1] >= metrics["history"]["val_loss"][0]


def checkpoints_in(jobdir: Path) -> list:
    return sorted(p.name for p in (jobdir / "checkpoints").glob("ckpt-*") if (p / "state.json").is_file())


@pytest.fixture(scope="module")
def interval_job(tmp_path_factory, events):
    """A 2-epoch training with --checkpointInterval=1 whose payload process is paused for 1.5 s once
    the first epoch's checkpoint exists: a step of the second epoch then ends more than the interval
    after that checkpoint, whatever the machine's speed. Returns its job directory."""
    jobdir = tmp_path_factory.mktemp("interval")
    args = {**BASE, "inputEventsFile": str(events), "maxEvents": "-1", "batchSize": "1", "epochs": "2",
            "checkpointInterval": "1"}
    proc = subprocess.Popen(trf_command(args), cwd=jobdir, env=trf_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    first_epoch = jobdir / "checkpoints" / "ckpt-e0001-s0000000" / "state.json"
    try:
        while not first_epoch.exists() and proc.poll() is None:
            time.sleep(0.01)
        child = [int(m.group(1)) for line in list(lines) if (m := re.search(r"payload step: process (\d+)", line))]
        assert child and first_epoch.exists(), "".join(lines)[-3000:]
        os.kill(child[0], signal.SIGSTOP)
        time.sleep(1.5)
        os.kill(child[0], signal.SIGCONT)
        assert proc.wait(timeout=300) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    assert json.loads((jobdir / "jobReport.json").read_text())["exitCode"] == 0, "".join(lines)[-3000:]
    return jobdir


def test_checkpoint_interval_adds_checkpoints_within_an_epoch(interval_job):
    """Epoch ends always checkpoint (ckpt-e000N-s0000000); only the interval takes one after step k
    of an epoch. The newest two are kept: the second epoch's end and one taken within it."""
    kept = checkpoints_in(interval_job)
    assert kept[-1] == "ckpt-e0002-s0000000"
    assert re.fullmatch(r"ckpt-e0001-s000000[1-7]", kept[0]), kept


def test_resume_false_starts_afresh_beside_a_checkpoint_a_default_job_resumes(interval_job, events):
    args = {**BASE, "inputEventsFile": str(events), "epochs": "3", "resume": "false",
            "outputModelFile": "fresh.keras", "outputMetricsFile": "fresh.json"}
    trf(interval_job, args)
    fresh = json.loads((interval_job / "fresh.json").read_text())
    assert fresh["resumed_from_epoch"] is None and len(fresh["history"]["loss"]) == 3

    args.update(epochs="4", resume="true", outputModelFile="resumed.keras", outputMetricsFile="resumed.json")
    trf(interval_job, args)
    resumed = json.loads((interval_job / "resumed.json").read_text())
    assert resumed["resumed_from_epoch"] == 3 and len(resumed["history"]["loss"]) == 4


def test_inference_arguments_reach_the_prediction_file(train, events, tmp_path):
    """--buildManifest supplies the weights, --build picks its second build, --precision overrides
    the build's, --predictionFormat=classes writes uint8 classes, --skipEvents/--maxEvents select
    events 1 and 2, --outputPlotFile draws an event, --nThreads sizes the framework's pools."""
    model = train("seed1")[1] / "model.keras"
    builds = [{"name": name, "weights_uri": str(model), "precision": "float32", "batch_size": 2,
               "requires": {"device": "any"}} for name in ("cpu-first", "cpu-second")]
    manifest = tmp_path / "builds.json"
    manifest.write_text(json.dumps({"schema_version": 1, "model": "m", "model_version": "1", "builds": builds}))
    report, log = trf(tmp_path / "job", {
        "mode": "infer", "inputEventsFile": str(events), "buildManifest": str(manifest), "build": "cpu-second",
        "precision": "mixed_float16", "predictionFormat": "classes", "skipEvents": "1", "maxEvents": "2",
        "outputPredFile": "pred.h5", "outputPlotFile": "display.png", "nThreads": "1"})

    assert report["build"]["name"] == "cpu-second"
    assert "'intraOp': 1, 'interOp': 1, 'applied': True" in log
    with h5py.File(tmp_path / "job" / "pred.h5") as pred, h5py.File(events) as inputs:
        assert "scores" not in pred and pred["classes"].dtype == np.uint8
        assert pred["classes"].shape == (2, 320, 320) and int(pred["classes"][()].max()) <= 2
        assert list(pred["event_id"][()]) == list(inputs["event_id"][1:3])
        assert pred.attrs["build"] == "cpu-second" and pred.attrs["precision"] == "mixed_float16"
    assert (tmp_path / "job" / "display.png").read_bytes()[:8] == PNG

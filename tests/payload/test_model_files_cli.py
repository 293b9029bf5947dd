"""The model file is enough: a `.keras` file names its network, so `dune-payload` runs it without
--modelConfig; an explicit --modelConfig that contradicts the file is still refused (exit 9).
`reference:small` is the packaged reference model. Each job runs the real trf in a job directory
of its own."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from payload.modelinfo import network_in_file, reference_model, reference_names
from payload.simulate import simulate_events

ROOT = Path(__file__).resolve().parents[2]


def trf(jobdir: Path, *args: str) -> tuple[int, dict]:
    jobdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "wrapper", *args], cwd=jobdir, env=env,
                          capture_output=True, text=True, timeout=600)
    report = json.loads((jobdir / "jobReport.json").read_text())
    assert report["exitCode"] == done.returncode, done.stdout + done.stderr
    return done.returncode, report


@pytest.fixture(scope="module")
def one_event(tmp_path_factory):
    return simulate_events(1, 4242, path=tmp_path_factory.mktemp("events") / "one.h5")


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """An untrained model file of each network (a file is a file: the paper one need not be trained)."""
    from payload.model import build_model
    from payload.modelfile import save_model

    folder = tmp_path_factory.mktemp("models")
    return {name: save_model(build_model(name), folder / f"{name}.weights")  # not named .keras
            for name in ("tiny", "small", "paper")}


@pytest.mark.parametrize("network", ["tiny", "small", "paper"])
def test_infer_runs_the_network_of_the_model_file_without_model_config(network, model_files, one_event, tmp_path):
    code, report = trf(tmp_path / "job", "--mode=infer", f"--inputEventsFile={one_event}",
                       f"--modelFile={model_files[network]}", "--outputPredFile=pred.h5", "--batchSize=1",
                       "--precision=float32")

    assert code == 0, report
    with h5py.File(tmp_path / "job" / "pred.h5") as f:
        assert f.attrs["model_config"] == network
        assert f["scores"].shape[0] == 1


def test_a_model_config_contradicting_the_file_is_refused(model_files, one_event, tmp_path):
    code, report = trf(tmp_path / "job", "--mode=infer", "--modelConfig=small", f"--inputEventsFile={one_event}",
                       f"--modelFile={model_files['tiny']}", "--outputPredFile=pred.h5")

    assert code == 9
    assert "'tiny'" in report["exitMsg"] and "'small'" in report["exitMsg"]
    assert not (tmp_path / "job" / "pred.h5").exists()


def test_reference_small_evaluates_through_the_cli_and_finds_the_beam(tmp_path):
    events = simulate_events(4, 777, path=tmp_path / "fresh.h5")
    code, report = trf(tmp_path / "job", "--mode=evaluate", f"--inputEventsFile={events}",
                       "--modelFile=reference:small", "--outputMetricsFile=m.json", "--batchSize=2")

    assert code == 0, report
    metrics = json.loads((tmp_path / "job" / "m.json").read_text())
    assert metrics["network"] == "small"
    assert metrics["metrics"]["iou_beam"] > 0.3 and metrics["metrics"]["iou_cosmic"] > 0.6


def test_each_packaged_reference_model_is_the_file_its_card_describes():
    from wrapper.staging.verify import adler32_of

    for name in reference_names():
        path = reference_model(f"reference:{name}")
        card = json.loads(path.with_suffix(".json").read_text())    # the card ships beside its model
        assert (card["adler32"], card["size_bytes"]) == (adler32_of(path), path.stat().st_size), name
        assert card["network"] == network_in_file(path)
        holdout = card["holdout"]["metrics"]
        assert holdout["iou_beam"] >= 0.70 and holdout["mean_iou"] >= 0.85, name


def test_an_unknown_reference_model_is_an_input_error_naming_the_known_ones(one_event, tmp_path):
    code, report = trf(tmp_path / "job", "--mode=infer", f"--inputEventsFile={one_event}",
                       "--modelFile=reference:huge", "--outputPredFile=pred.h5")

    assert code == 9
    assert "reference:huge" in report["exitMsg"] and "reference:small" in report["exitMsg"]


def test_network_in_file_reads_the_name_without_a_framework(model_files, tmp_path):
    assert network_in_file(model_files["tiny"]) == "tiny"
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    assert network_in_file(tmp_path / "junk.keras") is None
    assert network_in_file(tmp_path / "absent.keras") is None


def test_the_reference_model_is_packaged_with_its_card():
    assert "small" in reference_names()
    path = reference_model("reference:small")
    assert path.stat().st_size <= 20 * 2**20
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["network"] == network_in_file(path) == "small"
    assert card["holdout"]["seed"] != card["training"]["events_seed"]
    with pytest.raises(ValueError, match="reference:small"):
        reference_model("reference:nothing")


def test_a_manifest_build_may_leave_the_network_to_its_weights_file(tmp_path):
    from wrapper.builds.selection import load_manifest

    entry = {"name": "cpu-any", "weights_uri": "reference:small", "precision": "float32", "batch_size": 2,
             "requires": {"device": "any"}}
    path = tmp_path / "builds.json"
    path.write_text(json.dumps({"schema_version": 1, "model": "m", "model_version": "1", "builds": [entry]}))
    assert load_manifest(path).builds[0].model_config is None

    entry["model_config"] = ""
    path.write_text(json.dumps({"schema_version": 1, "model": "m", "model_version": "1", "builds": [entry]}))
    with pytest.raises(Exception, match="model_config"):
        load_manifest(path)


def test_the_reference_recipe_trains_through_the_trf(one_event, tmp_path):
    """--cropSize, --loss=dice and the cosine schedule reach the training (the config the payload
    ran with, and the optimizer's learning rate: 1 warm-up step to 1e-3, then the cosine's floor);
    the model it writes is the whole-event network, ready for inference on full events. What each
    of them changes is shown in tests/payload/test_arguments_payload_cli.py."""
    code, report = trf(tmp_path / "job", "--mode=train", f"--inputEventsFile={one_event}",
                       "--modelConfig=tiny", "--epochs=2", "--batchSize=1", "--validationSplit=0",
                       "--cropSize=64", "--loss=dice", "--lrSchedule=cosine", "--warmupSteps=1",
                       "--outputModelFile=model.keras", "--outputMetricsFile=metrics.json")

    assert code == 0, report
    metrics = json.loads((tmp_path / "job" / "metrics.json").read_text())
    ran = metrics["config"]
    assert (ran["crop_size"], ran["loss"], ran["lr_schedule"], ran["warmup_steps"]) == (64, "dice", "cosine", 1)
    assert metrics["history"]["learning_rate"] == pytest.approx([1e-3, 1e-3 * 0.02], rel=1e-3)
    assert network_in_file(tmp_path / "job" / "model.keras") == "tiny"
    code, report = trf(tmp_path / "infer", "--mode=infer", f"--inputEventsFile={one_event}",
                       f"--modelFile={tmp_path / 'job' / 'model.keras'}", "--outputPredFile=pred.h5")
    assert code == 0, report
    with h5py.File(tmp_path / "infer" / "pred.h5") as f:
        assert f["scores"].shape == (1, 320, 320, 3)


@pytest.mark.parametrize("how", [("--modelConfig=paper",), "paper-file"])
def test_crops_on_the_paper_network_are_refused_with_the_fix(how, model_files, one_event, tmp_path):
    network = (f"--modelFile={model_files['paper']}",) if how == "paper-file" else how
    code, report = trf(tmp_path / "job", "--mode=train", f"--inputEventsFile={one_event}", *network,
                       "--epochs=1", "--batchSize=1", "--validationSplit=0", "--cropSize=64",
                       "--outputModelFile=model.keras")

    assert code == (7 if how != "paper-file" else 65), report
    assert "cropSize" in report["exitMsg"]
    assert not (tmp_path / "job" / "model.keras").exists()

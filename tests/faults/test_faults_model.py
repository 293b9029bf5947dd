"""Fault scenarios: model weights, build manifests and devices that do not fit the job."""
from __future__ import annotations

import json
import zipfile

import pytest

from tests.faults.harness import expect_failure

INFER = ("--mode=infer", "--modelConfig=tiny", "--outputPredFile=pred.h5")


def _truncated(model: bytes, path) -> None:
    path.write_bytes(model[: len(model) // 2])


def _hollow(model: bytes, path) -> None:
    # a well-formed zip whose members are not what Keras wrote
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{\"class_name\": \"Functional\", \"config\": ")
        archive.writestr("model.weights.h5", model[:1000])


@pytest.mark.parametrize("damage", [_truncated, _hollow], ids=["truncated", "hollow-zip"])
def test_corrupt_weights_are_named_as_corrupt_not_as_another_model(trf, inputs, tmp_path, scenario, damage):
    weights = tmp_path / "weights.keras"
    damage(inputs.model.read_bytes(), weights)
    scenario.input(weights)

    run = trf(*INFER, f"--inputEventsFile={inputs.events}", f"--modelFile={weights}")

    expect_failure(run, 9, cause="corrupt", mentions=("weights.keras",))


def test_weights_from_another_config_name_both_configs(trf, inputs):
    run = trf("--mode=infer", "--modelConfig=small", f"--inputEventsFile={inputs.events}",
              f"--modelFile={inputs.model}", "--outputPredFile=pred.h5")

    expect_failure(run, 9, cause="model-mismatch", mentions=("model.keras", "'tiny'", "'small'"))


def _manifest(path, weights, **build) -> str:
    entry = {"name": "cpu-any", "weights_uri": str(weights), "precision": "float32", "batch_size": 2,
             "model_config": "tiny", "requires": {"device": "any"}, **build}
    path.write_text(json.dumps({"schema_version": 1, "model": "dune-protodune-fcdensenet",
                                "model_version": "faults-1", "builds": [entry]}))
    return str(path)


def test_manifest_that_is_not_json_is_a_setup_failure(trf, inputs, tmp_path, scenario):
    manifest = tmp_path / "builds.json"
    _manifest(manifest, inputs.model)
    manifest.write_text(manifest.read_text()[:-20])          # cut off mid-object
    scenario.input(manifest)

    run = trf(*INFER, f"--inputEventsFile={inputs.events}", f"--buildManifest={manifest}")

    expect_failure(run, 69, acronym="TRF_EXEC_SETUP_FAIL", mentions=("builds.json", "not valid JSON"))


def test_manifest_with_an_unknown_precision_names_the_build(trf, inputs, tmp_path, scenario):
    manifest = tmp_path / "builds.json"
    _manifest(manifest, inputs.model, precision="float8")
    scenario.input(manifest)

    run = trf(*INFER, f"--inputEventsFile={inputs.events}", f"--buildManifest={manifest}")

    expect_failure(run, 69, mentions=("cpu-any", "float8"))


def test_missing_manifest_is_an_input_not_found(trf, inputs, tmp_path):
    run = trf(*INFER, f"--inputEventsFile={inputs.events}", f"--buildManifest={tmp_path / 'absent.json'}")

    expect_failure(run, 9, cause="not-found", mentions=("absent.json",))


def test_manifest_build_runs_with_its_own_weights(trf, inputs, tmp_path, scenario, jobdir):
    # the control of the manifest scenarios: the same manifest, well formed, runs
    scenario.control()
    manifest = tmp_path / "builds.json"
    _manifest(manifest, inputs.model)
    scenario.input(manifest)

    run = trf(*INFER, f"--inputEventsFile={inputs.events}", f"--buildManifest={manifest}")

    assert run.rc == 0, run.stderr[-3000:]
    assert run.report["build"]["name"] == "cpu-any"
    assert run.report["files"]["output"][0]["subFiles"][0]["nentries"] == 4


@pytest.mark.fault_kind("infrastructure")    # the node, not the model, lacks what the job needs
def test_require_gpu_on_a_node_without_gpu_fails_setup_instead_of_using_the_cpu(trf, inputs, jobdir):
    run = trf(*INFER, f"--inputEventsFile={inputs.events}", f"--modelFile={inputs.model}", "--requireGPU")

    report = expect_failure(run, 69, acronym="TRF_EXEC_SETUP_FAIL", mentions=("--requireGPU", "no GPU"))
    assert "payload" not in [s["name"] for s in report["executor"]]
    assert not (jobdir / "pred.h5").exists()


def test_a_rerun_with_another_config_meets_the_checkpoints_of_the_first(trf, inputs, jobdir):
    # an operator reruns a training by hand in the same job directory, with another network
    first = trf("--mode=train", "--modelConfig=tiny", f"--inputEventsFile={inputs.events}", "--epochs=1",
                "--batchSize=2", "--outputModelFile=tiny.keras")
    assert first.rc == 0, first.stderr[-3000:]

    run = trf("--mode=train", "--modelConfig=small", f"--inputEventsFile={inputs.events}", "--epochs=1",
              "--batchSize=2", "--outputModelFile=small.keras")

    expect_failure(run, 9, cause="model-mismatch", mentions=("checkpoint", "'tiny' network, not 'small'"))
    assert (jobdir / "tiny.keras").stat().st_size > 0          # the first job's output untouched

"""Fault scenarios: event files that are not what they should be, and a training that diverges.

Each runs the real trf on real HDF5 files and checks the exit code, the message (naming the file
and the problem), both reports and the invariants of the `scenario` fixture.
"""
from __future__ import annotations

import h5py
import numpy as np

from tests.faults.harness import expect_failure

INFER = ("--mode=infer", "--modelConfig=tiny", "--outputPredFile=pred.h5")


def test_corrupt_hdf5_is_named_as_corrupt(trf, inputs, tmp_path, scenario):
    corrupt = tmp_path / "ev.corrupt.h5"
    data = bytearray(inputs.events.read_bytes())
    data[:8] = b"NOTHDF5!"           # the signature block is gone: no HDF5 library can open it
    corrupt.write_bytes(bytes(data))
    scenario.input(corrupt)

    run = trf(*INFER, f"--inputEventsFile={corrupt}", f"--modelFile={inputs.model}")

    expect_failure(run, 9, cause="corrupt", mentions=("ev.corrupt.h5", "not an HDF5 file"))


def test_truncated_hdf5_says_how_much_is_there(trf, inputs, tmp_path, scenario):
    truncated = tmp_path / "ev.truncated.h5"
    truncated.write_bytes(inputs.events.read_bytes()[:60_000])
    scenario.input(truncated)

    run = trf(*INFER, f"--inputEventsFile={truncated}", f"--modelFile={inputs.model}")

    report = expect_failure(run, 9, cause="corrupt", mentions=("ev.truncated.h5", "truncated", "60000"))
    assert [s["name"] for s in report["executor"]] == ["platform", "stage-in"]   # failed before the payload step


def test_hdf5_with_wrong_shapes_names_the_dataset_and_shape(trf, inputs, tmp_path, scenario):
    wrong = tmp_path / "ev.shapes.h5"
    with h5py.File(wrong, "w") as f:
        f["images"] = np.zeros((3, 160, 320), np.float32)
        f["labels"] = np.zeros((3, 160, 320), np.uint8)
        f["event_id"] = np.arange(3)
    scenario.input(wrong)

    run = trf(*INFER, f"--inputEventsFile={inputs.events},{wrong}", f"--modelFile={inputs.model}")

    expect_failure(run, 9, cause="corrupt", mentions=("ev.shapes.h5", "/images", "[3, 160, 320]"))


def test_training_without_labels_says_labels_are_missing(trf, inputs):
    run = trf("--mode=train", "--modelConfig=tiny", f"--inputEventsFile={inputs.unlabelled}",
              "--outputModelFile=trained.keras")

    expect_failure(run, 9, cause="corrupt", mentions=("unlabelled.h5", "/labels", "truth labels"))


def test_nan_loss_from_overflowing_inputs_is_exit_65(trf, inputs, jobdir):
    # Hits of 3e38 are finite, so the reader lets them through; the first convolution overflows
    # to inf and the loss becomes NaN: a diverged training, not a crash and not a model written.
    run = trf("--mode=train", "--modelConfig=tiny", f"--inputEventsFile={inputs.huge}", "--epochs=2",
              "--batchSize=2", "--validationSplit=0", "--outputModelFile=trained.keras",
              "--outputMetricsFile=metrics.json")

    report = expect_failure(run, 65, acronym="TRF_EXEC_FAIL", mentions=("nan", "--learningRate"))
    assert "epoch 1, step 1" in report["exitMsg"]
    payload = [s for s in report["executor"] if s["name"] == "payload"]
    assert payload and payload[0]["statusOK"] is False


def test_learning_rate_beyond_the_range_is_refused_before_any_work(trf, inputs):
    run = trf("--mode=train", "--modelConfig=tiny", f"--inputEventsFile={inputs.events}",
              "--learningRate=1e9", "--outputModelFile=trained.keras")

    report = expect_failure(run, 5, acronym="TRF_ARG_OUT_OF_RANGE", mentions=("--learningRate", "maximum 10"))
    assert report["executor"] == []


def test_selection_beyond_the_events_is_no_events(trf, inputs):
    run = trf(*INFER, f"--inputEventsFile={inputs.events}", f"--modelFile={inputs.model}",
              "--skipEvents=10")

    expect_failure(run, 15, acronym="TRF_NOEVENTS", mentions=("skipEvents=10", "4 event(s)"))

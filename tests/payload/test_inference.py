"""Inference and evaluation with a `tiny` network on real event files."""
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest

from payload.api import InferConfig, Provenance
from payload.errors import EmptySelection, EventFileError, ModelFileError, StopRequested
from payload.events import read_predictions
from payload.inference import evaluate, infer
from payload.metrics import confusion_matrix, segmentation_metrics
from payload.model import build_model
from payload.modelfile import save_model
from payload.simulate import simulate_events

CONFIG = InferConfig(model_config="tiny", batch_size=2)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A saved tiny network and the network itself (for reference predictions)."""
    keras.utils.set_random_seed(21)
    model = build_model("tiny")
    return save_model(model, tmp_path_factory.mktemp("model") / "tiny.keras"), model


def _softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_infer_writes_the_networks_probabilities_for_every_event(tiny, unlabelled_events_file, tmp_path):
    model_path, model = tiny
    ticks = []
    result = infer([unlabelled_events_file], model_path, tmp_path / "pred.h5", CONFIG,
                   provenance=Provenance(build="cpu-fp32", model_version="v7"), on_progress=ticks.append)

    assert result.processed_events == 5 and result.outputs == {str(tmp_path / "pred.h5"): 5}
    pred = read_predictions(tmp_path / "pred.h5")
    assert pred.scores.dtype == np.float16 and pred.scores.shape == (5, 320, 320, 3)
    images, _, event_id = simulate_events(5, 8)
    assert pred.event_id.tolist() == event_id.tolist()
    expected = _softmax(model.predict(images[..., None], batch_size=5, verbose=0))
    np.testing.assert_allclose(pred.scores.astype(np.float32), expected, atol=2e-3)
    assert pred.attrs["build"] == "cpu-fp32" and pred.attrs["model_version"] == "v7"
    assert pred.attrs["model_config"] == "tiny" and pred.attrs["inputs"] == ["unlabelled.h5"]
    assert [(t.done, t.total, t.unit) for t in ticks] == [(2, 5, "events"), (4, 5, "events"), (5, 5, "events")]


def test_skip_and_max_select_across_files_and_classes_are_stored(tiny, tmp_path):
    model_path, _ = tiny
    first = simulate_events(5, 30, path=tmp_path / "a.h5")
    second = simulate_events(4, 31, path=tmp_path / "b.h5", first_event=100)
    config = replace(CONFIG, skip_events=3, max_events=4, output_format="classes")
    result = infer([first, second], model_path, tmp_path / "pred.h5", config)
    pred = read_predictions(tmp_path / "pred.h5")
    assert pred.scores is None and pred.classes.dtype == np.uint8
    assert pred.event_id.tolist() == [3, 4, 100, 101]
    assert [c.events for c in result.inputs] == [5, 4] and result.processed_events == 4


def test_evaluate_metrics_agree_with_the_written_predictions(tiny, events_file, tmp_path):
    model_path, _ = tiny
    # classes, not float16 scores: an untrained network gives near ties that float16 would break
    result = evaluate([events_file], model_path, replace(CONFIG, max_events=6, output_format="classes"),
                      output_metrics=tmp_path / "metrics.json", output_pred=tmp_path / "pred.h5",
                      output_plot=tmp_path / "event.png")
    _, labels, _ = simulate_events(6, 7)
    predicted = read_predictions(tmp_path / "pred.h5").classes
    expected = segmentation_metrics(confusion_matrix(labels, predicted))
    assert result.metrics == pytest.approx(expected)
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["events"] == 6 and doc["metrics"] == pytest.approx(expected)
    assert np.array(doc["confusion_matrix"]["counts"]).sum() == 6 * 320 * 320
    assert (tmp_path / "event.png").read_bytes()[:4] == b"\x89PNG"
    assert result.outputs[str(tmp_path / "pred.h5")] == 6


def test_mixed_precision_inference_stays_close_to_float32(tiny, unlabelled_events_file, tmp_path):
    model_path, _ = tiny
    infer([unlabelled_events_file], model_path, tmp_path / "fp32.h5", CONFIG)
    infer([unlabelled_events_file], model_path, tmp_path / "bf16.h5", replace(CONFIG, precision="mixed_bfloat16"))
    fp32 = read_predictions(tmp_path / "fp32.h5").scores.astype(np.float32)
    bf16 = read_predictions(tmp_path / "bf16.h5").scores.astype(np.float32)
    assert np.abs(fp32 - bf16).mean() < 0.02 and not np.array_equal(fp32, bf16)
    assert keras.mixed_precision.dtype_policy().name == "float32"


def test_a_model_of_another_config_fails_before_any_output(tiny, unlabelled_events_file, tmp_path):
    model_path, _ = tiny
    with pytest.raises(ModelFileError, match="tiny.keras holds the 'tiny' network, but the 'small'"):
        infer([unlabelled_events_file], model_path, tmp_path / "pred.h5", replace(CONFIG, model_config="small"))
    assert not (tmp_path / "pred.h5").exists()


def test_a_corrupt_model_file_is_named(unlabelled_events_file, tmp_path):
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(ModelFileError, match="broken.keras"):
        infer([unlabelled_events_file], broken, tmp_path / "pred.h5", CONFIG)
    assert not (tmp_path / "pred.h5").exists()


def test_a_stop_request_leaves_no_partial_predictions(tiny, unlabelled_events_file, tmp_path):
    model_path, _ = tiny
    polls = iter(range(10))
    with pytest.raises(StopRequested):
        infer([unlabelled_events_file], model_path, tmp_path / "pred.h5", CONFIG,
              should_stop=lambda: next(polls) == 1)
    assert not (tmp_path / "pred.h5").exists()


def test_bad_inputs_are_reported_before_the_model_is_loaded(tiny, events_file, unlabelled_events_file, tmp_path):
    model_path, _ = tiny
    with pytest.raises(EventFileError, match="unlabelled.h5"):
        evaluate([unlabelled_events_file], model_path, CONFIG)
    with pytest.raises(EmptySelection, match="skipEvents=12"):
        infer([events_file], model_path, tmp_path / "pred.h5", replace(CONFIG, skip_events=12))
    missing = tmp_path / "missing.h5"
    with pytest.raises(EventFileError, match="missing.h5"):
        infer([missing], model_path, tmp_path / "pred.h5", CONFIG)


def test_the_api_module_imports_no_framework_until_called():
    code = ("import sys, payload.api; "
            "assert not {'keras', 'tensorflow', 'jax', 'torch'} & set(sys.modules), sorted(sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert run.returncode == 0, run.stderr[-1500:]


def test_api_functions_run_the_payload(tiny, unlabelled_events_file, tmp_path):
    from payload import api

    model_path, _ = tiny
    result = api.infer([unlabelled_events_file], model_path, tmp_path / "pred.h5", CONFIG)
    assert result.processed_events == 5 and read_predictions(tmp_path / "pred.h5").event_id.size == 5
    assert [c.events for c in api.inspect_inputs([unlabelled_events_file], require_labels=False)] == [5]

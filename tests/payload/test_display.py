"""Event display: a real PNG with charge, truth and prediction panels."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.image import imread

from payload.display import CLASS_COLOURS, event_display
from payload.errors import EventFileError
from payload.events import PredictionWriter, read_event


def pixels_like(png: np.ndarray, colour: str, tol: float = 0.02) -> int:
    return int((np.abs(png[..., :3] - np.array(to_rgb(colour))) < tol).all(axis=-1).sum())


@pytest.fixture
def predictions_file(tmp_path, events_file):
    """Predictions equal to the truth of events 2..4, except one pixel flipped per event."""
    path = tmp_path / "pred.h5"
    with PredictionWriter(path, n_events=3, output_format="classes", attrs={"model_version": "t"}) as w:
        for k in (2, 3, 4):
            event_id, _, labels = read_event(events_file, k)
            labels = labels.copy()
            labels[0, 0] = 1
            w.write([event_id], np.eye(3, dtype=np.float32)[labels][None] * 10)
    return path


def test_display_with_truth_and_prediction_is_a_real_png(tmp_path, events_file, predictions_file):
    out = event_display(events_file, 3, tmp_path / "ev.png", predictions=predictions_file)
    png = imread(out)
    height, width = png.shape[:2]
    assert height > 300 and width > 3 * height / 2
    assert png[..., :3].std() > 0.05
    rgb = np.round(png[..., :3] * 255).astype(np.int64)
    assert np.unique(rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]).size > 50
    _, _, labels = read_event(events_file, 3)
    beam_pixels = pixels_like(png, CLASS_COLOURS[1])
    cosmic_pixels = pixels_like(png, CLASS_COLOURS[2])
    assert beam_pixels > 100 and cosmic_pixels > 10 * beam_pixels / 2
    # truth and prediction panels both draw the beam: about twice the beam of a truth-only display
    event_display(events_file, 3, tmp_path / "truth.png")
    truth_only = pixels_like(imread(tmp_path / "truth.png"), CLASS_COLOURS[1])
    assert 1.5 * truth_only < beam_pixels < 2.5 * truth_only
    assert imread(tmp_path / "truth.png").shape[1] < width


def test_display_from_arrays_without_labels(tmp_path, events_file):
    _, image, _ = read_event(events_file, 0)
    png = imread(event_display((image, None), 0, tmp_path / "charge.png"))
    assert png.shape[0] > 300 and png[..., :3].std() > 0.05
    assert pixels_like(png, CLASS_COLOURS[1]) == 0          # no class panels


def test_display_with_predicted_scores_array(tmp_path, events_file):
    _, image, labels = read_event(events_file, 1)
    scores = np.eye(3, dtype=np.float32)[labels]
    png = imread(event_display((image, labels), 1, tmp_path / "s.png", predictions=scores))
    assert pixels_like(png, CLASS_COLOURS[1]) > 100


def test_a_prediction_for_another_event_is_an_error(tmp_path, events_file, predictions_file):
    with pytest.raises(EventFileError, match="no prediction for event_id 7"):
        event_display(events_file, 7, tmp_path / "x.png", predictions=predictions_file)
    assert not (tmp_path / "x.png").exists()

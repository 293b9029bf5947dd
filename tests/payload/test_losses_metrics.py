"""Metrics against hand-computed cases; losses against formulas and Keras' own losses."""
import json
import math

import keras
import numpy as np
import pytest

from payload import losses
from payload.metrics import (ConfusionMatrix, confusion_matrix, efficiency, iou, purity, segmentation_metrics,
                             write_metrics_json)

# 2 × 4 pixels: true and predicted classes (0 background, 1 beam, 2 cosmic)
LABELS = np.array([[0, 0, 0, 1],
                   [2, 2, 1, 0]])
PREDICTED = np.array([[0, 0, 1, 1],
                      [2, 0, 0, 0]])
# cm[true, predicted]: background 3 right, 1 called beam; beam 1 right, 1 called background;
# cosmic 1 right, 1 called background.
CM = np.array([[3, 1, 0],
               [1, 1, 0],
               [1, 0, 1]])


def test_confusion_matrix_counts_true_rows_predicted_columns():
    assert confusion_matrix(LABELS, PREDICTED).tolist() == CM.tolist()


def test_confusion_matrix_accumulates_over_batches_like_one_batch():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, (6, 5, 5))
    predicted = rng.integers(0, 3, (6, 5, 5))
    running = ConfusionMatrix()
    for batch in (slice(0, 2), slice(2, 5), slice(5, 6)):
        running.add(labels[batch], predicted[batch])
    assert running.counts.tolist() == confusion_matrix(labels, predicted).tolist()
    assert running.counts.sum() == labels.size


def test_per_class_metrics_by_hand():
    # IoU = tp / (tp + fp + fn): background 3/(3+2+1), beam 1/(1+1+1), cosmic 1/(1+0+1)
    assert iou(CM) == pytest.approx([3 / 6, 1 / 3, 1 / 2])
    # efficiency = tp / true pixels; purity = tp / predicted pixels
    assert efficiency(CM) == pytest.approx([3 / 4, 1 / 2, 1 / 2])
    assert purity(CM) == pytest.approx([3 / 5, 1 / 2, 1 / 1])
    m = segmentation_metrics(CM)
    assert m["mean_iou"] == pytest.approx((1 / 2 + 1 / 3 + 1 / 2) / 3)
    assert m["pixel_accuracy"] == pytest.approx(5 / 8)
    assert m["iou_beam"] == pytest.approx(1 / 3)
    assert m["purity_cosmic"] == pytest.approx(1.0)
    assert m["efficiency_background"] == pytest.approx(0.75)


def test_a_class_absent_from_truth_and_prediction_is_undefined_not_perfect():
    labels = np.array([0, 0, 2, 2])
    predicted = np.array([0, 2, 2, 2])
    m = segmentation_metrics(confusion_matrix(labels, predicted))
    assert m["iou_beam"] is None and m["efficiency_beam"] is None and m["purity_beam"] is None
    assert m["iou_background"] == pytest.approx(1 / 2)
    assert m["iou_cosmic"] == pytest.approx(2 / 3)
    assert m["mean_iou"] == pytest.approx((1 / 2 + 2 / 3) / 2)  # over the classes it is defined for


def test_a_class_never_predicted_has_null_purity_and_zero_iou():
    m = segmentation_metrics(confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 0, 2, 2])))
    assert m["purity_beam"] is None
    assert m["efficiency_beam"] == 0.0 and m["iou_beam"] == 0.0
    assert np.isnan(purity(confusion_matrix(np.array([1]), np.array([0]), 3))[1])


def test_a_class_predicted_but_absent_has_zero_iou_and_purity_and_null_efficiency():
    m = segmentation_metrics(confusion_matrix(np.array([0, 0]), np.array([1, 0])))
    assert m["iou_beam"] == 0.0 and m["purity_beam"] == 0.0
    assert m["efficiency_beam"] is None  # nothing to find: undefined


def test_the_metrics_file_says_what_null_means(tmp_path):
    m = segmentation_metrics(confusion_matrix(np.array([0, 1]), np.array([0, 0])))
    path = write_metrics_json(tmp_path / "m.json", {"metrics": m})
    document = json.loads(path.read_text())
    assert document["metrics"]["purity_beam"] is None
    assert "never predicted" in document["null_metrics"]


def test_confusion_matrix_rejects_different_sizes():
    with pytest.raises(ValueError, match="differ"):
        confusion_matrix(np.zeros(4), np.zeros(5))


# ---------------------------------------------------------------------------------------------
# Losses


RNG = np.random.default_rng(11)
LOGITS = RNG.normal(size=(2, 3, 4, 3)).astype(np.float32)
TRUTH = RNG.integers(0, 3, (2, 3, 4)).astype(np.uint8)


def _np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _value(loss, labels=TRUTH, logits=LOGITS):
    return float(keras.ops.convert_to_numpy(loss(labels, logits)))


def test_cce_is_keras_sparse_categorical_crossentropy():
    reference = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    assert _value(losses.make_loss("cce")) == pytest.approx(_value(reference), rel=1e-5)


def test_weighted_cce_by_formula():
    weights = (0.1, 20.0, 2.0)
    log_pt = np.take_along_axis(_np_log_softmax(LOGITS), TRUTH[..., None].astype(int), -1)[..., 0]
    expected = np.mean(-np.asarray(weights)[TRUTH] * log_pt)
    assert _value(losses.make_loss("weighted", weights)) == pytest.approx(expected, rel=1e-5)


def test_focal_matches_keras_categorical_focal_crossentropy():
    reference = keras.losses.CategoricalFocalCrossentropy(alpha=0.25, gamma=2.0, from_logits=True)
    one_hot = np.eye(3, dtype=np.float32)[TRUTH]
    assert _value(losses.make_loss("focal")) == pytest.approx(_value(reference, one_hot), rel=1e-4)


def test_focal_down_weights_confident_pixels():
    confident = np.array([[[[8.0, 0.0, 0.0]]]], np.float32)
    unsure = np.array([[[[0.2, 0.0, 0.0]]]], np.float32)
    truth = np.zeros((1, 1, 1), np.uint8)
    focal, cce = losses.make_loss("focal"), losses.make_loss("cce")
    ratio_confident = _value(focal, truth, confident) / _value(cce, truth, confident)
    ratio_unsure = _value(focal, truth, unsure) / _value(cce, truth, unsure)
    assert ratio_confident < 1e-5 < ratio_unsure < 0.25


def test_dice_cross_entropy_by_formula():
    probs = np.exp(_np_log_softmax(LOGITS))
    truth = np.eye(3)[TRUTH]
    log_pt = np.take_along_axis(_np_log_softmax(LOGITS), TRUTH[..., None].astype(int), -1)[..., 0]
    dice = [(2 * (probs[..., c] * truth[..., c]).sum() + 1) / (probs[..., c].sum() + truth[..., c].sum() + 1)
            for c in (1, 2)]
    expected = np.mean(-log_pt) + 1 - np.mean(dice)
    assert _value(losses.make_loss("dice")) == pytest.approx(expected, rel=1e-5)


def test_dice_term_rewards_finding_a_rare_class_that_cross_entropy_barely_sees():
    truth = np.zeros((1, 10, 10), np.uint8)
    truth[0, 0, :2] = 1   # 2 beam pixels of 100
    missed = np.zeros((1, 10, 10, 3), np.float32)
    missed[..., 0] = 3.0
    found = missed.copy()
    found[0, 0, :2] = [0.0, 3.0, 0.0]
    dice, cce = losses.make_loss("dice"), losses.make_loss("cce")
    dice_gain = _value(dice, truth, missed) - _value(dice, truth, found)
    cce_gain = _value(cce, truth, missed) - _value(cce, truth, found)
    assert dice_gain > 0.2 and dice_gain > 3 * cce_gain


def test_lovasz_term_is_one_minus_iou_on_hard_predictions():
    # on 0/1 probabilities the Lovász extension is the set function itself: 1 − IoU per class
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 3, (2, 6, 6)).astype(np.uint8)
    predicted = np.where(rng.random((2, 6, 6)) < 0.7, truth, rng.integers(0, 3, (2, 6, 6)))
    logits = np.where(np.eye(3, dtype=bool)[predicted], 40.0, -40.0).astype(np.float32)
    iou = [((truth == c) & (predicted == c)).sum() / ((truth == c) | (predicted == c)).sum() for c in (1, 2)]
    expected = 1 - np.mean(iou)
    ce = _value(losses.make_loss("cce"), truth, logits)
    assert 0.05 < expected < 0.95
    assert _value(losses.make_loss("lovasz"), truth, logits) - ce == pytest.approx(expected, abs=1e-5)


def test_lovasz_term_rewards_finding_a_rare_class_that_cross_entropy_barely_sees():
    truth = np.zeros((1, 10, 10), np.uint8)
    truth[0, 0, :2] = 1
    truth[0, 5, :] = 2
    missed = np.zeros((1, 10, 10, 3), np.float32)
    missed[..., 0] = 3.0
    missed[0, 5, :] = [0.0, 0.0, 3.0]
    found = missed.copy()
    found[0, 0, :2] = [0.0, 3.0, 0.0]
    lovasz, cce = losses.make_loss("lovasz"), losses.make_loss("cce")
    lovasz_gain = _value(lovasz, truth, missed) - _value(lovasz, truth, found)
    cce_gain = _value(cce, truth, missed) - _value(cce, truth, found)
    assert lovasz_gain > 0.2 and lovasz_gain > 3 * cce_gain


def test_losses_take_logits_of_any_sign_without_overflow():
    huge = np.array([[[[1e4, -1e4, 0.0]]]], np.float32)
    truth = np.array([[[1]]], np.uint8)
    for name in ("cce", "focal", "dice", "lovasz"):
        value = _value(losses.make_loss(name), truth, huge)
        assert math.isfinite(value) and value > 1e3 * (0.25 if name == "focal" else 1)


def test_median_frequency_weights_by_hand():
    # Image A (100 px): 90 background, 10 cosmic. Image B (100 px): 80 background, 5 beam, 15 cosmic.
    a = np.zeros((10, 10), np.uint8)
    a.flat[:10] = 2
    b = np.zeros((10, 10), np.uint8)
    b.flat[:5] = 1
    b.flat[5:20] = 2
    pixels, image_pixels = losses.class_pixel_counts([np.stack([a]), np.stack([b])])
    assert pixels.tolist() == [170, 5, 25]
    assert image_pixels.tolist() == [200, 100, 200]
    # freq: background 0.85, beam 0.05, cosmic 0.125; median 0.125
    assert losses.median_frequency_weights(pixels, image_pixels) == pytest.approx(
        (0.125 / 0.85, 0.125 / 0.05, 1.0))


def test_median_frequency_weights_give_unseen_classes_weight_one():
    assert losses.median_frequency_weights(np.array([50, 0, 50]), np.array([100, 0, 100])) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        losses.median_frequency_weights(np.zeros(3), np.zeros(3))


def test_make_loss_rejects_unknown_names_and_missing_weights():
    with pytest.raises(ValueError, match="unknown loss"):
        losses.make_loss("tversky")
    with pytest.raises(ValueError, match="class weights"):
        losses.make_loss("weighted", None)

"""Losses for per-pixel classification, on logits [B, H, W, C] and integer labels [B, H, W].

- `cce`: categorical cross-entropy.
- `weighted`: cross-entropy with a weight per true class; by default median-frequency weights
  (Eigen & Fergus 2015) counted from the training labels, which lifts the 0.5 % of beam pixels.
- `focal`: focal loss (Lin et al. 2017), α = 0.25, γ = 2: down-weights pixels already classified well.
- `dice`: cross-entropy plus the soft Dice loss (Milletari et al. 2016) of the beam and cosmic
  classes over the batch. Dice scores each class by its overlap whatever its size, so the rare beam
  counts as much as the cosmics, while the unweighted cross-entropy keeps the softmax calibrated:
  no logit shift is needed after training.
- `lovasz`: cross-entropy plus the Lovász-softmax loss (Berman et al. 2018, arXiv:1705.08790) of
  the beam and cosmic classes over the batch: the convex surrogate of 1 − IoU itself, the metric
  the network is judged by, calibrated by the same unweighted cross-entropy.

All use keras.ops only (any backend) and are registered so compiled models save and load.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import keras
import numpy as np
from keras import ops

LOSS_NAMES = ("cce", "weighted", "focal", "dice", "lovasz")


def _log_probs_of_truth(labels, logits):
    """log p(true class) per pixel, computed stably in float32."""
    log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    labels = ops.expand_dims(ops.cast(labels, "int32"), -1)
    return ops.squeeze(ops.take_along_axis(log_probs, labels, axis=-1), -1)


@keras.saving.register_keras_serializable(package="dune")
class WeightedCrossEntropy(keras.losses.Loss):
    """Cross-entropy with `class_weights[c]` multiplying the loss of pixels whose true class is c
    (all ones: plain categorical cross-entropy). The mean is over pixels."""

    def __init__(self, class_weights: Sequence[float], name: str = "weighted_cce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.class_weights = [float(w) for w in class_weights]

    def call(self, y_true, y_pred):
        weights = ops.take(ops.convert_to_tensor(self.class_weights, "float32"), ops.cast(y_true, "int32"))
        return -weights * _log_probs_of_truth(y_true, y_pred)

    def get_config(self):
        return {**super().get_config(), "class_weights": self.class_weights}


@keras.saving.register_keras_serializable(package="dune")
class FocalLoss(keras.losses.Loss):
    """Focal loss −α (1 − p_t)^γ log p_t, p_t the probability given to the true class."""

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, name: str = "focal", **kwargs):
        super().__init__(name=name, **kwargs)
        self.alpha = float(alpha)
        self.gamma = float(gamma)

    def call(self, y_true, y_pred):
        log_pt = _log_probs_of_truth(y_true, y_pred)
        return -self.alpha * ops.power(1.0 - ops.exp(log_pt), self.gamma) * log_pt

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "gamma": self.gamma}


@keras.saving.register_keras_serializable(package="dune")
class DiceCrossEntropy(keras.losses.Loss):
    """Per-pixel cross-entropy + `dice_weight` × (1 − mean soft Dice of `dice_classes`), the Dice
    taken over the whole batch (a batch without a class then does not divide by zero)."""

    def __init__(self, dice_classes: Sequence[int] = (1, 2), dice_weight: float = 1.0, smooth: float = 1.0,
                 name: str = "dice_cce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.dice_classes = [int(c) for c in dice_classes]
        self.dice_weight = float(dice_weight)
        self.smooth = float(smooth)

    def call(self, y_true, y_pred):
        logits = ops.cast(y_pred, "float32")
        n_classes = logits.shape[-1]
        probs = ops.softmax(logits, axis=-1)
        truth = ops.one_hot(ops.cast(y_true, "int32"), n_classes, dtype="float32")
        axes = tuple(range(len(logits.shape) - 1))
        overlap = ops.sum(probs * truth, axis=axes)
        size = ops.sum(probs, axis=axes) + ops.sum(truth, axis=axes)
        dice = (2.0 * overlap + self.smooth) / (size + self.smooth)
        dice = ops.take(dice, ops.convert_to_tensor(self.dice_classes, "int32"))
        return -_log_probs_of_truth(y_true, logits) + self.dice_weight * (1.0 - ops.mean(dice))

    def get_config(self):
        return {**super().get_config(), "dice_classes": self.dice_classes, "dice_weight": self.dice_weight,
                "smooth": self.smooth}


def lovasz_softmax(probs, truth, classes: Sequence[int]):
    """Mean over `classes` of the Lovász extension of 1 − IoU for pixels `probs`/`truth` [N, C].

    Each class's pixel errors |truth − p| are sorted worst first; the IoU lost by adding each pixel
    to the prediction, in that order, weighs its error (the gradient of the Lovász extension)."""
    losses = []
    for c in classes:
        fg = truth[:, c]
        errors = ops.abs(fg - probs[:, c])
        order = ops.argsort(-errors)
        errors, fg = ops.take(errors, order), ops.take(fg, order)
        positives = ops.sum(fg)
        intersection = positives - ops.cumsum(fg)
        union = positives + ops.cumsum(1.0 - fg)    # >= 1 from the first pixel on: no division by 0
        jaccard = 1.0 - intersection / union
        weights = ops.concatenate([jaccard[:1], jaccard[1:] - jaccard[:-1]])
        losses.append(ops.sum(errors * ops.stop_gradient(weights)))
    return ops.mean(ops.stack(losses))


@keras.saving.register_keras_serializable(package="dune")
class LovaszCrossEntropy(keras.losses.Loss):
    """Per-pixel cross-entropy + `lovasz_weight` × the Lovász-softmax loss of `lovasz_classes`,
    taken over all pixels of the batch."""

    def __init__(self, lovasz_classes: Sequence[int] = (1, 2), lovasz_weight: float = 1.0,
                 name: str = "lovasz_cce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.lovasz_classes = [int(c) for c in lovasz_classes]
        self.lovasz_weight = float(lovasz_weight)

    def call(self, y_true, y_pred):
        logits = ops.cast(y_pred, "float32")
        n_classes = logits.shape[-1]
        probs = ops.reshape(ops.softmax(logits, axis=-1), (-1, n_classes))
        truth = ops.reshape(ops.one_hot(ops.cast(y_true, "int32"), n_classes, dtype="float32"), (-1, n_classes))
        surrogate = lovasz_softmax(probs, truth, self.lovasz_classes)
        return -_log_probs_of_truth(y_true, logits) + self.lovasz_weight * surrogate

    def get_config(self):
        return {**super().get_config(), "lovasz_classes": self.lovasz_classes,
                "lovasz_weight": self.lovasz_weight}


def make_loss(name: str, class_weights: Sequence[float] | None = None, n_classes: int = 3) -> keras.losses.Loss:
    """The loss called `name` (one of LOSS_NAMES); `weighted` needs `class_weights`."""
    if name == "cce":
        return WeightedCrossEntropy([1.0] * n_classes, name="cce")
    if name == "weighted":
        if class_weights is None or len(class_weights) != n_classes:
            raise ValueError(f"the weighted loss needs {n_classes} class weights, got {class_weights!r}")
        return WeightedCrossEntropy(class_weights)
    if name == "focal":
        return FocalLoss()
    if name == "dice":
        return DiceCrossEntropy()
    if name == "lovasz":
        return LovaszCrossEntropy()
    raise ValueError(f"unknown loss {name!r}: choose one of {', '.join(LOSS_NAMES)}")


def class_pixel_counts(label_batches: Iterable[np.ndarray], n_classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Stream over label arrays [B, H, W]: per class, (pixels of the class, pixels of the images in
    which the class appears). Both int64 [n_classes]."""
    pixels = np.zeros(n_classes, np.int64)
    image_pixels = np.zeros(n_classes, np.int64)
    for labels in label_batches:
        for image in labels:
            counts = np.bincount(image.ravel(), minlength=n_classes)[:n_classes]
            pixels += counts
            image_pixels += np.where(counts > 0, image.size, 0)
    return pixels, image_pixels


def median_frequency_weights(pixels: np.ndarray, image_pixels: np.ndarray) -> tuple[float, ...]:
    """Median-frequency balancing: freq(c) = pixels of c / pixels of images containing c,
    weight(c) = median(freq) / freq(c). A class never seen gets weight 1."""
    pixels = np.asarray(pixels, np.float64)
    seen = pixels > 0
    if not seen.any():
        raise ValueError("no labelled pixels to compute class weights from")
    freq = pixels[seen] / np.asarray(image_pixels, np.float64)[seen]
    weights = np.ones_like(pixels)
    weights[seen] = np.median(freq) / freq
    return tuple(float(w) for w in weights)

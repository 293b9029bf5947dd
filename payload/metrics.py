"""Segmentation metrics from a confusion matrix accumulated over batches (numpy only, no framework).

`cm[t, p]` counts pixels of true class t predicted as class p. From it, per class c:
IoU = cm[c,c] / (row c + column c − cm[c,c]), efficiency (recall) = cm[c,c] / row c,
purity (precision) = cm[c,c] / column c. A ratio whose denominator is empty is undefined, not
perfect: the purity of a class the network never predicts says nothing of its quality. Such a
ratio is NaN in the arrays and null (None) in the flat metrics (NULL_MEANING says so in every
metrics file); the mean IoU averages the classes whose IoU is defined.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from payload.events import CLASS_NAMES


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n_classes: int = len(CLASS_NAMES)) -> np.ndarray:
    """Pixel counts [n_classes, n_classes] (int64) of (true, predicted) classes for arrays of any shape."""
    labels = np.asarray(labels).astype(np.int64, copy=False).ravel()
    predicted = np.asarray(predicted).astype(np.int64, copy=False).ravel()
    if labels.shape != predicted.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predicted.shape} differ in size")
    counts = np.bincount(labels * n_classes + predicted, minlength=n_classes * n_classes)
    return counts[: n_classes * n_classes].reshape(n_classes, n_classes)


class ConfusionMatrix:
    """Running confusion matrix: `add(labels, predicted)` per batch, `metrics()` at the end."""

    def __init__(self, n_classes: int = len(CLASS_NAMES)):
        self.n_classes = n_classes
        self.counts = np.zeros((n_classes, n_classes), dtype=np.int64)

    def add(self, labels: np.ndarray, predicted: np.ndarray) -> None:
        self.counts += confusion_matrix(labels, predicted, self.n_classes)

    def metrics(self, class_names=CLASS_NAMES) -> dict:
        return segmentation_metrics(self.counts, class_names)


NULL_MEANING = ("null: undefined, the denominator is empty (purity: the class was never predicted; "
                "efficiency: the class is absent from the truth; IoU: both)")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num/den, NaN where the denominator is 0 (undefined)."""
    num = num.astype(np.float64)
    den = den.astype(np.float64)
    return np.divide(num, den, out=np.full_like(num, np.nan), where=den > 0)


def _defined(value: float):
    return None if np.isnan(value) else float(value)


def iou(cm: np.ndarray) -> np.ndarray:
    """Per-class intersection over union."""
    tp = np.diag(cm)
    return _ratio(tp, cm.sum(axis=0) + cm.sum(axis=1) - tp)


def efficiency(cm: np.ndarray) -> np.ndarray:
    """Per-class efficiency (recall): the fraction of true pixels of the class that were found."""
    return _ratio(np.diag(cm), cm.sum(axis=1))


def purity(cm: np.ndarray) -> np.ndarray:
    """Per-class purity (precision): the fraction of pixels predicted as the class that are it."""
    return _ratio(np.diag(cm), cm.sum(axis=0))


def pixel_accuracy(cm: np.ndarray) -> float:
    total = cm.sum()
    return float(np.trace(cm) / total) if total else 1.0


def segmentation_metrics(cm: np.ndarray, class_names=CLASS_NAMES) -> dict:
    """Flat dict of every metric: `iou_<class>`, `efficiency_<class>`, `purity_<class>`, `mean_iou`,
    `pixel_accuracy`, ready for a metrics JSON or a job report: floats, or None where undefined
    (see NULL_MEANING)."""
    cm = np.asarray(cm)
    out = {}
    for name, values in (("iou", iou(cm)), ("efficiency", efficiency(cm)), ("purity", purity(cm))):
        out.update({f"{name}_{cls}": _defined(v) for cls, v in zip(class_names, values)})
    ious = iou(cm)
    out["mean_iou"] = float(np.nanmean(ious)) if not np.isnan(ious).all() else None
    out["pixel_accuracy"] = pixel_accuracy(cm)
    return out


def write_metrics_json(path: Path, document: dict) -> Path:
    """Write a metrics document as JSON at exactly `path`, atomically, saying what a null metric means."""
    document = {**document, "null_metrics": NULL_MEANING}
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path

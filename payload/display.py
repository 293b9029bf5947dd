"""Event display: the collection-plane image, its truth labels and, when given, a prediction."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np

from payload.events import CLASS_NAMES, IMAGE_SHAPE, read_event, read_predictions, source_name

N_WIRES, N_TICKS = 1440, 6000
CLASS_COLOURS = ("#f2f2f2", "#d62728", "#1f77b4")   # background, beam, cosmic
CHARGE_FLOOR = 3e-3                                  # lowest normalised charge on the log scale

Arrays = Tuple[np.ndarray, Optional[np.ndarray]]


def _event(path_or_arrays, event_index: int):
    """(event_id, image, labels, title) from a file or from (image, labels) arrays."""
    if isinstance(path_or_arrays, tuple):
        image, labels = path_or_arrays
        image = np.asarray(image, np.float32).reshape(IMAGE_SHAPE)
        labels = None if labels is None else np.asarray(labels).reshape(IMAGE_SHAPE)
        return event_index, image, labels, f"event {event_index}"
    event_id, image, labels = read_event(path_or_arrays, event_index)
    name = os.path.basename(source_name(path_or_arrays))
    return event_id, image, labels, f"{name}  event {event_index} (id {event_id})"


def _predicted_classes(predictions, event_id: int) -> np.ndarray:
    """Classes of `event_id` from a predictions file (matched by event_id) or an array."""
    if not isinstance(predictions, (str, os.PathLike)):
        values = np.asarray(predictions)
        return (values.argmax(-1) if values.shape == (*IMAGE_SHAPE, len(CLASS_NAMES)) else values
                ).reshape(IMAGE_SHAPE)
    return read_predictions(predictions, event_id=event_id).classes[0]


def _iou(predicted: np.ndarray, truth: np.ndarray, label: int) -> float:
    union = np.sum((predicted == label) | (truth == label))
    return float(np.sum((predicted == label) & (truth == label)) / union) if union else 1.0


def event_display(path_or_arrays: Union[str, os.PathLike, Arrays], event_index: int, out_png,
                  *, predictions=None) -> Path:
    """Draw event `event_index` to `out_png`: the charge (log scale), the truth labels when the
    file has them, and the predicted classes when `predictions` (a predictions file, matched by
    event_id, or an array of classes or scores) is given. Returns the PNG path.

    `path_or_arrays` is an event file (path or file object) or an (image, labels) pair.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    event_id, image, labels, title = _event(path_or_arrays, event_index)
    panels = []
    if labels is not None:
        panels.append(("truth", labels))
    if predictions is not None:
        predicted = _predicted_classes(predictions, event_id)
        scores = "" if labels is None else ", ".join(
            f"{CLASS_NAMES[k]} IoU {_iou(predicted, labels, k):.3f}" for k in (1, 2))
        panels.append((f"prediction ({scores})" if scores else "prediction", predicted))

    fig = Figure(figsize=(5.0 * (1 + len(panels)), 6.0), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 1 + len(panels), sharex=True, sharey=True, squeeze=False)[0]
    extent = (0, N_WIRES, 0, N_TICKS)
    style = {"origin": "lower", "extent": extent, "aspect": "auto", "interpolation": "nearest"}

    charge = axes[0].imshow(np.ma.masked_less_equal(image, 0), cmap=_charge_cmap(),
                            norm=LogNorm(CHARGE_FLOOR, 1.0), **style)
    axes[0].set_title("charge (normalised)")
    fig.colorbar(charge, ax=axes[0], location="bottom", shrink=0.8, aspect=30,
                 label="hit charge / event maximum")

    cmap = ListedColormap(CLASS_COLOURS)
    norm = BoundaryNorm(np.arange(len(CLASS_NAMES) + 1) - 0.5, cmap.N)
    for ax, (panel_title, classes) in zip(axes[1:], panels):
        ax.imshow(classes, cmap=cmap, norm=norm, **style)
        ax.set_title(panel_title)
    if panels:
        handles = [Patch(facecolor=c, edgecolor="0.5", label=n) for c, n in zip(CLASS_COLOURS, CLASS_NAMES)]
        axes[-1].legend(handles=handles, loc="upper right", framealpha=0.9, fontsize="small")

    for ax in axes:
        ax.set_xlabel("wire")
    axes[0].set_ylabel("tick")
    fig.suptitle(f"ProtoDUNE-SP collection plane: {title}")
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=110)
    return out_png


def _charge_cmap():
    from matplotlib import colormaps

    return colormaps["turbo"].with_extremes(bad="white")

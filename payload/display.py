"""Event display: the collection-plane image, its truth labels and, when given, a prediction."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np

from payload.events import CLASS_NAMES, IMAGE_SHAPE, read_event, read_predictions, source_name

N_WIRES, N_TICKS = 1440, 6000
CLASS_COLOURS = ("#f2f2f2", "#d62728", "#1f77b4")   # background, beam, cosmic
CHARGE_FLOOR = 1e-3                                  # lowest normalised charge on the log scale

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


def _class_panel(ax, classes, title, cmap, norm, extent):
    ax.imshow(classes, cmap=cmap, norm=norm, origin="lower", extent=extent, aspect="auto",
              interpolation="nearest")
    ax.set_title(title)


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
    panels = [("charge", None)]
    if labels is not None:
        panels.append(("truth", labels))
    if predictions is not None:
        panels.append(("prediction", _predicted_classes(predictions, event_id)))

    fig = Figure(figsize=(5.2 * len(panels), 5.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), sharex=True, sharey=True, squeeze=False)[0]
    extent = (0, N_WIRES, 0, N_TICKS)
    cmap = ListedColormap(CLASS_COLOURS)
    norm = BoundaryNorm(np.arange(len(CLASS_NAMES) + 1) - 0.5, cmap.N)

    charge_cmap = _charge_cmap()
    shown = np.ma.masked_less_equal(image, 0)
    im = axes[0].imshow(shown, cmap=charge_cmap, norm=LogNorm(CHARGE_FLOOR, 1.0), origin="lower",
                        extent=extent, aspect="auto", interpolation="nearest")
    axes[0].set_title("charge (normalised)")
    fig.colorbar(im, ax=axes[0], shrink=0.8, label="hit charge / event maximum")

    for ax, (kind, classes) in zip(axes[1:], panels[1:]):
        _class_panel(ax, classes, kind, cmap, norm, extent)
        if kind == "prediction" and labels is not None:
            ax.set_title(f"prediction (pixel accuracy {np.mean(classes == labels):.3f})")

    for ax in axes:
        ax.set_xlabel("wire")
        ax.set_facecolor(CLASS_COLOURS[0])
    axes[0].set_ylabel("tick")
    if len(panels) > 1:
        handles = [Patch(color=c, label=n) for c, n in zip(CLASS_COLOURS, CLASS_NAMES)]
        handles[0] = Patch(facecolor=CLASS_COLOURS[0], edgecolor="0.5", label=CLASS_NAMES[0])
        axes[-1].legend(handles=handles, loc="upper right", framealpha=0.9, fontsize="small")
    fig.suptitle(f"ProtoDUNE-SP collection plane: {title}")
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=100)
    return out_png


def _charge_cmap():
    from matplotlib import colormaps

    cmap = colormaps["inferno_r"].copy()
    cmap.set_bad("white")
    return cmap

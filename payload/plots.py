"""Training curve: loss and validation IoUs per epoch, as one PNG for a job's outputs."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence


def training_curve(history: Mapping[str, Sequence[float]], path: Path, *, title: str = "") -> Path:
    """Plot the per-epoch `history` of train() (loss, val_loss, val IoUs, learning rate) to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = range(1, len(history.get("loss", ())) + 1)
    fig, (ax_loss, ax_iou) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for key, label in (("loss", "training"), ("val_loss", "validation")):
        if history.get(key):
            ax_loss.plot(epochs, history[key], marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", yscale="log", title="loss")
    ax_loss.legend()
    if history.get("learning_rate"):
        ax_lr = ax_loss.twinx()
        ax_lr.plot(epochs, history["learning_rate"], color="grey", linestyle=":", label="learning rate")
        ax_lr.set(ylabel="learning rate", yscale="log")
    keys = [k for k in ("val_iou_background", "val_iou_beam", "val_iou_cosmic", "val_mean_iou") if history.get(k)]
    for key in keys:
        ax_iou.plot(epochs, history[key], marker="o", label=key.removeprefix("val_").replace("_", " "))
    ax_iou.set(xlabel="epoch", ylabel="IoU", ylim=(0, 1.02), title="validation IoU")
    if keys:
        ax_iou.legend()
    for ax in (ax_loss, ax_iou):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=100, format="png")  # the path may be an LFN without .png
    plt.close(fig)
    return Path(path)

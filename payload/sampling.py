"""Class-aware crops of labelled events, for training on small CPUs.

The beam is about 0.5 % of the pixels of an event and lies in one corner region of it: whole events
spend nearly all of a step's arithmetic on empty detector and cosmics. A crop centred on a random
beam pixel (with probability `beam_fraction`) or at a uniformly random place otherwise shows the
network the rare class in every other sample, and costs (crop/320)² of a whole event.

Each crop comes with its origin (top-left row and column in the event), so the network's position
channels see the crop's absolute place in the detector (payload.model.PixelPosition) and the
trained network runs unchanged on whole events. No flips: the beam enters from the upstream edge at
a fixed drift distance, so a mirrored event is not one the detector can record.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

BEAM = 1


def crop_origins(labels: np.ndarray, crop: int, beam_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Top-left (row, column) int32 [N, 2] of one crop of side `crop` per event of `labels` [N, H, W]."""
    n, height, width = labels.shape
    if not 0 < crop <= min(height, width):
        raise ValueError(f"crop size {crop} does not fit events of {height} × {width} pixels")
    centres = np.stack([rng.integers(0, height, n), rng.integers(0, width, n)], axis=1)
    for i in np.flatnonzero(rng.random(n) < beam_fraction):
        rows, cols = np.nonzero(labels[i] == BEAM)
        if rows.size:
            pick = rng.integers(rows.size)
            centres[i] = rows[pick], cols[pick]
    # a random offset of the centre inside the crop, so the beam is not always in its middle
    jitter = rng.integers(-crop // 4, crop // 4 + 1, size=(n, 2))
    origins = centres + jitter - crop // 2
    return np.clip(origins, 0, [height - crop, width - crop]).astype(np.int32)


def cut(array: np.ndarray, origins: np.ndarray, crop: int) -> np.ndarray:
    """The crops [N, crop, crop, ...] of `array` [N, H, W, ...] at `origins` [N, 2]."""
    return np.stack([a[r:r + crop, c:c + crop] for a, (r, c) in zip(array, origins)])


def crop_batches(images: np.ndarray, labels: np.ndarray, *, batch_size: int, crop: int, beam_fraction: float,
                 rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Endless (images [B, crop, crop, 1], origins [B, 2], labels [B, crop, crop]) batches from
    whole events `images` [N, H, W] (or [N, H, W, 1]) and `labels` [N, H, W]: events drawn at
    random from `rng`, one crop each."""
    images = images.reshape(labels.shape + (1,))
    while True:
        pick = rng.integers(0, len(labels), batch_size)
        origins = crop_origins(labels[pick], crop, beam_fraction, rng)
        yield cut(images[pick], origins, crop), origins, cut(labels[pick], origins, crop)

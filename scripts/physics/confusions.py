#!/usr/bin/env python3
"""Where a model's beam/cosmic errors lie: at crossings, or along stretches of track.

    python -m scripts.physics.confusions [--model payload/models/reference-small.keras] [--events 100] [--seed 1001]

Classifies hold-out events in float32 and counts beam pixels called cosmic and cosmic pixels called
beam, and how many of them lie within --near pixels of a true pixel of the other class (a crossing,
where the higher charge sets the label); the rest are stretches of track given to the wrong
particle.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from scripts.physics.common import ROOT

BEAM, COSMIC = 1, 2


def predict(model_path: Path, n_events: int, seed: int, batch: int = 10):
    """(labels, predicted classes) of events `0..n_events-1` of run `seed`."""
    import keras

    from payload.modelfile import load_model
    from payload.simulate import iter_events

    model = load_model(model_path)
    events = list(iter_events(n_events, seed))
    images = np.stack([e[1] for e in events])[..., None].astype("float32")
    labels = np.stack([e[2] for e in events])
    predicted = np.concatenate([keras.ops.convert_to_numpy(model(images[i:i + batch], training=False)).argmax(-1)
                                for i in range(0, n_events, batch)])
    return labels, predicted


def dilate(masks: np.ndarray, pixels: int) -> np.ndarray:
    """`masks` [N, H, W] grown by `pixels` in every direction (a square neighbourhood)."""
    grown = masks.copy()
    for dy in range(-pixels, pixels + 1):
        for dx in range(-pixels, pixels + 1):
            shifted = np.zeros_like(masks)
            shifted[:, max(dy, 0):masks.shape[1] + min(dy, 0), max(dx, 0):masks.shape[2] + min(dx, 0)] = \
                masks[:, max(-dy, 0):masks.shape[1] - max(dy, 0), max(-dx, 0):masks.shape[2] - max(dx, 0)]
            grown |= shifted
    return grown


def describe(labels: np.ndarray, predicted: np.ndarray, near: int) -> dict:
    """Counts of each kind of beam/cosmic error (see the module's docstring)."""
    out = {}
    for name, truth, called in (("beam_called_cosmic", BEAM, COSMIC), ("cosmic_called_beam", COSMIC, BEAM)):
        errors = (labels == truth) & (predicted == called)
        at_crossing = errors & dilate(labels == called, near)
        out[name] = {"pixels": int(errors.sum()), f"within_{near}px_of_the_other_class": int(at_crossing.sum())}
    out["beam_background_confusions"] = int((((labels == BEAM) & (predicted == 0))
                                             | ((labels == 0) & (predicted == BEAM))).sum())
    return out


def main(argv: Sequence[str]) -> int:
    """Print (and with --json, write) the error counts; 0."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "payload" / "models" / "reference-small.keras")
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1001)
    parser.add_argument("--near", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    labels, predicted = predict(args.model, args.events, args.seed)
    counts = {"model": args.model.name, "events": args.events, "seed": args.seed,
              **describe(labels, predicted, args.near)}
    text = json.dumps(counts, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

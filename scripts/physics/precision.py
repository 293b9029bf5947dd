#!/usr/bin/env python3
"""Short, equal-step recipe experiments: crop training of a network, scored on whole hold-out events.

    python -m scripts.physics.precision --precision float32 --tag fp32
    python -m scripts.physics.precision --precision mixed_bfloat16 --tag bf16

The loop is bare `train_on_batch` on the crops of payload.sampling (no files, no checkpoints), so
that two settings differ only in the one thing compared. Events are cached under --cache; the
trained network is saved there as <tag>.keras. Hold-out events use seed 1001.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

HOLDOUT_SEED = 1001


def build_parser() -> argparse.ArgumentParser:
    """The experiment's options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="small")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--beam-fraction", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--loss", default="dice")
    p.add_argument("--precision", default="float32")
    p.add_argument("--train-events", type=int, default=400)
    p.add_argument("--holdout", type=int, default=30)
    p.add_argument("--tag", default="x")
    p.add_argument("--l2", type=float, default=None)
    p.add_argument("--cache", default="/tmp/physics-precision")
    return p


def cached_events(path: Path, count: int, seed: int):
    """(images, labels) of `count` simulated events of `seed`, from the cache file or made and cached."""
    import numpy as np
    from payload.simulate import simulate_events

    try:
        data = np.load(path)
        return data["X"], data["Y"]
    except FileNotFoundError:
        images, labels, _ = simulate_events(count, seed)
        np.savez(path, X=images, Y=labels)
        return images, labels


def train_crops(a, cfg, images, labels):
    """The crop network after `a.steps` steps of `train_on_batch`, and the training seconds."""
    import keras
    import numpy as np
    from payload.losses import make_loss
    from payload.model import build_model
    from payload.precision import dtype_policy
    from payload.sampling import crop_batches

    keras.utils.set_random_seed(1)
    with dtype_policy(a.precision):
        model = build_model(cfg, (a.crop, a.crop, 1), crops=True)
        sched = keras.optimizers.schedules.CosineDecay(a.lr / 20, a.steps - a.warmup, alpha=0.02,
                                                       warmup_target=a.lr, warmup_steps=a.warmup)
        loss = make_loss(a.loss) if a.loss != "weighted" else make_loss("weighted", [1, 20, 3])
        model.compile(optimizer=keras.optimizers.Adam(sched), loss=loss)
    gen = crop_batches(images, labels, batch_size=a.batch, crop=a.crop, beam_fraction=a.beam_fraction,
                       rng=np.random.default_rng(1))
    started, running = time.time(), 0.0
    for step in range(a.steps):
        x, origins, y = next(gen)
        running += float(model.train_on_batch([x, origins], y))
        if (step + 1) % 50 == 0:
            print(f"step {step+1} loss {running/50:.4f} {(time.time()-started)/(step+1):.3f}s/step", flush=True)
            running = 0.0
    return model, time.time() - started


def score(cfg, crop_model, images, labels):
    """The whole-event network with the crop network's weights, and its metrics on the events."""
    import numpy as np
    from payload.metrics import ConfusionMatrix
    from payload.model import build_model

    full = build_model(cfg)
    full.set_weights(crop_model.get_weights())
    matrix = ConfusionMatrix()
    for i in range(0, len(images), 10):
        logits = full.predict_on_batch(images[i:i+10, ..., None])
        matrix.add(labels[i:i+10], np.argmax(logits, -1))
    return full, matrix.metrics()


def main(argv: Sequence[str]) -> int:
    """Run one experiment and print its hold-out metrics; 0."""
    a = build_parser().parse_args(argv)
    import dataclasses

    from payload.model import get_config

    cache = Path(a.cache)
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    images, labels = cached_events(cache / f"train_{a.train_events}.npz", a.train_events, 1)
    holdout = cached_events(cache / f"hold_{a.holdout}.npz", a.holdout, HOLDOUT_SEED)
    print("sim", time.time() - t0, flush=True)
    cfg = get_config(a.config)
    if a.l2 is not None:
        cfg = dataclasses.replace(cfg, l2=a.l2)
    model, train_s = train_crops(a, cfg, images, labels)
    full, met = score(cfg, model, *holdout)
    print(a.tag, json.dumps({k: round(v, 3) for k, v in met.items() if "background" not in k}),
          f"train {train_s:.0f}s", flush=True)
    full.save(str(cache / f"{a.tag}.keras"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Seconds per training step of the reference recipe's shape (a batch of crops), per precision.

    python -m scripts.physics.step_time [CROP] [BATCH]      # default 128 8

One warm-up step (tracing and compilation, printed apart), then 10 timed steps on random crops, for
mixed_bfloat16 and float32: wall and CPU seconds per step. Run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

PRECISIONS = ("mixed_bfloat16", "float32")
TIMED_STEPS = 10


def build_parser() -> argparse.ArgumentParser:
    """The crop size and batch, both optional."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("crop", nargs="?", type=int, default=128, help="crop side in pixels (default: 128)")
    parser.add_argument("batch", nargs="?", type=int, default=8, help="crops per step (default: 8)")
    return parser


def main(argv: Sequence[str]) -> int:
    """Print the step times of each precision; 0."""
    args = build_parser().parse_args(argv)
    import keras
    import numpy as np

    from payload.losses import make_loss
    from payload.model import build_model
    from payload.precision import dtype_policy

    crop, batch = args.crop, args.batch
    rng = np.random.default_rng(0)
    x = rng.random((batch, crop, crop, 1), np.float32)
    origins = np.zeros((batch, 2), np.int32)
    y = rng.integers(0, 3, (batch, crop, crop)).astype(np.uint8)
    for precision in PRECISIONS:
        with dtype_policy(precision):
            model = build_model("small", (crop, crop, 1), crops=True)
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=make_loss("dice"))
        start = time.time()
        model.train_on_batch([x, origins], y)
        first = time.time() - start
        start, cpu = time.time(), time.process_time()
        for _ in range(TIMED_STEPS):
            model.train_on_batch([x, origins], y)
        print(f"{precision}: first step {first:.1f} s, then {(time.time() - start) / TIMED_STEPS:.2f} s/step "
              f"wall, {(time.process_time() - cpu) / TIMED_STEPS:.2f} CPU-s/step (batch {batch} of {crop}-px "
              "crops)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Seconds per training step of the reference recipe's shape (a batch of crops), per precision.

    python scripts/physics_step_time.py [CROP] [BATCH]      # default 128 8

One warm-up step (tracing and compilation, printed apart), then 10 timed steps on random crops, for
mixed_bfloat16 and float32: wall and CPU seconds per step. Run it on a quiet machine.
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from payload.losses import make_loss  # noqa: E402
from payload.model import build_model  # noqa: E402
from payload.precision import dtype_policy  # noqa: E402

crop, batch = (int(a) for a in (sys.argv[1:] + ["128", "8"][len(sys.argv) - 1:])[:2])
rng = np.random.default_rng(0)
x = rng.random((batch, crop, crop, 1), np.float32)
origins = np.zeros((batch, 2), np.int32)
y = rng.integers(0, 3, (batch, crop, crop)).astype(np.uint8)
for precision in ("mixed_bfloat16", "float32"):
    with dtype_policy(precision):
        model = build_model("small", (crop, crop, 1), crops=True)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=make_loss("dice"))
    start = time.time()
    model.train_on_batch([x, origins], y)
    first = time.time() - start
    start, cpu = time.time(), time.process_time()
    for _ in range(10):
        model.train_on_batch([x, origins], y)
    print(f"{precision}: first step {first:.1f} s, then {(time.time() - start) / 10:.2f} s/step wall, "
          f"{(time.process_time() - cpu) / 10:.2f} CPU-s/step (batch {batch} of {crop}-px crops)", flush=True)

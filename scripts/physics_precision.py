#!/usr/bin/env python3
"""Short, equal-step recipe experiments: crop training of a network, scored on whole hold-out events.

    python scripts/physics_precision.py --precision float32 --tag fp32
    python scripts/physics_precision.py --precision mixed_bfloat16 --tag bf16

The loop is bare `train_on_batch` on the crops of payload.sampling (no files, no checkpoints), so
that two settings differ only in the one thing compared. Events are cached under --cache; the
trained network is saved there as <tag>.keras. Hold-out events use seed 1001.
"""
import argparse, json, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np

p = argparse.ArgumentParser()
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
a = p.parse_args()

import keras, dataclasses
from payload.simulate import simulate_events
from payload.sampling import crop_batches
from payload.losses import make_loss
from payload.model import build_model, get_config
from payload.metrics import ConfusionMatrix
from payload.precision import dtype_policy

Path(a.cache).mkdir(parents=True, exist_ok=True)
t0 = time.time()
cache = f"{a.cache}/train_{a.train_events}.npz"
try:
    d = np.load(cache); X, Y = d["X"], d["Y"]
except FileNotFoundError:
    X, Y, _ = simulate_events(a.train_events, 1); np.savez(cache, X=X, Y=Y)
try:
    d = np.load(f"{a.cache}/hold_{a.holdout}.npz"); HX, HY = d["X"], d["Y"]
except FileNotFoundError:
    HX, HY, _ = simulate_events(a.holdout, 1001); np.savez(f"{a.cache}/hold_{a.holdout}.npz", X=HX, Y=HY)
print("sim", time.time() - t0, flush=True)
cfg = get_config(a.config)
if a.l2 is not None:
    cfg = dataclasses.replace(cfg, l2=a.l2)
keras.utils.set_random_seed(1)
with dtype_policy(a.precision):
    m = build_model(cfg, (a.crop, a.crop, 1), crops=True)
    sched = keras.optimizers.schedules.CosineDecay(a.lr / 20, a.steps - a.warmup, alpha=0.02,
                                                   warmup_target=a.lr, warmup_steps=a.warmup)
    m.compile(optimizer=keras.optimizers.Adam(sched), loss=make_loss(a.loss) if a.loss != "weighted" else make_loss("weighted", [1, 20, 3]))
gen = crop_batches(X, Y, batch_size=a.batch, crop=a.crop, beam_fraction=a.beam_fraction, rng=np.random.default_rng(1))
t1 = time.time(); s = 0
for step in range(a.steps):
    x, o, y = next(gen)
    loss = float(m.train_on_batch([x, o], y))
    s += loss
    if (step + 1) % 50 == 0:
        print(f"step {step+1} loss {s/50:.4f} {(time.time()-t1)/(step+1):.3f}s/step", flush=True); s = 0
train_s = time.time() - t1
full = build_model(cfg)
full.set_weights(m.get_weights())
cm = ConfusionMatrix()
for i in range(0, len(HX), 10):
    lg = full.predict_on_batch(HX[i:i+10, ..., None])
    cm.add(HY[i:i+10], np.argmax(lg, -1))
met = cm.metrics()
print(a.tag, json.dumps({k: round(v, 3) for k, v in met.items() if "background" not in k}), f"train {train_s:.0f}s", flush=True)
full.save(f"{a.cache}/{a.tag}.keras")

#!/usr/bin/env python3
"""Training throughput of one model config under each precision policy, on the current Keras
backend, as ratios to float32 measured in the same run (the speed goal of a build manifest's
precision choice is a ratio, never an absolute time).

    KERAS_BACKEND=jax python -m scripts.bench.platform --config small --batch 8 --steps 20

Each policy builds a fresh model, runs `--warmup` steps (compilation), then times `--repeats`
windows of `--steps` train steps over two rotating batches of synthetic events; the loss read
back after each window synchronises the device. Prints one line per policy and, with --json,
writes the numbers.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    """Time each precision policy and print the ratios to float32; 0 when they ran."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="small", help="model config: tiny | small | paper")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20, help="train steps per timed window")
    parser.add_argument("--repeats", type=int, default=3, help="timed windows per policy")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation)")
    parser.add_argument("--precisions", default="float32,mixed_bfloat16,mixed_float16")
    parser.add_argument("--budget-s", type=float, default=0.0,
                        help="stop starting new policies after this many seconds (0: no limit)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)

    import keras
    import numpy as np

    from payload.losses import make_loss
    from payload.model import build_model
    from payload.precision import dtype_policy
    from payload.simulate import generate_event

    rng = np.random.default_rng(12345)
    events = [generate_event(rng) for _ in range(2 * args.batch)]
    images = np.stack([e[0] for e in events])[..., None].astype("float32")
    labels = np.stack([e[1] for e in events])
    batches = [(images[i * args.batch:(i + 1) * args.batch], labels[i * args.batch:(i + 1) * args.batch])
               for i in range(2)]

    started = time.perf_counter()
    results = {"backend": keras.backend.backend(), "keras": keras.__version__, "config": args.config,
               "batch": args.batch, "steps": args.steps, "devices": _devices(), "policies": {}}
    print(f"backend {results['backend']}, devices {results['devices']}, config {args.config}, "
          f"batch {args.batch}", flush=True)
    for precision in args.precisions.split(","):
        if args.budget_s and time.perf_counter() - started > args.budget_s:
            print(f"{precision}: skipped, time budget of {args.budget_s:.0f} s spent", flush=True)
            continue
        with dtype_policy(precision):
            keras.utils.set_random_seed(1)
            model = build_model(args.config)
            model.compile(optimizer=keras.optimizers.Adam(1e-3),
                          loss=make_loss("weighted", (1.0, 170.0, 15.0)))
            t0 = time.perf_counter()
            for step in range(args.warmup):
                loss = float(model.train_on_batch(*batches[step % 2]))
            warmup_s = time.perf_counter() - t0
            rates, losses = [], [loss]
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                for step in range(args.steps):
                    out = model.train_on_batch(*batches[step % 2])
                loss = float(out)
                rates.append(args.steps / (time.perf_counter() - t0))
                losses.append(loss)
        results["policies"][precision] = {
            "steps_per_s": statistics.median(rates), "steps_per_s_windows": rates,
            "events_per_s": statistics.median(rates) * args.batch, "warmup_s": warmup_s,
            "final_loss": loss, "loss_finite": math.isfinite(loss),
            "loss_after_warmup_and_each_window": losses}
        print(f"{precision:>15}: {statistics.median(rates):8.2f} steps/s "
              f"(windows {', '.join(f'{r:.2f}' for r in rates)}), warm-up {warmup_s:.1f} s, "
              f"loss {loss:.4f}" + ("" if math.isfinite(loss) else
                                    " NOT FINITE: this policy diverged, its rate is not comparable"),
              flush=True)
    base = results["policies"].get("float32", {}).get("steps_per_s")
    if base:
        for precision, numbers in results["policies"].items():
            numbers["ratio_to_float32"] = numbers["steps_per_s"] / base
            print(f"{precision:>15}: {numbers['ratio_to_float32']:.2f} x float32", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


def _devices() -> list:
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    try:
        if backend == "jax":
            import jax
            return [f"{d.platform}:{d.device_kind}" for d in jax.devices()]
        if backend == "torch":
            import torch
            return ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
                    or ["cpu"])
        import tensorflow as tf
        return [d.name for d in tf.config.list_physical_devices()]
    except Exception as err:  # the benchmark still runs; the device list is only a label
        return [f"unknown ({type(err).__name__})"]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

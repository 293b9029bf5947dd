#!/usr/bin/env python3
"""Does the network learn? Train the `small` FC-DenseNet on the CPU on synthetic events, then
measure it on events of another seed, and estimate what the `paper` network would need.

    nice python scripts/physics_small.py                      # about 30 minutes on 2 cores
    python scripts/physics_small.py --budget-min 3 --train-events 40 --config tiny   # a smoke run

Training runs epoch by epoch, each epoch a resumed continuation of the same run (checkpoints in
the work directory), until the next epoch would overrun the time budget. The hold-out events are
simulated with a different seed and never seen in training. The `paper` estimate is this run's
training time scaled by the measured time per training step of `paper` over that of the trained
config, at the same batch size on this machine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOAL_BEAM_IOU = 0.5


def step_time(config_name: str, batch: int, steps: int = 3) -> float:
    """Seconds per training step of `config_name` on random events (after one warm-up step)."""
    import keras
    import numpy as np

    from payload.losses import make_loss
    from payload.model import build_model

    rng = np.random.default_rng(0)
    images = rng.random((batch, 320, 320, 1), np.float32)
    labels = rng.integers(0, 3, (batch, 320, 320)).astype(np.uint8)
    model = build_model(config_name)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=make_loss("cce"))
    model.train_on_batch(images, labels)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(images, labels)
    return (time.perf_counter() - start) / steps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="small")
    parser.add_argument("--train-events", type=int, default=600)
    parser.add_argument("--holdout-events", type=int, default=100)
    parser.add_argument("--budget-min", type=float, default=27.0, help="wall time for simulation + training")
    parser.add_argument("--max-epochs", type=int, default=50)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--loss", default="weighted", choices=("cce", "weighted", "focal"))
    parser.add_argument("--seed", type=int, default=1, help="training events; the hold-out uses seed+1000")
    parser.add_argument("--work", type=Path, help="keep model, metrics and plots here (default: a temp dir)")
    parser.add_argument("--skip-paper-estimate", action="store_true")
    args = parser.parse_args(argv)

    from payload.api import InferConfig, TrainConfig
    from payload.inference import evaluate
    from payload.simulate import simulate_events
    from payload.training import train

    work = args.work or Path(tempfile.mkdtemp(prefix="physics-small-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train_file = simulate_events(args.train_events, args.seed, path=work / "train.h5")
    holdout = simulate_events(args.holdout_events, args.seed + 1000, path=work / "holdout.h5")
    simulated = time.perf_counter() - t0
    print(f"simulated {args.train_events} training + {args.holdout_events} hold-out events in {simulated:.0f} s",
          flush=True)

    config = TrainConfig(model_config=args.config, batch_size=args.batch, learning_rate=args.learning_rate,
                         validation_split=0.05, loss=args.loss, reduce_lr_patience=3, seed=args.seed,
                         checkpoint_dir=work / "checkpoints", checkpoint_every_s=1e9)
    budget = args.budget_min * 60
    epoch_s = 0.0
    result = None
    train_start = time.perf_counter()
    for epoch in range(1, args.max_epochs + 1):
        if time.perf_counter() - t0 + epoch_s > budget:
            break
        start = time.perf_counter()
        result = train([train_file], work / "model.keras", TrainConfig(**{**config.__dict__, "epochs": epoch}),
                       output_metrics=work / "train-metrics.json", output_plot=work / "training-curve.png")
        epoch_s = time.perf_counter() - start
        print(f"epoch {epoch:2d}  {epoch_s:5.0f} s  loss {result.history['loss'][-1]:.4f}  "
              f"val loss {result.history['val_loss'][-1]:.4f}  val IoU beam "
              f"{result.history['val_iou_beam'][-1]:.3f} cosmic {result.history['val_iou_cosmic'][-1]:.3f}  "
              f"lr {result.history['learning_rate'][-1]:.1e}", flush=True)
    if result is None:
        print("no time left to train: raise --budget-min", file=sys.stderr)
        return 1
    trained_s = time.perf_counter() - train_start
    epochs = len(result.history["loss"])

    holdout_result = evaluate([holdout], work / "model.keras", InferConfig(model_config=args.config, batch_size=8),
                              output_metrics=work / "holdout-metrics.json", output_plot=work / "holdout-event.png")
    m = holdout_result.metrics
    summary = {
        "config": args.config, "train_events": args.train_events, "holdout_events": args.holdout_events,
        "epochs": epochs, "batch": args.batch, "loss": args.loss, "cpus": os.cpu_count(),
        "simulate_s": simulated, "train_s": trained_s, "total_s": time.perf_counter() - t0,
        "holdout": m, "goal_beam_iou": GOAL_BEAM_IOU, "goal_met": m["iou_beam"] >= GOAL_BEAM_IOU,
    }
    if not args.skip_paper_estimate:
        trained_step, paper_step = step_time(args.config, args.batch), step_time("paper", args.batch)
        summary.update(step_s={args.config: trained_step, "paper": paper_step},
                       paper_estimate_s=trained_s * paper_step / trained_step)

    print(f"\nhold-out ({args.holdout_events} events, seed {args.seed + 1000}) after {epochs} epochs, "
          f"{trained_s / 60:.1f} min of training on {os.cpu_count()} CPUs:")
    for cls in ("background", "beam", "cosmic"):
        print(f"  {cls:<11} IoU {m[f'iou_{cls}']:.3f}  efficiency {m[f'efficiency_{cls}']:.3f}  "
              f"purity {m[f'purity_{cls}']:.3f}")
    print(f"  mean IoU {m['mean_iou']:.3f}, pixel accuracy {m['pixel_accuracy']:.4f}")
    print(f"  beam IoU goal >= {GOAL_BEAM_IOU}: {'met' if summary['goal_met'] else 'NOT met'}; "
          f"whole run {summary['total_s'] / 60:.1f} min")
    if "paper_estimate_s" in summary:
        ratio = summary["step_s"]["paper"] / summary["step_s"][args.config]
        print(f"  paper network: {ratio:.1f}x the time per step of {args.config} here, so the same training "
              f"would take about {summary['paper_estimate_s'] / 3600:.1f} h on these CPUs")
    (work / "physics-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"outputs in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Train the packaged reference model, reproducibly: seeded events, a fixed number of steps.

    python -m scripts.physics.train_reference            # payload/models/reference-small.keras + .json

The recipe (see README, "Physics"): the `small` FC-DenseNet trained through the payload's own
training (payload.training.train) on one class-aware crop per event and step (payload.sampling):
half the crops centred on a beam pixel, with the crop's absolute detector position fed to the
network's position channels; cross-entropy plus soft Dice on beam and cosmic (calibrated: no logit
shift); Adam with a linear warm-up and a cosine decay over the whole run. The budget is a number of
epochs over a fixed, seeded set of events, never a wall-clock time, so the same command gives the
same network whatever the load of the machine; the wall time and the time per step are recorded.

Writes the model and its card (config, recipe, command, seeds, steps, environment, adler32); the
hold-out metrics are added to the card by scripts/physics/small.py, which evaluates the model
through the trf.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from scripts.physics.common import ROOT, command_line, utc_stamp
from wrapper.staging.verify import adler32_of

DEFAULT_OUT = ROOT / "payload" / "models" / "reference-small.keras"
# per epoch, on the validation events (never trained on): the learning curve of the card
CURVE_KEYS = ("loss", "learning_rate", "val_loss", "val_iou_beam", "val_iou_cosmic", "val_mean_iou")


def environment() -> dict:
    """What the result may depend on besides the seeds."""
    import keras
    import numpy as np
    import tensorflow as tf

    return {"python": platform.python_version(), "numpy": np.__version__, "tensorflow": tf.__version__,
            "keras": keras.__version__, "backend": keras.backend.backend(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "platform": platform.platform()}


def build_parser(description: str = __doc__) -> argparse.ArgumentParser:
    """The options of the training (scripts/physics/small.py adds its own to them)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="small")
    parser.add_argument("--train-events", type=int, default=1143)
    parser.add_argument("--seed", type=int, default=1, help="seed of the training events and of the run")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--beam-fraction", type=float, default=0.5)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--loss", default="dice")
    parser.add_argument("--precision", default="auto", choices=("auto", "float32", "mixed_bfloat16"),
                        help="auto: mixed_bfloat16 where the CPU has bfloat16 units, as the trf's "
                             "cpu-bf16 build asks; float32 elsewhere (bfloat16 emulated is ~3.6x slower)")
    parser.add_argument("--validation-split", type=float, default=0.02)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the model file; its card is <out>.json")
    parser.add_argument("--work", type=Path, help="events, checkpoints and training metrics (default: a temp dir)")
    return parser


def resolve_precision(name: str) -> str:
    """The precision `name` names; `auto` is the one the trf's standard CPU builds would choose here."""
    if name != "auto":
        return name
    from wrapper.builds.manifest import BF16_CPU_FEATURES
    from wrapper.platform.cpu import read_cpu

    return "mixed_bfloat16" if read_cpu().features & set(BF16_CPU_FEATURES) else "float32"


def epoch_printer(curve: list, started: float, train_start: float):
    """A progress callback that prints each epoch's figures and appends them to `curve`."""
    def progress(tick):
        if tick.unit == "steps" and tick.done == tick.total and tick.metrics.get("val_loss") is not None:
            m = tick.metrics
            print(f"{tick.stage}: loss {m['loss']:.4f}  val loss {m['val_loss']:.4f}  val IoU beam "
                  f"{m.get('val_iou_beam', float('nan')):.3f} cosmic {m.get('val_iou_cosmic', float('nan')):.3f}  "
                  f"lr {m['learning_rate']:.1e}  ({time.perf_counter() - started:.0f} s)", flush=True)
            curve.append({"epoch": len(curve) + 1, "elapsed_s": round(time.perf_counter() - train_start, 1),
                          **{k: m.get(k) for k in CURVE_KEYS}})
    return progress


def train_reference(args, command: str) -> dict:
    """Simulate the training events, train, write model and card (`command`: the run's command
    line); return the card."""
    from payload.api import TrainConfig, train
    from payload.simulate import simulate_events

    work = args.work = args.work or Path(tempfile.mkdtemp(prefix="train-reference-"))
    work.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    events = simulate_events(args.train_events, args.seed, path=work / "train.h5")
    simulate_s = time.perf_counter() - started
    print(f"simulated {args.train_events} training events (seed {args.seed}) in {simulate_s:.0f} s", flush=True)

    precision = resolve_precision(args.precision)
    print(f"precision {precision}", flush=True)
    config = TrainConfig(model_config=args.config, batch_size=args.batch, seed=args.seed, precision=precision,
                         epochs=args.epochs, learning_rate=args.learning_rate,
                         validation_split=args.validation_split, loss=args.loss, reduce_lr_patience=0,
                         checkpoint_dir=work / "checkpoints", checkpoint_every_s=1e9, resume=False,
                         crop_size=args.crop, beam_fraction=args.beam_fraction, lr_schedule="cosine",
                         warmup_steps=args.warmup_steps)
    curve = []
    train_start = time.perf_counter()
    progress = epoch_printer(curve, started, train_start)
    result = train([events], args.out, config, output_metrics=work / "train-metrics.json",
                   output_plot=work / "training-curve.png", on_progress=progress)
    train_s = time.perf_counter() - train_start
    n_train = result.processed_events - round(args.train_events * args.validation_split)
    steps = args.epochs * -(-n_train // args.batch)
    card = {
        "model": args.out.name,
        "network": args.config,
        "adler32": adler32_of(args.out),
        "size_bytes": args.out.stat().st_size,
        "recipe": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()
                   if k not in ("checkpoint_dir", "cluster", "gpus", "collective_timeout_s", "prefetch_batches")},
        "training": {"events": args.train_events, "events_seed": args.seed, "train_events": n_train,
                     "epochs": args.epochs, "steps": steps, "crops_seen": steps * args.batch,
                     "wall_s": round(train_s, 1), "step_s": round(train_s / steps, 3),
                     "simulate_s": round(simulate_s, 1), "final": dict(result.metrics),
                     "curve": curve},
        "command": command,
        "date": utc_stamp(),
        "environment": environment(),
        "holdout": None,
    }
    card_path(args.out).write_text(json.dumps(card, indent=2) + "\n")
    print(f"trained {steps} steps in {train_s / 60:.1f} min ({train_s / steps:.2f} s/step): {args.out} "
          f"adler32 {card['adler32']}", flush=True)
    return card


def card_path(model: Path) -> Path:
    """The JSON card next to a model file."""
    return Path(model).with_suffix(".json")


def main(argv: Sequence[str]) -> int:
    """Train the reference model with the options in `argv`; 0."""
    train_reference(build_parser().parse_args(argv), command_line("train_reference", argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""One worker of a multi-worker training, launched the way srun launches it (tests and benchmark).

    python tests/scale/mw_worker.py OUT_DIR EVENTS.h5 [EVENTS.h5 ...] --port P --epochs N --batch B

The rank and the peers come from the SLURM_* environment the caller sets, through
wrapper.cluster.workers; the worker trains the `tiny` network with payload.api.train and writes
`<OUT_DIR>/model-<rank>.keras` and `<OUT_DIR>/result-<rank>.json` (history, timing).
`--die-after-steps N` makes it vanish mid-training, as a crashed node would.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from payload import api  # noqa: E402
from wrapper.cluster.workers import detect_cluster  # noqa: E402
from wrapper.platform.detect import detect_platform  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("events", nargs="+", type=Path)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1, help="events per replica")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--validation-split", type=float, default=0.25)
    parser.add_argument("--die-after-steps", type=int, default=0,
                        help="end this process abruptly (os._exit) after this many training steps")
    args = parser.parse_args(argv)

    spec = detect_cluster(port=args.port)
    detect_platform()   # as the trf does before training: probing the framework must not start it
    config = api.TrainConfig(model_config="tiny", batch_size=args.batch, epochs=args.epochs,
                             validation_split=args.validation_split, loss="cce", seed=11, reduce_lr_patience=0,
                             cluster=spec.tf_config() or None, collective_timeout_s=args.timeout)
    step_times = []

    def progress(tick: api.Progress) -> None:
        if tick.unit == "steps" and tick.stage.startswith("train") and "learning_rate" not in tick.metrics:
            step_times.append(time.monotonic())
        if args.die_after_steps and tick.unit == "steps" and tick.done >= args.die_after_steps:
            print(f"worker {spec.rank}: dying after {tick.done} steps", flush=True)
            os._exit(9)

    started = time.monotonic()
    result = api.train(args.events, args.out / f"model-{spec.rank}.keras", config, on_progress=progress)
    seconds = time.monotonic() - started
    (args.out / f"result-{spec.rank}.json").write_text(json.dumps(
        {"rank": spec.rank, "size": spec.size, "seconds": seconds, "events": result.processed_events,
         "step_times": step_times, "global_batch": args.batch * max(spec.size, 1),
         "history": {k: list(v) for k, v in result.history.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

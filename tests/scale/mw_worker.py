"""One worker of a multi-worker training, launched the way srun launches it (tests and benchmark).

    python tests/scale/mw_worker.py OUT_DIR EVENTS.h5 [EVENTS.h5 ...] --port P --epochs N --batch B

The rank and the peers come from the SLURM_* environment the caller sets, through
wrapper.cluster; the worker trains the `tiny` network with payload.api.train and writes
`<OUT_DIR>/model-<rank>.keras` and `<OUT_DIR>/result-<rank>.json` (history, timing).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from payload import api  # noqa: E402
from wrapper.cluster import detect_cluster  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("events", nargs="+", type=Path)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1, help="events per replica")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)

    spec = detect_cluster(port=args.port)
    config = api.TrainConfig(model_config="tiny", batch_size=args.batch, epochs=args.epochs,
                             validation_split=0.25, loss="cce", seed=11, reduce_lr_patience=0,
                             cluster=spec.tf_config() or None, collective_timeout_s=args.timeout)
    started = time.monotonic()
    result = api.train(args.events, args.out / f"model-{spec.rank}.keras", config)
    seconds = time.monotonic() - started
    (args.out / f"result-{spec.rank}.json").write_text(json.dumps(
        {"rank": spec.rank, "size": spec.size, "seconds": seconds, "events": result.processed_events,
         "history": {k: list(v) for k, v in result.history.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Event data benchmark: generation, writing and reading rates, as ratios to baselines measured in
the same run.

- simulate: events/s of the generator (target: 1000 events in a few seconds).
- read: `iter_batches` (prefetch 0 and 2) against bare h5py slicing of the same file, batch by batch.
- overlap: a consumer that "computes" for a fixed time per batch (sleep, which like a GPU step
  releases the GIL): with prefetch the total should approach max(read, compute), not their sum.
- compression: file size and decode rate of the filter choices (--compression).
- predictions: PredictionWriter events/s for scores and classes.

Variants are run in interleaved rounds and the best round is kept, so load from other processes
on the machine biases every variant alike.

    python -m scripts.bench.events --events 1000 --batch 16 --rounds 5 [--compression]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from payload.events import IMAGE_SHAPE, PredictionWriter, iter_batches
from payload.simulate import simulate_events


def best_of(rounds: int, variants: dict) -> dict:
    times = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


def raw_h5py(path: Path, batch: int) -> None:
    with h5py.File(path, "r") as f:
        images, labels, ids = f["images"], f["labels"], f["event_id"]
        for start in range(0, images.shape[0], batch):
            images[start:start + batch]
            labels[start:start + batch]
            ids[start:start + batch]


def stream(path: Path, batch: int, prefetch: int, compute_s: float = 0.0) -> None:
    for _ in iter_batches([path], batch, with_labels=True, prefetch=prefetch):
        if compute_s:
            time.sleep(compute_s)


def main(argv: list[str]) -> int:
    """Run the event benchmarks and print their rates and ratios; 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compression", action="store_true", help="also survey the HDF5 filters")
    parser.add_argument("--dir", default=None, help="scratch directory (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the ratios here")
    args = parser.parse_args(argv)
    n, batch = args.events, args.batch
    results = {"events": n, "batch": batch, "rounds": args.rounds, "statistic": "best of rounds"}

    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        path = Path(scratch) / "events.h5"
        start = time.perf_counter()
        images, labels, _ = simulate_events(n, 1)
        generate_s = time.perf_counter() - start
        start = time.perf_counter()
        simulate_events(n, 1, path=path)
        simulate_file_s = time.perf_counter() - start
        print(f"simulate         {n / generate_s:8.0f} events/s in memory; {n / simulate_file_s:6.0f} "
              f"events/s into a file ({simulate_file_s:.2f} s for {n}); "
              f"{os.path.getsize(path) / n / 1e3:.1f} kB/event")

        t = best_of(args.rounds, {
            "raw h5py": lambda: raw_h5py(path, batch),
            "iter_batches prefetch=0": lambda: stream(path, batch, 0),
            "iter_batches prefetch=2": lambda: stream(path, batch, 2),
        })
        base = t["raw h5py"]
        for name, seconds in t.items():
            print(f"read  {name:26s} {n / seconds:8.0f} events/s   ratio to raw h5py {base / seconds:5.2f}")
            results[f"read {name} / raw h5py"] = round(base / seconds, 3)

        compute_s = t["iter_batches prefetch=0"] / (n / batch)
        t = best_of(args.rounds, {
            "compute only": lambda: [time.sleep(compute_s) for _ in range(0, n, batch)],
            "serial (prefetch=0)": lambda: stream(path, batch, 0, compute_s),
            "overlapped (prefetch=2)": lambda: stream(path, batch, 2, compute_s),
        })
        print(f"overlap with {compute_s * 1e3:.1f} ms of compute per batch (= the read time): "
              f"serial {t['serial (prefetch=0)']:.2f} s, prefetch=2 {t['overlapped (prefetch=2)']:.2f} s, "
              f"compute alone {t['compute only']:.2f} s; "
              f"prefetch=2 / compute alone = {t['overlapped (prefetch=2)'] / t['compute only']:.2f} "
              f"(1.00 = reading fully hidden, 2.00 = not at all)")
        results["prefetch=2 time / compute alone"] = round(t["overlapped (prefetch=2)"] / t["compute only"], 3)

        logits = np.random.default_rng(0).normal(0, 3, (batch, *IMAGE_SHAPE, 3)).astype(np.float32)
        m = min(n, 256)
        for output_format in ("scores", "classes"):
            out = Path(scratch) / f"pred-{output_format}.h5"
            start = time.perf_counter()
            with PredictionWriter(out, n_events=m, output_format=output_format) as writer:
                for first in range(0, m, batch):
                    k = min(batch, m - first)
                    writer.write(np.arange(first, first + k), logits[:k])
            seconds = time.perf_counter() - start
            print(f"predictions {output_format:8s} {m / seconds:8.0f} events/s written "
                  f"({os.path.getsize(out) / m / 1e3:.0f} kB/event, random logits: worst case)")

        if args.compression:
            survey(Path(scratch), images, labels, batch, args.rounds)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


def survey(scratch: Path, images, labels, batch: int, rounds: int) -> None:
    filters = {
        "none": {},
        "gzip1": {"compression": "gzip", "compression_opts": 1},
        "gzip1+shuffle": {"compression": "gzip", "compression_opts": 1, "shuffle": True},
        "gzip4": {"compression": "gzip", "compression_opts": 4},
        "lzf": {"compression": "lzf"},
        "lzf+shuffle": {"compression": "lzf", "shuffle": True},
    }
    paths = {}
    for name, options in filters.items():
        paths[name] = scratch / f"c-{name}.h5"
        with h5py.File(paths[name], "w") as f:
            f.create_dataset("images", data=images, chunks=(1, *IMAGE_SHAPE), **options)
            f.create_dataset("labels", data=labels, chunks=(1, *IMAGE_SHAPE), **options)
            f.create_dataset("event_id", data=np.arange(len(images)))
    t = best_of(rounds, {name: (lambda p=p: raw_h5py(p, batch)) for name, p in paths.items()})
    n = len(images)
    for name, seconds in t.items():
        print(f"filter {name:14s} {os.path.getsize(paths[name]) / n / 1e3:7.1f} kB/event "
              f"{n / seconds:8.0f} events/s decoded (images + labels)")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

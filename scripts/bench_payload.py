#!/usr/bin/env python3
"""Payload benchmark: the streaming steps against bare Keras on the same events, in one run.

(a) inference end to end (HDF5 in → predictions file out, through payload.inference.infer) against
    bare `model.predict` on the same events held in memory, same model and batch size;
(b) training through payload.training.train against bare `model.fit` on in-memory arrays, same
    network, loss, optimizer, batch size and epochs;
(c) peak memory (peak resident set, VmHWM) of inference over many events against few, each in a
    fresh process.

Both sides of (a) and (b) start from a model file / a fresh network and include the first-call
compilation, so the ratio is what a job sees; each side first runs once on a few events, untimed,
so that the process's one-time framework start-up falls on neither. Goals: (a) ≥ 0.90, (b) ≥ 0.95, (c) ≤ 1.5.

    python scripts/bench_payload.py                      # small network, a few minutes on 2 cores
    python scripts/bench_payload.py --config tiny --infer-events 32 --train-events 16 --skip-memory
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _simulate(path: Path, n_events: int, seed: int) -> Path:
    from payload.simulate import simulate_events

    return simulate_events(n_events, seed, path=path)


def _timed_after_warm_up(bare_warm_up, bare, ours_warm_up, ours) -> tuple[float, float]:
    """Seconds of `bare()` and `ours()`, each after an untimed short run of the same kind: the
    process's one-time framework start-up costs must not fall on whichever side runs first."""
    bare_warm_up()
    ours_warm_up()
    start = time.perf_counter()
    bare()
    bare_s = time.perf_counter() - start
    start = time.perf_counter()
    ours()
    return bare_s, time.perf_counter() - start


def bench_inference(work: Path, config_name: str, n_events: int, batch: int) -> dict:
    import keras
    import numpy as np

    from payload.api import InferConfig
    from payload.events import iter_batches
    from payload.inference import infer
    from payload.model import build_model
    from payload.modelfile import load_model, save_model

    events = _simulate(work / "infer.h5", n_events, 11)
    keras.utils.set_random_seed(1)
    model_path = save_model(build_model(config_name), work / "model.keras")
    images = np.concatenate([b.images for b in iter_batches([events], 64)])

    config = InferConfig(model_config=config_name, batch_size=batch)

    def bare_run(x):
        load_model(model_path, config_name).predict(x, batch_size=batch, verbose=0)

    def our_run(max_events):
        infer([events], model_path, work / "pred.h5", replace(config, max_events=max_events))

    bare, ours = _timed_after_warm_up(lambda: bare_run(images[:batch]), lambda: bare_run(images),
                                      lambda: our_run(batch), lambda: our_run(-1))
    return {"bare_s": bare, "ours_s": ours, "ratio": bare / ours, "events": n_events}


def bench_training(work: Path, config_name: str, n_events: int, batch: int, epochs: int) -> dict:
    import keras
    import numpy as np

    from payload.api import TrainConfig
    from payload.events import iter_batches
    from payload.losses import make_loss
    from payload.model import build_model
    from payload.training import train

    events = _simulate(work / "train.h5", n_events, 12)
    batches = list(iter_batches([events], 64, with_labels=True))
    images = np.concatenate([b.images for b in batches])
    labels = np.concatenate([b.labels for b in batches])

    def bare_run(n_events, n_epochs):
        keras.utils.set_random_seed(1)
        model = build_model(config_name)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=make_loss("cce"))
        model.fit(images[:n_events], labels[:n_events], batch_size=batch, epochs=n_epochs, shuffle=True, verbose=0)

    config = TrainConfig(model_config=config_name, batch_size=batch, epochs=epochs, learning_rate=1e-3,
                         validation_split=0.0, loss="cce", reduce_lr_patience=0, seed=1)

    def our_run(n_events, n_epochs):
        train([events], work / "trained.keras", replace(config, max_events=n_events, epochs=n_epochs))

    bare, ours = _timed_after_warm_up(lambda: bare_run(batch, 1), lambda: bare_run(n_events, epochs),
                                      lambda: our_run(batch, 1), lambda: our_run(n_events, epochs))
    return {"bare_s": bare, "ours_s": ours, "ratio": bare / ours, "events": n_events, "epochs": epochs}


def memory_child(events: str, model: str, output: str, config_name: str, batch: int) -> None:
    """Run inference in this process and print its peak resident memory (MiB) as JSON."""
    from payload.api import InferConfig
    from payload.inference import infer

    infer([Path(events)], Path(model), Path(output), InferConfig(model_config=config_name, batch_size=batch))
    # Linux carries ru_maxrss across exec, so a child started by a big parent would report the
    # parent's peak; VmHWM belongs to this program's own address space.
    hwm_kib = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                   if line.startswith("VmHWM:"))
    print(json.dumps({"peak_mib": hwm_kib / 1024,
                      "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def bench_memory(work: Path, config_name: str, few: int, many: int, batch: int) -> dict:
    import keras

    from payload.model import build_model
    from payload.modelfile import save_model

    keras.utils.set_random_seed(1)
    model_path = save_model(build_model(config_name), work / "memory-model.keras")
    events = _simulate(work / "memory.h5", many, 13)
    peaks = {}
    for n in (few, many):
        subset = events if n == many else _simulate(work / "memory-few.h5", few, 13)
        run = subprocess.run([sys.executable, __file__, "--memory-child", str(subset), str(model_path),
                              str(work / f"memory-pred-{n}.h5"), config_name, str(batch)],
                             capture_output=True, text=True, check=True)
        peaks[n] = json.loads(run.stdout.strip().splitlines()[-1])["peak_mib"]
    return {"few": few, "many": many, "few_mib": peaks[few], "many_mib": peaks[many],
            "ratio": peaks[many] / peaks[few]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="small", help="network config (tiny, small, paper)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--infer-events", type=int, default=64)
    parser.add_argument("--train-events", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--memory-config", default="tiny", help="network for the memory test")
    parser.add_argument("--memory-events", type=int, nargs=2, default=(100, 2000), metavar=("FEW", "MANY"))
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--memory-child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        events, model, output, config_name, batch = args.memory_child
        memory_child(events, model, output, config_name, int(batch))
        return 0

    import keras

    results = {"backend": keras.backend.backend(), "config": args.config, "batch": args.batch,
               "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench-payload-") as tmp:
        work = Path(tmp)
        results["inference"] = bench_inference(work, args.config, args.infer_events, args.batch)
        results["training"] = bench_training(work, args.config, args.train_events, args.batch, args.epochs)
        if not args.skip_memory:
            results["memory"] = bench_memory(work, args.memory_config, *args.memory_events, args.batch)

    inf, tr = results["inference"], results["training"]
    print(f"backend {results['backend']}, network {args.config}, batch {args.batch}, {results['cpus']} CPUs")
    print(f"{'measure':<44}{'baseline':>12}{'payload':>12}{'ratio':>8}{'goal':>8}")
    print(f"{'inference, %d events (s)' % inf['events']:<44}{inf['bare_s']:>12.2f}{inf['ours_s']:>12.2f}"
          f"{inf['ratio']:>8.3f}{'>=0.90':>8}")
    print(f"{'training, %d events x %d epochs (s)' % (tr['events'], tr['epochs']):<44}{tr['bare_s']:>12.2f}"
          f"{tr['ours_s']:>12.2f}{tr['ratio']:>8.3f}{'>=0.95':>8}")
    if "memory" in results:
        mem = results["memory"]
        print(f"{'peak RSS, %s: %d vs %d events (MiB)' % (args.memory_config, mem['many'], mem['few']):<44}"
              f"{mem['few_mib']:>12.0f}{mem['many_mib']:>12.0f}{mem['ratio']:>8.3f}{'<=1.5':>8}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

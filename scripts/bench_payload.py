#!/usr/bin/env python3
"""Payload benchmark: the trf's payload step against bare Keras on the same events, in one run.

(a) inference: a whole job through the trf's own entry (`wrapper.main.main`, in a fresh job
    directory: staging, platform, build, payload, outputs, report) against bare `model.predict`
    on the same events already in memory, same model and batch size;
(b) training: a whole `--mode=train` job through the same entry against bare `model.fit` on
    in-memory arrays, same network, loss (`cce`), optimizer, float32, batch and epochs; the bare
    side takes the faster of Keras's `jit_compile` settings (measured in its warm-up), so it is the
    floor Keras allows, not a strawman;
(c) peak memory (peak resident set, VmHWM) of inference over many events against few, each in a
    fresh process.

Timing goes through the entry the trf uses, so whatever the trf does around the payload (a child
process, say) is inside our side's time. Each side is warmed up once (framework start-up falls on
neither), then the two alternate, who goes first alternating too, --repeat times; ratios are
baseline / ours of the medians (>= 1 means as fast as bare Keras), with min/max of each side.
Goals: (a) >= 0.90, (b) >= 0.95, (c) <= 1.5.

    python scripts/bench_payload.py --json payload.json   # tiny network; 14 min on 2 cores at load 10
    python scripts/bench_payload.py --config small --repeat 5   # the bigger network, slower
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _simulate(path: Path, n_events: int, seed: int) -> Path:
    from payload.simulate import simulate_events

    return simulate_events(n_events, seed, path=path)


def trf_job(work: Path, name: str, argv: List[str]) -> Callable[[], float]:
    """Seconds of one whole trf job (`wrapper.main.main(argv)`) in a fresh job directory."""
    from wrapper.main import main as trf_main

    counter = iter(range(1 << 30))

    def run() -> float:
        jobdir = work / f"{name}-job{next(counter)}"
        jobdir.mkdir()
        here = os.getcwd()
        os.chdir(jobdir)
        try:
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):      # the job's progress lines
                code = trf_main(argv)
            seconds = time.perf_counter() - started
        finally:
            os.chdir(here)
        if code != 0:
            report = (jobdir / "jobReport.json").read_text() if (jobdir / "jobReport.json").exists() else ""
            raise RuntimeError(f"the trf exited {code}: {report[-1000:]}")
        return seconds
    return run


def _timed(step: Callable[[], None]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def interleaved(repeat: int, bare: Callable[[], float], ours: Callable[[], float]) -> dict:
    """`repeat` alternating runs of each side; medians, min/max, ratio = bare / ours of the medians."""
    times = {"bare": [], "ours": []}
    for run in range(repeat):
        order = ("bare", "ours") if run % 2 == 0 else ("ours", "bare")
        for side in order:
            times[side].append(bare() if side == "bare" else ours())
        print(f"  run {run + 1}/{repeat}: bare {times['bare'][-1]:.2f} s, trf {times['ours'][-1]:.2f} s",
              file=sys.stderr, flush=True)
    result = {f"{side}_{stat}_s": round(fn(values), 3) for side, values in times.items()
              for stat, fn in (("median", statistics.median), ("min", min), ("max", max))}
    result.update(runs=repeat, ratio=round(statistics.median(times["bare"]) / statistics.median(times["ours"]), 3),
                  runs_s={side: [round(v, 3) for v in values] for side, values in times.items()})
    return result


def bench_inference(work: Path, config_name: str, n_events: int, batch: int, repeat: int) -> dict:
    import keras
    import numpy as np

    from payload.events import iter_batches
    from payload.model import build_model
    from payload.modelfile import load_model, save_model

    events = _simulate(work / "infer.h5", n_events, 11)
    keras.utils.set_random_seed(1)
    model_path = save_model(build_model(config_name), work / "model.keras")
    images = np.concatenate([b.images for b in iter_batches([events], 64)])

    def bare() -> float:
        return _timed(lambda: load_model(model_path, config_name).predict(images, batch_size=batch, verbose=0))

    ours = trf_job(work, "infer", ["--mode=infer", f"--inputEventsFile={events}", f"--modelFile={model_path}",
                          f"--modelConfig={config_name}", f"--batchSize={batch}", "--precision=float32",
                          "--outputPredFile=pred.h5"])
    bare()
    ours()
    return {"events": n_events, **interleaved(repeat, bare, ours)}


def bench_training(work: Path, config_name: str, n_events: int, batch: int, epochs: int, repeat: int) -> dict:
    import keras
    import numpy as np

    from payload.events import iter_batches
    from payload.losses import make_loss
    from payload.model import build_model

    events = _simulate(work / "train.h5", n_events, 12)
    batches = list(iter_batches([events], 64, with_labels=True))
    images = np.concatenate([b.images for b in batches])
    labels = np.concatenate([b.labels for b in batches])

    def bare_fit(jit_compile) -> float:
        def fit():
            keras.utils.set_random_seed(1)
            model = build_model(config_name)
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=make_loss("cce"), jit_compile=jit_compile)
            model.fit(images, labels, batch_size=batch, epochs=epochs, shuffle=True, verbose=0)
        return _timed(fit)

    warm = {str(jit): bare_fit(jit) for jit in ("auto", False)}
    fastest = min(warm, key=warm.get)
    jit_compile = False if fastest == "False" else "auto"
    ours = trf_job(work, "train", ["--mode=train", f"--inputEventsFile={events}", f"--modelConfig={config_name}",
                          f"--batchSize={batch}", f"--epochs={epochs}", "--validationSplit=0", "--loss=cce",
                          "--learningRate=0.001", "--precision=float32", "--outputModelFile=trained.keras"])
    ours()
    result = interleaved(repeat, lambda: bare_fit(jit_compile), ours)
    return {"events": n_events, "epochs": epochs, "bare_jit_compile": str(jit_compile),
            "bare_warm_up_s": {k: round(v, 3) for k, v in warm.items()}, **result}


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
    parser.add_argument("--config", default="tiny", help="network config (tiny, small, paper)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--infer-events", type=int, default=64)
    parser.add_argument("--train-events", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per side (medians)")
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

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    results = {"backend": keras.backend.backend(), "config": args.config, "batch": args.batch,
               "cpus": os.cpu_count(), "repeat": args.repeat}
    with tempfile.TemporaryDirectory(prefix="bench-payload-") as tmp:
        work = Path(tmp)
        results["inference"] = bench_inference(work, args.config, args.infer_events, args.batch, args.repeat)
        results["training"] = bench_training(work, args.config, args.train_events, args.batch, args.epochs,
                                             args.repeat)
        if not args.skip_memory:
            results["memory"] = bench_memory(work, args.memory_config, *args.memory_events, args.batch)

    inf, tr = results["inference"], results["training"]
    print(f"backend {results['backend']}, network {args.config}, batch {args.batch}, {results['cpus']} CPUs, "
          f"medians of {args.repeat} interleaved runs [min-max]")
    print(f"{'measure':<40}{'bare Keras':>22}{'trf':>22}{'ratio':>8}{'goal':>8}")
    for label, row, goal in ((f"inference, {inf['events']} events (s)", inf, ">=0.90"),
                             (f"training, {tr['events']} events x {tr['epochs']} epochs (s)", tr, ">=0.95")):
        bare = f"{row['bare_median_s']:.2f} [{row['bare_min_s']:.2f}-{row['bare_max_s']:.2f}]"
        ours = f"{row['ours_median_s']:.2f} [{row['ours_min_s']:.2f}-{row['ours_max_s']:.2f}]"
        print(f"{label:<40}{bare:>22}{ours:>22}{row['ratio']:>8.3f}{goal:>8}")
    if "memory" in results:
        mem = results["memory"]
        print(f"{'peak RSS, %s: %d vs %d events (MiB)' % (args.memory_config, mem['many'], mem['few']):<40}"
              f"{mem['few_mib']:>22.0f}{mem['many_mib']:>22.0f}{mem['ratio']:>8.3f}{'<=1.5':>8}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

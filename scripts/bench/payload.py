#!/usr/bin/env python3
"""Payload benchmark: the trf's payload step against bare Keras on the same events, in one run.

Both sides are whole processes started afresh for every run, as the pilot starts the trf: each pays
its interpreter's and the framework's start-up, reads the events from the HDF5 file and writes
its output, so the ratio is what a user gains or loses by running the trf instead of a script.
(a) inference: `python -m wrapper --mode=infer ...` (staging, platform, build, the payload in its
    supervised child, outputs, report) against a bare script that reads the events with h5py,
    loads the model, predicts and writes the scores (float16, as the trf) with h5py; the bare side
    takes the faster of `model.predict` and a `predict_on_batch` loop (measured in its warm-up);
(b) training: `python -m wrapper --mode=train ...` against a bare script that reads the events,
    builds the same network and runs `model.fit` (same loss `cce`, Adam, float32, batch and
    epochs) and saves the model; the bare side takes the faster of Keras's `jit_compile` settings
    (measured in its warm-up), so it is the floor Keras allows, not a strawman;
(c) peak memory (peak resident set, VmHWM) of inference over many events against few, each in a
    fresh process;
(d) what the supervised child costs (scripts/bench/child.py): the payload step in-process against
    in its child, both whole processes, with the child's start-up and the per-batch message.

Each side is warmed up once (page cache, compiled caches), then the two alternate, who goes first
alternating too, --repeat times; ratios are baseline / ours of the medians (>= 1 means as fast as
bare Keras), with min/max of each side. Goals: (a) >= 0.90, (b) >= 0.95, (c) <= 1.5.

    python -m scripts.bench.payload --skip-memory --skip-child --json payload.json   # the races
    python -m scripts.bench.payload --skip-timing --json payload-child-memory.json   # child, memory
    python -m scripts.bench.payload --config small --repeat 5   # the bigger network, slower
"""
from __future__ import annotations

import argparse
import itertools
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

ROOT = Path(__file__).resolve().parents[2]
_RUNS = itertools.count()      # numbers each run's own directory


def _simulate(path: Path, n_events: int, seed: int) -> Path:
    from payload.simulate import simulate_events

    return simulate_events(n_events, seed, path=path)


def _process(argv: List[str], cwd: Path) -> float:
    """Seconds of one whole process, from its start to its exit; raises when it fails."""
    started = time.perf_counter()
    run = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"})
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        report = cwd / "jobReport.json"
        detail = report.read_text()[-1000:] if report.exists() else run.stderr[-2000:]
        raise RuntimeError(f"{argv[:4]} exited {run.returncode}: {detail}")
    return seconds


def trf_job(work: Path, name: str, argv: List[str]) -> Callable[[], float]:
    """Seconds of one whole trf job (`python -m wrapper ARGV`, as the pilot runs the trf) in a fresh
    job directory."""
    def run() -> float:
        jobdir = work / f"{name}-job{next(_RUNS)}"
        jobdir.mkdir()
        return _process([sys.executable, "-m", "wrapper", *argv], jobdir)
    return run


def bare_script(work: Path, name: str, mode: str, args: List[str]) -> Callable[[], float]:
    """Seconds of one whole bare-Keras process (this script's --bare-MODE), in a fresh directory."""
    def run() -> float:
        rundir = work / f"{name}-bare{next(_RUNS)}"
        rundir.mkdir()
        return _process([sys.executable, __file__, f"--bare-{mode}", *args], rundir)
    return run


def _read_events(path: str, with_labels: bool):
    import h5py
    import numpy as np

    with h5py.File(path, "r") as f:
        images = f["images"][...].astype(np.float32)[..., None]
        return images, (f["labels"][...] if with_labels else None)


def bare_infer(events: str, model: str, config_name: str, batch: str, how: str) -> None:
    """What a physicist's own inference script does: read, load, predict, write the scores.
    `how`: "predict" (`model.predict`) or "on_batch" (a loop of `model.predict_on_batch`, which
    skips predict's data adapter)."""
    import h5py
    import numpy as np

    from payload.modelfile import load_model

    images, _ = _read_events(events, with_labels=False)
    network, size = load_model(Path(model), config_name), int(batch)
    if how == "predict":
        scores = network.predict(images, batch_size=size, verbose=0)
    else:
        scores = np.concatenate([network.predict_on_batch(images[i:i + size])
                                 for i in range(0, len(images), size)])
    with h5py.File("pred.h5", "w") as f:
        f.create_dataset("scores", data=scores.astype(np.float16))


def bare_train(events: str, config_name: str, batch: str, epochs: str, jit_compile: str) -> None:
    """What a physicist's own training script does: read, build, compile, fit, save."""
    import keras

    from payload.losses import make_loss
    from payload.model import build_model

    images, labels = _read_events(events, with_labels=True)
    keras.utils.set_random_seed(1)
    model = build_model(config_name)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=make_loss("cce"),
                  jit_compile=False if jit_compile == "False" else "auto")
    model.fit(images, labels, batch_size=int(batch), epochs=int(epochs), shuffle=True, verbose=0)
    model.save("trained.keras")


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

    from payload.model import build_model
    from payload.modelfile import save_model

    events = _simulate(work / "infer.h5", n_events, 11)
    keras.utils.set_random_seed(1)
    model_path = save_model(build_model(config_name), work / "model.keras")

    def bare(how: str) -> Callable[[], float]:
        return bare_script(work, f"infer-{how}", "infer", [str(events), str(model_path), config_name, str(batch), how])

    warm = {how: bare(how)() for how in ("predict", "on_batch")}
    how = min(warm, key=warm.get)
    ours = trf_job(work, "infer", ["--mode=infer", f"--inputEventsFile={events}", f"--modelFile={model_path}",
                                   f"--modelConfig={config_name}", f"--batchSize={batch}", "--precision=float32",
                                   "--outputPredFile=pred.h5"])
    ours()
    return {"events": n_events, "whole_process": True, "bare_how": how,
            "bare_warm_up_s": {k: round(v, 3) for k, v in warm.items()}, **interleaved(repeat, bare(how), ours)}


def bench_training(work: Path, config_name: str, n_events: int, batch: int, epochs: int, repeat: int) -> dict:
    events = _simulate(work / "train.h5", n_events, 12)

    def bare(jit_compile: str) -> Callable[[], float]:
        return bare_script(work, f"train-jit-{jit_compile}", "train",
                           [str(events), config_name, str(batch), str(epochs), jit_compile])

    warm = {jit: bare(jit)() for jit in ("auto", "False")}
    jit_compile = min(warm, key=warm.get)
    ours = trf_job(work, "train", ["--mode=train", f"--inputEventsFile={events}", f"--modelConfig={config_name}",
                                   f"--batchSize={batch}", f"--epochs={epochs}", "--validationSplit=0", "--loss=cce",
                                   "--learningRate=0.001", "--precision=float32", "--outputModelFile=trained.keras"])
    ours()
    result = interleaved(repeat, bare(jit_compile), ours)
    return {"events": n_events, "epochs": epochs, "whole_process": True, "bare_jit_compile": jit_compile,
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


def main(argv: list[str]) -> int:
    """Run the payload races, the child's cost and the memory figures; 0 when they ran."""
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
    parser.add_argument("--skip-timing", action="store_true",
                        help="only the child's cost and peak memory (neither is a race against bare Keras)")
    parser.add_argument("--skip-child", action="store_true", help="skip the supervised child's cost")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--memory-child", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--bare-infer", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--bare-train", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare_infer:
        bare_infer(*args.bare_infer)
        return 0
    if args.bare_train:
        bare_train(*args.bare_train)
        return 0
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
        if not args.skip_timing:
            results["inference"] = bench_inference(work, args.config, args.infer_events, args.batch, args.repeat)
            results["training"] = bench_training(work, args.config, args.train_events, args.batch, args.epochs,
                                                 args.repeat)
        if not args.skip_child:
            from scripts.bench import child

            results["child"] = child.measure(events=32, repeats=args.repeat, config=args.config)
        if not args.skip_memory:
            results["memory"] = bench_memory(work, args.memory_config, *args.memory_events, args.batch)

    print(f"backend {results['backend']}, network {args.config}, batch {args.batch}, {results['cpus']} CPUs, "
          f"medians of {args.repeat} interleaved runs [min-max]")
    print(f"{'measure':<40}{'bare Keras':>22}{'trf':>22}{'ratio':>8}{'goal':>8}")
    for key, label, goal in (("inference", "inference, %(events)d events (s)", ">=0.90"),
                             ("training", "training, %(events)d events x %(epochs)d epochs (s)", ">=0.95")):
        if key in results:
            row = results[key]
            bare = f"{row['bare_median_s']:.2f} [{row['bare_min_s']:.2f}-{row['bare_max_s']:.2f}]"
            ours = f"{row['ours_median_s']:.2f} [{row['ours_min_s']:.2f}-{row['ours_max_s']:.2f}]"
            print(f"{label % row:<40}{bare:>22}{ours:>22}{row['ratio']:>8.3f}{goal:>8}")
    if "child" in results:
        child = results["child"]
        print(f"{'payload step in-process vs in a child (s)':<40}{child['in_process_s']:>22.2f}"
              f"{child['supervised_s']:>22.2f}{child['ratio']:>8.3f}{'':>8}")
        print(f"  child start-up without a framework {child['child_startup_s']:.3f} s, "
              f"per-batch message {child['per_batch_overhead_s'] * 1e6:.0f} us")
    if "memory" in results:
        mem = results["memory"]
        print(f"{'peak RSS, %s: %d vs %d events (MiB)' % (args.memory_config, mem['many'], mem['few']):<40}"
              f"{mem['few_mib']:>22.0f}{mem['many_mib']:>22.0f}{mem['ratio']:>8.3f}{'<=1.5':>8}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

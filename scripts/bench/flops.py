#!/usr/bin/env python3
"""Speed against the limit: the trf's training and inference as a fraction of the machine's
attainable FLOP/s, and against the fastest bare step, all measured in one process.

- FLOPs (scripts/bench/flops_count.py): counted from each network's Keras graph, 2 × MACs of every
  Conv2D, Conv2DTranspose and Dense layer; a training step is 3 × forward (forward, input gradient,
  weight gradient) less the first convolution's input gradient; element-wise layers (batch norm,
  ReLU, bias, pooling, concatenation, softmax), the loss and the optimizer are not counted. The
  Conv2D part is checked against TensorFlow's profiler (float_ops of the traced graph's Conv2D ops).
- attainable FLOP/s: a 3 × 3, 128 → 128 Conv2D on 8 × 128 × 128 in the same framework and precision,
  forward (the limit for inference) and forward + backward (for training), best of --calls.
- training (scripts/bench/flops_steps.py): the recipe's steps (crops of 128, batch 8, Dice loss,
  Adam, cosine schedule) by the payload's own `payload.api.train` on a simulated events file, timed
  from its progress callback after --warmup steps, against the bare floor: a `tf.function` train
  step over crops prefetched as tensors (XLA on and off tried for the --xla networks, the faster kept).
  With up to 8 steps a run the trf mixes its events (8 batches a window) before the timed steps, so
  its input's whole cost, measured alone, is printed beside the table;
- inference: `payload.api.infer` (batch --infer-batch of whole events, predictions file written)
  against a bare compiled predict of the same network and softmax over prefetched tensors.

Each case runs --repeats times, trf and bare alternating (who goes first alternating too); rates are
medians with [min–max], trf/bare the ratio of the medians (goal ≥ 0.95), fraction = achieved /
attainable GFLOP/s.

    python -m scripts.bench.flops --json docs/results/flops.json
    python -m scripts.bench.flops --networks tiny --precisions float32 --repeats 3   # a quick look
    python -m scripts.bench.run --only=flops
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from scripts.bench import flops_count, flops_steps

CROP = flops_steps.RECIPE["crop_size"]
WHOLE = 320
INPUT_STEPS = 16    # batches the trf's input is timed over alone: two of its mixing windows


def _spread(values: list) -> dict:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4), "runs": [round(v, 4) for v in values]}


def interleaved(repeats: int, trf: Callable[[], float], bare: Callable[[], float]) -> tuple[list, list]:
    """(trf rates, bare rates) of `repeats` alternating runs, who goes first alternating too."""
    rates = {"trf": [], "bare": []}
    for run in range(repeats):
        for side in (("trf", "bare") if run % 2 == 0 else ("bare", "trf")):
            rates[side].append(trf() if side == "trf" else bare())
        print(f"  run {run + 1}/{repeats}: trf {rates['trf'][-1]:.3f}/s, bare {rates['bare'][-1]:.3f}/s",
              file=sys.stderr, flush=True)
    return rates["trf"], rates["bare"]


def _row(case: dict, flops_per_unit: int, trf: list, bare: list, attainable_gflops: float) -> dict:
    """One table row: the rates, their GFLOP/s, the fraction of the attainable and trf/bare."""
    trf_gflops = statistics.median(trf) * flops_per_unit / 1e9
    bare_gflops = statistics.median(bare) * flops_per_unit / 1e9
    ratios = [t / b for t, b in zip(trf, bare)]
    return {**case, "flops_per_unit": flops_per_unit, "trf_per_s": _spread(trf), "bare_per_s": _spread(bare),
            "trf_gflops": round(trf_gflops, 3), "bare_gflops": round(bare_gflops, 3),
            "attainable_gflops": attainable_gflops, "trf_fraction": round(trf_gflops / attainable_gflops, 4),
            "bare_fraction": round(bare_gflops / attainable_gflops, 4),
            "trf_over_bare": round(statistics.median(trf) / statistics.median(bare), 3),
            "trf_over_bare_min": round(min(ratios), 3), "trf_over_bare_max": round(max(ratios), 3)}


def train_row(network: str, precision: str, flops: flops_count.NetworkFlops, data: dict, args,
              attainable: dict) -> dict:
    """The training row of one network and precision (units: steps of the recipe's batch)."""
    jit = args.jit if network in args.xla else (False,)
    bare, on = flops_steps.bare_train(network, precision, data["crops"], jit, args.warmup, args.trial)
    trf, base = interleaved(args.repeats,
                            lambda: flops_steps.trf_train(data["events"], data["work"], network, precision,
                                                          args.warmup, args.train_steps),
                            lambda: bare(args.train_steps))
    batch = flops_steps.RECIPE["batch_size"]
    case = {"network": network, "precision": precision, "phase": "train", "unit": f"step ({batch} crops of {CROP})",
            "steps": args.train_steps, "bare_jit_compile": on, "jit_tried": list(jit)}
    return _row(case, flops.train * batch, trf, base, attainable[precision]["forward_backward"]["gflops"])


def infer_row(network: str, precision: str, flops: flops_count.NetworkFlops, data: dict, args,
              attainable: dict) -> dict:
    """The inference row of one network and precision (units: whole events)."""
    from payload.model import build_model
    from payload.modelfile import save_model

    model = save_model(build_model(network), data["work"] / f"{network}.keras")
    jit = args.jit if network in args.xla else (False,)
    bare, on = flops_steps.bare_predict(network, precision, data["images"], args.infer_batch, jit, args.warmup,
                                        args.trial)
    trf, base = interleaved(args.repeats,
                            lambda: flops_steps.trf_infer(data["events"], model, data["work"], network, precision,
                                                          args.infer_batch, args.warmup, args.infer_batches),
                            lambda: bare(args.infer_batches))
    case = {"network": network, "precision": precision, "phase": "infer", "unit": f"event ({WHOLE}x{WHOLE})",
            "batch": args.infer_batch, "batches": args.infer_batches, "bare_jit_compile": on, "jit_tried": list(jit)}
    return _row(case, flops.forward, trf, base, attainable[precision]["forward"]["gflops"])


def count(network: str) -> dict:
    """The FLOPs of one crop and one whole event through `network`, with the profiler's check."""
    crop, whole = flops_count.network_flops(network, CROP), flops_count.network_flops(network, WHOLE)
    profiled = flops_count.profiler_conv2d_flops(network, CROP)
    return {"crop": crop, "whole": whole,
            "json": {"crop_side": CROP, "forward_per_crop": crop.forward, "train_per_crop": crop.train,
                     "whole_side": WHOLE, "forward_per_event": whole.forward,
                     "conv2d_forward_per_crop": crop.conv2d_forward, "profiler_conv2d_per_crop": profiled,
                     "profiler_agrees": profiled == crop.conv2d_forward}}


def print_table(result: dict) -> None:
    """The measured table, one row per network, precision and phase."""
    print(f"FLOPs: {flops_count.METHOD}")
    for precision, peak in result["attainable"].items():
        print(f"attainable {precision} ({peak['compute_dtype']}, 3x3 conv {peak['shape']}): forward "
              f"{peak['forward']['gflops']:.1f} GFLOP/s, forward+backward {peak['forward_backward']['gflops']:.1f}")
    for network, counted in result["flops"].items():
        print(f"{network}: {counted['train_per_crop'] / 1e9:.3f} GFLOP to train on one crop, "
              f"{counted['forward_per_event'] / 1e9:.3f} GFLOP per event forward; TF profiler Conv2D "
              f"{'agrees' if counted['profiler_agrees'] else 'DIFFERS'}")
    print(f"trf training input alone (read, mix, crop): {result['trf_input_ms_per_step']:.1f} ms/step")
    print(f"medians of {result['repeats']} alternating runs [min-max]")
    head = ("network", "precision", "phase", "GFLOP/unit", "trf GFLOP/s", "bare GFLOP/s", "attain.", "trf frac",
            "trf/bare")
    print(f"{head[0]:<8}{head[1]:<16}{head[2]:<7}{head[3]:>11}{head[4]:>13}{head[5]:>13}{head[6]:>9}"
          f"{head[7]:>9}  {head[8]}")
    for row in result["rows"]:
        print(f"{row['network']:<8}{row['precision']:<16}{row['phase']:<7}{row['flops_per_unit'] / 1e9:>11.2f}"
              f"{row['trf_gflops']:>13.2f}{row['bare_gflops']:>13.2f}{row['attainable_gflops']:>9.1f}"
              f"{row['trf_fraction']:>9.3f}  {row['trf_over_bare']:.3f} [{row['trf_over_bare_min']:.3f}-"
              f"{row['trf_over_bare_max']:.3f}]  ({row['unit']}; bare jit {row['bare_jit_compile']})")


def _data(work: Path, args) -> dict:
    from payload.simulate import simulate_events

    batch = flops_steps.RECIPE["batch_size"]
    n = max(batch * (args.warmup + args.train_steps), args.infer_batch * (args.warmup + args.infer_batches),
            batch * INPUT_STEPS)
    events = simulate_events(n, 5, path=work / "events.h5")
    images, labels = flops_steps.read_events(events)
    # the bare predict cycles through as many events as the trf's inference reads
    shown = args.infer_batch * (args.warmup + args.infer_batches)
    return {"work": work, "events": events, "images": images[:shown], "crops": flops_steps.crop_batches(images, labels)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", default="small,tiny", help="comma list (paper: no crops, not here)")
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="steps or batches before the timed ones (>= 1)")
    parser.add_argument("--train-steps", type=int, default=4, help="timed training steps a run")
    parser.add_argument("--infer-batch", type=int, default=4)
    parser.add_argument("--infer-batches", type=int, default=2, help="timed inference batches a run")
    parser.add_argument("--trial", type=int, default=2, help="steps timing each jit setting of the bare step")
    parser.add_argument("--jit", default="off,on", help="jit_compile settings the bare steps try")
    # XLA compiles a training step of `tiny` in about 40 s on 2 cores, `small`'s in longer: opt-in
    parser.add_argument("--xla", default="tiny", help="networks whose bare steps also try --jit's XLA")
    parser.add_argument("--calls", type=int, default=3, help="timed calls of the attainable convolution (best)")
    parser.add_argument("--json", type=Path, help="write the results here")
    return parser


def main(argv: list[str]) -> int:
    """Measure and print the table; write --json. 0 on success."""
    args = _parser().parse_args(argv)
    args.jit = tuple(dict.fromkeys({"off": False, "on": True}[j.strip()] for j in args.jit.split(",")))
    args.xla = {n.strip() for n in args.xla.split(",") if n.strip()}
    networks = [n.strip() for n in args.networks.split(",") if n.strip()]
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-flops-") as tmp:
        data = _data(Path(tmp), args)
        result = {"method": flops_count.METHOD, "cpus": os.cpu_count(), "repeats": args.repeats,
                  "recipe": flops_steps.RECIPE, "warmup": args.warmup,
                  "trf_input_ms_per_step": 1e3 * flops_steps.trf_input_seconds(data["events"], INPUT_STEPS),
                  "attainable": {p: flops_count.attainable(p, calls=args.calls, jit=args.jit) for p in precisions},
                  "flops": {}, "rows": []}
        for network in networks:
            counted = count(network)
            result["flops"][network] = counted["json"]
            for precision in precisions:
                for make, flops in ((train_row, counted["crop"]), (infer_row, counted["whole"])):
                    result["rows"].append(make(network, precision, flops, data, args, result["attainable"]))
    result["seconds"] = round(time.perf_counter() - started, 1)
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

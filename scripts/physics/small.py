#!/usr/bin/env python3
"""Does the network learn? Train the reference `small` FC-DenseNet on the CPU, then measure it
through the trf on hold-out events of a seed nobody trains on, and write a summary JSON.

    python -m scripts.physics.small                                  # the README's figures
    python -m scripts.physics.small --train-events 60 --epochs 1 --out /tmp/m.keras   # a smoke run
    python -m scripts.physics.small --evaluate-only          # the packaged model as it is, no training

Training is scripts/physics/train_reference.py (a fixed, seeded number of steps; by default it writes the
packaged payload/models/reference-small.keras and its card). The hold-out events are simulated
with seed --holdout-seed and evaluated by `dune-payload --mode=evaluate` in a job directory of
their own, with no --modelConfig: the network comes from the model file. The figures printed and
written (summary JSON, and the model's card) are those of the trf's metrics file, untouched.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from scripts.physics import train_reference
from scripts.physics.common import ROOT, command_line, fmt_metric, utc_stamp

GOALS = {"iou_beam": 0.80, "mean_iou": 0.90}


def evaluate_with_trf(model: Path, events: Path, job: Path) -> dict:
    """Run `dune-payload --mode=evaluate` in job directory `job`; its metrics document."""
    job.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "wrapper", "--mode=evaluate", f"--inputEventsFile={events}",
               f"--modelFile={model}", "--outputMetricsFile=holdout.metrics.json", "--batchSize=8"]
    print("$", " ".join(command[2:]).replace(sys.executable, "python"), flush=True)
    done = subprocess.run(command, cwd=job, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        raise SystemExit(f"the evaluation job failed with exit {done.returncode}: see {job}/jobReport.json")
    return json.loads((job / "holdout.metrics.json").read_text())


def print_figures(summary: dict, card: dict, args) -> None:
    """The hold-out figures of a run, as the README quotes them."""
    holdout, t = summary["holdout"], card["training"]
    m = holdout["metrics"]
    print(f"\nhold-out ({holdout['events']} events, seed {holdout['seed']}) after {t['steps']} steps "
          f"({t['epochs']} epochs, batch {args.batch}, {args.crop}-px crops), {t['wall_s'] / 60:.1f} min of "
          f"training ({t['step_s']:.2f} s/step) on {card['environment']['cpus']} CPUs:")
    for cls in ("background", "beam", "cosmic"):
        print(f"  {cls:<11} IoU {fmt_metric(m[f'iou_{cls}'])}  efficiency "
              f"{fmt_metric(m[f'efficiency_{cls}'])}  purity {fmt_metric(m[f'purity_{cls}'])}")
    print(f"  mean IoU {fmt_metric(m['mean_iou'])}, pixel accuracy {m['pixel_accuracy']:.4f}")
    curve = t.get("curve") or []
    if curve:
        print("  validation curve (epoch: beam IoU / mean IoU, minutes): " + ", ".join(
            f"{c['epoch']}: {fmt_metric(c['val_iou_beam'])}/{fmt_metric(c['val_mean_iou'])} "
            f"({c['elapsed_s'] / 60:.1f})" for c in curve))
    print("  goals: " + ", ".join(f"{k} >= {v}: {'met' if summary['goals_met'][k] else 'NOT met'}"
                                  for k, v in GOALS.items()))


def main(argv: Sequence[str]) -> int:
    """Train (unless --evaluate-only), evaluate on the hold-out events through the trf, write the summary."""
    parser = train_reference.build_parser(__doc__)
    parser.add_argument("--holdout-events", type=int, default=100)
    parser.add_argument("--holdout-seed", type=int, default=1001, help="must differ from --seed")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="evaluate the model at --out as trained (its card says how) without training it "
                             "again: the hold-out figures after a change to the inference code")
    args = parser.parse_args(argv)
    holdout_events, holdout_seed = args.holdout_events, args.holdout_seed
    if holdout_seed == args.seed:
        raise SystemExit("the hold-out seed must differ from the training seed")
    started = time.perf_counter()
    if args.evaluate_only:
        card = json.loads(train_reference.card_path(args.out).read_text())
        args.work = args.work or Path(tempfile.mkdtemp(prefix="physics-holdout-"))
        args.work.mkdir(parents=True, exist_ok=True)
    else:
        card = train_reference.train_reference(args, command_line("small", argv))

    from payload.simulate import simulate_events

    work = args.work   # train_reference made it
    holdout = simulate_events(holdout_events, holdout_seed, path=work / "holdout.h5")
    document = evaluate_with_trf(args.out, holdout, work / "evaluate")
    m = document["metrics"]
    met = {k: m[k] is not None and m[k] >= v for k, v in GOALS.items()}
    summary = {
        "command": command_line("small", argv),
        "date": utc_stamp(),
        "model": str(args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out),
        "adler32": card["adler32"],
        "training": card["training"], "recipe": card["recipe"], "environment": card["environment"],
        "holdout": {"events": holdout_events, "seed": holdout_seed, "metrics": m,
                    "confusion_matrix": document["confusion_matrix"],
                    "null_metrics": document.get("null_metrics")},
        "goals": GOALS, "goals_met": met,
        "total_s": round(time.perf_counter() - started, 1),
    }
    out = work / "physics-summary.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    # The model's card and the README's summary record the run that trained it; an evaluation
    # alone leaves them as they are and writes its own summary only.
    if not args.evaluate_only:
        card["holdout"] = {"events": holdout_events, "seed": holdout_seed, "metrics": m,
                           "evaluated_by": "dune-payload --mode=evaluate"}
        train_reference.card_path(args.out).write_text(json.dumps(card, indent=2) + "\n")
    if not args.evaluate_only and args.out.resolve() == train_reference.DEFAULT_OUT.resolve():
        (ROOT / "docs").mkdir(exist_ok=True)
        (ROOT / "docs" / "physics-summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    print_figures(summary, card, args)
    print(f"summary: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

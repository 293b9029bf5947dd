#!/usr/bin/env python3
"""Two-worker CPU training throughput against one worker, same global batch, in one run.

    python -m scripts.bench.scale [--events 48] [--batch 2] [--repeats 2]

Both runs train the `tiny` network with payload.api.train on the same synthetic events, launched
as srun would launch them (SLURM_* environment → wrapper.cluster.workers → TF_CONFIG): one worker with a
batch of 2×B events, then two workers on loopback with B events each (MultiWorkerMirroredStrategy,
gradients all-reduced every step). Throughput is training events per second between the first and
the last training step (start-up, tracing and validation left out). The ratio two/one shows what the
collective costs; on a machine with fewer cores than workers × threads it also shows the workers
competing for the same cores, so it can be below 1 there.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from payload.simulate import simulate_events
from tests.support.seaweed import free_ports

ROOT = Path(__file__).resolve().parents[2]

WORKER = ROOT / "tests" / "scale" / "mw_worker.py"


def run(workers: int, per_worker_batch: int, events: Path, out: Path) -> float:
    """Training events per second of one run with `workers` worker processes."""
    out.mkdir(parents=True)
    port = free_ports(1)[0]
    procs = []
    for rank in range(workers):
        env = dict(os.environ, SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank),
                   SLURM_STEP_NUM_TASKS=str(workers), SLURM_STEP_NODELIST="localhost",
                   SLURM_STEP_TASKS_PER_NODE=str(workers), PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
        env.pop("TF_CONFIG", None)
        if workers == 1:
            for name in ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NODELIST"):
                env.pop(name)
        log = open(out / f"log-{rank}.txt", "w")
        procs.append(subprocess.Popen([sys.executable, str(WORKER), str(out), str(events), "--port", str(port),
                                       "--batch", str(per_worker_batch), "--validation-split", "0.05"],
                                      env=env, stdout=log, stderr=subprocess.STDOUT))
    codes = [p.wait(1800) for p in procs]
    if any(codes):
        raise SystemExit(f"a worker failed ({codes}); see {out}")
    result = json.loads((out / "result-0.json").read_text())
    times = result["step_times"]
    return (len(times) - 1) * result["global_batch"] / (times[-1] - times[0])


def main(argv: list[str]) -> int:
    """Time one worker against two and print their ratio; 0 when both ran."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=48)
    parser.add_argument("--batch", type=int, default=2, help="events per worker per step")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        events = simulate_events(args.events, 21, path=Path(tmp) / "events.h5")
        one, two = [], []
        for repeat in range(args.repeats):
            one.append(run(1, 2 * args.batch, events, Path(tmp) / f"one-{repeat}"))
            two.append(run(2, args.batch, events, Path(tmp) / f"two-{repeat}"))
    best_one, best_two = max(one), max(two)
    results = json.dumps({"cores": os.cpu_count(), "events": args.events, "global_batch": 2 * args.batch,
                          "one_worker_events_per_s": [round(v, 3) for v in one],
                          "two_workers_events_per_s": [round(v, 3) for v in two],
                          "ratio_two_over_one": round(best_two / best_one, 3)}, indent=1)
    print(results)
    if args.json:
        args.json.write_text(results + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

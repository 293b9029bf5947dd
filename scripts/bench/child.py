#!/usr/bin/env python3
"""What running the payload step in a supervised child process costs (wrapper/step/supervisor.py).

Both sides run one inference, each in a fresh interpreter timed as a whole process, so each pays
the framework's start-up once: "in-process" calls the payload step directly (the trf before the
child), "supervised" runs it through `run_supervised` (a light parent and the payload's child).
Interleaved, medians over the repeats. Also the child's own start-up without a framework (a new
interpreter importing the trf's modules) and, as the per-batch cost, one progress message's round
trip over the pipe (the payload sends one per batch). The fixed cost (`extra_s`) weighs on short
jobs only: judge the ratio on a job of realistic length (--events).

    python -m scripts.bench.child --events 32 --repeats 5 --json child.json

`measure(events, repeats, config)` returns the figures for scripts/bench/payload.py to include:
ratio = in-process seconds / supervised seconds (throughput ratio, higher is better).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pipe
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_SIDE = """
import time
start = time.monotonic()
import pickle
from wrapper.step.request import run_step
from wrapper.step.supervisor import run_supervised
request = pickle.loads(bytes.fromhex({request!r}))
if {supervised!r}:
    run_supervised(request, on_progress=lambda tick: None, stop_requested=lambda: False,
                   stop_reason=lambda: None)
else:
    run_step(request, list(request.inputs), on_progress=lambda tick: None, should_stop=lambda: False,
             on_checkpoint=None)
print(time.monotonic() - start)
"""


def _request(work: Path, events: int, config: str):
    from payload.api import InferConfig, Provenance
    from payload.model import build_model, get_config
    from payload.modelfile import save_model
    from payload.simulate import simulate_events
    from wrapper.step.request import StepRequest

    data = simulate_events(events, 5, path=work / "events.h5")
    model = save_model(build_model(get_config(config)), work / "model.keras")
    return lambda i: StepRequest("infer", (data,), model, {"outputPredFile": work / f"pred{i}.h5"},
                                 {"outputPredFile": "pred.h5"}, InferConfig(model_config=config, batch_size=4),
                                 Provenance(), workdir=work)


def _env() -> dict:
    """Ours, with the repository root importable in the fresh interpreters."""
    return dict(os.environ, PYTHONPATH=str(ROOT))


def _timed(request, supervised: bool) -> float:
    import pickle

    code = _SIDE.format(request=pickle.dumps(request).hex(), supervised=supervised)
    done = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def child_startup_s(repeats: int) -> float:
    """Median seconds for a new interpreter to import the payload child's modules and exit."""
    code = "import wrapper.step.child, wrapper.step.request"
    times = []
    for _ in range(repeats):
        start = time.monotonic()
        subprocess.run([sys.executable, "-c", code], env=_env(), check=True)
        times.append(time.monotonic() - start)
    return statistics.median(times)


def message_round_trip_s(count: int = 2000) -> float:
    """Seconds per progress message sent and received over the supervisor's kind of pipe."""
    from payload.api import Progress

    ours, theirs = Pipe(duplex=True)
    tick = Progress("infer", 1, 100, "events", {"loss": 0.5})
    start = time.monotonic()
    for _ in range(count):
        theirs.send(("progress", tick))
        ours.recv()
    return (time.monotonic() - start) / count


def measure(events: int = 32, repeats: int = 5, config: str = "tiny") -> dict:
    """The child's cost: whole-process medians of both sides, their ratio, start-up, per message."""
    with tempfile.TemporaryDirectory() as tmp:
        make = _request(Path(tmp), events, config)
        inproc, supervised = [], []
        for i in range(repeats):
            inproc.append(_timed(make(2 * i), supervised=False))
            supervised.append(_timed(make(2 * i + 1), supervised=True))
    a, b = statistics.median(inproc), statistics.median(supervised)
    return {"name": "payload_child_overhead", "ratio": round(a / b, 3), "samples": repeats,
            "whole_process": True, "in_process_s": round(a, 3), "supervised_s": round(b, 3),
            "in_process_range_s": [round(min(inproc), 3), round(max(inproc), 3)],
            "supervised_range_s": [round(min(supervised), 3), round(max(supervised), 3)],
            "extra_s": round(b - a, 3), "child_startup_s": round(child_startup_s(repeats), 3),
            # the payload sends one progress message per batch: that is the child's per-batch cost
            "per_batch_overhead_s": message_round_trip_s(), "events": events, "config": config}


def main(argv: list[str]) -> int:
    """Measure and print the child's figure (and write it to --json); 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    figure = measure(args.events, args.repeats, args.config)
    print(json.dumps(figure, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"figures": [figure]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

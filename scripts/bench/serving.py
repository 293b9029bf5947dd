#!/usr/bin/env python3
"""Inference as a service: a CPU job's events/s through a Triton server against the same job in process.

Both sides are whole trf processes (`python -m wrapper --mode=infer`, a fresh job directory each)
on the same events and model file, float32: "in-process" loads the framework and runs the network
itself, "served" sends its events to one `dune-payload-serve` (PyTriton, CPU, float32) started
here. Then 4 jobs at once on each side (the served ones against the one server), as a queue's
slots would run them. Interleaved, medians over the repeats; the framework's import time (a
process importing TensorFlow against `python -c pass`) is shown apart, since a served job never
pays it.

On a CPU-only machine the server computes on the same cores as its clients: the ratio then shows
what the client saves (the framework's import and model load, the network's memory), not a GPU's
speed-up. On a GPU node, start the server there and run the clients elsewhere for the paper's view.

    python -m scripts.bench.serving --events 32 --repeats 3
    python -m scripts.bench.run --only=serving
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READY_BOUND_S = 240.0


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _inputs(work: Path, events: int, config: str) -> tuple[Path, Path]:
    from payload.model import build_model, get_config
    from payload.modelfile import save_model
    from payload.simulate import simulate_events

    data = simulate_events(events, 11, path=work / "events.h5")
    return data, save_model(build_model(get_config(config)), work / "model.keras")


def _start_server(model: Path, work: Path) -> tuple[subprocess.Popen, str, str]:
    """dune-payload-serve on `model` (CPU, float32) on free loopback ports: (process, url, model name)."""
    from scripts.tools import serve_venv

    grpc_port, http_port = _free_ports(2)
    out = work / "serve.out"
    argv = [str(serve_venv.ensure(log=lambda _line: None)), "-m", "wrapper.serve", "--modelFile", str(model),
            "--device", "cpu", "--precision", "float32", "--grpcPort", str(grpc_port),
            "--httpPort", str(http_port)]
    with open(out, "wb") as stdout, open(work / "serve.log", "wb") as stderr:
        process = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
    deadline = time.monotonic() + READY_BOUND_S
    while time.monotonic() < deadline and process.poll() is None:
        words = out.read_text().split()
        if "serving" in words:
            return process, f"grpc://127.0.0.1:{grpc_port}", words[words.index("serving") + 1]
        time.sleep(0.2)
    _stop(process)
    raise RuntimeError(f"the server did not become ready; its log: {work / 'serve.log'}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(40)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
    process.wait()


def _jobs(argv_of, count: int, work: Path) -> float:
    """Wall seconds of `count` trf processes started together, each in a fresh job directory."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    dirs = [Path(tempfile.mkdtemp(prefix="job-", dir=work)) for _ in range(count)]
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "wrapper", *argv_of()], cwd=d, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for d in dirs]
    errors = [p.communicate()[1] for p in procs]
    elapsed = time.perf_counter() - start
    for p, err in zip(procs, errors):
        if p.returncode != 0:
            raise RuntimeError(f"a job exited {p.returncode}: {err.decode(errors='replace')[-800:]}")
    return elapsed


def _import_s(module: str, repeats: int) -> float:
    """Median seconds a fresh interpreter takes to import `module` ('' : nothing)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}" if module else "pass"], check=True,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(events: int = 32, repeats: int = 3, config: str = "tiny", clients=(1, 4)) -> list[dict]:
    """One figure per client count: served events/s over in-process events/s (higher is better)."""
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        work = Path(tmp)
        data, model = _inputs(work, events, config)
        common = ["--mode=infer", f"--inputEventsFile={data}", "--outputPredFile=pred.h5"]
        server, url, name = _start_server(model, work)
        try:
            figures = []
            for count in clients:
                local, served = [], []
                for _ in range(repeats):
                    local.append(_jobs(lambda: [*common, f"--modelFile={model}", "--precision=float32"],
                                       count, work))
                    served.append(_jobs(lambda: [*common, f"--inferenceServer={url}", f"--inferenceModel={name}"],
                                        count, work))
                a, b = statistics.median(local), statistics.median(served)
                figures.append({"name": f"serving_{count}_jobs", "ratio": round(a / b, 3), "samples": repeats,
                                "whole_process": True, "jobs": count, "events_per_job": events, "config": config,
                                "in_process_events_per_s": round(count * events / a, 2),
                                "served_events_per_s": round(count * events / b, 2),
                                "in_process_s": [round(t, 2) for t in local],
                                "served_s": [round(t, 2) for t in served]})
        finally:
            _stop(server)
    bare = _import_s("", repeats)
    figures.append({"name": "framework_import", "ratio": None, "samples": repeats, "whole_process": True,
                    "tensorflow_import_s": round(_import_s("tensorflow", repeats) - bare, 2),
                    "tritonclient_import_s": round(_import_s("tritonclient.grpc", repeats) - bare, 2)})
    return figures


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=32, help="events per job (default 32)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--config", default="tiny", help="the network (default tiny)")
    parser.add_argument("--json", type=Path)
    return parser


def figures(argv: list[str]) -> list[dict]:
    """The figures for scripts/bench/run.py's --json."""
    args = _parser().parse_args(argv)
    return measure(args.events, args.repeats, args.config)


def main(argv: list[str]) -> int:
    """Measure and print the figures (and write them to --json); 0."""
    args = _parser().parse_args(argv)
    result = measure(args.events, args.repeats, args.config)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"figures": result}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

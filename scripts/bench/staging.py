#!/usr/bin/env python3
"""Staging benchmark against a loopback SeaweedFS: whole processes from a cold start, like for like.

1. Copy: the same objects fetched by three whole processes started afresh each run:
   ours (`python -m wrapper.staging s3://bench/<case>/*.h5`, the trf's `stage_inputs` with its
   defaults), `aws s3 cp --recursive` (awscli) and `s5cmd cp` (the fastest common S3 copier), for
   8 x 64 MiB and 256 x 1 MiB files. Each run rotates which tool goes first (the machine is shared);
   medians with min/max, >= 5 runs a tool. Ratio = our throughput / theirs (higher is better).
2. Direct access: events/s reading /images of an HDF5 events file in batches through the
   block-cached S3 file object vs from a local copy.

    python -m scripts.bench.staging [--repeat 5] [--cases 8x64,256x1] [--json FILE]
    python -m scripts.bench.run --only=staging --json FILE      # the figures alone, as JSON
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

from tests.support import seaweed
from wrapper.staging import StagingOptions, stage_inputs

ROOT = Path(__file__).resolve().parents[2]

MiB = 1 << 20
BIN = Path(sys.executable).parent
TOOLS = ("ours", "awscli", "s5cmd")


def upload_inputs(client, prefix: str, files: int, mib: int) -> int:
    """`files` distinct, incompressible objects of `mib` MiB under s3://bench/<prefix>/."""
    block = os.urandom(MiB)
    for i in range(files):
        body = b"".join(block[j % MiB:] + block[:j % MiB] for j in range(i * 7919, i * 7919 + mib))
        client.put_object(Bucket="bench", Key=f"{prefix}/ev{i:04d}.h5", Body=body)
    return files * mib * MiB


def commands(tool: str, prefix: str, target: Path, endpoint: str) -> List[str]:
    """The whole-process command of `tool` copying s3://bench/<prefix>/ into `target`."""
    if tool == "ours":
        return [sys.executable, "-m", "wrapper.staging", "--workdir", str(target), f"s3://bench/{prefix}/*.h5"]
    if tool == "awscli":
        return [str(BIN / "aws"), "s3", "cp", "--recursive", "--only-show-errors", "--endpoint-url", endpoint,
                f"s3://bench/{prefix}/", str(target)]
    return [str(BIN / "s5cmd"), "--log", "error", "--endpoint-url", endpoint, "cp", f"s3://bench/{prefix}/*",
            f"{target}/"]


def timed_copy(argv: List[str], target: Path, env: Dict[str, str], total: int) -> float:
    """Wall time of one cold process copying into an empty `target`; checks every byte arrived."""
    target.mkdir()
    started = time.perf_counter()
    subprocess.run(argv, check=True, env=env, cwd=target, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    landed = sum(p.stat().st_size for p in target.iterdir())
    shutil.rmtree(target)
    if landed != total:
        raise RuntimeError(f"{argv[0]} landed {landed} bytes, {total} expected")
    return seconds


def _summary(seconds: List[float], total: int) -> dict:
    return {"median_s": round(statistics.median(seconds), 3), "min_s": round(min(seconds), 3),
            "max_s": round(max(seconds), 3), "mib_s": round(total / MiB / statistics.median(seconds), 1),
            "runs_s": [round(s, 3) for s in seconds]}


def bench_copy(server, scratch: Path, files: int, mib: int, repeat: int) -> dict:
    """One case: every tool `repeat` times, interleaved; medians, min/max and throughput."""
    prefix = f"c{files}x{mib}"
    total = upload_inputs(server.client(), prefix, files, mib)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **server.env(),
           "PYTHONPATH": str(ROOT)}
    times: Dict[str, List[float]] = {tool: [] for tool in TOOLS}
    timed_copy(commands("ours", prefix, scratch / "warm", server.endpoint), scratch / "warm", env, total)
    for run in range(repeat):
        order = TOOLS[run % 3:] + TOOLS[:run % 3]
        for tool in order:
            target = scratch / f"{tool}-{run}"
            times[tool].append(timed_copy(commands(tool, prefix, target, server.endpoint), target, env, total))
    case = {"files": files, "mib_each": mib, "runs": repeat, **{t: _summary(s, total) for t, s in times.items()}}
    for theirs in ("awscli", "s5cmd"):
        case[f"vs_{theirs}"] = round(case[theirs]["median_s"] / case["ours"]["median_s"], 3)
    print(f"copy {files} x {mib} MiB ({repeat} runs each, medians): ours {case['ours']['median_s']} s, "
          f"awscli {case['awscli']['median_s']} s, s5cmd {case['s5cmd']['median_s']} s -> "
          f"{case['vs_awscli']}x awscli, {case['vs_s5cmd']}x s5cmd", flush=True)
    return case


def figures_of(cases: List[dict]) -> List[dict]:
    """The headline figures: per tool, the lower of the per-case ratios, every case alongside."""
    figures = []
    for theirs in ("awscli", "s5cmd"):
        per_case = {f"{c['files']}x{c['mib_each']}MiB": c[f"vs_{theirs}"] for c in cases}
        figures.append({"name": f"staging_vs_{theirs}", "ratio": min(per_case.values()),
                        "samples": min(c["runs"] for c in cases), "whole_process": True,
                        "statistic": "median", "ratio_is": "our throughput / theirs, the lower over the cases",
                        "cases": per_case,
                        "seconds": {name: {"ours": c["ours"], theirs: c[theirs]}
                                    for name, c in zip(per_case, cases)}})
    return figures


def events_per_second(source, batch: int) -> float:
    from payload.events import iter_batches

    started = time.perf_counter()
    events = sum(len(b.event_id) for b in iter_batches([source], batch, prefetch=2))
    return events / (time.perf_counter() - started)


def events_file(path: Path, events: int) -> Path:
    """Synthetic events from the payload's generator."""
    import numpy as np

    from payload.events import write_events as write
    from payload.simulate import generate_event

    rng = np.random.default_rng(20250101)
    images, labels = zip(*(generate_event(rng) for _ in range(events)))
    write(path, np.stack(images), np.stack(labels))
    return path


def bench_direct(server, scratch: Path, events: int, batch: int, repeat: int) -> dict:
    """Events/s through direct access vs a local copy, interleaved, medians."""
    local = events_file(scratch / "events.h5", events)
    server.client().put_object(Bucket="bench", Key="events/events.h5", Body=local.read_bytes())
    options = StagingOptions(workdir=scratch, access_mode="direct")
    direct, copy = [], []
    for _ in range(repeat):
        copy.append(events_per_second(local, batch))
        (staged,) = stage_inputs(["s3://bench/events/events.h5"], options)
        try:
            direct.append(events_per_second(staged.handle, batch))
            stats = staged.handle.stats()
        finally:
            staged.handle.close()
    result = {"events": events, "batch": batch, "file_mib": round(local.stat().st_size / MiB, 1),
              "runs": repeat, "direct_events_s": round(statistics.median(direct), 1),
              "local_events_s": round(statistics.median(copy), 1),
              "ratio": round(statistics.median(direct) / statistics.median(copy), 3),
              "ratio_min_max": [round(min(direct) / max(copy), 3), round(max(direct) / min(copy), 3)],
              "direct_requests": stats["requests"],
              "direct_peak_cache_mib": round(stats["peak_cached_bytes"] / MiB, 1)}
    print(f"direct: {result['direct_events_s']} events/s from S3 vs {result['local_events_s']} events/s "
          f"from a local copy -> {result['ratio']}x", flush=True)
    return result


def measure(argv=None) -> dict:
    """Run the benchmark; returns {"figures": [...], "copy": [...], "direct": {...}}."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="8x64,256x1", help="FILESxMIB cases, comma-separated")
    parser.add_argument("--repeat", type=int, default=5, help="runs per tool and case (>= 5 for a figure)")
    parser.add_argument("--events", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--no-direct", action="store_true", help="skip the direct-access comparison")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    cases = [tuple(int(n) for n in c.split("x")) for c in args.cases.split(",") if c]
    for tool in ("aws", "s5cmd"):
        if not (BIN / tool).exists():
            raise SystemExit(f"{BIN / tool} is missing: run scripts/setup_env.sh cpu,test")
    scratch = Path(tempfile.mkdtemp(prefix="bench-staging-"))
    server = seaweed.start(scratch / "seaweed")
    try:
        server.client().create_bucket(Bucket="bench")
        copies = [bench_copy(server, scratch, files, mib, args.repeat) for files, mib in cases]
        saved = dict(os.environ)
        os.environ.update(server.env())
        try:
            direct = None if args.no_direct else bench_direct(server, scratch, args.events, args.batch,
                                                              args.repeat)
        finally:
            os.environ.clear()
            os.environ.update(saved)
    finally:
        seaweed.stop(server)
        shutil.rmtree(scratch, ignore_errors=True)
    results = {"figures": figures_of(copies), "copy": copies, "direct": direct}
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return results


def figures(argv=None) -> List[dict]:
    """For scripts/bench/run.py: the headline figures, direct access included when measured."""
    results = measure(argv)
    direct = results["direct"]
    extra = [] if direct is None else [{"name": "direct_vs_local_copy", "ratio": direct["ratio"],
                                        "samples": direct["runs"], "whole_process": False,
                                        "statistic": "median", "ratio_is": "events/s read in place / from a local copy",
                                        **direct}]
    return results["figures"] + extra


def main(argv: list[str]) -> int:
    """Run the staging benchmarks and print their results as JSON; 0."""
    print(json.dumps(measure(argv), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

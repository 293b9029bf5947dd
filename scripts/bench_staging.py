#!/usr/bin/env python3
"""Staging benchmark against a loopback SeaweedFS, with its baselines measured in the same run.

1. Copy: stage N files of S MiB with `stage_inputs` (a glob) vs `aws s3 cp --recursive` (awscli,
   same endpoint, same credentials); throughput ratio ours / awscli (goal >= 1.0).
2. Direct access: events/s reading /images of an HDF5 events file in batches through the
   block-cached S3 file object vs from a local copy (payload.events.iter_batches when present,
   else h5py slices).

Runs alternate between the two sides (who goes first alternates too) and the median of each is
reported.

    python scripts/bench_staging.py [--files 8] [--mib 64] [--repeat 3] [--threads 4]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import seaweed  # noqa: E402
from tests.support.samples import write_events  # noqa: E402
from wrapper.staging import StagingOptions, stage_inputs  # noqa: E402

MiB = 1 << 20


def upload_inputs(client, files: int, mib: int) -> int:
    client.create_bucket(Bucket="bench")
    block = os.urandom(MiB)
    for i in range(files):
        body = b"".join(block[j:] + block[:j] for j in range(i, i + mib))   # distinct, incompressible
        client.put_object(Bucket="bench", Key=f"run1/ev{i:03d}.h5", Body=body)
    return files * mib * MiB


def time_ours(scratch: Path, threads: int) -> float:
    job = scratch / "ours"
    job.mkdir()
    started = time.perf_counter()
    staged = stage_inputs(["s3://bench/run1/*.h5"], StagingOptions(workdir=job, threads=threads))
    seconds = time.perf_counter() - started
    assert sum(s.size for s in staged) == sum(p.stat().st_size for p in job.iterdir())
    shutil.rmtree(job)
    return seconds


def time_awscli(scratch: Path, server: seaweed.SeaweedServer) -> float:
    target = scratch / "awscli"
    aws = shutil.which("aws", path=str(Path(sys.executable).parent)) or "aws"
    started = time.perf_counter()
    subprocess.run([aws, "s3", "cp", "--recursive", "--only-show-errors", "--endpoint-url", server.endpoint,
                    "s3://bench/run1/", str(target)], check=True, env={**os.environ, **server.env()})
    seconds = time.perf_counter() - started
    shutil.rmtree(target)
    return seconds


def events_per_second(source, batch: int) -> float:
    try:
        from payload.events import iter_batches
    except ImportError:
        iter_batches = None
    started = time.perf_counter()
    if iter_batches is not None:
        events = sum(len(b.event_id) for b in iter_batches([source], batch, prefetch=2))
    else:
        import h5py

        with h5py.File(source, "r") as f:
            images = f["images"]
            events = sum(len(images[i:i + batch]) for i in range(0, len(images), batch))
    return events / (time.perf_counter() - started)


def events_file(path: Path, events: int) -> Path:
    """Synthetic events from the payload's generator when present, else the tests' simpler tracks."""
    try:
        import numpy as np

        from payload.events import write_events as write
        from payload.simulate import generate_event
    except ImportError:
        return write_events(path, events=events)
    rng = np.random.default_rng(20250101)
    images, labels = zip(*(generate_event(rng) for _ in range(events)))
    write(path, np.stack(images), np.stack(labels))
    return path


def bench_direct(server, scratch: Path, events: int, batch: int, repeat: int) -> dict:
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
    return {"events": events, "batch": batch, "file_mib": round(local.stat().st_size / MiB, 1),
            "direct_events_s": round(statistics.median(direct), 1),
            "local_events_s": round(statistics.median(copy), 1),
            "ratio": round(statistics.median(direct) / statistics.median(copy), 3),
            "direct_requests": stats["requests"],
            "direct_peak_cache_mib": round(stats["peak_cached_bytes"] / MiB, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--events", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args(argv)
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        del os.environ[name]
    scratch = Path(tempfile.mkdtemp(prefix="bench-staging-"))
    server = seaweed.start(scratch / "seaweed")
    try:
        os.environ.update(server.env())
        total = upload_inputs(server.client(), args.files, args.mib)
        ours, theirs = [], []
        for run in range(args.repeat):              # alternate who goes first: the machine is shared
            if run % 2 == 0:
                theirs.append(time_awscli(scratch, server))
            ours.append(time_ours(scratch, args.threads))
            if run % 2 == 1:
                theirs.append(time_awscli(scratch, server))
        copy = {"files": args.files, "mib_each": args.mib, "threads": args.threads,
                "ours_s": round(statistics.median(ours), 3), "awscli_s": round(statistics.median(theirs), 3),
                "ours_mib_s": round(total / MiB / statistics.median(ours), 1),
                "awscli_mib_s": round(total / MiB / statistics.median(theirs), 1),
                "ratio": round(statistics.median(theirs) / statistics.median(ours), 3),
                "runs_ours_s": [round(s, 3) for s in ours], "runs_awscli_s": [round(s, 3) for s in theirs]}
        print(f"copy: {args.files} x {args.mib} MiB: ours {copy['ours_mib_s']} MiB/s, awscli "
              f"{copy['awscli_mib_s']} MiB/s -> {copy['ratio']}x awscli", flush=True)
        direct = bench_direct(server, scratch, args.events, args.batch, args.repeat)
        print(f"direct: {direct['direct_events_s']} events/s from S3 vs {direct['local_events_s']} events/s "
              f"from a local copy -> {direct['ratio']}x", flush=True)
        print(json.dumps({"copy": copy, "direct": direct}, indent=1))
    finally:
        seaweed.stop(server)
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

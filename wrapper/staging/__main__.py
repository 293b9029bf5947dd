"""Staging alone, as a whole process: `python -m wrapper.staging [--workdir DIR] URI...`.

The same `stage_inputs` the trf runs, with the same defaults, for timing staging from a cold
start against other copy tools (scripts/bench/staging.py) and for trying an endpoint by hand.
It writes no job report: exit 0, or the trf's exit code with the error on stderr.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from wrapper import exitcodes as ec
from wrapper.errors import TrfError
from wrapper.staging.options import StagingOptions
from wrapper.staging.stage import stage_inputs


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Stage every URI into --workdir; print one line per file."""
    parser = argparse.ArgumentParser(prog="python -m wrapper.staging", description=__doc__.splitlines()[0])
    parser.add_argument("uris", nargs="+", help="inputs as the trf takes them (s3://, https://, globs, #ad:)")
    parser.add_argument("--workdir", type=Path, default=Path.cwd(), help="where files land (default: here)")
    parser.add_argument("--threads", type=int, default=StagingOptions.threads,
                        help="transfers in flight, as --stagingThreads")
    parser.add_argument("--s3Endpoint", dest="s3_endpoint", help="as the trf's --s3Endpoint")
    parser.add_argument("--s3PathStyle", dest="s3_path_style", action="store_true")
    parser.add_argument("--partMiB", dest="part_mib", type=int, default=StagingOptions.part_size >> 20,
                        help="S3 multipart threshold and part size in MiB (for tuning)")
    args = parser.parse_args(argv)
    options = StagingOptions(workdir=args.workdir, threads=args.threads, s3_endpoint=args.s3_endpoint,
                             s3_path_style=args.s3_path_style, part_size=args.part_mib << 20)
    try:
        staged = stage_inputs(args.uris, options)
    except TrfError as err:
        print(f"staging: error: {err}", file=sys.stderr, flush=True)
        return err.exit_code
    for item in staged:
        print(f"{item.local_path.name}\t{item.size}\t{item.seconds:.3f}s\t{item.attempts} attempt(s)")
    return ec.OK


if __name__ == "__main__":
    code = ec.safe(main())
    sys.stdout.flush()
    sys.stderr.flush()
    # Skips the interpreter's teardown, as the payload's child does: every file is closed and
    # renamed, every pool joined, and collecting botocore's objects on the way out took longer
    # than some transfers (scripts/bench/staging_profile.py, phase "exit").
    os._exit(code)

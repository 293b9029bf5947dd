#!/usr/bin/env python3
"""Replay a PanDA job through the real PanDA pilot on this machine, isolated (docs/pilot.md).

    python -m scripts.tools.run_pilot_local JOB.json --input a.h5 --input b.h5 \
        --trf dist/dune-payload.pyz --run-dir /tmp/replay-1001 [--pilot-version 3.7.0.36]

The pilot is pilot3 3.11.5.1 (what sites run, from its source tarball: shared/pilot3 beside the
clone, or $DUNE_PILOT3_TARBALL) unless --pilot-version names PyPI's 3.7.0.36.

JOB.json is a job definition (the job's fields, or pandaJobData.out's {"<PandaID>": {...}}).
Prints the pilot's verdict as JSON (also RUN_DIR/summary.json); exits 0 when the pilot finished the
job, 1 when it failed it, 69 when the harness could not run the pilot.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from scripts.pilot_harness import pilots, run


# Plugins this project ships, copied into the unpacked pilot when --pilot-user names them.
PLUGINS = {"dune": Path(__file__).resolve().parents[2] / "deploy" / "pilot-plugin" / "dune"}


def choose_pilot(version: str, pilot_user: str) -> pilots.Pilot:
    """The pilot to run; pilot3 is unpacked to a new temporary directory, with our plugin in it
    when `pilot_user` is one we ship."""
    if version == pilots.PYPI_VERSION:
        return pilots.pypi(pilot_user)
    plugins = {pilot_user: PLUGINS[pilot_user]} if pilot_user in PLUGINS else {}
    top = pilots.unpack(Path(tempfile.mkdtemp(prefix="dune-pilot3-")) / "src", plugins=plugins)
    return pilots.pilot3(top, pilot_user)


def main(argv: list[str]) -> int:
    """Run the job through the pilot and print its verdict; 0 finished, 1 failed, 69 not run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("job", type=Path, help="job definition JSON")
    parser.add_argument("--input", "-i", type=Path, action="append", default=[],
                        help="an input replica, named as its LFN in inFiles (repeat for each)")
    parser.add_argument("--trf", type=Path, required=True,
                        help="the trf file to serve under the job's transformation URL name")
    parser.add_argument("--run-dir", type=Path, required=True, help="new directory for this run")
    parser.add_argument("--lifetime", type=int, default=None,
                        help="pilot lifetime in seconds when the job has no maxWalltime (900)")
    parser.add_argument("--sigterm-after", metavar="TEXT", default=None,
                        help="send the pilot SIGTERM (as a batch system would) once TEXT appears in "
                             "the trf's payload.stdout")
    parser.add_argument("--pilot-version", choices=[pilots.PILOT3_VERSION, pilots.PYPI_VERSION],
                        default=pilots.PILOT3_VERSION, help="the pilot to run (default: %(default)s)")
    parser.add_argument("--pilot-user", default="generic",
                        help="the pilot user plugin, pilot/user/NAME; 'dune' copies in this "
                             "project's (deploy/pilot-plugin) (default: %(default)s)")
    parser.add_argument("--full", action="store_true",
                        help="print everything, including worker_attributes.json and the pilot log extract")
    args = parser.parse_args(argv)
    try:
        verdict = run.replay(args.job, args.input, args.trf, args.run_dir, lifetime_s=args.lifetime,
                             sigterm_after=args.sigterm_after,
                             pilot=choose_pilot(args.pilot_version, args.pilot_user))
    except (run.HarnessError, ValueError, OSError) as err:
        print(f"run_pilot_local: {err}", file=sys.stderr)
        return 69
    if not args.full:
        verdict = {k: v for k, v in verdict.items() if k != "worker_attributes"}
    print(json.dumps(verdict, indent=1, sort_keys=True))
    return 0 if verdict.get("job_status") == "finished" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

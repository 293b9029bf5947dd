"""The real pilots' job-parameter cleaning: `JobData.clean__jobparams` of pilot 3.11.5.1 (the unpacked
production tarball) and of pilot 3.7.0.36 (PyPI's panda-pilot, installed in the environment).

Both packages are called `pilot`, so each runs in its own interpreter: a job definition goes in on
stdin, the pilot's `JobData` is built from it exactly as the pilot builds it from a PanDA job, and
what the pilot would run (jobparams) and the image it took out come back as JSON.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from scripts.pilot_harness import pilots as harness

ROOT = Path(__file__).resolve().parents[2]

_CLEAN = r"""
import json, sys
import pilot
from pilot.info.jobdata import JobData
from pilot.util import constants
job = JobData(json.load(sys.stdin))
version = ".".join(str(getattr(constants, k)) for k in ("RELEASE", "VERSION", "REVISION", "BUILD"))
print(json.dumps({"jobparams": job.jobparams, "imagename": job.imagename, "version": version,
                  "module": pilot.__file__}))
"""


@dataclass(frozen=True)
class Pilot:
    """One pilot version's source: `source` is the directory holding its `pilot` package, or None
    for the installed panda-pilot."""

    version: str
    source: Optional[Path]

    def clean(self, job: dict) -> dict:
        """The pilot's JobData for `job`: {jobparams, imagename, version, module}."""
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PILOT_USER"] = "generic"
        if self.source:  # the unpacked pilot's package, ahead of the installed panda-pilot
            env["PYTHONPATH"] = str(self.source)
        done = subprocess.run([sys.executable, "-c", _CLEAN], input=json.dumps(job),
                              env=env, cwd=str(self.source or ROOT), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"pilot {self.version} JobData failed: {done.stderr[-2000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if result["version"] != self.version:
            raise RuntimeError(f"expected pilot {self.version}, imported {result['version']} from "
                               f"{result['module']}")
        return result


def unpack_pilot3(target: Path) -> Path:
    """Unpack the production tarball (the pilot harness finds it) into `target`, which must not
    exist yet; returns the directory holding `pilot/`."""
    return harness.unpack(target)

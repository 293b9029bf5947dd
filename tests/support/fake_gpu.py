"""A stand-in `nvidia-smi` that answers with what real GPU machines printed.

No GPU exists where the tests run, so GPU detection is fed captured output (tests/platform/fixtures,
whose README says where each capture comes from). Used by the platform tests and by the pilot
tests that run a job on a "GPU node".
"""
from __future__ import annotations

import stat
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "platform" / "fixtures"

# The fake nvidia-smi. It is a separate program, as the real one is, so the code under test runs
# it through subprocess exactly as on a node.
FAKE_SMI = """#!{python}
import json, os, sys
machine = os.environ["FAKE_SMI_MACHINE"]
with open(os.environ["FAKE_SMI_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
for answer in json.load(open(os.path.join(machine, "responses.json"))):
    if answer["argv"] == "*" or answer["argv"] == sys.argv[1:]:
        sys.stdout.write(open(os.path.join(machine, answer["stdout"])).read())
        sys.exit(answer["rc"])
sys.stdout.write("fake nvidia-smi: no capture for %r\\n" % (sys.argv[1:],))
sys.exit(97)
"""


def write_fake_smi(bin_dir: Path) -> Path:
    """Create `bin_dir` holding an executable `nvidia-smi` (the fake); returns `bin_dir`."""
    bin_dir.mkdir(parents=True)
    exe = bin_dir / "nvidia-smi"
    exe.write_text(FAKE_SMI.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bin_dir


def fake_smi_environment(machine: str, log: Path) -> dict:
    """The variables that make the fake answer as `machine` (a fixtures folder) and log its calls."""
    return {"FAKE_SMI_MACHINE": str(FIXTURES / machine), "FAKE_SMI_LOG": str(log)}

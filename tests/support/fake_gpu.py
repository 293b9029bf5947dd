"""Stand-ins for the vendors' GPU tools (`nvidia-smi`, `amd-smi`, `rocm-smi`, `xpu-smi`) that answer
with what real GPU machines printed.

No GPU exists where the tests run, so GPU detection is fed captured output (tests/platform/fixtures,
whose README says where each capture comes from). Used by the platform tests and by the pilot
tests that run a job on a "GPU node".
"""
from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "platform" / "fixtures"

# The fake tool. It is a separate program, as the real ones are, so the code under test runs it
# through subprocess exactly as on a node. It answers as the tool it is called as: an entry of
# responses.json belongs to the tool its "tool" names (nvidia-smi when absent). The log records
# the tool only when it is not nvidia-smi, so NVIDIA call logs read as before.
FAKE_SMI = """#!{python}
import json, os, sys
tool = os.path.basename(sys.argv[0])
machine = os.environ["FAKE_SMI_MACHINE"]
with open(os.environ["FAKE_SMI_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:] if tool == "nvidia-smi" else [tool] + sys.argv[1:]) + "\\n")
for answer in json.load(open(os.path.join(machine, "responses.json"))):
    if answer.get("tool", "nvidia-smi") != tool:
        continue
    if answer["argv"] == "*" or answer["argv"] == sys.argv[1:]:
        sys.stdout.write(open(os.path.join(machine, answer["stdout"])).read())
        sys.exit(answer["rc"])
sys.stdout.write("fake %s: no capture for %r\\n" % (tool, sys.argv[1:]))
sys.exit(97)
"""
TOOLS = ("nvidia-smi", "amd-smi", "rocm-smi", "xpu-smi")


def write_fake_smi(bin_dir: Path, tools=("nvidia-smi",)) -> Path:
    """Create `bin_dir` holding the fake as each of `tools` (executables); returns `bin_dir`.
    A tool left out is absent from the node, as on a machine without that vendor's software."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in tools:
        exe = bin_dir / tool
        exe.write_text(FAKE_SMI.format(python=sys.executable))
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bin_dir


def machine_tools(machine: str) -> tuple:
    """The tools a fixtures machine has captures for, in TOOLS order."""
    answers = json.loads((FIXTURES / machine / "responses.json").read_text())
    named = {a.get("tool", "nvidia-smi") for a in answers}
    return tuple(t for t in TOOLS if t in named)


def fake_smi_environment(machine: str, log: Path) -> dict:
    """The variables that make the fake answer as `machine` (a fixtures folder) and log its calls."""
    return {"FAKE_SMI_MACHINE": str(FIXTURES / machine), "FAKE_SMI_LOG": str(log)}

"""Fixtures of the spine tests: the real CLI in a subprocess, its reports, an unwritable job directory.

The CLI runs as `python -m wrapper` (what the `dune-payload` console script calls) in a fresh, empty
job directory, the way the pilot runs a trf.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FRAMEWORKS = ("tensorflow", "keras", "torch", "jax")

# Runs the CLI exactly as `python -m wrapper` does, and records every framework import attempt
# (an audit hook sees imports that a try/except would hide) into the file named by $SPINE_IMPORTS.
_PROBE = """
import os, runpy, sys
FRAMEWORKS = {frameworks!r}
seen = set()
def hook(event, args):
    if event == "import" and args[0].split(".")[0] in FRAMEWORKS:
        seen.add(args[0].split(".")[0])
sys.addaudithook(hook)
sys.argv = ["dune-payload"] + sys.argv[1:]
try:
    runpy.run_module("wrapper", run_name="__main__", alter_sys=True)
finally:
    seen.update(m for m in FRAMEWORKS if m in sys.modules)
    with open(os.environ["SPINE_IMPORTS"], "w") as out:
        out.write(",".join(sorted(seen)))
""".format(frameworks=FRAMEWORKS)


@dataclass(frozen=True)
class CliResult:
    rc: int
    stdout: str
    stderr: str
    frameworks: frozenset


def _cli_env(**extra: str) -> dict:
    """The environment of a pilot-started trf: ours, with the repo importable and no stray secrets."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "BEARER_TOKEN")) and k != "PYTHONSTARTUP"}
    env["PYTHONPATH"] = str(ROOT)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.update(extra)
    return env


def _run_cli(args, cwd: Path, *, env: dict | None = None, timeout: float = 120,
             umask: int = -1) -> CliResult:
    """Run the real CLI with `args` in `cwd` (under `umask` if given); return its exit code,
    output and framework imports."""
    imports = Path(cwd).parent / f".imports.{Path(cwd).name}"
    environment = dict(env or _cli_env())
    environment["SPINE_IMPORTS"] = str(imports)
    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=timeout, umask=umask)
    found = imports.read_text().split(",") if imports.exists() else ["<probe did not finish>"]
    imports.unlink(missing_ok=True)
    return CliResult(proc.returncode, proc.stdout, proc.stderr, frozenset(f for f in found if f))


def _read_reports(jobdir: Path) -> tuple[dict, dict | None]:
    """(jobReport.json, payload_error_report.json or None) of a finished job."""
    report = json.loads((jobdir / "jobReport.json").read_text())
    error_path = jobdir / "payload_error_report.json"
    error = json.loads(error_path.read_text()) if error_path.exists() else None
    return report, error


def _assert_failed_with(jobdir: Path, code: int) -> dict:
    """Both reports exist and carry `code`; returns the job report."""
    report, error = _read_reports(jobdir)
    assert report["exitCode"] == code, report
    assert error is not None, "payload_error_report.json missing on failure"
    assert error == {"error_code": code, "error_diag": report["exitMsg"]}
    return report




@pytest.fixture
def cli_env():
    """`cli_env(**extra)` → the CLI's environment with `extra` variables added."""
    return _cli_env


@pytest.fixture
def run_cli():
    """`run_cli(args, cwd, env=None, timeout=120, umask=-1)` → CliResult(rc, stdout, stderr, frameworks imported)."""
    return _run_cli


@pytest.fixture
def read_reports():
    """`read_reports(jobdir)` → (jobReport.json, payload_error_report.json or None)."""
    return _read_reports


@pytest.fixture
def assert_failed_with():
    """`assert_failed_with(jobdir, code)`: both reports carry `code`; returns the job report."""
    return _assert_failed_with


@pytest.fixture
def jobdir(tmp_path: Path) -> Path:
    """An empty job directory, as the pilot gives a trf."""
    path = tmp_path / "job"
    path.mkdir()
    return path


@pytest.fixture
def readonly_jobdir(tmp_path: Path):
    """A job directory nobody can write to, root included: a read-only tmpfs (or an immutable
    directory where mounting is not allowed); a plain chmod is enough for other users."""
    path = tmp_path / "rojob"
    path.mkdir()
    undo = None
    if os.geteuid() != 0:
        path.chmod(0o555)
        undo = ["chmod", "0755", str(path)]
    elif subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)],
                        capture_output=True).returncode == 0:
        undo = ["umount", str(path)]
    elif subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0:
        undo = ["chattr", "-i", str(path)]
    else:
        pytest.fail("cannot make a read-only job directory: neither mount nor chattr +i works here")
    try:
        with pytest.raises(OSError):
            (path / "probe").touch()
        yield path
    finally:
        subprocess.run(undo, check=True)

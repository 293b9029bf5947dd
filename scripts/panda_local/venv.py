"""The PanDA venv: panda-server 1.0.4 (server and JEDI) from PyPI, in an environment of its own.

It is built once and reused while `requirements.txt` and this file are unchanged (a stamp holds
their digest); `.panda-venv/` at the repository root unless `$DUNE_PANDA_VENV` names another
place. Seen on the development machine: about 45 s and 660 MB, almost all of it the dependencies'
wheels (panda-server pulls rucio-free iDDS clients, snakemake, polars and scipy).

panda-server's sdist runs a build hook that, when the build's group is root's, chowns its log
directories to the production account (`atlpan:zp`) and fails where that user does not exist.
As root the wheel is therefore built with the real group set to `nogroup` (util-linux's setpriv),
which makes the hook use the calling user and group instead; nothing else changes.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from scripts.panda_local.errors import StackError

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PANDA_SERVER = "panda-server==1.0.4"
REQUIREMENTS = HERE / "requirements.txt"


def location() -> Path:
    """Where the PanDA venv lives."""
    return Path(os.environ.get("DUNE_PANDA_VENV", ROOT / ".panda-venv"))


def _digest() -> str:
    text = PANDA_SERVER + REQUIREMENTS.read_text() + Path(__file__).read_text()
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _run(argv: list, what: str, **kwargs) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise StackError(f"{what} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")


def ensure(venv: Path | None = None, log=print) -> Path:
    """The PanDA venv's python, building the venv first when it is missing or stale."""
    venv = Path(venv or location())
    python, stamp = venv / "bin" / "python", venv / ".dune-panda-stamp"
    if python.exists() and stamp.exists() and stamp.read_text().strip() == _digest():
        return python
    log(f"panda_local: building the PanDA venv in {venv} (about a minute)")
    if venv.exists():
        shutil.rmtree(venv)
    _run([sys.executable, "-m", "venv", str(venv)], "python -m venv")
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]
    _run([*pip, "install", "--upgrade", "pip"], "pip upgrade")
    with tempfile.TemporaryDirectory(prefix="panda-wheel-") as wheels:
        os.chmod(wheels, 0o777)
        build = [*pip, "wheel", "--no-deps", PANDA_SERVER, "-w", wheels]
        if os.getgid() == 0:
            if shutil.which("setpriv") is None:
                raise StackError("building panda-server as root needs setpriv (apt-get install util-linux)")
            build = ["setpriv", "--regid=nogroup", "--clear-groups", *build]
        _run(build, f"building {PANDA_SERVER}", env=dict(os.environ, VIRTUAL_ENV=str(venv)))
        (wheel,) = Path(wheels).glob("panda_server-*.whl")
        _run([*pip, "install", "--no-deps", str(wheel)], f"installing {wheel.name}")
    _run([*pip, "install", "-r", str(REQUIREMENTS)], "installing panda-server's requirements")
    stamp.write_text(_digest() + "\n")
    return python


def site_packages(python: Path) -> Path:
    """The venv's site-packages (JEDI imports pandacommon's and pandaserver's modules by their
    short names, so both folders go on its PYTHONPATH)."""
    done = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True)
    return Path(done.stdout.strip())

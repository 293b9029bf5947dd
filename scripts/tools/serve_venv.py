"""The serve venv: where `dune-payload-serve` runs, PyTriton next to the project's framework.

PyTriton 0.7.0 needs numpy below 2 while the project's main venv has numpy 2, so the server gets
an environment of its own: TensorFlow CPU, Keras, PyTriton (with its bundled tritonserver) and
the project itself, installed editable. It is built once and reused while the pins and this file
are unchanged (a stamp holds their digest); `.serve-venv/` at the repository root unless
`$DUNE_SERVE_VENV` names another place. Seen on the development machine: about 30 s from a local
index; TensorFlow 2.21 runs with numpy 1.26.

    python -m scripts.tools.serve_venv        # builds it when needed, prints its python
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# numpy and h5py are pinned with the rest so the project's own install cannot lift them:
# PyTriton's wheels are built against numpy 1, TensorFlow 2.21 pins h5py below 3.15.
PINS = ("tensorflow-cpu==2.21.0", "keras==3.15.1", "numpy<2", "h5py<3.15", "nvidia-pytriton==0.7.0")


class ServeVenvError(RuntimeError):
    """The serve venv could not be built; the message holds pip's last words."""


def location() -> Path:
    """Where the serve venv lives."""
    return Path(os.environ.get("DUNE_SERVE_VENV", ROOT / ".serve-venv"))


def _digest() -> str:
    text = "\n".join(PINS) + (ROOT / "setup.py").read_text() + Path(__file__).read_text()
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _run(argv: list, what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise ServeVenvError(f"{what} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")


def ensure(venv: Path | None = None, log=print) -> Path:
    """The serve venv's python, building the venv first when it is missing or stale."""
    venv = Path(venv or location())
    python, stamp = venv / "bin" / "python", venv / ".dune-serve-stamp"
    if python.exists() and stamp.exists() and stamp.read_text().strip() == _digest():
        return python
    log(f"serve_venv: building the serve venv in {venv} (about half a minute)")
    if venv.exists():
        shutil.rmtree(venv)
    _run([sys.executable, "-m", "venv", str(venv)], "python -m venv")
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]
    _run([*pip, "install", "--upgrade", "pip"], "pip upgrade")
    # One resolution for the pins and the project, so the project's numpy>=1.23 settles below 2.
    _run([*pip, "install", *PINS, "-e", str(ROOT)], "installing the serve venv's packages")
    stamp.write_text(_digest() + "\n")
    return python


def main() -> int:
    """Build (when needed) and print the serve venv's python; exit 1 with pip's error on failure."""
    try:
        python = ensure(log=lambda line: print(line, file=sys.stderr))
    except ServeVenvError as err:
        print(f"serve_venv: {err}", file=sys.stderr)
        return 1
    print(python)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The PanDA pilots the harness runs, and how each is started.

- pilot3 3.11.5.1, what production sites run: its real `pilot.py` from the unmodified source tarball
  (shared/pilot3 beside the clone, or $DUNE_PILOT3_TARBALL), unpacked to a directory of ours;
- panda-pilot 3.7.0.36 from PyPI, the oldest pilot still supported: the library has no `pilot.py`,
  so `scripts.pilot_harness.launcher` starts its generic workflow.

A pilot user plugin (`--pilot-user NAME`) other than `generic` is a directory copied into the
unpacked pilot as `pilot/user/NAME/` (see `unpack`).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from scripts.pilot_harness.errors import HarnessError

PILOT3_VERSION = "3.11.5.1"
PYPI_VERSION = "3.7.0.36"
TARBALL_ENV = "DUNE_PILOT3_TARBALL"
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Pilot:
    """One pilot to run: its version, the command that starts it (options follow), the directory
    holding its `pilot` package, and the user plugin it runs with."""

    version: str
    command: tuple
    library: Path
    pilot_user: str = "generic"

    @property
    def test_id(self) -> str:
        """How tests name this pilot: pilot-3.11.5.1."""
        return f"pilot-{self.version}"

    @property
    def has_pilot_py(self) -> bool:
        """True when the pilot starts with its own pilot.py (pilot3); False for the PyPI library,
        which our launcher starts."""
        return self.version != PYPI_VERSION

    @property
    def default_config(self) -> Path:
        """The pilot's own default.cfg, which the harness rewrites to loopback."""
        return self.library / "util" / "default.cfg"

    @property
    def errorcodes(self) -> Path:
        """pilot/common/errorcodes.py of this pilot (its stderr patterns, its error codes)."""
        return self.library / "common" / "errorcodes.py"


def tarball() -> Path:
    """The pilot3 source tarball: $DUNE_PILOT3_TARBALL, else shared/pilot3 beside the clone."""
    path = Path(os.environ.get(TARBALL_ENV) or ROOT.parent / "shared" / "pilot3" /
                f"pilot3-{PILOT3_VERSION}.tar.gz")
    if not path.is_file():
        raise HarnessError(f"pilot3 source tarball not found at {path}; put the unmodified "
                           f"pilot3-{PILOT3_VERSION}.tar.gz there (shared/pilot3 beside the clone) "
                           f"or set {TARBALL_ENV} to its path")
    return path


def unpack(dest: Path, *, source: Optional[Path] = None,
           plugins: Optional[Mapping[str, Path]] = None) -> Path:
    """Unpack the pilot3 tarball into `dest` (new); returns the directory holding pilot.py.

    `plugins` maps a pilot user name to a plugin directory, copied to `pilot/user/<name>/`.
    """
    source = source or tarball()
    dest.mkdir(parents=True)
    with tarfile.open(source) as archive:
        archive.extractall(dest, filter="data")
    (top,) = [p for p in dest.iterdir() if (p / "pilot.py").is_file()] or [None]
    if top is None:
        raise HarnessError(f"{source} holds no pilot.py; is it a pilot3 source tarball?")
    version = (top / "PILOTVERSION").read_text().strip()
    if version != PILOT3_VERSION:
        raise HarnessError(f"{source} is pilot {version}; the harness drives {PILOT3_VERSION}")
    for name, plugin in (plugins or {}).items():
        shutil.copytree(plugin, top / "pilot" / "user" / name)
    return top


def pilot3(top: Path, pilot_user: str = "generic") -> Pilot:
    """pilot3 unpacked in `top` (see `unpack`), started by its own pilot.py."""
    if not (top / "pilot" / "user" / pilot_user).is_dir():
        raise HarnessError(f"pilot user plugin {pilot_user!r} is not in {top / 'pilot' / 'user'}")
    return Pilot(PILOT3_VERSION, (sys.executable, str(top / "pilot.py")), top / "pilot", pilot_user)


def pypi(pilot_user: str = "generic") -> Pilot:
    """PyPI's panda-pilot, installed in this environment, started by our launcher."""
    try:
        import pilot
        from pilot.util.constants import get_pilot_version
    except ImportError:
        raise HarnessError(f"panda-pilot is not installed; pip install panda-pilot=={PYPI_VERSION} "
                           "(scripts/setup_env.sh test)") from None
    if get_pilot_version() != PYPI_VERSION:
        raise HarnessError(f"panda-pilot {get_pilot_version()} is installed; the harness drives "
                           f"{PYPI_VERSION}")
    return Pilot(PYPI_VERSION, (sys.executable, "-m", "scripts.pilot_harness.launcher"),
                 Path(pilot.__file__).parent, pilot_user)


def error_codes(pilot: Pilot):
    """This pilot's `ErrorCodes` class, loaded from its own errorcodes.py (which needs only the
    standard library), so each version's codes and stderr patterns are its own."""
    name = f"_pilot_errorcodes_{pilot.version.replace('.', '_')}"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, pilot.errorcodes)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return module.ErrorCodes

#!/usr/bin/env python3
"""Build dune-payload.pyz, the single-file trf the PanDA pilot downloads and runs
(see docs/design.md, 'The pilot contract').

A zipapp with `#!/usr/bin/env python3` holding the `wrapper` and `payload` packages; running it is
running `wrapper.main:cli`, the installed `dune-payload` console script. Third-party packages
(numpy, h5py, keras, the framework, boto3, …) come from the node's environment or container: the
trf checks them before any work (wrapper.requirements_check) and exits 69 naming what is missing.

    python scripts/build_pyz.py [-o dist/dune-payload.pyz]
"""
from __future__ import annotations

import argparse
import sys
import zipapp
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("wrapper", "payload")
ENTRY_POINT = "wrapper.main:cli"
INTERPRETER = "/usr/bin/env python3"


def _wanted(relative: Path) -> bool:
    """Package sources and package data only: no caches, no tests, nothing else of the tree."""
    parts = relative.parts
    if not parts or parts[0] not in PACKAGES or "__pycache__" in parts:
        return False
    return len(parts) == 1 or relative.suffix in (".py", ".json")


def build(target: Path, root: Path = ROOT) -> Path:
    """Write the zipapp to `target` (made executable) and return its path."""
    for package in PACKAGES:
        if not (root / package / "__init__.py").is_file():
            raise FileNotFoundError(f"{root / package} is not a package")
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    zipapp.create_archive(root, target, interpreter=INTERPRETER, main=ENTRY_POINT,
                          filter=_wanted, compressed=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "dist" / "dune-payload.pyz",
                        help="where to write the zipapp (default: dist/dune-payload.pyz)")
    args = parser.parse_args(argv)
    path = build(args.output)
    print(f"{path} ({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

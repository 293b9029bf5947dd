#!/usr/bin/env python3
"""Build dune-payload.pyz, the single-file trf the PanDA pilot downloads and runs
(see docs/design.md, 'The pilot contract').

A zipapp with `#!/usr/bin/env python3` holding the `wrapper` and `payload` packages; running it is
running `wrapper.main:cli`, the installed `dune-payload` console script. Its `__main__.py` is
scripts/tools/pyz_main.py: written for any Python 3 grammar, it checks the interpreter first, so a Python
too old for the trf still gets both reports and exit 69 naming the version needed. Third-party packages
(numpy, h5py, keras, the framework, boto3, …) come from the node's environment or container: the
trf checks them before any work (wrapper.platform.requirements) and exits 69 naming what is missing.

    python -m scripts.tools.build_pyz [-o dist/dune-payload.pyz]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import zipapp
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("wrapper", "payload")
ENTRY_MODULE = Path(__file__).resolve().parent / "pyz_main.py"
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
    # zipapp's generated __main__ would import the trf before any version check: stage our own.
    with tempfile.TemporaryDirectory(prefix="pyz-") as staging:
        tree = Path(staging)
        for path in sorted(p for package in PACKAGES for p in (root / package).rglob("*")):
            relative = path.relative_to(root)
            if path.is_file() and _wanted(relative):
                (tree / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, tree / relative)
        shutil.copyfile(ENTRY_MODULE, tree / "__main__.py")
        zipapp.create_archive(tree, target, interpreter=INTERPRETER, compressed=True)
    return target


def main(argv: list[str]) -> int:
    """Build the zipapp where -o says; 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "dist" / "dune-payload.pyz",
                        help="where to write the zipapp (default: dist/dune-payload.pyz)")
    args = parser.parse_args(argv)
    path = build(args.output)
    print(f"{path} ({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

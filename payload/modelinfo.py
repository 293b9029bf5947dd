"""What a model file holds, and where the packaged reference models are, without a framework.

A `.keras` file is a zip whose `config.json` names the network; reading that name needs no
TensorFlow, so a job wrapper can learn which network a file carries before it starts one.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Optional

MODEL_NAME_PREFIX = "fcdensenet_"     # payload.model names every network it builds so
REFERENCE_PREFIX = "reference:"
MODELS_DIR = Path(__file__).resolve().parent / "models"


def network_in_file(path: Path) -> Optional[str]:
    """The config name (`tiny`, `small`, `paper`, …) of the network saved in `path`, or None when
    the file is missing, not a `.keras` archive or holds a network not built by payload.model (the
    model loader then says precisely what is wrong)."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    name = config.get("config", {}).get("name") if isinstance(config, dict) else None
    if isinstance(name, str) and name.startswith(MODEL_NAME_PREFIX):
        return name[len(MODEL_NAME_PREFIX):]
    return None


def reference_names() -> list[str]:
    """The names `reference:<name>` can take: the reference models installed with the package."""
    return sorted(p.name[len("reference-"):-len(".keras")] for p in MODELS_DIR.glob("reference-*.keras"))


def is_reference(uri: str) -> bool:
    """Whether `uri` names a packaged reference model (`reference:small`)."""
    return uri.startswith(REFERENCE_PREFIX)


def reference_model(uri: str) -> Path:
    """The packaged file of `reference:<name>`. ValueError naming the known ones when there is none."""
    name = uri[len(REFERENCE_PREFIX):] if is_reference(uri) else uri
    path = MODELS_DIR / f"reference-{name}.keras"
    if not name or "/" in name or not path.is_file():
        known = ", ".join(REFERENCE_PREFIX + n for n in reference_names()) or "none installed"
        raise ValueError(f"no reference model {uri!r}: the package holds {known}")
    return path

